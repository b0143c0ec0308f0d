"""Saving a check's evidence (arrays, plots) into the report's artifacts folder."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checks.base import CheckContext


def save_arrays(ctx: CheckContext, name: str, **arrays: np.ndarray) -> str | None:
    path, rel = ctx.artifact(name)
    if path is None:
        return None
    np.savez_compressed(path, **arrays)
    return rel


def try_plot(ctx: CheckContext, name: str, draw: Any, *args: Any, **kwargs: Any) -> str | None:
    """Call a plotting function from redline.report.plots; plots are evidence, not results,
    so a missing plotting library skips the plot instead of failing the check."""
    path, rel = ctx.artifact(name)
    if path is None:
        return None
    try:
        draw(path, *args, **kwargs)
    except ImportError:
        return None
    return rel
