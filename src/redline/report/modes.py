"""What the report writers need to know about a failure mode, taken from the catalog.

If the catalog does not know a code (a report written by another version), the writers
still work and show the bare code.
"""
from __future__ import annotations

import dataclasses
import functools

from ..catalog import get_mode
from ..errors import RedlineError

__all__ = ["ModeInfo", "mode_info", "mode_name"]


@dataclasses.dataclass(frozen=True)
class ModeInfo:
    code: str
    name: str
    summary: str = ""
    bug_bar_threat: str = ""


@functools.cache
def mode_info(code: str) -> ModeInfo:
    try:
        mode = get_mode(code)
    except (RedlineError, LookupError, ValueError):
        return ModeInfo(code, code)
    return ModeInfo(code=code, name=mode.name or code, summary=mode.summary, bug_bar_threat=mode.bug_bar.threat)


def mode_name(code: str) -> str:
    """The catalog's name for ``code`` (``FM04`` -> ``Membership inference``), or the code itself."""
    return mode_info(code).name
