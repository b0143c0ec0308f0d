"""Bug-bar severity of a dependency advisory, driven by the rules in ``rating.yaml``."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ..severity import Severity
from ..util import cvss


@dataclasses.dataclass(frozen=True)
class Rules:
    cvss_thresholds: tuple[tuple[float, Severity], ...]
    database_labels: dict[str, Severity]
    unrated: Severity
    code_execution: Severity
    code_execution_prefixes: tuple[str, ...]
    code_execution_patterns: tuple[re.Pattern[str], ...]


@dataclasses.dataclass(frozen=True)
class Rating:
    severity: Severity
    cvss: float | None  # highest CVSS v3 base score among the records, if any had a vector
    rationale: str


@functools.lru_cache(maxsize=1)
def rules() -> Rules:
    import yaml

    raw = yaml.safe_load(resources.files(__package__).joinpath("rating.yaml").read_text(encoding="utf-8"))
    thresholds = sorted(
        ((float(row["min"]), Severity.parse(row["severity"])) for row in raw["cvss_thresholds"]),
        reverse=True,
    )
    execution = raw["code_execution"]
    return Rules(
        cvss_thresholds=tuple(thresholds),
        database_labels={k.upper(): Severity.parse(v) for k, v in raw["database_labels"].items()},
        unrated=Severity.parse(raw["unrated"]),
        code_execution=Severity.parse(execution["severity"]),
        code_execution_prefixes=tuple(execution.get("id_prefixes") or ()),
        code_execution_patterns=tuple(re.compile(p, re.IGNORECASE) for p in execution.get("patterns") or ()),
    )


def severity_for_score(score: float) -> Severity:
    for minimum, severity in rules().cvss_thresholds:
        if score >= minimum:
            return severity
    return Severity.LOW


def cvss_vectors(record: dict[str, Any]) -> list[str]:
    """CVSS v3 vectors of a record, from its top-level and per-package ``severity`` lists."""
    entries = list(record.get("severity") or [])
    for affected in record.get("affected") or []:
        if isinstance(affected, dict):
            entries.extend(affected.get("severity") or [])
    return [
        e["score"]
        for e in entries
        if isinstance(e, dict) and e.get("type") == "CVSS_V3" and isinstance(e.get("score"), str)
    ]


def _database_label(record: dict[str, Any]) -> str:
    specific = record.get("database_specific")
    label = specific.get("severity") if isinstance(specific, dict) else None
    return label.upper() if isinstance(label, str) else ""


def code_execution_reason(record: dict[str, Any]) -> str:
    """Why the record means attacker code runs ("" when it does not say so)."""
    r = rules()
    if str(record.get("id", "")).startswith(r.code_execution_prefixes):
        return "it reports a malicious package"
    text = f"{record.get('summary') or ''}\n{record.get('details') or ''}"
    if any(p.search(text) for p in r.code_execution_patterns):
        return "the advisory describes code execution"
    return ""


def rate(records: Iterable[dict[str, Any]]) -> Rating:
    """Rate one vulnerability from all the records (aliases) that describe it."""
    records = list(records)
    r = rules()
    scored = []
    for record in records:
        for vector in cvss_vectors(record):
            try:
                scored.append((cvss.base_score(vector), vector))
            except ValueError:
                continue  # a malformed vector is ignored, the other evidence still counts
    best_score: float | None = None
    if scored:
        best_score, vector = max(scored)
        severity = severity_for_score(best_score)
        reason = f"CVSS {best_score:.1f} ({vector}) rates {severity.label}"
    else:
        labels = [lab for lab in (_database_label(rec) for rec in records) if lab in r.database_labels]
        if labels:
            label = max(labels, key=lambda lab: r.database_labels[lab])
            severity = r.database_labels[label]
            reason = f"the advisory database rates it {label}, which maps to {severity.label}"
        else:
            severity = r.unrated
            reason = f"no CVSS vector or database severity; rated {severity.label} by default"
    if severity < r.code_execution:
        why = next((w for w in map(code_execution_reason, records) if w), "")
        if why:
            severity = r.code_execution
            reason += f"; raised to {severity.label} because {why}"
    return Rating(severity, best_score, reason)
