"""The bug bar as a rule table: loading and validating ``rules.yaml``.

For each mode the file gives ordered *rules* (a condition on the finding's metrics and
the deployment facts, a severity, and an evidence sentence), a *default* used when no
rule matches, and the names of the *modifiers* that apply. Modifiers are shared context
rules (conditions on deployment facts only) that shift the severity by a step or set a
floor or ceiling, each with the reason it gives.

Everything is checked when the file loads, so a typo in a metric, fact, operator,
severity, mode or modifier name fails at once, not in the middle of a scan.
"""
from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import yaml

from ..catalog import MODE_CODES
from ..errors import RedlineError
from ..severity import Severity
from .context import FACTS
from .expr import Expr, ExprError, Template, compile_condition, compile_template
from .vocabulary import metric_types

__all__ = [
    "FINDING_FIELDS", "RULE_NAMES", "ModeRules", "Modifier", "Rule", "RuleBook", "RuleError",
    "load_rules", "parse_rules",
]

SCHEMA_ID = "redline.triage-rules/1"

# Finding fields conditions may read (a metric of the same name takes precedence).
FINDING_FIELDS: dict[str, str] = {"queries": "number", "evaluation_queries": "number"}

_FACT_TYPES: dict[str, Any] = {name: ("bool" if allowed is bool else allowed) for name, allowed in FACTS.items()}
FACT_NAMES: Mapping[str, Any] = types.MappingProxyType(_FACT_TYPES)


class _RuleNames(Mapping[str, Any]):
    """What conditions may read: deployment facts, then declared metrics, then finding fields.

    The metrics come from the producers' declarations (:mod:`.vocabulary`), never from a list here.
    """

    def __getitem__(self, name: str) -> Any:
        for table in (_FACT_TYPES, metric_types(), FINDING_FIELDS):
            if name in table:
                return table[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(name in table for table in (_FACT_TYPES, metric_types(), FINDING_FIELDS))

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*FINDING_FIELDS, *metric_types(), *_FACT_TYPES]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


RULE_NAMES: Mapping[str, Any] = _RuleNames()


class RuleError(RedlineError):
    """The rules file is malformed (names, operators, severities or structure)."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """``when`` holds -> ``severity``, explained by ``evidence`` (None ``when``: the default)."""

    when: Expr | None
    severity: Severity
    evidence: Template


@dataclasses.dataclass(frozen=True)
class Modifier:
    """A context rule: when ``when`` holds, shift by ``shift`` steps or enforce a floor/ceiling."""

    name: str
    when: Expr
    because: Template
    shift: int = 0
    at_least: Severity | None = None
    at_most: Severity | None = None

    @property
    def raises(self) -> bool:
        return self.shift > 0 or self.at_least is not None

    @property
    def facts(self) -> frozenset[str]:
        return self.when.names


@dataclasses.dataclass(frozen=True)
class ModeRules:
    code: str
    rules: tuple[Rule, ...]
    default: Rule
    modifiers: tuple[Modifier, ...]

    def evidence_rule(self, env: Mapping[str, Any]) -> Rule:
        """The first rule whose condition definitely holds, else the default."""
        for rule in self.rules:
            if rule.when is not None and rule.when.holds(env):
                return rule
        return self.default


@dataclasses.dataclass(frozen=True)
class RuleBook:
    modes: Mapping[str, ModeRules]
    modifiers: Mapping[str, Modifier]

    def for_mode(self, code: str) -> ModeRules:
        return self.modes[code]


@functools.lru_cache(maxsize=1)
def load_rules() -> RuleBook:
    """The packaged rule table, validated once."""
    text = resources.files(__package__).joinpath("rules.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"rules.yaml is not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_rules(data)


def parse_rules(data: Any) -> RuleBook:
    """Validate a parsed rules document and compile it; RuleError names the first defect."""
    doc = _mapping(data, "the rules file", {"schema", "modifiers", "modes"}, {"schema", "modifiers", "modes"})
    if doc["schema"] != SCHEMA_ID:
        raise RuleError(f"rules schema is {doc['schema']!r}, expected {SCHEMA_ID!r}")
    modifiers_doc = _mapping(doc["modifiers"], "modifiers", set(), None)
    modifiers = {str(name): _parse_modifier(str(name), spec) for name, spec in modifiers_doc.items()}
    modes_doc = _mapping(doc["modes"], "modes", set(), None)
    unknown = sorted(str(c) for c in modes_doc if c not in MODE_CODES)
    if unknown:
        raise RuleError(f"rules name unknown mode(s) {', '.join(unknown)} (codes run from FM01 to FM17)")
    missing = [c for c in MODE_CODES if c not in modes_doc]
    if missing:
        raise RuleError(f"rules give no entry for {', '.join(missing)}; every mode needs at least a default")
    modes = {code: _parse_mode(code, modes_doc[code], modifiers) for code in MODE_CODES}
    used = {m.name for rules in modes.values() for m in rules.modifiers}
    unused = sorted(set(modifiers) - used)
    if unused:
        raise RuleError(f"modifier(s) {', '.join(unused)} are defined but no mode uses them")
    return RuleBook(types.MappingProxyType(modes), types.MappingProxyType(modifiers))


def _parse_mode(code: str, spec: Any, modifiers: Mapping[str, Modifier]) -> ModeRules:
    m = _mapping(spec, code, {"default"}, {"rules", "default", "modifiers"})
    rules_doc = m.get("rules", [])
    if not isinstance(rules_doc, list):
        raise RuleError(f"{code}.rules must be a list")
    rules = tuple(_parse_rule(r, f"{code}.rules[{i}]", conditional=True) for i, r in enumerate(rules_doc))
    default = _parse_rule(m["default"], f"{code}.default", conditional=False)
    names = m.get("modifiers", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RuleError(f"{code}.modifiers must be a list of modifier names")
    for name in names:
        if name not in modifiers:
            raise RuleError(f"{code} uses unknown modifier {name!r} (defined: {', '.join(modifiers) or 'none'})")
    if len(set(names)) != len(names):
        raise RuleError(f"{code} lists a modifier twice")
    return ModeRules(code, rules, default, tuple(modifiers[n] for n in names))


def _parse_rule(spec: Any, where: str, *, conditional: bool) -> Rule:
    keys = {"when", "severity", "evidence"} if conditional else {"severity", "evidence"}
    r = _mapping(spec, where, keys, keys)
    when = _condition(r["when"], RULE_NAMES, where) if conditional else None
    severity = _severity(r["severity"], f"{where}.severity")
    try:
        evidence = compile_template(r["evidence"], RULE_NAMES)
    except ExprError as exc:
        raise RuleError(f"{where}.evidence: {exc}") from None
    return Rule(when, severity, evidence)


def _parse_modifier(name: str, spec: Any) -> Modifier:
    where = f"modifiers.{name}"
    m = _mapping(spec, where, {"when", "because"}, {"when", "because", "shift", "at_least", "at_most"})
    effects = [k for k in ("shift", "at_least", "at_most") if k in m]
    if len(effects) != 1:
        raise RuleError(f"{where} needs exactly one of shift, at_least or at_most")
    when = _condition(m["when"], FACT_NAMES, where)
    try:
        because = compile_template(m["because"], FACT_NAMES)
    except ExprError as exc:
        raise RuleError(f"{where}.because: {exc}") from None
    shift = m.get("shift", 0)
    if "shift" in m and (not isinstance(shift, int) or isinstance(shift, bool) or shift == 0 or abs(shift) > 3):
        raise RuleError(f"{where}.shift must be a whole number of steps from -3 to 3, other than 0")
    at_least = _severity(m["at_least"], f"{where}.at_least") if "at_least" in m else None
    at_most = _severity(m["at_most"], f"{where}.at_most") if "at_most" in m else None
    return Modifier(name, when, because, shift, at_least, at_most)


def _condition(text: Any, names: Mapping[str, Any], where: str) -> Expr:
    try:
        return compile_condition(text, names)
    except ExprError as exc:
        facts_only = names is FACT_NAMES and "unknown name" in str(exc)
        hint = " (modifiers may only read deployment facts)" if facts_only else ""
        raise RuleError(f"{where}.when: {exc}{hint}") from None


def _severity(value: Any, where: str) -> Severity:
    try:
        severity = Severity.parse(value)
    except ValueError as exc:
        raise RuleError(f"{where}: {exc}") from None
    if severity is Severity.NONE:
        raise RuleError(f"{where} must be Low, Moderate, Important or Critical")
    return severity


def _mapping(value: Any, where: str, required: set[str], allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RuleError(f"{where} must be a mapping")
    if allowed is not None:
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise RuleError(f"{where} has unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        raise RuleError(f"{where} is missing {', '.join(missing)}")
    return value
