"""Failure cases as AVID reports (the AI Vulnerability Database's report format) and back.

Field by field (AVID report <- case):

- ``affects.artifacts``: the system, model and data set the case names (System, Model,
  Dataset); ``developer``/``deployer`` from tags ``developer:NAME`` / ``deployer:NAME``.
- ``problemtype``: class ``Undefined`` (AVID's classes name other databases and LLM
  evaluations; a redline finding is none of them) unless the case came from ATLAS; type
  ``Detection`` when a redline check found it, ``Issue`` otherwise (a tag ``avid-type:X``
  from an imported report wins); the title as its description.
- ``description``: the case summary (the title when there is none).
- ``impact.avid``: the case's SEP and lifecycle codes, or its mode's when it has none; the
  risk domains follow from the SEP codes.
- ``references``: the case's web references, then one link per ATLAS technique (that is
  how a report carries ATLAS ids; the import reads them back).
- ``metrics``: one metric whose detection method is ``redline <check or mode>`` and whose
  results are the redline block (mode, severity, reproduction, measured metrics).
- ``credit``: who added the case; ``reported_date``: the day it was created.
"""
from __future__ import annotations

import re
from typing import Any

from ...catalog import get_mode
from ...errors import DataError
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
from .taxonomy import ATLAS_ID, AVID_LIFECYCLE_ID, AVID_SEP_ID, load_taxonomies

__all__ = ["LANG", "avid_report", "case_from_avid"]

LANG = "eng"  # the language tag AVID's own tools write
DATA_VERSION = "0.2"
ATLAS_TECHNIQUE_URL = "https://atlas.mitre.org/techniques/"
_ATLAS_LINK = re.compile(r"^https://atlas\.mitre\.org/techniques/(AML\.T\d{4}(?:\.\d{3})?)/?$")
_AVID_REPORT_ID = re.compile(r"^AVID-\d{4}-R\d{4,}$")
_AVID_VULN_ID = re.compile(r"^AVID-\d{4}-V\d{4,}$")
ATLAS_STUDY_URL = "https://atlas.mitre.org/studies/"


def _tagged(case: FailureCase, prefix: str) -> list[str]:
    return [t[len(prefix):] for t in case.tags if t.startswith(prefix) and len(t) > len(prefix)]


def avid_report(case: FailureCase) -> dict[str, Any]:
    """The AVID report of ``case`` as a JSON-ready dict, validated against the AVID schema."""
    tax = load_taxonomies()
    mode = get_mode(case.mode)
    sep = [c for c in case.avid if AVID_SEP_ID.match(c)] or list(mode.avid)
    lifecycle = [c for c in case.avid if AVID_LIFECYCLE_ID.match(c)] or list(tax.mode_lifecycle[mode.code])
    unknown = [c for c in (*sep, *lifecycle) if c not in tax.avid_sep and c not in tax.avid_lifecycle]
    if unknown:
        raise DataError(f"{case_label(case)} cites AVID code(s) {', '.join(unknown)} that AVID taxonomy "
                        f"{tax.avid_version} does not define")
    domains = []
    for code in sep:
        if tax.risk_domain(code) not in domains:
            domains.append(tax.risk_domain(code))
    atlas_ids = [t for t in case.atlas if ATLAS_ID.match(t)] or list(mode.atlas)

    artifacts = [{"type": kind, "name": name}
                 for kind, name in (("System", case.system), ("Model", case.model), ("Dataset", case.data)) if name]
    for extra in _tagged(case, "avid-artifact:"):  # further artifacts an imported report named
        kind, _, name = extra.partition(":")
        if kind in ("System", "Model", "Dataset") and name:
            artifacts.append({"type": kind, "name": name})
    references = []
    for text in case.references:
        title, url = parse_reference(text)
        if url:  # AVID references need an address; plain-text ones travel in the redline block
            references.append({"type": "source", "label": title, "url": url})
    for technique in atlas_ids:
        name = tax.atlas_techniques[technique].name if technique in tax.atlas_techniques else technique
        references.append({"type": "atlas", "label": f"MITRE ATLAS {technique}: {name}",
                           "url": ATLAS_TECHNIQUE_URL + technique})

    block = to_block(case)
    validate(block, "redline", case_label(case))
    method = case.check or mode.code
    kind = (_tagged(case, "avid-type:") or ["Detection" if case.check else "Issue"])[0]
    from_atlas = any((parse_reference(r)[1] or "").startswith(ATLAS_STUDY_URL) for r in case.references)
    classof = (_tagged(case, "avid-class:") or ["ATLAS Case Study" if from_atlas else "Undefined"])[0]
    impact: dict[str, Any] = {"risk_domain": domains,
                              "sep_view": [tax.sep_label(c) for c in sep],
                              "lifecycle_view": [tax.lifecycle_label(c) for c in lifecycle],
                              "taxonomy_version": tax.avid_version}
    vuln_ids = [i for i in case.avid if _AVID_VULN_ID.match(i)]
    if vuln_ids:
        impact = {"vuln_id": vuln_ids[0], **impact}
    report: dict[str, Any] = {"data_type": "AVID", "data_version": DATA_VERSION}
    report_ids = [i for i in case.avid if _AVID_REPORT_ID.match(i)]
    if report_ids:
        report["metadata"] = {"report_id": report_ids[0]}
    report.update({
        "affects": {"developer": _tagged(case, "developer:"), "deployer": _tagged(case, "deployer:"),
                    "artifacts": artifacts},
        "problemtype": {"classof": classof, "type": kind, "description": {"lang": LANG, "value": case.title}},
        "metrics": [{"name": method,
                     "detection_method": {"type": "Static Threshold", "name": f"redline {method}"},
                     "results": block}],
        "references": references,
        "description": {"lang": LANG, "value": case.summary or case.title},
        "impact": {"avid": impact},
        "credit": [{"lang": LANG, "value": case.added_by}] if case.added_by else [],
    })
    if case.created_at:
        report["reported_date"] = case.created_at[:10]
    report = plain_json(report)  # numpy values as Python ones, NaN/Inf as null
    validate(report, "avid", f"the AVID export of {case_label(case)}")
    return report


def case_from_avid(doc: dict[str, Any], what: str) -> tuple[FailureCase, list[str], bool]:
    """A case from an AVID report already checked against the schema.

    Returns the case (mode still unset unless the report carries a redline block), the
    taxonomy ids that can vote for a mode, and whether the block named the mode.
    """
    problem = doc.get("problemtype") or {}
    description = doc.get("description") or {}
    title = (problem.get("description") or {}).get("value") or description.get("value")
    case = FailureCase(title=require_text(title, f"{what}: problemtype.description"), mode="", source="avid")
    case.summary = description.get("value") or ""
    tags: list[str] = []
    affects = doc.get("affects") or {}
    tags += [f"developer:{n}" for n in affects.get("developer", []) if n]
    tags += [f"deployer:{n}" for n in affects.get("deployer", []) if n]
    slots = {"System": "system", "Model": "model", "Dataset": "data"}
    for artifact in affects.get("artifacts", []):
        slot = slots[artifact["type"]]
        if not getattr(case, slot):
            setattr(case, slot, artifact["name"])
        else:
            tags.append(f"avid-artifact:{artifact['type']}:{artifact['name']}")
    if problem.get("type"):
        tags.append(f"avid-type:{problem['type']}")
    if problem.get("classof") not in (None, "Undefined"):
        tags.append(f"avid-class:{problem['classof']}")

    atlas_ids: list[str] = []
    for ref in doc.get("references") or []:
        link = _ATLAS_LINK.match(ref["url"].strip())
        if link:
            atlas_ids.append(link.group(1))
        else:
            case.references.append(format_reference(ref.get("label"), ref.get("url")))
    impact = ((doc.get("impact") or {}).get("avid")) or {}
    codes = [label.split(":", 1)[0] for label in (*impact.get("sep_view", []), *impact.get("lifecycle_view", []))]
    ids = [i for i in ((doc.get("metadata") or {}).get("report_id"), impact.get("vuln_id")) if i]
    case.avid = _unique([*ids, *codes])
    case.atlas = _unique(atlas_ids)
    case.added_by = ", ".join(c["value"] for c in doc.get("credit") or [] if c.get("value"))
    if doc.get("reported_date"):
        case.created_at = doc["reported_date"]

    block = _redline_block(doc)
    if block is not None:
        # A report redline wrote: the block's tags are the case's own, and the AVID fields
        # that came from tags (developer, deployer, type, class) only echo them.
        apply_block(case, block, what)
    else:
        case.tags = _unique(tags)
        for metric in doc.get("metrics") or []:
            case.metrics[metric["name"]] = metric["results"]
    return case, [*case.atlas, *(c for c in case.avid if AVID_SEP_ID.match(c))], block is not None


def _redline_block(doc: dict[str, Any]) -> Any:
    for metric in doc.get("metrics") or []:
        if metric["detection_method"]["name"].startswith("redline "):
            return metric["results"]
    return None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
