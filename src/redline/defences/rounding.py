"""Output hardening: probabilities rounded to a few decimals.

Coarse confidences blunt attacks that solve for exact values (equation-solving extraction,
gradient estimates from tiny differences), while the ranking of classes stays useful.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, DefendedTarget


class Rounding(Defence):
    """Round every answered value to ``decimals`` places (as float64)."""

    policy_key = "round"

    def __init__(self, decimals: int = 1):
        self.decimals = decimals

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"round{self.decimals}"

    def check(self, target: Target) -> None:
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, (int, np.integer)) or self.decimals < 0:
            raise UsageError(f"rounding needs a whole number of decimals of at least 0, not {self.decimals!r}")

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(scores, dtype=np.float64), self.decimals)


class RoundedTarget(DefendedTarget):
    """``inner`` answering rounded probabilities: ``DefendedTarget(inner, [Rounding(decimals)])``."""

    def __init__(self, inner: Target, decimals: int = 1):
        self.decimals = decimals
        super().__init__(inner, [Rounding(decimals)])
