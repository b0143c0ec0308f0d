"""The evidence of one dependency vulnerability as metrics, rated on the bug bar by triage.

The severities are triage rules (``FM11`` in ``redline/triage/rules.yaml``), as for every
other finding; this module only reads what the advisory records of one vulnerability (a
flaw and its aliases) say: the best CVSS v3 base score, the advisory databases' own labels,
and whether a record reports a malicious package or describes code execution (the
signals in ``signals.yaml``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ..severity import Severity
from ..util import cvss

MODE = "FM11"
# The labels GitHub and PyPA records put in ``database_specific.severity`` (any case).
DATABASE_LABELS = ("CRITICAL", "HIGH", "MODERATE", "MEDIUM", "LOW")
# What one vulnerability reports: its best CVSS v3 base score (absent without a valid
# vector), how many of its records report a malicious package or describe code execution,
# and how many its advisory database labels each way.
ADVISORY_METRICS = (
    "max_cvss",
    "malicious_records",
    "code_execution_records",
    *(f"advisory_label_{label.lower()}" for label in DATABASE_LABELS),
)


@dataclasses.dataclass(frozen=True)
class Signals:
    malicious_id_prefixes: tuple[str, ...]
    code_execution_patterns: tuple[re.Pattern[str], ...]


@dataclasses.dataclass(frozen=True)
class Rating:
    severity: Severity
    cvss: float | None  # highest CVSS v3 base score among the records, if any had a vector
    rationale: str


@functools.lru_cache(maxsize=1)
def signals() -> Signals:
    import yaml

    raw = yaml.safe_load(resources.files(__package__).joinpath("signals.yaml").read_text(encoding="utf-8"))
    return Signals(
        malicious_id_prefixes=tuple(raw.get("malicious_id_prefixes") or ()),
        code_execution_patterns=tuple(re.compile(p, re.IGNORECASE) for p in raw.get("code_execution_patterns") or ()),
    )


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


def is_malicious(record: dict[str, Any]) -> bool:
    """The record is an OSV report of a malicious package."""
    return str(record.get("id", "")).startswith(signals().malicious_id_prefixes)


def describes_code_execution(record: dict[str, Any]) -> bool:
    """The record's summary or details say that an attacker's code or commands run."""
    text = f"{record.get('summary') or ''}\n{record.get('details') or ''}"
    return any(p.search(text) for p in signals().code_execution_patterns)


def advisory_metrics(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The metrics (``ADVISORY_METRICS``) of one vulnerability described by ``records``."""
    records = list(records)
    scores = []
    for record in records:
        for vector in cvss_vectors(record):
            try:
                scores.append(cvss.base_score(vector))
            except ValueError:
                continue  # a malformed vector is ignored, the other evidence still counts
    malicious = [is_malicious(r) for r in records]
    labels = [_database_label(r) for r in records]
    return {
        "max_cvss": max(scores) if scores else None,
        "malicious_records": sum(malicious),
        # A malicious package report says more than any description of it, so it is counted once.
        "code_execution_records": sum(not bad and describes_code_execution(r) for bad, r in zip(malicious, records)),
        **{f"advisory_label_{label.lower()}": labels.count(label) for label in DATABASE_LABELS},
    }


def rate(records: Iterable[dict[str, Any]]) -> Rating:
    """Rate one vulnerability from all the records (aliases) that describe it, with triage."""
    from ..triage import rate_evidence

    metrics = advisory_metrics(records)
    # The advisory alone, as the traditional bug bar rates it: deployment facts come in when
    # the audit's finding is rated (see auditor.to_findings).
    severity, rationale = rate_evidence(MODE, metrics)
    return Rating(severity, metrics["max_cvss"], rationale)
