"""Random vector-wise gradient estimates for black-box optimisation (as in BAR, Tsai et al. 2020).

The loss is known only at points the caller evaluates (each evaluation costs queries).
:func:`sphere_probes` proposes the current parameters plus ``q`` points at distance
``smoothing`` along directions drawn uniformly from the unit sphere; from their losses,
:func:`sphere_gradient` averages the one-sided finite differences, scaled by the dimension,
which estimates the gradient of the loss smoothed over a ball. One-sided differences share
the base evaluation, so an estimate costs q + 1 loss evaluations (antithetic NES costs 2q),
and the base loss (and whatever the caller learns while computing it) comes for free.
"""
from __future__ import annotations

import numpy as np


def sphere_directions(q: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``q`` directions (q, d) drawn uniformly from the unit sphere in ``d`` dimensions."""
    u = rng.standard_normal((q, d))
    return u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)


def sphere_probes(theta: np.ndarray, directions: np.ndarray, smoothing: float) -> np.ndarray:
    """Points to evaluate (q + 1, d): row 0 is ``theta``, row j + 1 is ``theta + smoothing * directions[j]``."""
    theta = np.asarray(theta, dtype=np.float64).reshape(1, -1)
    return np.concatenate([theta, theta + smoothing * directions], axis=0)


def sphere_gradient(values: np.ndarray, directions: np.ndarray, smoothing: float) -> np.ndarray:
    """Estimated gradient (d,) from the losses (q + 1,) at the points :func:`sphere_probes` gave."""
    values = np.asarray(values, dtype=np.float64)
    q, d = directions.shape
    if values.shape != (q + 1,):
        raise ValueError(f"expected {q + 1} loss values (base and one per direction), got shape {values.shape}")
    # E[d * (f(x + s u) - f(x)) / s * u] is the gradient of f averaged over the ball of radius s.
    return (d / (q * smoothing)) * ((values[1:] - values[0]) @ directions)
