"""Build a threat model: for each of the 17 modes, does it apply here, why, how bad, what next.

Applicability comes from the rules in ``threats.yaml`` evaluated over the facts of the
system description; severity comes from the triage engine with the description's
deployment context (the bug bar's rules, the same ones ``redline scan --context`` uses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..version import __version__
from ..catalog import PROPERTIES, FailureMode, load_modes
from ..severity import Severity
from ..triage.engine import rate_evidence
from ._wording import mode_phrase, reword
from .coverage import Coverage, checks_by_mode, coverage_for
from .facts import Fact
from .rules import MITIGATION_KINDS, Clause, ModeThreats, load_threat_rules
from .system import SystemDescription, load_system

__all__ = [
    "SCHEMA_ID",
    "Citation",
    "MitigationAdvice",
    "ModeAssessment",
    "Reason",
    "ThreatModel",
    "build_threat_model",
    "rate_mode",
]

SCHEMA_ID = "redline.threat-model/1"


@dataclasses.dataclass(frozen=True)
class Citation:
    """A fact a reason relies on."""

    fact: Fact

    @property
    def text(self) -> str:
        flag = ", assumed" if not self.fact.stated else ""
        return f"{self.fact.name} = {display(self.fact.value)} ({self.fact.source}{flag})"

    def to_dict(self) -> dict[str, Any]:
        return {"fact": self.fact.name, **self.fact.to_dict()}


@dataclasses.dataclass(frozen=True)
class Reason:
    text: str
    cites: tuple[Citation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "facts": [c.to_dict() for c in self.cites]}


@dataclasses.dataclass(frozen=True)
class MitigationAdvice:
    kind: str
    action: str
    status: str  # "recommended" | "in_place"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "family": MITIGATION_KINDS[self.kind], "action": self.action, "status": self.status}


@dataclasses.dataclass(frozen=True)
class ModeAssessment:
    mode: FailureMode
    applicable: bool
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...]
    knowledge: tuple[str, ...]
    impact: Mapping[str, str | None]
    severity: Severity
    rationale: str
    severity_if_applicable: Severity
    coverage: Coverage
    mitigations: tuple[MitigationAdvice, ...]
    enters: tuple[str, ...]

    @property
    def code(self) -> str:
        return self.mode.code

    @property
    def why(self) -> str:
        """The reasons as one sentence."""
        return "; ".join(r.text for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        bar = self.mode.bug_bar
        return {
            "code": self.mode.code,
            "name": self.mode.name,
            "kind": self.mode.kind,
            "applicable": self.applicable,
            "reasons": [r.to_dict() for r in self.reasons],
            "notes": list(self.notes),
            "knowledge": {"taxonomy": list(self.mode.knowledge), "here": list(self.knowledge)},
            "impact": dict(self.impact),
            "severity": self.severity.label,
            "severity_rationale": self.rationale,
            "severity_if_applicable": self.severity_if_applicable.label,
            "bug_bar": {
                "threat": bar.threat,
                "severity_min": bar.severity_min.label,
                "severity_max": bar.severity_max.label,
                "rated": bar.rated,
            },
            "coverage": self.coverage.to_dict(),
            "mitigations": [m.to_dict() for m in self.mitigations],
            "catalog_mitigations": list(self.mode.mitigations),
            "enters": list(self.enters),
        }


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    system: SystemDescription
    modes: tuple[ModeAssessment, ...]

    def __getitem__(self, code: str) -> ModeAssessment:
        key = code.strip().upper()
        for assessment in self.modes:
            if assessment.code == key:
                return assessment
        raise KeyError(code)

    @property
    def applicable(self) -> tuple[ModeAssessment, ...]:
        return tuple(a for a in self.modes if a.applicable)

    @property
    def worst_severity(self) -> Severity:
        return max((a.severity for a in self.modes), default=Severity.NONE)

    def diagram(self):  # -> Diagram; imported lazily to keep this module small
        from .diagram import build_diagram

        return build_diagram(self)

    def to_dict(self) -> dict[str, Any]:
        counts = {s.label: 0 for s in reversed(Severity) if s is not Severity.NONE}
        for a in self.applicable:
            counts[a.severity.label] += 1
        diagram = self.diagram()
        return {
            "schema": SCHEMA_ID,
            "tool": {"name": "redline", "version": __version__},
            "system": {
                "name": self.system.name,
                "description": self.system.description,
                "file": str(self.system.path) if self.system.path is not None else None,
            },
            "context": self.system.context.to_dict(),
            "facts": {name: fact.to_dict() for name, fact in self.system.facts.items()},
            "assumed": list(self.system.assumed),
            "summary": {
                "applicable": len(self.applicable),
                "not_applicable": len(self.modes) - len(self.applicable),
                "worst_severity": self.worst_severity.label,
                "by_severity": counts,
                "untested": [a.code for a in self.applicable if a.coverage.status == "none"],
            },
            "modes": [a.to_dict() for a in self.modes],
            "diagram": {"mermaid": diagram.mermaid()},
        }


def rate_mode(
    system: Any, code: str, metrics: Mapping[str, Any] | None = None, *, queries: int | None = None
) -> tuple[Severity, str]:
    """The bug-bar severity of ``code`` in this system, for evidence ``metrics`` (None: none yet).

    This is the rating ``redline scan --context SYSTEM.yaml`` gives a vulnerable finding with
    the same metrics and query count, because both read the same deployment context.
    """
    description = load_system(system)
    return rate_evidence(code, metrics, description.context, queries=queries)


def build_threat_model(system: Any) -> ThreatModel:
    """The threat model of a system description (a SystemDescription, mapping or YAML path)."""
    description = load_system(system)
    rules = load_threat_rules()
    checks = checks_by_mode()
    return ThreatModel(
        description, tuple(_assess(mode, rules[mode.code], description, checks) for mode in load_modes())
    )


def _assess(
    mode: FailureMode, rules: ModeThreats, system: SystemDescription, checks: Mapping[str, list[Any]]
) -> ModeAssessment:
    env = system.environment
    holding = [c for c in rules.applies if c.holds(env)]
    applicable = bool(holding)
    if applicable:
        reasons = tuple(_reason(c, system) for c in holding)
    else:
        reasons = tuple(_reason(c, system) for c in rules.not_applicable if c.holds(env))
        if not reasons:  # the rules should always explain themselves; never leave the reader guessing
            reasons = (Reason("none of the conditions under which this mode applies holds for this system", ()),)
    rated, rated_why = rate_evidence(mode.code, None, system.context)
    if applicable:
        opening = f"If {mode_phrase(mode)} happens here, the mode's rule with no measurements gives"
        severity, rationale = rated, reword(rated_why, opening)
    else:
        severity = Severity.NONE
        rationale = (
            f"No severity: {mode.code} does not apply here because {'; '.join(r.text for r in reasons)}. "
            f"If it did, the bug bar would rate it {rated.label}."
        )
    return ModeAssessment(
        mode=mode,
        applicable=applicable,
        reasons=reasons,
        notes=tuple(c.text.render(env) for c in rules.notes if c.holds(env)) if applicable else (),
        knowledge=tuple(c.text.render(env) for c in rules.knowledge if c.holds(env)),
        impact=_impact(rules, env),
        severity=severity,
        rationale=rationale,
        severity_if_applicable=rated,
        coverage=coverage_for(mode.code, rules, system, checks),
        mitigations=tuple(
            MitigationAdvice(m.kind, m.action, "recommended" if m.needed is None or m.needed.holds(env) else "in_place")
            for m in rules.mitigations
        ),
        enters=rules.enters,
    )


def _reason(clause: Clause, system: SystemDescription) -> Reason:
    env = system.environment
    names = sorted(clause.when.names | clause.text.names, key=list(system.facts).index)
    cites: list[Citation] = []
    seen: set[str] = set()
    for name in names:  # facts come before the facts derived from them, so a derived one adds nothing new
        fact = system.facts[name]
        if fact.source not in seen:
            seen.add(fact.source)
            cites.append(Citation(fact))
    return Reason(clause.text.render(env), tuple(cites))


def _impact(rules: ModeThreats, env: Mapping[str, Any]) -> dict[str, str | None]:
    texts: dict[str, list[str]] = {p: [] for p in PROPERTIES}
    for item in rules.impact:
        if item.when is None or item.when.holds(env):
            texts[item.prop].append(item.text.render(env))
    return {p: ("; ".join(t) if t else None) for p, t in texts.items()}


def display(value: Any) -> str:
    """A fact value as reports print it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("_", " ")
