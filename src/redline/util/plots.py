"""Small, deterministic evidence plots for checks (PNG about 600 px wide, or SVG).

matplotlib is imported only when a plot is drawn, and only through its object-oriented API
(no pyplot), so drawing touches no global backend state. Plots are drawn with matplotlib's
default style whatever the user's rc settings, and saved without timestamps or version
strings, so the same inputs give the same bytes. Every text drawn (titles, labels, ticks,
legends; feature and class names come from the data) goes through :func:`plot_text`, so no
control character reaches the image or, through a warning, stderr.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes
from .palette import palette
from .safe_text import terminal_text

WIDTH_IN = 6.0
DPI = 100
_HIGHLIGHT = palette()["plot"]["marked"]  # bars a check marks (e.g. the classes it flags)
_PLAIN = palette()["plot"]["plain"]
_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "svg.hashsalt": "redline",  # fixed ids inside SVG output
    "svg.fonttype": "path",
}


@contextlib.contextmanager
def _figure(height_in: float) -> Iterator[Any]:
    import matplotlib.style
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        yield Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")


def plot_text(value: Any) -> str:
    """Text as a plot draws it: control and bidi characters escaped visibly (``\\x1b``), as
    in the terminal (matplotlib warns of a glyph its font lacks, quoting the character raw
    on stderr), tabs as spaces, and ``$`` escaped so a feature name is never read as math."""
    return terminal_text(str(value).replace("\t", " ")).replace("$", r"\$")


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "png":
        metadata = {"Software": None}
    elif fmt == "svg":
        metadata = {"Date": None, "Creator": None}
    else:
        raise ValueError(f"plots are written as .png or .svg, not {path.name!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return atomic_write_bytes(path, buf.getvalue())


def _xy(name: str, pair: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if len(pair) != 2:
        raise ValueError(f"series {name!r} must be a pair (xs, ys)")
    xs = np.asarray(pair[0], dtype=float).ravel()
    ys = np.asarray(pair[1], dtype=float).ravel()
    if xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"series {name!r} needs as many x as y values, at least one (got {xs.size} and {ys.size})")
    return xs, ys


def line_plot(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """One line per named series, e.g. attack success rate against epsilon."""
    if not series:
        raise ValueError("line_plot needs at least one series")
    data = {name: _xy(name, pair) for name, pair in series.items()}
    with _figure(3.6) as fig:
        ax = fig.subplots()
        for name, (xs, ys) in data.items():
            ax.plot(xs, ys, marker="o" if xs.size <= 30 else None, markersize=3.5, linewidth=1.6,
                    label=plot_text(name))
        if logx:
            ax.set_xscale("log", nonpositive="mask")
        if logy:
            ax.set_yscale("log", nonpositive="mask")
        ax.set(title=plot_text(title), xlabel=plot_text(xlabel), ylabel=plot_text(ylabel))
        if len(data) > 1 or next(iter(data)):
            ax.legend(loc="best")
        return _save(fig, path)


def roc_plot(
    path: str | Path,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "ROC curve (log-log)",
) -> Path:
    """ROC curves on log-log axes, where the low false-positive region that matters for
    membership inference is visible; the diagonal marks a guessing attacker. Zero rates are
    drawn at the smallest positive false-positive rate so they stay on the plot."""
    if not curves:
        raise ValueError("roc_plot needs at least one curve")
    data = {name: _xy(name, pair) for name, pair in curves.items()}
    positive = np.concatenate([xs[xs > 0] for xs, _ in data.values()])
    floor = float(min(positive.min(), 1e-3)) if positive.size else 1e-5
    with _figure(4.4) as fig:
        ax = fig.subplots()
        for name, (fpr, tpr) in data.items():
            order = np.argsort(fpr, kind="stable")
            fpr, tpr = fpr[order], tpr[order]
            auc = float(np.trapezoid(tpr, fpr)) if fpr.size > 1 else float("nan")
            label = f"{name} (AUC {auc:.3f})" if np.isfinite(auc) else str(name)
            ax.plot(np.clip(fpr, floor, 1), np.clip(tpr, floor, 1), linewidth=1.6, label=plot_text(label))
        ax.plot([floor, 1], [floor, 1], linestyle="--", color="0.55", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlim=(floor, 1), ylim=(floor, 1), title=plot_text(title), xlabel="False positive rate",
               ylabel="True positive rate")
        ax.legend(loc="lower right")
        return _save(fig, path)


def bar_plot(
    path: str | Path,
    bars: Mapping[str, float],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    highlight: Sequence[str] = (),
    threshold: float | None = None,
    threshold_label: str = "threshold",
) -> Path:
    """Bars by label (e.g. anomaly index per class), ``highlight``-ed labels in red, an optional threshold line."""
    if not bars:
        raise ValueError("bar_plot needs at least one bar")
    labels = [str(k) for k in bars]
    values = np.asarray([float(v) for v in bars.values()])
    marked = {str(h) for h in highlight}
    colours = [_HIGHLIGHT if label in marked else _PLAIN for label in labels]
    with _figure(3.4) as fig:
        ax = fig.subplots()
        ax.bar(range(len(labels)), values, color=colours)
        ax.set_xticks(
            range(len(labels)),
            [plot_text(label) for label in labels],
            rotation=45 if len(labels) > 12 else 0,
            ha="right" if len(labels) > 12 else "center",
        )
        ax.grid(axis="x", visible=False)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1, label=plot_text(threshold_label))
            ax.legend(loc="best")
        ax.set(title=plot_text(title), xlabel=plot_text(xlabel), ylabel=plot_text(ylabel))
        return _save(fig, path)


def heat_map(
    path: str | Path,
    values: Sequence[Sequence[float]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    vmin: float = 0.0,
    vmax: float = 1.0,
    colorbar_label: str = "",
) -> Path:
    """A grid of values, one row per label in ``rows`` and one column per label in
    ``columns`` (e.g. accuracy per corruption family and severity), each cell annotated
    with its value; NaN cells are left blank."""
    grid = np.asarray(values, dtype=float)
    if grid.ndim != 2 or grid.shape != (len(rows), len(columns)) or grid.size == 0:
        raise ValueError(f"heat_map needs a {len(rows)} x {len(columns)} grid of values, got shape {grid.shape}")
    with _figure(max(2.4, 0.8 + 0.28 * len(rows))) as fig:
        ax = fig.subplots()
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(columns)), [plot_text(c) for c in columns])
        ax.set_yticks(range(len(rows)), [plot_text(r) for r in rows])
        ax.grid(visible=False)
        middle = (vmin + vmax) / 2
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > middle else "white")
        fig.colorbar(image, ax=ax, label=plot_text(colorbar_label))
        ax.set(title=plot_text(title), xlabel=plot_text(xlabel), ylabel=plot_text(ylabel))
        return _save(fig, path)


def as_image(array: Any) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4 (or a flat square vector) -> (H, W) or (H, W, C)."""
    a = np.asarray(array, dtype=float)
    if a.ndim == 1:
        side = int(round(np.sqrt(a.size)))
        if side * side != a.size:
            raise ValueError(f"a flat image must have a square number of values, got {a.size}")
        a = a.reshape(side, side)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot show an array of shape {np.shape(array)} as an image")
    return a


def image_grid(
    path: str | Path,
    rows: Sequence[Sequence[Any]],
    *,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    cmap: str = "gray",
    signed_rows: Sequence[int] | None = None,
    title: str = "",
    captions: Sequence[Sequence[str]] | None = None,
) -> Path:
    """A grid of images, e.g. rows of originals, adversarial examples and their differences.

    Rows listed in ``signed_rows`` (by default: rows holding negative values) are differences:
    they are scaled symmetrically around zero, so no change is mid-grey (or white on the
    diverging map) and the sign of a change stays visible. The other images share one scale,
    so an original and its adversarial twin are drawn comparably; each signed row gets a
    colour scale. ``captions`` (per row, per image) are written under the images, e.g. the
    class the model predicted. Row titles wrap so they fit beside a row.
    """
    import textwrap

    grid = [[as_image(img) for img in row] for row in rows]
    if not grid or not any(grid):
        raise ValueError("image_grid needs at least one image")
    n_rows, n_cols = len(grid), max(len(r) for r in grid)
    if signed_rows is None:
        signed = {i for i, row in enumerate(grid) if any(img.min() < 0 for img in row)}
    else:
        signed = {int(i) for i in signed_rows}
    plain = [img for i, row in enumerate(grid) if i not in signed for img in row]
    lo, hi = _plain_range(plain)
    captioned = bool(captions) and any(any(c) for c in captions)
    # Room on the left for the row titles and on the right for colour scales.
    cell = min((WIDTH_IN - 1.6) / n_cols, 1.6)
    height = n_rows * (cell + (0.22 if captioned else 0)) + (0.35 if col_titles else 0) + (0.35 if title else 0) + 0.1
    with _figure(height) as fig:
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for i, row in enumerate(grid):
            scale = max((float(np.abs(img).max()) for img in row), default=0.0) or 1.0
            shown = None
            for j in range(n_cols):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if j >= len(row):
                    continue
                for spine in ax.spines.values():  # a thin frame: white pixels of a patch stay visible
                    spine.set(visible=True, color="0.75", linewidth=0.6)
                img = row[j]
                if captions and i < len(captions) and j < len(captions[i]) and captions[i][j]:
                    ax.set_xlabel(plot_text(captions[i][j]), fontsize=7, labelpad=2)
                if i in signed:
                    if img.ndim == 2:
                        shown = ax.imshow(img, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
                    else:
                        ax.imshow(np.clip(0.5 + img / (2 * scale), 0, 1), interpolation="nearest")
                elif img.ndim == 2:
                    ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
                else:
                    ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1), interpolation="nearest")
                if i == 0 and col_titles and j < len(col_titles):
                    ax.set_title(plot_text(col_titles[j]), fontsize=8)
            if shown is not None:  # a difference row: its colour scale says what red and blue mean
                bar = fig.colorbar(shown, ax=list(axes[i]), location="right", shrink=0.9, pad=0.01, aspect=12)
                bar.ax.tick_params(labelsize=7)
                bar.set_label("change", fontsize=7)
            if row_titles and i < len(row_titles):
                axes[i][0].set_ylabel(plot_text(textwrap.fill(str(row_titles[i]), 14)), fontsize=8)
        if title:
            fig.suptitle(plot_text(title))
        return _save(fig, path)


def _plain_range(images: list[np.ndarray]) -> tuple[float, float]:
    """Shared display range: [0, 1] for images in it, else their joint min/max."""
    if not images:
        return 0.0, 1.0
    lo = min(float(img.min()) for img in images)
    hi = max(float(img.max()) for img in images)
    if lo >= 0 and hi <= 1:
        return 0.0, 1.0
    lo = 0.0 if lo >= 0 else lo
    return lo, hi if hi > lo else lo + 1.0
