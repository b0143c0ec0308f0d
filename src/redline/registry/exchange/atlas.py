"""Failure cases as MITRE ATLAS-style case studies (YAML) and back.

An ATLAS case study tells an attack as a procedure: steps of (tactic, technique,
description) in the order the adversary took them. A redline case becomes:

- ``id``: the ATLAS case study it cites (``AML.CSnnnn``, kept from an import), otherwise
  ``REDLINE-`` and a digest of its mode and finding id (or title), stable across exports;
- ``procedure``: the steps an imported study came with (kept in ``evidence``), otherwise one
  step per ATLAS technique of the case (its mode's when it names none), in tactic order;
- ``target``: the system (or model, or target spec); ``reporter``: who added it;
  ``case-study-type``: ``exercise`` when a redline check found it, else ``incident``;
- ``x-redline``: the redline block (mode, severity, reproduction), which ATLAS tools ignore.

Failure modes without an adversary (FM12-FM14, FM16, FM17) have no ATLAS technique, and an
ATLAS case study without a technique is not one: exporting them is a UsageError.
"""
from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

from ...catalog import get_mode
from ...errors import UsageError
from ...findings import _jsonable as plain_json  # the report's one JSON-cleaning rule
from ..case import FailureCase
from .block import (
    apply_block,
    case_label,
    format_reference,
    parse_reference,
    require_text,
    to_block,
)
from .schemas import validate
from .taxonomy import ATLAS_ID, load_taxonomies

__all__ = ["EVIDENCE_KEY", "atlas_case_study", "case_from_atlas"]

EVIDENCE_KEY = "atlas_procedure"  # where an imported study's own procedure is kept
STUDY_URL = "https://atlas.mitre.org/studies/"
_STUDY_ID = re.compile(r"^AML\.CS\d{4}$")


def _tagged(case: FailureCase, prefix: str) -> str | None:
    for tag in case.tags:
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return tag[len(prefix):]
    return None


def _study_id(case: FailureCase) -> str:
    for text in case.references:
        url = parse_reference(text)[1] or ""
        if url.startswith(STUDY_URL) and _STUDY_ID.match(url[len(STUDY_URL):].rstrip("/")):
            return url[len(STUDY_URL):].rstrip("/")
    digest = hashlib.sha256(f"{case.mode}\n{case.finding_id or case.title}".encode()).hexdigest()
    return f"REDLINE-{digest[:12].upper()}"


def _procedure(case: FailureCase) -> list[dict[str, str]]:
    kept = case.evidence.get(EVIDENCE_KEY)
    if kept:
        return [dict(step) for step in kept]
    tax = load_taxonomies()
    mode = get_mode(case.mode)
    techniques = [t for t in case.atlas if ATLAS_ID.match(t) and t in tax.atlas_techniques] or list(mode.atlas)
    if not techniques:
        raise UsageError(f"{mode.code} ({mode.name}) has no MITRE ATLAS technique: an ATLAS case study tells an "
                         "adversary's steps, and this failure needs none; export the case as avid, md or json")
    # a parent technique says less than its sub-technique: keep only the sub-technique
    techniques = [t for t in techniques if not any(u.startswith(t + ".") for u in techniques)]
    order = {tactic: i for i, tactic in enumerate(tax.atlas_tactics)}
    steps = []
    for technique_id in techniques:
        technique = tax.atlas_techniques[technique_id]
        tactic = technique.tactics[0]
        steps.append({
            "tactic": tactic,
            "technique": technique_id,
            "description": f"{technique.name}, as in {mode.code} {mode.name}: {case.title}",
        })
    # stable sort: techniques of one tactic keep the case's order
    return sorted(steps, key=lambda s: order[s["tactic"]])


def atlas_case_study(case: FailureCase) -> dict[str, Any]:
    """The ATLAS-style case study of ``case`` as a YAML-ready dict, validated against the schema."""
    procedure = _procedure(case)
    block = to_block(case)
    validate(block, "redline", case_label(case))
    date = case.created_at[:10] if case.created_at else datetime.datetime.now(datetime.UTC).date().isoformat()
    study: dict[str, Any] = {
        "id": _study_id(case),
        "name": case.title,
        "object-type": "case-study",
        "summary": case.summary or case.title,
        "incident-date": date,
        "incident-date-granularity": "DATE",
        "reporter": case.added_by or "redline",
        "target": case.system or case.model or case.target or "unnamed ML system",
        "case-study-type": _tagged(case, "atlas-type:") or ("exercise" if case.check else "incident"),
    }
    actor = _tagged(case, "atlas-actor:") or (f"authorised tester running redline {case.check}" if case.check else None)
    if actor:
        study["actor"] = actor
    study["procedure"] = procedure
    references = []
    for text in case.references:
        title, url = parse_reference(text)
        references.append({"title": title, "url": url})
    study["references"] = references
    study["x-redline"] = block
    study = plain_json(study)  # numpy values as Python ones, NaN/Inf as null
    validate(study, "atlas", f"the ATLAS export of {case_label(case)}")
    return study


def case_from_atlas(doc: dict[str, Any], what: str) -> tuple[FailureCase, list[str], bool]:
    """A case from a case study already checked against the schema: (case, technique ids, block named the mode)."""
    case = FailureCase(title=require_text(doc["name"], f"{what}: name"), mode="", source="atlas")
    case.summary = doc.get("summary") or ""
    case.created_at = str(doc["incident-date"])[:10]
    case.added_by = doc.get("reporter") or doc.get("reported-by") or ""
    case.system = doc.get("target") or ""
    procedure = [{"tactic": s["tactic"], "technique": s["technique"], "description": s["description"]}
                 for s in doc["procedure"]]
    case.evidence = {EVIDENCE_KEY: procedure}
    case.atlas = list(dict.fromkeys(step["technique"] for step in procedure))
    references = [format_reference(r.get("title"), r.get("url")) for r in doc.get("references") or []]
    if _STUDY_ID.match(doc["id"]) and not any(STUDY_URL + doc["id"] in r for r in references):
        references.insert(0, format_reference(doc["name"], STUDY_URL + doc["id"]))
    case.references = [r for r in references if r]

    block = doc.get("x-redline")
    if block is not None:
        # a study redline wrote: the block's fields (tags included) are the case's own
        apply_block(case, block, what)
    else:
        tags = []
        if doc.get("actor"):
            tags.append(f"atlas-actor:{doc['actor']}")
        if doc.get("case-study-type"):
            tags.append(f"atlas-type:{doc['case-study-type']}")
        case.tags = tags
    return case, list(case.atlas), block is not None
