"""Input transformations that coarsen a request before the model sees it.

* :class:`Quantise` (policy key ``quantise``): snap every feature to a grid, either
  ``bits`` (``2**bits`` evenly spaced levels between the feature's lower and upper bound in
  the target's input spec, values clipped to that range first) or ``step`` (multiples of
  ``step`` counted from the feature's lower bound, no clipping). Changes smaller than half a
  grid cell vanish, so tiny perturbations buy an attacker nothing; a change that crosses
  a cell boundary is kept whole, so it is a speed bump, not a wall.
* :class:`Smooth` (policy key ``smooth``): a ``size`` x ``size`` median or mean filter over
  each channel of images shaped (channels, height, width). A table has no neighbouring
  pixels to smooth over, so asking to smooth one is a configuration error in ``check()``
  rather than a silent no-op.

Feature squeezing (bit depth in [0, 1] plus a median filter, as in Xu et al.) is
:mod:`~redline.defences.squeezing`; these two work in the model's own units.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, InputRejected
from .squeezing import median_filter


def _whole(value: object, least: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= least


class Quantise(Defence):
    """Snap inputs to ``2**bits`` levels per feature, or to multiples of ``step``."""

    policy_key = "quantise"

    def __init__(self, bits: int | None = None, step: float | None = None):
        self.bits = bits
        self.step = step

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"quantise{self.bits}b" if self.bits is not None else f"quantise{self.step:g}"

    def check(self, target: Target) -> None:
        if (self.bits is None) == (self.step is None):
            raise UsageError("quantise: give exactly one of bits (levels = 2**bits) or step (grid spacing)")
        if self.bits is not None and not (_whole(self.bits, 1) and self.bits <= 32):
            raise UsageError(f"quantise: bits must be a whole number from 1 to 32, not {self.bits!r}")
        if self.step is not None and (isinstance(self.step, bool) or not isinstance(self.step, (int, float))
                                      or not np.isfinite(self.step) or self.step <= 0):
            raise UsageError(f"quantise: step must be a positive number, not {self.step!r}")
        lower, upper = target.input_spec.feature_bounds()
        if self.bits is not None and not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise UsageError(f"quantise: bits needs finite input bounds, and {target.spec} has none; use step")
        self._shape_ = tuple(target.input_spec.shape)
        self._lower_ = lower.reshape(1, *self._shape_)
        self._upper_ = upper.reshape(1, *self._shape_)

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_lower_"):
            raise UsageError("quantise: check(target) must run before the defence serves requests")
        values = np.asarray(x, np.float64)
        if tuple(values.shape[1:]) != self._shape_:  # the grid is per feature of the model's rows
            raise InputRejected(f"input rejected: each input must have shape {list(self._shape_)}", reason="shape",
                                detail={"got": list(values.shape[1:])})
        if self.step is not None:
            out = self._lower_ + np.round((values - self._lower_) / self.step) * self.step
        else:
            width = np.where(self._upper_ > self._lower_, self._upper_ - self._lower_, 1.0)
            cells = 2 ** int(self.bits) - 1
            share = (np.clip(values, self._lower_, self._upper_) - self._lower_) / width
            out = self._lower_ + np.round(share * cells) / cells * width
        return out.astype(np.asarray(x).dtype, copy=False)


class Smooth(Defence):
    """A ``size`` x ``size`` ``median`` or ``mean`` filter over each channel of image inputs."""

    policy_key = "smooth"

    def __init__(self, kind: str = "median", size: int = 3):
        self.kind = kind
        self.size = size

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"smooth{self.kind}{self.size}"

    def check(self, target: Target) -> None:
        if self.kind not in ("median", "mean"):
            raise UsageError(f"smooth: kind must be median or mean, not {self.kind!r}")
        if not _whole(self.size, 2):
            raise UsageError(f"smooth: size must be a whole number of at least 2 (1 would change nothing), not {self.size!r}")
        shape = tuple(target.input_spec.shape)
        if len(shape) != 3:
            raise UsageError(
                f"smooth: filters images shaped (channels, height, width) and {target.spec} takes inputs "
                f"shaped {list(shape)}; a table has no neighbouring pixels, so leave smooth out of its policy"
            )
        if self.size > min(shape[1:]):
            raise UsageError(f"smooth: size {self.size} is larger than the {shape[1]}x{shape[2]} images")

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "median":
            return median_filter(x, int(self.size))
        return mean_filter(x, int(self.size))


def mean_filter(x: np.ndarray, k: int) -> np.ndarray:
    """Per-channel ``k`` x ``k`` mean of images (n, c, h, w), edges replicated (the window
    placement of :func:`~redline.defences.squeezing.median_filter`)."""
    low, high = (k - 1) // 2, k // 2
    padded = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (low, high), (low, high)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
    return windows.mean(axis=(-2, -1)).astype(np.asarray(x).dtype, copy=False)
