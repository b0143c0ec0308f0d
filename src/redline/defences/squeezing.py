"""Input squeezing (feature squeezing, Xu et al. 2018): coarsen the input before the model.

An optional ``median`` x ``median`` median filter (images shaped (n, c, h, w)), then
rounding of every value in [0, 1] to ``levels`` evenly spaced levels (bit-depth
reduction: 2 levels is black or white). Small perturbations below a level's width vanish.
Such preprocessing is weaker than it looks: rounding has a zero gradient, so naive
white-box attacks stall (gradient masking; Athalye et al. 2018) while attacks that do not
rely on the model's gradient are affected far less.

:class:`Squeezing` runs on numpy batches in front of any target; :meth:`Squeezing.torch_layer`
is the same transformation as a torch layer, for a model built with its defence inside (the
zoo's ``mnist_cnn_squeezed``), so white-box checks meet the masked gradient as deployed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence


class Squeezing(Defence):
    """Median filter (``median`` = 1: off), then rounding to ``levels`` levels in [0, 1]."""

    policy_key = "squeeze"

    def __init__(self, levels: int = 2, median: int = 1):
        self.levels = levels
        self.median = median

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"squeeze{self.levels}" + (f"m{self.median}" if self.median > 1 else "")

    def check(self, target: Target) -> None:
        for what, value, least in (("levels", self.levels, 2), ("median", self.median, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise UsageError(f"squeezing: {what} must be a whole number of at least {least}, not {value!r}")
        if self.median > 1 and len(target.input_spec.shape) != 3:
            raise UsageError(
                f"squeezing: a median filter needs images shaped (channels, height, width), "
                f"{target.spec} takes {target.input_spec.shape}"
            )

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        if self.median > 1:
            x = median_filter(x, self.median)
        steps = self.levels - 1
        return np.round(np.clip(x, 0, 1) * steps) / steps

    def torch_layer(self) -> Any:
        """This squeezing as a parameter-free ``torch.nn.Module`` (imports torch)."""
        return _torch_squeezer(self.levels, self.median)


def median_filter(x: np.ndarray, k: int) -> np.ndarray:
    """Per-channel ``k`` x ``k`` median of images (n, c, h, w), edges replicated.

    For an even ``k`` the lower of the two middle values, as ``torch.median`` takes it,
    so the numpy and torch forms of the defence give the same pixels.
    """
    low, high = (k - 1) // 2, k // 2
    padded = np.pad(x, ((0, 0), (0, 0), (low, high), (low, high)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
    windows = windows.reshape(*x.shape, k * k)
    middle = (k * k - 1) // 2
    return np.partition(windows, middle, axis=-1)[..., middle].astype(x.dtype, copy=False)


def _torch_squeezer(levels: int, median: int) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class InputSqueezing(nn.Module):
        """Median filter (``median`` x ``median``, 1 = off), then rounding to ``levels`` grey levels."""

        def __init__(self) -> None:
            super().__init__()
            self.levels, self.median = levels, median

        def forward(self, x):
            if self.median > 1:
                k = self.median
                low, high = (k - 1) // 2, k // 2
                n, c, h, w = x.shape
                patches = F.unfold(F.pad(x, (low, high, low, high), mode="replicate"), k)
                x = patches.view(n, c, k * k, h * w).median(dim=2).values.view(n, c, h, w)
            # Inputs are in [0, 1]; torch.round has a zero gradient, as deployed.
            return torch.round(x.clamp(0, 1) * (self.levels - 1)) / (self.levels - 1)

        def extra_repr(self) -> str:
            return f"levels={self.levels}, median={self.median}"

    return InputSqueezing()
