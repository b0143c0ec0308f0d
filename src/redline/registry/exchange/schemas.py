"""The JSON Schemas the exchange formats are checked against (package data in ``schemas/``).

Every export is validated before it is returned and every import before it is read, so a
defect on either side is one line naming the file, where in the document, and what is
wrong: never the offending value itself, which may be huge or hostile.
"""
from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from ...errors import DataError
from ...util.safe_text import one_line

__all__ = ["SCHEMAS", "schema", "validate"]

# name -> file in schemas/
SCHEMAS = {
    "avid": "avid-report.schema.json",
    "atlas": "atlas-case-study.schema.json",
    "case": "case.schema.json",
    "redline": "redline-block.schema.json",
}


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema called ``name`` (a key of SCHEMAS)."""
    text = resources.files(__package__).joinpath("schemas", SCHEMAS[name]).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema  # a core dependency, imported only when a document is checked

    cls = jsonschema.validators.validator_for(schema(name))
    cls.check_schema(schema(name))
    return cls(schema(name))


def validate(doc: Any, name: str, what: str) -> None:
    """DataError (one line) unless ``doc`` conforms to schema ``name``; ``what`` names the document."""
    errors = sorted(_validator(name).iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        first = errors[0]
        where = _path(first.absolute_path)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise DataError(f"{what} is not a valid {_TITLES[name]}: {where} {_reason(first)}{more}")


_TITLES = {
    "avid": "AVID report",
    "atlas": "ATLAS case study",
    "case": "redline case (redline.case/1)",
    "redline": "redline block",
}


def _path(parts: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return one_line(text.lstrip(".") or "the document")[:120]


def _reason(error: Any) -> str:
    """What is wrong, from the validator keyword, without quoting the (possibly huge) value."""
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        return f"must be of type {' or '.join(expected) if isinstance(expected, list) else expected}"
    if kind == "enum":
        shown = ", ".join(map(str, expected[:8])) + (", ..." if len(expected) > 8 else "")
        return one_line(f"must be one of: {shown}")[:300]
    if kind == "const":
        return one_line(f"must be {expected!r}")[:120]
    if kind == "required":
        return one_line(error.message.replace("'", ""))[:200]  # "x is a required property"; names only
    if kind == "additionalProperties":
        found = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
        return one_line(f"has unexpected key(s) {found.group(1) if found else ''}".rstrip())[:200]
    if kind == "pattern":
        return one_line(f"does not match the pattern {expected}")[:160]
    if kind in ("minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum"):
        return f"violates {kind} {expected}"
    if kind in ("oneOf", "anyOf"):
        return "matches none of the allowed shapes"
    return one_line(f"fails the schema's {kind} rule")
