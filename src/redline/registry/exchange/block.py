"""The redline block: the fields of a failure case that AVID and ATLAS have no place for.

An AVID report carries it as the ``results`` of a metric whose detection method is named
``redline <check or mode>``; an ATLAS case study under the extension key ``x-redline``.
With it an exported case comes back whole; without it (a file written by someone else) the
mode is inferred from the taxonomy ids. ``schemas/redline-block.schema.json`` describes it.
"""
from __future__ import annotations

import re
from typing import Any

from ...catalog import get_mode
from ...errors import DataError
from ...findings import _jsonable as plain_json  # the report's one JSON-cleaning rule
from ...util.safe_text import one_line
from ..case import CaseStatus, FailureCase
from .schemas import validate

__all__ = ["apply_block", "case_label", "format_reference", "parse_reference", "require_text", "to_block"]

# Block keys copied as they are between the block and the case, when the case has a value.
_PLAIN = ("rationale", "remediation", "model", "version", "target", "data", "finding_id", "check")
_COLLECTIONS = ("params", "metrics", "artifacts", "references", "tags")


def to_block(case: FailureCase) -> dict[str, Any]:
    """The block for ``case``: the mode always, every other field only when it is set."""
    block: dict[str, Any] = {"mode": case.mode, "severity": case.severity,
                             "status": CaseStatus(case.status).value}
    for key in _PLAIN:
        if getattr(case, key):
            block[key] = getattr(case, key)
    for key in ("seed", "budget"):
        if getattr(case, key) is not None:
            block[key] = getattr(case, key)
    for key in _COLLECTIONS:
        value = getattr(case, key)
        if value:
            block[key] = dict(value) if isinstance(value, dict) else list(value)
    return plain_json(block)  # numpy values as Python ones, NaN/Inf as null


def apply_block(case: FailureCase, block: Any, what: str) -> None:
    """Copy a block read from a file onto ``case``; DataError if it is malformed."""
    validate(block, "redline", f"{what} (its redline block)")
    case.mode = get_mode(block["mode"]).code
    for key in ("severity", *_PLAIN, "seed", "budget"):
        if key in block:
            setattr(case, key, block[key])
    if "status" in block:
        case.status = CaseStatus(block["status"])
    for key in _COLLECTIONS:
        if key in block:
            value = block[key]
            setattr(case, key, dict(value) if isinstance(value, dict) else list(value))


# A reference is kept in a case as one string: a bare URL, plain text, or "title <url>".
# Split by position rather than one regular expression: a pattern like ".*\s+<" backtracks
# quadratically on a long imported title full of spaces.
_URL = re.compile(r"^https?://[^\s<>]+$")


def parse_reference(text: str) -> tuple[str, str | None]:
    """(title, url) of a case reference; url is None for plain text, the title is the URL for a bare URL."""
    text = text.strip()
    if text.endswith(">"):
        start = text.rfind("<")
        title, url = text[:start].strip(), text[start + 1:-1]
        if start > 0 and title and text[start - 1].isspace() and _URL.match(url):
            return title, url
    if _URL.match(text):
        return text, text
    return text, None


def format_reference(title: str | None, url: str | None) -> str:
    """The case's string form of a reference given as title and URL (either may be missing)."""
    title = " ".join((title or "").split())
    url = (url or "").strip()
    if url and not _URL.match(url):
        # not a web address we would link to: keep it as text so nothing is lost
        return f"{title} ({url})" if title else url
    if title and url and title != url:
        return f"{title} <{url}>"
    return url or title


def require_text(value: Any, what: str) -> str:
    """``value`` as non-empty text, or a DataError naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{what} is missing or empty")
    return value


def case_label(case: FailureCase) -> str:
    """``case 'title'`` for messages: one line, cut short (an imported title may be anything)."""
    title = one_line(case.title)
    return f"case {title[:60] + '...' if len(title) > 60 else title!r}"
