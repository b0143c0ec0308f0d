"""Render scan reports: a terminal table, the JSON contract of DESIGN.md, and SARIF 2.1.0."""
from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Sequence

from ..report.sarif import SarifLog, artifact_uri, dumps, location
from ..version import __version__
from .report import FileReport

# SARIF's level for each of the scanner's own severities (how loud the alert is, not a bug-bar
# rating: the FM09 finding of a scan is rated by triage).
_SARIF_LEVEL = {"Critical": "error", "High": "error", "Medium": "warning", "Low": "note"}

# GitHub's CVSS-like ranking score for the scanner's own severity scale (its levels follow the
# bug-bar severity each scanner severity maps to, as the scan report's do).
_SECURITY_SEVERITY = {"Critical": "9.5", "High": "7.5", "Medium": "5.0", "Low": "2.0"}


def to_json(reports: Sequence[FileReport], skipped: Sequence[dict] = ()) -> str:
    """``{"files": [{"path", "format", "verdict", "issues": [...]}], "skipped": [{"path", "reason"}],
    "summary": {"scanned", "safe", "unsafe", "error", "skipped"}}`` (files[] as DESIGN.md states)."""
    return json.dumps({"files": [r.to_dict() for r in reports], "skipped": list(skipped),
                       "summary": summary_counts(reports, skipped)}, indent=2)


def summary_counts(reports: Sequence[FileReport], skipped: Sequence[dict] = ()) -> dict[str, int]:
    out = {"scanned": len(reports)}
    for verdict in ("safe", "unsafe", "error"):
        out[verdict] = sum(r.verdict == verdict for r in reports)
    out["skipped"] = len(skipped)
    return out


SKIPPED_SHOWN = 20  # skipped files listed in the table; --json lists them all


def to_table(reports: Sequence[FileReport], width: int | None = None, skipped: Sequence[dict] = ()) -> str:
    width = width or max(60, min(shutil.get_terminal_size((100, 20)).columns, 160))
    lines = []
    for r in reports:
        lines.append(f"{r.verdict.upper():<7} {r.path}  [{r.format}]")
        for issue in sorted(r.issues, key=lambda i: -i.rank):
            where = f" ({issue.member})" if issue.member else ""
            head = f"  {issue.severity:<8} {issue.kind}{where}: "
            body = textwrap.wrap(issue.detail, width=max(30, width - len(head))) or [""]
            lines.append(head + body[0])
            lines.extend(" " * len(head) + more for more in body[1:])
        for note in r.notes:
            lines.append(f"  note: {note}")
    for entry in list(skipped)[:SKIPPED_SHOWN]:
        lines.append(f"SKIPPED {entry['path']}  ({entry['reason']})")
    if len(skipped) > SKIPPED_SHOWN:
        lines.append(f"SKIPPED ... and {len(skipped) - SKIPPED_SHOWN} more (--json lists them all)")
    counts = summary_counts(reports, skipped)
    line = (f"{len(reports)} file(s): {counts['safe']} safe, {counts['unsafe']} unsafe, {counts['error']} error, "
            f"{counts['skipped']} skipped")
    if skipped:
        line += " (not model files; --strict makes them errors)"
    lines.append(line)
    return "\n".join(lines)


def to_sarif(reports: Sequence[FileReport], skipped: Sequence[dict] = ()) -> str:
    """The scan as SARIF 2.1.0, written by the report package's one SARIF writer: a rule per issue
    kind, a result per issue at the file's URI, and every scanned file listed as an artifact."""
    log = SarifLog("redline", __version__)
    for r in reports:
        uri = artifact_uri(r.path)
        for issue in r.issues:
            rule_id = f"redline.filescan/{issue.kind}"
            log.add_rule(rule_id, name=issue.kind, short=f"model file scan: {issue.kind}",
                         properties={"tags": ["security", "FM09"]})
            log.add_result(
                rule_id,
                level=_SARIF_LEVEL[issue.severity],
                message=issue.detail if not issue.member else f"{issue.member}: {issue.detail}",
                locations=[location(uri)],
                properties={"severity": issue.severity, "security-severity": _SECURITY_SEVERITY[issue.severity],
                            "verdict": r.verdict, "format": r.format},
            )
    return dumps(log.to_dict(artifacts=[artifact_uri(r.path) for r in reports]))


RENDERERS = {"table": to_table, "json": to_json, "sarif": to_sarif}
