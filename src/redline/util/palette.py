"""The one colour palette of redline's pages and plots (``palette.json``): severities, statuses,
coverage, page chrome and plot colours. It sits in the core so that evidence plots (made by
checks) and the report's pages (made above them) read the same table."""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def palette() -> dict[str, Any]:
    """The palette as loaded from ``palette.json`` (cached; treat it as read-only)."""
    return json.loads(resources.files(__package__).joinpath("palette.json").read_text(encoding="utf-8"))
