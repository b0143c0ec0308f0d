"""Saving a check's evidence (arrays, plots) into the report's artifacts folder.

A file that cannot be written there (no space, a file-size limit, a read-only folder) raises
:class:`~redline.errors.OutputError`: the scan stops and the check is run again by ``--resume``,
rather than ending as the check's own ``error``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .atomic import writing_output


class CheckContext(Protocol):
    """What these helpers use of a check's context (redline.checks.base.CheckContext): where
    an artifact goes. Declared here so that util does not import the checks layer above it."""

    def artifact(self, name: str) -> tuple[Path | None, str]: ...


def save_arrays(ctx: CheckContext, name: str, **arrays: np.ndarray) -> str | None:
    path, rel = ctx.artifact(name)
    if path is None:
        return None
    with writing_output(path, remove_partial=True):  # a full disk stops the scan (OutputError)
        np.savez_compressed(path, **arrays)
    return rel


def try_plot(ctx: CheckContext, name: str, draw: Any, *args: Any, **kwargs: Any) -> str | None:
    """Call a plotting function from redline.util.plots; plots are evidence, not results,
    so a missing plotting library skips the plot instead of failing the check."""
    path, rel = ctx.artifact(name)
    if path is None:
        return None
    try:
        with writing_output(path):  # a full disk stops the scan (OutputError); plots are written atomically
            draw(path, *args, **kwargs)
    except ImportError:
        return None
    return rel


def adversarial_grid(ctx: CheckContext, name: str, x: np.ndarray, x_adv: np.ndarray, fooled: np.ndarray,
                     most: int = 6) -> str | None:
    """Original / adversarial / difference rows for up to ``most`` fooled images; None for
    non-image inputs, when nothing was fooled, or when no plot could be written."""
    if x.ndim < 3 or not np.any(fooled):
        return None
    from . import plots

    pick = np.flatnonzero(fooled)[:most]
    rows = [list(x[pick]), list(x_adv[pick]), list(x_adv[pick] - x[pick])]
    captions = _predicted_captions(ctx, name, x, pick)
    return try_plot(ctx, name, plots.image_grid, rows, row_titles=["original", "adversarial", "difference"],
                    captions=captions)


def _predicted_captions(ctx: CheckContext, name: str, x: np.ndarray, pick: np.ndarray) -> list[list[str]] | None:
    """"class 7" under each original and "-> 3" under each adversarial image.

    The classes come from the examples file the check saved beside the plot
    (``<check>-examples.npz`` with ``x``, ``y`` and ``y_adv``), so drawing the plot sends no
    query; without that file, or when it does not line up with ``x``, the plot has no captions.
    """
    if not name.endswith("-examples.png"):
        return None
    path, _ = ctx.artifact(name[: -len(".png")] + ".npz")
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if "y" not in saved or "y_adv" not in saved or saved["x"].shape != x.shape:
                return None
            y, y_adv = saved["y"][pick], saved["y_adv"][pick]
    except (OSError, ValueError, KeyError):
        return None
    return [[f"class {int(c)}" for c in y], [f"predicted {int(c)}" for c in y_adv], []]
