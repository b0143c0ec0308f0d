"""Keeping attack candidates submittable: input bounds, feature constraints, a norm ball.

Black-box attacks propose points anywhere; before a point is sent to the target it is mapped
onto what a real attacker could submit (the target's value range and its tabular feature
constraints) and, for budgeted attacks, back into the epsilon ball around the original.
"""
from __future__ import annotations

import numpy as np

from ..targets.base import InputSpec


def _per_row(values: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, *([1] * (ndim - 1)))


def project_ball(x: np.ndarray, x0: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """The point of the L-inf or L2 ball of radius ``eps`` around ``x0`` nearest to ``x`` (row-wise)."""
    delta = np.asarray(x, dtype=np.float64) - x0
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        size = np.sqrt((delta.reshape(len(delta), -1) ** 2).sum(axis=1))
        delta = delta * _per_row(np.minimum(1.0, eps / np.maximum(size, 1e-12)), delta.ndim)
    return (x0 + delta).astype(x.dtype, copy=False)


def make_feasible(x: np.ndarray, x0: np.ndarray, spec: InputSpec, eps: float | None = None,
                  norm: str = "l2") -> np.ndarray:
    """Map candidates ``x`` onto the inputs an attacker may send, given originals ``x0``.

    Order matters: ball, then bounds, then feature constraints. Clipping to a range and
    resetting immutable features only move a point towards a feasible ``x0``, but rounding
    integer or snapping categorical features can push it out of the ball again; rows where
    that happens keep those features at their original values, which keeps them inside.
    """
    x = np.asarray(x, dtype=x0.dtype)
    if eps is not None:
        x = project_ball(x, x0, eps, norm)
    x = np.clip(x, spec.lower, spec.upper)
    constraints = spec.constraints
    if not constraints:
        return x
    x = constraints.project(x, x0)
    if eps is None or not (constraints.integer or constraints.categorical):
        return x
    flat = x.reshape(len(x), -1)
    delta = flat - x0.reshape(len(x0), -1)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.sqrt((delta.astype(np.float64) ** 2).sum(axis=1))
    outside = size > eps * (1 + 1e-6)
    if outside.any():
        snapped = list(constraints.integer) + [i for i, _ in constraints.categorical]
        flat = flat.copy()
        flat[np.ix_(outside, snapped)] = x0.reshape(len(x0), -1)[np.ix_(outside, snapped)]
        x = project_ball(flat.reshape(x.shape), x0, eps, norm)
    return x
