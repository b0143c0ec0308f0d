"""Perturbation norms over all but the batch axis (numpy)."""
from __future__ import annotations

import numpy as np


def flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def linf(delta: np.ndarray) -> np.ndarray:
    return np.abs(flat(delta)).max(axis=1) if len(delta) else np.zeros(0)


def l2(delta: np.ndarray) -> np.ndarray:
    return np.sqrt((flat(delta) ** 2).sum(axis=1)) if len(delta) else np.zeros(0)


def median_or_none(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(np.median(values)) if values.size else None
