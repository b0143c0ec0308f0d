"""What the report writers need to know about a failure mode, taken from the catalog.

The catalog is optional here: if it cannot be imported or does not know a code, the
writers still work and show the bare code.
"""
from __future__ import annotations

import dataclasses
import functools

from ..errors import RedlineError
from .model import MODE_CODES

__all__ = ["MODE_CODES", "ModeInfo", "mode_info", "mode_name"]


@dataclasses.dataclass(frozen=True)
class ModeInfo:
    code: str
    name: str
    summary: str = ""
    bug_bar_threat: str = ""


@functools.cache
def mode_info(code: str) -> ModeInfo:
    from ..catalog import get_mode

    try:
        mode = get_mode(code)
    except (RedlineError, LookupError, ValueError):
        return ModeInfo(code, code)
    bug_bar = getattr(mode, "bug_bar", None)
    threat = bug_bar.get("threat", "") if isinstance(bug_bar, dict) else getattr(bug_bar, "threat", "")
    return ModeInfo(
        code=code,
        name=str(getattr(mode, "name", "") or code),
        summary=str(getattr(mode, "summary", "") or ""),
        bug_bar_threat=str(threat or ""),
    )


def mode_name(code: str) -> str:
    """The catalog's name for ``code`` (``FM04`` -> ``Membership inference``), or the code itself."""
    return mode_info(code).name
