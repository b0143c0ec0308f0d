"""The static scan of a model file as an FM09 finding, for ``redline scan`` of a file target."""
from __future__ import annotations

import time
from pathlib import Path

from ..checks import STATIC_SCAN_CHECK as CHECK_ID
from ..errors import TargetError
from ..findings import Finding, Status, finding_id
from .report import SEVERITIES

MODE = "FM09"
# The metrics the finding reports (triage.vocabulary reads them): issues in all and by the
# scanner's severity (issues_<severity>, for the severities that occur).
METRICS = ("issues", *(f"issues_{severity.lower()}" for severity in SEVERITIES))


def static_scan_finding(path: str | Path, *, target_spec: str) -> Finding:
    """Scan ``path`` without loading it; unsafe -> vulnerable. A file the scanner cannot read
    to its end (corrupt, truncated, not a model, or past a limit) is an input error: it raises
    TargetError (exit 2) naming the file and what is wrong, as no loader could be trusted with it.
    The finding is not yet rated: the scan pipeline rates it with triage, as it does checks' findings."""
    from . import scan_path

    started = time.perf_counter()
    report = scan_path(path)
    if report.verdict == "error":
        raise TargetError(unreadable_message(path, report))
    counts: dict[str, int] = {}
    for issue in report.issues:
        counts[issue.severity] = counts.get(issue.severity, 0) + 1
    status = {"safe": Status.NOT_VULNERABLE, "unsafe": Status.VULNERABLE, "error": Status.ERROR}[report.verdict]
    rank = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}
    ordered = sorted(report.issues, key=lambda i: rank.get(i.severity, 4))
    issues = [{"severity": i.severity, "kind": i.kind, "detail": i.detail, "member": i.member} for i in ordered]
    finding = Finding(
        id=finding_id(CHECK_ID, target_spec, {}, 0, None),
        mode=MODE,
        check=CHECK_ID,
        title="Static scan of the model file for code that runs when it is loaded",
        status=status,
        metrics={"issues": len(report.issues), **{f"issues_{k.lower()}": v for k, v in sorted(counts.items())}},
        evidence={"file": str(path), "format": report.format, "verdict": report.verdict, "issues": issues},
    )
    finding.seconds = time.perf_counter() - started
    if report.verdict == "unsafe":
        worst = issues[0]
        finding.summary = f"{report.format} file is unsafe to load: {worst['detail']}"
    elif report.verdict == "error":
        finding.reason = "the file could not be parsed to its end, so it was not loaded: " + (
            issues[0]["detail"] if issues else "unknown format")
    else:
        finding.summary = f"{report.format} file: nothing in it would run code when loaded."
    return finding


def unreadable_message(path: str | Path, report) -> str:
    """One line: the file, what it was read as, and its first problem (top-level ones first)."""
    errors = [i for i in report.issues if i.is_error]
    first = min(errors, key=lambda i: (i.member is not None, -i.rank)) if errors else None
    what = f"{first.kind}: {first.detail}" if first is not None else "no detail given"
    where = f" in {first.member}" if first is not None and first.member else ""
    more = f" (and {len(errors) - 1} more problems; `redline scan-files {path}` lists them)" if len(errors) > 1 else ""
    if report.format == "special":
        return f"{path}: not loaded: {first.detail if first is not None else 'not a regular file'}"
    kind = "model" if report.format in ("unknown", "text", "empty") else f"{report.format}"
    return f"{path}: not loaded: the {kind} file cannot be read to its end ({what}{where}){more}"
