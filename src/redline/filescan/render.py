"""Render scan reports: a terminal table, the JSON contract of DESIGN.md, and SARIF 2.1.0."""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Sequence

from urllib.parse import quote

from ..version import __version__
from .report import FileReport

_SARIF_LEVEL = {"Critical": "error", "High": "error", "Medium": "warning", "Low": "note"}
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


def artifact_uri(path: str) -> str:
    """A SARIF ``uri``: a percent-encoded URI reference (``file://`` for absolute paths)."""
    posix = path.replace("\\", "/")
    if posix.startswith("/"):
        return "file://" + quote(posix, safe="/")
    if re.match(r"^[A-Za-z]:/", posix):  # a Windows drive path
        return "file:///" + posix[:2] + quote(posix[2:], safe="/")
    return quote(posix, safe="/")


def to_sarif(reports: Sequence[FileReport], skipped: Sequence[dict] = ()) -> str:
    rules: dict[str, dict] = {}
    results = []
    for r in reports:
        for issue in r.issues:
            rule_id = f"redline.filescan/{issue.kind}"
            rules.setdefault(rule_id, {
                "id": rule_id,
                "name": issue.kind,
                "shortDescription": {"text": f"model file scan: {issue.kind}"},
                "properties": {"tags": ["security", "FM09"]},
            })
            uri = artifact_uri(r.path)
            message = issue.detail if not issue.member else f"{issue.member}: {issue.detail}"
            results.append({
                "ruleId": rule_id,
                "level": _SARIF_LEVEL[issue.severity],
                "message": {"text": message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                "properties": {"severity": issue.severity, "security-severity": _SECURITY_SEVERITY[issue.severity],
                               "verdict": r.verdict, "format": r.format},
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "redline", "version": __version__,
                                "informationUri": "https://github.com/redline", "rules": list(rules.values())}},
            "results": results,
            "artifacts": [{"location": {"uri": artifact_uri(r.path)}} for r in reports],
        }],
    }
    return json.dumps(doc, indent=2)


RENDERERS = {"table": to_table, "json": to_json, "sarif": to_sarif}
