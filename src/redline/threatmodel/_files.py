"""Checking the YAML documents users write against the shipped schemas (they are read
with :func:`redline.util.safe_yaml.read_yaml_mapping`).

Both turn every problem into a one-line :class:`~redline.errors.UsageError` that names the
file and, for schema problems, the place inside it (``serving.returns``), because these
files are hand-written and the user needs to find the typo.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from ..errors import UsageError

__all__ = ["load_schema", "schema_errors", "validate"]

_KINDS = {"redline.system/1": "a system description", "redline.incident/1": "an incident report"}


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in this package (``system``, ``incident`` or ``threat-model``)."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def schema_errors(document: Any, schema_name: str) -> list[str]:
    """Every schema violation of ``document`` as ``place: message``, most specific first."""
    import jsonschema  # only needed when a document is checked

    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    errors = sorted(
        validator.iter_errors(document), key=lambda e: (-len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    return [f"{_place(e.absolute_path)}: {_message(e)}" for e in errors]


def validate(document: Any, schema_name: str, where: str) -> None:
    """Raise a one-line UsageError for the first schema violation of ``document``."""
    expected = load_schema(schema_name)["properties"]["schema"]["const"]
    marker = document.get("schema") if isinstance(document, Mapping) else None
    if isinstance(marker, str) and marker != expected and marker in _KINDS:
        # The commonest mix-up: handing one command the other command's file.
        raise UsageError(f"{where} is {_KINDS[marker]} ({marker}), not {_KINDS.get(expected, expected)}")
    problems = schema_errors(document, schema_name)
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise UsageError(f"{where} is invalid at {problems[0]}{more}")


def _place(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _message(error: Any) -> str:
    """jsonschema's message, shortened for the common cases users hit."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, Mapping) else []
        extra = [k for k in extra if not str(k).startswith("x-")]
        if extra:
            return f"unknown key {', '.join(map(repr, extra))} (known: {', '.join(allowed)})"
    if error.validator == "enum":
        return f"{_show(error.instance)} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
