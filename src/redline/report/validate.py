"""Check a report.json document against the ``redline.report/1`` schema."""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ..errors import RedlineError


class ReportValidationError(RedlineError, ValueError):
    """A report does not follow the schema; ``path`` is the JSON path of the problem (``$.findings[0].status``)."""

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.path = path


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json, as shipped inside the package."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def json_path(parts: Iterable[str | int]) -> str:
    """``["findings", 0, "metrics", "tpr_at_fpr_0.001"]`` -> ``$.findings[0].metrics["tpr_at_fpr_0.001"]``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def validate_report(d: dict[str, Any]) -> None:
    """Raise :class:`ReportValidationError` naming the JSON path of the first problem in ``d``.

    Beyond the schema, each finding's check id must start with its own mode code.
    """
    import jsonschema  # imported here: validation is not needed to write a report

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = list(validator.iter_errors(d))
    if errors:
        # best_match prefers the deepest, most specific error (e.g. inside an anyOf).
        best = jsonschema.exceptions.best_match(errors)
        path = json_path(best.absolute_path)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ReportValidationError(f"report is invalid at {path}: {best.message}{more}", path)
    for i, finding in enumerate(d["findings"]):
        if finding["check"].split(".", 1)[0] != finding["mode"]:
            path = json_path(["findings", i, "check"])
            raise ReportValidationError(
                f"report is invalid at {path}: check {finding['check']!r} does not belong to mode {finding['mode']}",
                path,
            )
