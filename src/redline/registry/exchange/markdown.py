"""A failure case as a Markdown page for people: what failed, how badly, how to reproduce it.

Every value from the case goes through the report writer's escaping (``text``/``code``),
because an imported case is someone else's text: it must not inject links, HTML or tables.
"""
from __future__ import annotations

import json
import re

from ...catalog import get_mode
from ...report.markdown import code, fenced, table, text
from ..case import CaseStatus, FailureCase
from ..reproduce import scan_command
from .block import parse_reference
from .taxonomy import AVID_LIFECYCLE_ID, AVID_SEP_ID, load_taxonomies

__all__ = ["case_markdown"]

_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'()*+,;=%\-]+$")


def case_markdown(case: FailureCase) -> str:
    tax = load_taxonomies()
    mode = get_mode(case.mode)
    out = [f"# {text(case.title)}", ""]
    facts = [
        ("Failure mode", f"{mode.code} {text(mode.name)}"),
        ("Severity", text(case.severity)),
        ("Status", text(CaseStatus(case.status).value)),
        ("Source", text(case.source)),
    ]
    for label, value in (("System", case.system), ("Model", case.model), ("Version", case.version),
                         ("Target", case.target), ("Data", case.data), ("Check", case.check),
                         ("Finding id", case.finding_id), ("Case id", case.id), ("Added by", case.added_by),
                         ("Created", case.created_at), ("Updated", case.updated_at)):
        if value:
            facts.append((label, code(value) if label in ("Target", "Data", "Check", "Finding id", "Case id") else text(value)))
    out += table(["", ""], ([f"**{k}**", v] for k, v in facts)) + [""]
    if case.summary:
        out += ["## Summary", "", text(case.summary), ""]
    if case.rationale:
        out += ["## Why this severity", "", text(case.rationale), ""]
    if case.remediation:
        out += ["## Remediation", "", text(case.remediation), ""]
    if case.metrics:
        rows = ([code(k), code(json.dumps(v, sort_keys=True, default=str))] for k, v in sorted(case.metrics.items()))
        out += ["## Metrics", "", *table(["metric", "value"], rows), ""]
    command = scan_command(case)
    if command or case.params or case.seed is not None or case.budget is not None:
        out += ["## Reproduce", ""]
        if command:
            out += fenced(command) + [""]
        if case.params:
            out += [f"Parameters: {code(json.dumps(case.params, sort_keys=True, default=str))}", ""]
    if case.artifacts:
        rows = ([code(name), code(digest)] for name, digest in sorted(case.artifacts.items()))
        out += ["## Artifacts (by content hash)", "", *table(["artifact", "sha256"], rows), ""]
    out += ["## Taxonomies", ""]
    atlas = case.atlas or list(mode.atlas)
    for ident in atlas:
        name = tax.atlas_techniques[ident].name if ident in tax.atlas_techniques else ""
        out.append(f"- MITRE ATLAS {code(ident)} {text(name)}".rstrip())
    for ident in case.avid or list(mode.avid):
        if AVID_SEP_ID.match(ident) and ident in tax.avid_sep:
            name = f"{tax.avid_sep[ident]} ({tax.risk_domain(ident)})"
        elif AVID_LIFECYCLE_ID.match(ident) and ident in tax.avid_lifecycle:
            name = f"lifecycle: {tax.avid_lifecycle[ident]}"
        else:
            name = ""
        out.append(f"- AVID {code(ident)} {text(name)}".rstrip())
    out.append("")
    if case.references:
        out += ["## References", ""]
        for ref in case.references:
            title, url = parse_reference(ref)
            if url and _SAFE_URL.match(url):  # an autolink shows its text raw, so only plain URL characters
                out.append(f"- {text(title)} <{url}>" if url != title else f"- <{url}>")
            else:
                out.append(f"- {text(title)}" + (f" {code(url)}" if url and url != title else ""))
        out.append("")
    if case.tags:
        out += ["Tags: " + ", ".join(code(t) for t in case.tags), ""]
    return "\n".join(out)
