"""Backdoor triggers for images: stamping a patch or blending a pattern, and poisoning a training set.

A :class:`Trigger` is plain data (it round-trips through a dict, so a data set can carry
the trigger its model was poisoned with in ``meta["trigger"]``). ``patch`` triggers
(BadNets, Gu et al. 2017) overwrite a small square of pixels with a fixed pattern;
``blend`` triggers (Chen et al. 2017) mix a full-size pattern into the whole image with
weight ``alpha``. Patterns are drawn from a seeded generator, so the same fields give the
same trigger on every machine.

For label-consistent (clean-label) poisoning, :func:`poison` can rework the chosen rows
before stamping (``prepare``) and stamp them more faintly (``amplitude``) or in all four
corners (``corners``), as Turner et al. (2019) do; at test time the trigger is applied
once, at full strength.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import DataError

KINDS = ("patch", "blend")
CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")


@dataclasses.dataclass(frozen=True)
class Trigger:
    """A trigger that flips inputs to ``target_class`` in a backdoored model.

    ``size`` is the side of a square patch in pixels (``patch``); ``alpha`` the blend
    weight (``blend``); ``margin`` the patch's distance from the image border.
    """

    target_class: int = 0
    kind: str = "patch"
    size: int = 4
    corner: str = "bottom_right"
    margin: int = 1
    alpha: float = 0.15
    seed: int = 0
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"trigger kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.corner not in CORNERS:
            raise DataError(f"trigger corner must be one of {', '.join(CORNERS)}, not {self.corner!r}")
        if self.size < 1 or self.margin < 0:
            raise DataError("trigger size must be at least 1 and margin non-negative")
        if not 0 < self.alpha <= 1:
            raise DataError("trigger alpha must be in (0, 1]")
        if self.target_class < 0:
            raise DataError("trigger target_class must be a class index")

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Trigger:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise DataError(f"unknown trigger field(s): {', '.join(sorted(unknown))}")
        return cls(**fields)

    # -- geometry ---------------------------------------------------------------------
    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Per-pixel weight of the pattern, shaped (1, h, w): 1 on the patch, ``alpha`` everywhere for a blend."""
        _, h, w = _image_shape(shape)
        if self.kind == "blend":
            return np.full((1, h, w), self.alpha, dtype=np.float32)
        if self.size + self.margin > min(h, w):
            raise DataError(f"a {self.size}-pixel trigger patch does not fit a {h}x{w} image")
        m = np.zeros((1, h, w), dtype=np.float32)
        top = self.margin if self.corner.startswith("top") else h - self.margin - self.size
        left = self.margin if self.corner.endswith("left") else w - self.margin - self.size
        m[:, top : top + self.size, left : left + self.size] = 1.0
        return m

    def pattern(self, shape: tuple[int, ...]) -> np.ndarray:
        """The trigger's pixel values, shaped like one image.

        A patch is a checkerboard of the bounds (high contrast, unlike handwriting); a blend
        is seeded uniform noise over the bounds.
        """
        c, h, w = _image_shape(shape)
        if self.kind == "patch":
            rows, cols = np.indices((h, w))
            board = ((rows + cols) % 2 == 0).astype(np.float32)
            values = self.lower + (self.upper - self.lower) * board
            return np.broadcast_to(values, (c, h, w)).astype(np.float32)
        rng = np.random.default_rng(self.seed)
        return rng.uniform(self.lower, self.upper, size=(c, h, w)).astype(np.float32)

    def apply(self, x: np.ndarray, amplitude: float = 1.0, corners: Sequence[str] | None = None) -> np.ndarray:
        """Inputs (n, c, h, w) or (n, h, w) carrying the trigger (a new array).

        ``amplitude`` in (0, 1] moves the stamped pixels only that share of the way to the
        pattern (a fainter trigger); ``corners`` stamps a patch in each named corner instead
        of the trigger's own (a blend covers the whole image, so corners do not apply).
        """
        if not 0 < amplitude <= 1:
            raise DataError(f"trigger amplitude must be in (0, 1], not {amplitude}")
        unknown = set(corners or ()) - set(CORNERS)
        if unknown:
            raise DataError(f"trigger corners must be drawn from {', '.join(CORNERS)}, not {sorted(unknown)}")
        x = np.asarray(x)
        shape = x.shape[1:]
        p = self.pattern(shape).reshape(shape)
        out = x
        placements = [self] if self.kind == "blend" or not corners else [dataclasses.replace(self, corner=c) for c in corners]
        for placed in placements:
            m = amplitude * placed.mask(shape).reshape(_broadcast_shape(shape))
            out = (1.0 - m) * out + m * p
        return np.clip(out, self.lower, self.upper).astype(x.dtype, copy=False)


@dataclasses.dataclass(frozen=True)
class Poisoned:
    """A poisoned training set and which rows were changed."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray  # rows carrying the trigger (sorted)


def poison(
    x: np.ndarray,
    y: np.ndarray,
    trigger: Trigger,
    rate: float,
    rng: np.random.Generator,
    *,
    clean_label: bool = False,
    prepare: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    amplitude: float = 1.0,
    corners: Sequence[str] | None = None,
) -> Poisoned:
    """Stamp ``trigger`` on a share ``rate`` of the rows.

    Dirty-label: rows of other classes are stamped and relabelled to the target class
    (``rate`` of the whole set). Clean-label: rows already of the target class are stamped
    and keep their correct label (``rate`` of the whole set, capped by that class's size),
    so every label still looks right to a reviewer.

    ``prepare(x_rows, y_rows)`` returns the chosen rows reworked before the stamp (e.g.
    made hard to learn from their own features); ``amplitude`` and ``corners`` are passed
    to :meth:`Trigger.apply`.
    """
    if not 0 < rate < 1:
        raise DataError(f"poison rate must be in (0, 1), not {rate}")
    y = np.asarray(y)
    candidates = np.flatnonzero(y == trigger.target_class) if clean_label else np.flatnonzero(y != trigger.target_class)
    n = min(len(candidates), round(rate * len(y)))
    if n < 1:
        raise DataError(f"a poison rate of {rate} poisons no row of {len(y)} (target class {trigger.target_class})")
    chosen = np.sort(rng.choice(candidates, size=n, replace=False))
    x_out, y_out = np.array(x, copy=True), np.array(y, copy=True)
    rows = x_out[chosen]
    if prepare is not None:
        rows = np.asarray(prepare(rows, y_out[chosen]), dtype=x_out.dtype)
        if rows.shape != x_out[chosen].shape:
            raise DataError(f"prepare returned rows shaped {rows.shape}, expected {x_out[chosen].shape}")
    x_out[chosen] = trigger.apply(rows, amplitude=amplitude, corners=corners)
    y_out[chosen] = trigger.target_class
    return Poisoned(x_out, y_out, chosen)


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    raise DataError(f"triggers need image inputs shaped (c, h, w) or (h, w), not {tuple(shape)}")


def _broadcast_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The mask's shape against one image: (1, h, w) for (c, h, w), (h, w) for (h, w)."""
    return (1, shape[-2], shape[-1]) if len(shape) == 3 else (shape[0], shape[1])
