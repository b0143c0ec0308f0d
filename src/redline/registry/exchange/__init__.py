"""Failure cases in and out of the public ML-vulnerability formats (issue 17, item 4).

``export_case(case, fmt)`` writes one case as an AVID report (JSON), an ATLAS-style case
study (YAML), redline's own case JSON or a Markdown page; every AVID and ATLAS export is
validated against the schema shipped in ``schemas/`` before it is returned.
``import_file(path)`` reads AVID reports, ATLAS case studies and redline case JSON given as
files (nothing is downloaded), one document or a list of them, into FailureCase records.

The mode of an imported case is the one the file names (redline's block, see ``block.py``),
otherwise the one the file's ATLAS technique ids and AVID codes point at through the
catalog's mapping read backwards (``taxonomy.infer_mode``); the tags then say it was
inferred and which other modes matched. A file that names no mode and cites no id of any
mode is refused with a DataError.
"""
from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import yaml

from ...catalog import get_mode
from ...errors import DataError, UsageError
from ...findings import _jsonable as plain_json  # the report's one JSON-cleaning rule
from ...util.safe_text import one_line
from ..case import CaseStatus, FailureCase
from .atlas import atlas_case_study, case_from_atlas
from .avid import avid_report, case_from_avid
from .block import case_label
from .files import read_document
from .markdown import case_markdown
from .schemas import validate
from .taxonomy import infer_mode

__all__ = ["FORMATS", "MAX_DOCUMENTS", "export_case", "import_file", "validate_atlas", "validate_avid"]

FORMATS = ("avid", "atlas", "json", "md")
MAX_DOCUMENTS = 1000  # cases one file may hold


def export_case(case: FailureCase, fmt: str) -> str:
    """The text of ``case`` exported as ``fmt`` (avid | atlas | json | md)."""
    key = str(fmt).strip().lower()
    if key not in FORMATS:
        raise UsageError(f"unknown export format {one_line(fmt)[:40]!r}; choose from {', '.join(FORMATS)}")
    if not isinstance(case, FailureCase):
        raise UsageError("export_case needs a FailureCase")
    get_mode(case.mode)  # UsageError for a case without a valid mode
    if not isinstance(case.title, str) or not case.title.strip():
        raise DataError("a case needs a title to be exported")
    if key == "avid":
        return json.dumps(avid_report(case), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if key == "atlas":
        return _yaml_text(atlas_case_study(case))
    if key == "json":
        doc = plain_json(case.to_dict())
        validate(doc, "case", case_label(case))
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return case_markdown(case)


def _yaml_text(doc: dict[str, Any]) -> str:
    """``doc`` as YAML, letters outside ASCII kept readable when that reads back the same.

    PyYAML writes some characters raw that its reader then takes for line breaks (U+0085,
    U+2028), so the readable form is checked and, when it differs, everything outside
    ASCII is escaped instead.
    """
    # libyaml's emitter when PyYAML has it: the pure-Python one takes seconds on a long field
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # reads back our own output only
    text = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)
    if yaml.load(text, Loader=loader) == doc:
        return text
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=False, width=100)


def validate_avid(doc: Any, what: str = "AVID report") -> None:
    """DataError (one line) unless ``doc`` is a valid AVID report."""
    validate(doc, "avid", what)


def validate_atlas(doc: Any, what: str = "ATLAS case study") -> None:
    """DataError (one line) unless ``doc`` is a valid ATLAS-style case study (dates as ISO text)."""
    validate(_plain(copy.deepcopy(doc), what), "atlas", what)  # _plain rewrites dates in place


def import_file(path: str | Path) -> list[FailureCase]:
    """The failure cases in an AVID report, ATLAS case study or redline case file."""
    doc, _ = read_document(path)
    name = f"exchange file {one_line(path)[:200]}"
    doc = _plain(doc, name)
    if isinstance(doc, dict) and isinstance(doc.get("case-studies"), list):  # ATLAS's own bundle shape
        docs = doc["case-studies"]
    elif isinstance(doc, list):
        docs = doc
    else:
        docs = [doc]
    if not docs:
        raise DataError(f"{name} holds no case")
    if len(docs) > MAX_DOCUMENTS:
        raise DataError(f"{name} holds {len(docs):,} documents; at most {MAX_DOCUMENTS:,} are read from one file")
    many = len(docs) > 1
    return [_import_one(d, f"{name} (document {i + 1})" if many else name) for i, d in enumerate(docs)]


def _import_one(doc: Any, what: str) -> FailureCase:
    kind = _kind(doc, what)
    if kind == "case":
        validate(doc, "case", what)
        case = FailureCase.from_dict(doc)
        case.mode = get_mode(case.mode).code
        return case
    validate(doc, kind, what)
    case, ids, named = (case_from_avid if kind == "avid" else case_from_atlas)(doc, what)
    if not named:
        match = infer_mode(ids)
        if match is None:
            cited = ", ".join(ids[:6]) + (", ..." if len(ids) > 6 else "") if ids else "no taxonomy id"
            how = ("a metric whose detection method is named 'redline FMnn' with results {mode: FMnn}"
                   if kind == "avid" else "the key x-redline: {mode: FMnn}")
            raise DataError(f"{what}: cannot tell which failure mode it reports ({one_line(cited)[:200]} maps to "
                            f"none of FM01-FM17); name the mode with {how}")
        case.mode = match.mode
        case.tags.append(f"mode-inferred:{match.mode}")
        if match.ambiguous:
            case.tags.append("mode-candidates:" + ",".join(match.candidates))
    case.status = CaseStatus(case.status)
    return case


def _kind(doc: Any, what: str) -> str:
    if not isinstance(doc, dict):
        shape = "empty" if doc is None else f"a {type(doc).__name__}"
        raise DataError(f"{what} must hold a mapping (an AVID report, ATLAS case study or redline case), not {shape}")
    if doc.get("schema") == "redline.case/1":
        return "case"
    if doc.get("data_type") == "AVID" or {"problemtype", "impact", "affects"} & set(doc):
        return "avid"
    if doc.get("object-type") == "case-study" or {"procedure", "incident-date"} & set(doc):
        return "atlas"
    raise DataError(f"{what} is neither an AVID report (data_type: AVID), an ATLAS case study "
                    "(object-type: case-study) nor a redline case (schema: redline.case/1)")


def _plain(doc: Any, what: str) -> Any:
    """``doc`` with YAML dates as ISO text; DataError for values JSON has no form for (sets, bytes).

    Walked with an explicit stack (the reader already bounded depth and size).
    """
    def convert(value: Any) -> Any:
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()
        if isinstance(value, (set, frozenset, bytes, bytearray)) or not (
                value is None or isinstance(value, (str, int, float, bool, list, dict))):
            raise DataError(f"{what} holds a {type(value).__name__} value, which no exchange format has")
        return value

    root = [convert(doc)]
    stack: list[Any] = [root]
    while stack:
        container = stack.pop()
        if isinstance(container, list):
            for i, item in enumerate(container):
                container[i] = convert(item)
                if isinstance(container[i], (list, dict)):
                    stack.append(container[i])
        elif isinstance(container, dict):
            for key in list(container):
                if not isinstance(key, str):
                    raise DataError(f"{what} has a key that is not text ({type(key).__name__}); "
                                    "the exchange formats key by name")
                container[key] = convert(container[key])
                if isinstance(container[key], (list, dict)):
                    stack.append(container[key])
    return root[0]
