"""Triage a reported incident: which failure modes it is, how severe, and what to do.

Classification scores every mode on two kinds of evidence, both data in YAML files next to
this module: phrases in the report's free text (``signals.yaml``) and its structured
facts. Scoring is a plain weighted sum, so the same report always gives the same answer
and every point of the score can be shown to the reader. Severity comes from the triage
engine, with the affected system's deployment facts and any measurements in the report;
the response playbook (``playbooks.yaml``) is assembled from the matched modes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import yaml

from ..version import __version__
from ..catalog import MODE_CODES, FailureMode, get_mode
from ..errors import RedlineError
from ..severity import Severity
from ..triage.engine import rate_evidence
from ._files import load_schema
from ._wording import default_rule_applies, mode_phrase, reword
from .incident import TEXT_FIELDS, Incident, load_incident

__all__ = ["PHASES", "Evidence", "IncidentTriage", "ModeMatch", "triage_incident"]

SCHEMA_ID = "redline.incident-triage/1"
PHASES = ("contain", "eradicate", "recover", "lessons")

_WORD = re.compile(r"[a-z0-9]+")
# Words that, shortly before a phrase, turn it into a denial ("no data was poisoned").
_NEGATIONS = frozenset(
    {
        "no",
        "not",
        "never",
        "without",
        "nor",
        "none",
        "cannot",
        "didn",
        "doesn",
        "don",
        "wasn",
        "weren",
        "isn",
        "aren",
        "hasn",
        "haven",
        "hadn",
        "couldn",
        "wouldn",
        "shouldn",
    }
)
# How far back a negation reaches, in words; it never reaches across , ; . : ! or ?
_NEGATION_WINDOW = 5
_CLAUSE_BREAK = re.compile(r"[,;.:!?]")


class SignalsError(RedlineError):
    """signals.yaml or playbooks.yaml is malformed (a packaging or editing mistake)."""


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One reason a mode matched: a phrase found in a field, or a structured fact."""

    kind: str  # "phrase" | "fact" | "suspected"
    signal: str  # the phrase, the fact condition, or the suspected code
    weight: int
    field: str = ""
    excerpt: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signal": self.signal,
            "weight": self.weight,
            "field": self.field,
            "excerpt": self.excerpt,
        }

    @property
    def text(self) -> str:
        if self.kind == "phrase":
            return f'"{self.signal}" in {self.field}: "{self.excerpt}" (+{self.weight})'
        if self.kind == "fact":
            return f"facts.{self.signal} (+{self.weight})"
        return f"the reporter suspects {self.signal} (+{self.weight})"


@dataclasses.dataclass(frozen=True)
class ModeMatch:
    mode: FailureMode
    score: int
    evidence: tuple[Evidence, ...]
    severity: Severity
    rationale: str

    @property
    def code(self) -> str:
        return self.mode.code

    def to_dict(self) -> dict[str, Any]:
        bar = self.mode.bug_bar
        return {
            "code": self.mode.code,
            "name": self.mode.name,
            "score": self.score,
            "evidence": [e.to_dict() for e in self.evidence],
            "severity": self.severity.label,
            "severity_rationale": self.rationale,
            "bug_bar": {
                "threat": bar.threat,
                "severity_min": bar.severity_min.label,
                "severity_max": bar.severity_max.label,
                "rated": bar.rated,
            },
        }


@dataclasses.dataclass(frozen=True)
class IncidentTriage:
    incident: Incident
    matches: tuple[ModeMatch, ...]
    playbook: Mapping[str, tuple[tuple[str, str], ...]]  # phase -> ((step, source), ...)
    near_misses: tuple[tuple[str, int], ...]

    @property
    def primary(self) -> ModeMatch | None:
        return self.matches[0] if self.matches else None

    @property
    def severity(self) -> Severity:
        """The worst severity among the matched modes: each match is a plausible reading."""
        return max((m.severity for m in self.matches), default=Severity.NONE)

    @property
    def rationale(self) -> str:
        if not self.matches:
            return (
                "No failure mode matched; triage it as a traditional security bug, or add structured "
                "facts to the report and run triage again."
            )
        worst = max(self.matches, key=lambda m: (m.severity, m.score))
        if len(self.matches) == 1:
            return f"Rated {worst.severity.label} as {worst.code}: {worst.rationale}"
        return (
            f"Rated {worst.severity.label}, the highest of the {len(self.matches)} matched modes "
            f"({worst.code}): {worst.rationale}"
        )

    def to_dict(self) -> dict[str, Any]:
        system = self.incident.system
        return {
            "schema": SCHEMA_ID,
            "tool": {"name": "redline", "version": __version__},
            "incident": {
                "id": self.incident.raw.get("id"),
                "title": self.incident.title,
                "file": str(self.incident.path) if self.incident.path else None,
            },
            "system": ({"name": system.name, "file": str(system.path) if system.path else None} if system else None),
            "context": (system.context if system else _default_context()).to_dict(),
            "context_assumed": system is None,
            "primary": self.primary.code if self.primary else None,
            "severity": self.severity.label,
            "severity_rationale": self.rationale,
            "matches": [m.to_dict() for m in self.matches],
            "near_misses": [{"code": c, "score": s} for c, s in self.near_misses],
            "playbook": {
                phase: [{"step": step, "from": source} for step, source in steps]
                for phase, steps in self.playbook.items()
            },
        }


def triage_incident(incident: Any) -> IncidentTriage:
    """Classify, rate and plan the response to an incident (an Incident, mapping or YAML path)."""
    report = load_incident(incident)
    signals = load_signals()
    scores: dict[str, tuple[int, list[Evidence]]] = {}
    suspected = {c.upper() for c in report.facts.get("suspected_modes", [])}
    fields = {name: (text.lower(), _tokens(text)) for name, text in report.texts.items()}
    for code in MODE_CODES:
        evidence = _phrase_evidence(signals.phrases[code], fields)
        evidence += _fact_evidence(signals.facts[code], report.facts)
        if code in suspected:
            evidence.append(Evidence("suspected", code, signals.suspected_weight))
        scores[code] = (sum(e.weight for e in evidence), evidence)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))
    best = ranked[0][1][0]
    floor = max(signals.min_score, signals.relative * best)
    context = report.system.context if report.system is not None else None
    matches = []
    near = []
    for code, (score, evidence) in ranked:
        if score >= floor and score > 0:
            queries = report.facts.get("queries")
            severity, why = rate_evidence(code, report.metrics, context, queries=queries)
            if default_rule_applies(code, report.metrics, context, queries):
                # Nothing measured meets a rule, so the engine's opening ("The check found...")
                # would claim a test that never ran.
                why = reword(
                    why,
                    f"Reported as {mode_phrase(get_mode(code))} with no measurement that "
                    "meets a stronger rule, the mode's default gives",
                )
            matches.append(ModeMatch(get_mode(code), score, tuple(evidence), severity, why))
        elif score > 0 and len(near) < 3:
            near.append((code, score))
    return IncidentTriage(report, tuple(matches), _playbook(matches, report), tuple(near))


# --- evidence ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Phrase:
    text: str
    words: tuple[str, ...]
    weight: int


@dataclasses.dataclass(frozen=True)
class _FactSignal:
    field: str
    op: str  # "is" | "at_least"
    value: Any
    weight: int

    def holds(self, facts: Mapping[str, Any]) -> bool:
        actual = facts.get(self.field)
        if actual is None:
            return False
        if self.op == "at_least":
            return isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual >= self.value
        if isinstance(actual, list):
            return self.value in actual
        return actual == self.value

    @property
    def text(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{self.field} >= {value}" if self.op == "at_least" else f"{self.field} = {value}"


@dataclasses.dataclass(frozen=True)
class _Signals:
    min_score: int
    relative: float
    suspected_weight: int
    phrases: Mapping[str, tuple[_Phrase, ...]]
    facts: Mapping[str, tuple[_FactSignal, ...]]


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text.lower())]


def _word_matches(pattern: str, word: str) -> bool:
    return word.startswith(pattern[:-1]) if pattern.endswith("*") else word == pattern


_Field = tuple[str, list[tuple[str, int, int]]]  # lower-cased text and its words with their spans


def _phrase_evidence(phrases: Sequence[_Phrase], fields: Mapping[str, _Field]) -> list[Evidence]:
    found = []
    for phrase in phrases:
        hit = _find(phrase, fields)
        if hit is not None:
            field, excerpt = hit
            found.append(Evidence("phrase", phrase.text, phrase.weight, field, excerpt))
    return found


def _find(phrase: _Phrase, fields: Mapping[str, _Field]) -> tuple[str, str] | None:
    """The first field and excerpt where the phrase occurs without a negation before it."""
    n = len(phrase.words)
    for field in TEXT_FIELDS:
        if field not in fields:
            continue
        text, tokens = fields[field]
        for i in range(len(tokens) - n + 1):
            matched = all(_word_matches(p, tokens[i + k][0]) for k, p in enumerate(phrase.words))
            if matched and not _negated(text, tokens, i):
                return field, _excerpt(tokens, i, i + n)
    return None


def _negated(text: str, tokens: list[tuple[str, int, int]], i: int) -> bool:
    """A negation shortly before word ``i``, in the same clause ("no training data was poisoned")."""
    for word, _start, end in tokens[max(0, i - _NEGATION_WINDOW) : i]:
        if word in _NEGATIONS and not _CLAUSE_BREAK.search(text, end, tokens[i][1]):
            return True
    return False


def _excerpt(tokens: list[tuple[str, int, int]], start: int, end: int, context: int = 4) -> str:
    lo, hi = max(0, start - context), min(len(tokens), end + context)
    words = [t[0] for t in tokens[lo:hi]]
    return ("..." if lo > 0 else "") + " ".join(words) + ("..." if hi < len(tokens) else "")


def _fact_evidence(signals: Sequence[_FactSignal], facts: Mapping[str, Any]) -> list[Evidence]:
    return [Evidence("fact", s.text, s.weight, "facts") for s in signals if s.holds(facts)]


# --- playbook ----------------------------------------------------------------------------------


def _playbook(matches: Sequence[ModeMatch], report: Incident) -> dict[str, tuple[tuple[str, str], ...]]:
    books = load_playbooks()
    values = _placeholders(report)
    plan: dict[str, list[tuple[str, str]]] = {phase: [] for phase in PHASES}
    sources = [("general", books["general"])] + [(m.code, books[m.code]) for m in matches]
    seen: set[str] = set()
    for phase in PHASES:
        # Mode-specific steps first, as they are what the responder came for; except when
        # containing, where preserving evidence has to come before keys are rotated.
        ordered = sources if phase == "contain" else sources[1:] + sources[:1]
        for source, book in ordered:
            for step in book[phase]:
                text = _fill(step, values)
                if text not in seen:
                    seen.add(text)
                    plan[phase].append((text, source))
    return {phase: tuple(steps) for phase, steps in plan.items()}


def _placeholders(report: Incident) -> dict[str, str]:
    system = report.system
    get = system.get if system is not None else (lambda _key, default=None: default)
    return {
        "target": get("scan.target") or "TARGET",
        "model_files": get("scan.model_files") or "MODEL_DIR",
        "requirements": get("dependencies.requirements") or "requirements.txt",
        "system": str(system.path) if system is not None and system.path else "system.yaml",
    }


def _fill(step: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: shlex.quote(values[m.group(1)]) if m.group(1) in values else m.group(0), step)


def _default_context():
    from ..triage.context import DeploymentContext

    return DeploymentContext()


# --- loading the data files -------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_signals() -> _Signals:
    doc = _read("signals.yaml")
    if doc.get("schema") != "redline.incident-signals/1":
        raise SignalsError("signals.yaml has the wrong schema id")
    modes = doc.get("modes")
    if not isinstance(modes, dict) or list(modes) != list(MODE_CODES):
        raise SignalsError("signals.yaml must list FM01..FM17 once each, in order")
    facts_schema = load_schema("incident")["properties"]["facts"]["properties"]
    phrases: dict[str, tuple[_Phrase, ...]] = {}
    facts: dict[str, tuple[_FactSignal, ...]] = {}
    for code, spec in modes.items():
        if not isinstance(spec, dict) or set(spec) != {"phrases", "facts"}:
            raise SignalsError(f"signals.yaml {code} needs exactly 'phrases' and 'facts'")
        phrases[code] = tuple(_phrase(text, weight, code) for text, weight in spec["phrases"].items())
        facts[code] = tuple(_fact_signal(item, code, facts_schema) for item in spec["facts"])
    return _Signals(int(doc["min_score"]), float(doc["relative"]), int(doc["suspected_weight"]), phrases, facts)


def _phrase(text: Any, weight: Any, code: str) -> _Phrase:
    words = tuple(str(text).lower().split())
    if not words or not all(_WORD.fullmatch(w.rstrip("*")) and "*" not in w[:-1] for w in words):
        raise SignalsError(
            f"signals.yaml {code}: phrase {text!r} must be words of letters and digits (a final * allowed)"
        )
    if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 5:
        raise SignalsError(f"signals.yaml {code}: phrase {text!r} needs a weight from 1 to 5")
    return _Phrase(str(text), words, weight)


def _fact_signal(item: Any, code: str, facts_schema: Mapping[str, Any]) -> _FactSignal:
    if (
        not isinstance(item, dict)
        or "field" not in item
        or "weight" not in item
        or len(set(item) & {"is", "at_least"}) != 1
    ):
        raise SignalsError(f"signals.yaml {code}: a fact signal needs field, weight and one of is / at_least")
    field = item["field"]
    if field not in facts_schema:
        raise SignalsError(f"signals.yaml {code}: unknown incident fact {field!r}")
    op = "is" if "is" in item else "at_least"
    value = item[op]
    spec = facts_schema[field]
    allowed = spec.get("enum") or spec.get("items", {}).get("enum")
    if op == "is" and allowed is not None and value not in allowed:
        raise SignalsError(f"signals.yaml {code}: {field} has no value {value!r}")
    if op == "is" and spec.get("type") == "boolean" and not isinstance(value, bool):
        raise SignalsError(f"signals.yaml {code}: {field} is true or false")
    if op == "at_least" and spec.get("type") != "integer":
        raise SignalsError(f"signals.yaml {code}: at_least needs a numeric fact, not {field!r}")
    return _FactSignal(field, op, value, int(item["weight"]))


@functools.lru_cache(maxsize=1)
def load_playbooks() -> dict[str, dict[str, tuple[str, ...]]]:
    doc = _read("playbooks.yaml")
    if doc.get("schema") != "redline.playbooks/1":
        raise SignalsError("playbooks.yaml has the wrong schema id")
    modes = doc.get("modes")
    if not isinstance(modes, dict) or list(modes) != list(MODE_CODES):
        raise SignalsError("playbooks.yaml must list FM01..FM17 once each, in order")
    books = {"general": _book(doc.get("general"), "general", allow_empty=True)}
    for code, spec in modes.items():
        books[code] = _book(spec, code, allow_empty=False)
    return books


def _book(spec: Any, where: str, *, allow_empty: bool) -> dict[str, tuple[str, ...]]:
    if not isinstance(spec, dict) or set(spec) != set(PHASES):
        raise SignalsError(f"playbooks.yaml {where} needs exactly the phases {', '.join(PHASES)}")
    book = {}
    for phase in PHASES:
        steps = spec[phase]
        if (
            not isinstance(steps, list)
            or (not steps and not allow_empty)
            or not all(isinstance(s, str) and s.strip() for s in steps)
        ):
            raise SignalsError(f"playbooks.yaml {where}.{phase} must be a list of steps")
        book[phase] = tuple(" ".join(s.split()) for s in steps)
    return book


def _read(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SignalsError(f"{name} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise SignalsError(f"{name} must be a mapping")
    return doc
