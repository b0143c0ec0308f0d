"""Shared helpers for the human-readable writers: value formatting, counts, ordering, paths."""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from ..findings import Finding, Status
from ..severity import Severity

STATUS_LABELS = {
    Status.VULNERABLE: "Vulnerable",
    Status.NOT_VULNERABLE: "Not vulnerable",
    Status.INCONCLUSIVE: "Inconclusive",
    Status.NOT_APPLICABLE: "Not applicable",
    Status.ERROR: "Error",
}
COVERAGE_LABELS = {"tested": "Tested", "inconclusive": "Inconclusive", "not_applicable": "Not applicable", "not_covered": "Not covered"}

# Severities a vulnerable finding can carry, worst first.
SEVERITY_SCALE = (Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW, Severity.NONE)
_STATUS_RANK = {Status.VULNERABLE: 0, Status.ERROR: 1, Status.INCONCLUSIVE: 2, Status.NOT_VULNERABLE: 3,
                Status.NOT_APPLICABLE: 4}

_IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_MAX_LIST_ITEMS = 8


def tool_identity(tool: dict[str, Any] | None) -> tuple[str, str]:
    """(name, version) of the tool that wrote the report; this package's own when not recorded."""
    tool = tool or {}
    version = tool.get("version")
    if not version:
        from ..version import __version__

        version = __version__
    return str(tool.get("name") or "redline"), str(version)


def format_value(value: Any, max_chars: int = 160) -> str:
    """A short, readable rendering of a metric, parameter or evidence value."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalars and arrays
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        items = [format_value(v, max_chars) for v in value[:_MAX_LIST_ITEMS]]
        more = f", … ({len(value)} items)" if len(value) > _MAX_LIST_ITEMS else ""
        return _clip("[" + ", ".join(items) + more + "]", max_chars)
    if isinstance(value, dict):
        return _clip(json.dumps(value, default=str, ensure_ascii=False, sort_keys=True), max_chars)
    return _clip(str(value), max_chars)


def _clip(text: str, max_chars: int) -> str:
    from ..util.wording import shorten

    return text if len(text) <= max_chars else shorten(text, max_chars)


def key_metrics(finding: Finding, limit: int = 3) -> list[tuple[str, str]]:
    """Up to ``limit`` (name, formatted value) pairs, headline metrics first (the metric
    vocabulary says which those are, see :mod:`redline.triage.vocabulary`)."""
    from ..triage.vocabulary import HEADLINE_METRICS

    names = [m for m in HEADLINE_METRICS if m in finding.metrics]
    names += [m for m in finding.metrics if m not in names]
    return [(name, format_value(finding.metrics[name], 60)) for name in names[:limit]]


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Worst first: by status (vulnerable, error, inconclusive, passed, skipped), then severity, then check id."""
    return sorted(findings, key=lambda f: (_STATUS_RANK[f.status], -int(f.severity), f.mode, f.check))


def status_counts(findings: Iterable[Finding]) -> dict[Status, int]:
    counts = {status: 0 for status in STATUS_LABELS}
    for f in findings:
        counts[f.status] += 1
    return counts


def severity_counts(findings: Iterable[Finding]) -> dict[Severity, int]:
    """How many vulnerable findings carry each severity (Critical first; ``None`` = not yet rated)."""
    counts = {sev: 0 for sev in SEVERITY_SCALE}
    for f in findings:
        if f.status is Status.VULNERABLE:
            counts[f.severity] += 1
    return counts


def artifact_path(value: Any) -> str | None:
    """``value`` if it is a plain relative path inside the report folder, else None.

    Only such paths become links or embedded images: evidence may hold attacker-influenced
    strings, and a report must neither point at other sites nor pull in files from elsewhere
    on disk.
    """
    if isinstance(value, PurePath):
        value = value.as_posix()
    if not isinstance(value, str) or not value or len(value) > 500:
        return None
    if _SCHEME.match(value) or value.startswith(("/", "\\", "~")) or any(c in value for c in "\n\r\t\"'<>`"):
        return None
    parts = re.split(r"[\\/]", value)
    if ".." in parts or not parts[-1]:
        return None
    return value


def is_image_path(value: Any) -> bool:
    path = artifact_path(value)
    return path is not None and path.lower().endswith(_IMAGE_SUFFIXES)


def parse_time(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        return None


def duration_seconds(started: str, finished: str) -> float | None:
    a, b = parse_time(started), parse_time(finished)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return (b - a).total_seconds()


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def findings_by_mode(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.mode, []).append(f)
    return out


# -- remediation and the action list ------------------------------------------------------------


def remediation_parts(finding: Finding) -> tuple[list[str], list[str], str]:
    """(steps, catalog mitigations, re-test command) of a finding's remediation text."""
    from ..triage.remediation import ALSO_PREFIX, RETEST_PREFIX

    steps: list[str] = []
    also: list[str] = []
    retest = ""
    for line in (finding.remediation or "").splitlines():
        line = line.strip()
        if line.startswith(RETEST_PREFIX):
            retest = line[len(RETEST_PREFIX):]
        elif line.startswith(ALSO_PREFIX):
            also.append(line[len(ALSO_PREFIX):])
        elif line:
            steps.append(line)
    return steps, also, retest


def action_items(findings: Iterable[Finding]) -> list[Finding]:
    """Vulnerable findings in the order to act on them: worst severity first, then the
    strongest measured attack (e.g. higher success rate or AUC), then check id."""
    from ..triage.remediation import strength

    vulnerable = [f for f in findings if f.status is Status.VULNERABLE]
    return sorted(vulnerable, key=lambda f: (-int(f.severity), -strength(f), f.check))


def context_lines(report_context: dict[str, Any], assumed: Iterable[str]) -> tuple[str, str]:
    """(stated facts, assumed facts) of the deployment context, in words; empty when none."""
    from ..triage.context import FACTS, describe_facts

    assumed = [name for name in assumed if name in report_context]
    stated = [name for name in FACTS if name in report_context and name not in assumed]
    return describe_facts(report_context, stated), describe_facts(report_context, assumed)


def data_series_note(value: Any) -> str | None:
    """A short note for evidence that is raw plot data (curves, long number lists), else None.

    Such data is what the plots above it draw; dumped as JSON under a figure it only buries
    the reader, so the human-readable reports name it and leave the numbers to report.json.
    """
    from ..util.wording import count

    def numbers(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) > 0 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) or x is None for x in v)

    if isinstance(value, dict) and value and all(numbers(v) for v in value.values()):
        longest = max(len(v) for v in value.values())
        if longest > 3:
            names = ", ".join(str(k) for k in value)
            return f"plot data: {count(longest, 'point')} of {names} (full values in report.json)"
    if numbers(value) and len(value) > _MAX_LIST_ITEMS:
        return f"{count(len(value), 'value')} (full values in report.json)"
    return None
