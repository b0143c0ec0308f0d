"""Loading ``threats.yaml``: per-mode rules that turn system facts into a threat model.

Everything is parsed and type-checked when the file loads (conditions against the fact
names in :mod:`.facts`, templates, locations, mitigation kinds), so an edit that misspells a
fact fails at once rather than in the middle of a threat model.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from ..catalog import MODE_CODES, PROPERTIES
from ..errors import RedlineError
from ..triage.expr import Expr, ExprError, Template, compile_condition, compile_template
from .facts import FACT_TYPES

__all__ = [
    "LOCATIONS",
    "MITIGATION_KINDS",
    "Clause",
    "ModeThreats",
    "ThreatRulesError",
    "load_threat_rules",
    "parse_threat_rules",
]

SCHEMA_ID = "redline.threats/1"

# Where a threat can enter the data flow (the diagram knows how to place each).
LOCATIONS = (
    "data",
    "training",
    "model_origin",
    "model",
    "dependencies",
    "inputs",
    "outputs",
    "physical",
    "environment",
    "deployment",
)

# The families of controls, with the words reports use for them.
MITIGATION_KINDS = {
    "sanitize_inputs": "sanitise inputs",
    "lock_out_queries": "lock out query attacks",
    "harden_outputs": "harden outputs",
    "access_control": "access control",
    "provenance": "signing and provenance",
    "monitoring": "monitoring",
    "testing": "testing",
    "training": "training",
    "patching": "patching and updates",
    "oversight": "human oversight",
    "design": "system design",
}


class ThreatRulesError(RedlineError):
    """threats.yaml is malformed (a packaging or editing mistake, not user input)."""


@dataclasses.dataclass(frozen=True)
class Clause:
    """A condition and the text it contributes when it holds."""

    when: Expr
    text: Template

    def holds(self, env: Mapping[str, Any]) -> bool:
        return self.when.holds(env)


@dataclasses.dataclass(frozen=True)
class Impact:
    prop: str
    text: Template
    when: Expr | None  # None: always


@dataclasses.dataclass(frozen=True)
class Mitigation:
    kind: str
    action: str
    needed: Expr | None  # None: always recommended


@dataclasses.dataclass(frozen=True)
class Tool:
    command: str
    what: str


@dataclasses.dataclass(frozen=True)
class ModeThreats:
    code: str
    enters: tuple[str, ...]
    applies: tuple[Clause, ...]
    not_applicable: tuple[Clause, ...]
    notes: tuple[Clause, ...]
    knowledge: tuple[Clause, ...]
    impact: tuple[Impact, ...]
    mitigations: tuple[Mitigation, ...]
    tools: tuple[Tool, ...]


@functools.lru_cache(maxsize=1)
def load_threat_rules() -> Mapping[str, ModeThreats]:
    """The packaged rules by mode code, validated once."""
    text = resources.files(__package__).joinpath("threats.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThreatRulesError(f"threats.yaml is not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_threat_rules(data)


def parse_threat_rules(data: Any) -> dict[str, ModeThreats]:
    doc = _mapping(data, "threats.yaml", {"schema", "modes"})
    if doc["schema"] != SCHEMA_ID:
        raise ThreatRulesError(f"threats.yaml schema is {doc['schema']!r}, expected {SCHEMA_ID!r}")
    modes = _mapping(doc["modes"], "modes", set(), allowed=None)
    if list(modes) != list(MODE_CODES):
        raise ThreatRulesError("threats.yaml must list FM01..FM17 once each, in order")
    return {code: _parse_mode(code, modes[code]) for code in MODE_CODES}


_MODE_KEYS = {"enters", "applies", "not_applicable", "notes", "knowledge", "impact", "mitigations", "tools"}


def _parse_mode(code: str, spec: Any) -> ModeThreats:
    m = _mapping(spec, code, _MODE_KEYS)
    enters = _list(m["enters"], f"{code}.enters", allow_empty=False)
    for location in enters:
        if location not in LOCATIONS:
            raise ThreatRulesError(f"{code}.enters names unknown location {location!r} (known: {', '.join(LOCATIONS)})")
    applies = _clauses(m["applies"], f"{code}.applies", "because", allow_empty=False)
    return ModeThreats(
        code=code,
        enters=tuple(enters),
        applies=applies,
        not_applicable=_clauses(m["not_applicable"], f"{code}.not_applicable", "because"),
        notes=_clauses(m["notes"], f"{code}.notes", "text"),
        knowledge=_clauses(m["knowledge"], f"{code}.knowledge", "text"),
        impact=tuple(_impact(v, f"{code}.impact[{i}]") for i, v in enumerate(_list(m["impact"], f"{code}.impact"))),
        mitigations=tuple(
            _mitigation(v, f"{code}.mitigations[{i}]")
            for i, v in enumerate(_list(m["mitigations"], f"{code}.mitigations"))
        ),
        tools=tuple(_tool(v, f"{code}.tools[{i}]") for i, v in enumerate(_list(m["tools"], f"{code}.tools"))),
    )


def _clauses(value: Any, where: str, text_key: str, *, allow_empty: bool = True) -> tuple[Clause, ...]:
    out = []
    for i, item in enumerate(_list(value, where, allow_empty=allow_empty)):
        c = _mapping(item, f"{where}[{i}]", {"when", text_key})
        out.append(
            Clause(_condition(c["when"], f"{where}[{i}].when"), _template(c[text_key], f"{where}[{i}].{text_key}"))
        )
    return tuple(out)


def _impact(value: Any, where: str) -> Impact:
    m = _mapping(value, where, {"property", "text"}, allowed={"property", "text", "when"})
    if m["property"] not in PROPERTIES:
        raise ThreatRulesError(f"{where}.property is {m['property']!r}; choose from {', '.join(PROPERTIES)}")
    when = _condition(m["when"], f"{where}.when") if "when" in m else None
    return Impact(m["property"], _template(m["text"], f"{where}.text"), when)


def _mitigation(value: Any, where: str) -> Mitigation:
    m = _mapping(value, where, {"kind", "action"}, allowed={"kind", "action", "needed"})
    if m["kind"] not in MITIGATION_KINDS:
        raise ThreatRulesError(f"{where}.kind is {m['kind']!r}; choose from {', '.join(MITIGATION_KINDS)}")
    needed = _condition(m["needed"], f"{where}.needed") if "needed" in m else None
    return Mitigation(m["kind"], _text(m["action"], f"{where}.action"), needed)


def _tool(value: Any, where: str) -> Tool:
    m = _mapping(value, where, {"command", "what"})
    command = _text(m["command"], f"{where}.command")
    if not command.startswith("redline "):
        raise ThreatRulesError(f"{where}.command must be a redline command")
    return Tool(command, _text(m["what"], f"{where}.what"))


def _condition(text: Any, where: str) -> Expr:
    try:
        return compile_condition(text, FACT_TYPES)
    except ExprError as exc:
        raise ThreatRulesError(f"{where}: {exc}") from None


def _template(text: Any, where: str) -> Template:
    try:
        return compile_template(text, FACT_TYPES)
    except ExprError as exc:
        raise ThreatRulesError(f"{where}: {exc}") from None


def _mapping(value: Any, where: str, required: set[str], allowed: set[str] | None = ...) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ThreatRulesError(f"{where} must be a mapping")
    allowed_keys = required if allowed is ... else allowed
    if allowed_keys is not None:
        unknown = sorted(str(k) for k in value if k not in allowed_keys)
        if unknown:
            raise ThreatRulesError(f"{where} has unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        raise ThreatRulesError(f"{where} is missing {', '.join(missing)}")
    return value


def _list(value: Any, where: str, *, allow_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise ThreatRulesError(f"{where} must be a list")
    if not value and not allow_empty:
        raise ThreatRulesError(f"{where} must not be empty")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ThreatRulesError(f"{where} must be non-empty text")
    return " ".join(value.split())
