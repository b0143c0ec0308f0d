"""Keeping attack candidates submittable: input bounds, feature constraints, a norm ball.

Black-box attacks propose points anywhere; before a point is sent to the target it is mapped
onto what a real attacker could submit (each feature's value range and the tabular feature
constraints) and, for budgeted attacks, back into the epsilon ball around the original.
Balls are measured in range units (:mod:`redline.util.epsilon`): ``eps`` 0.1 lets every
feature move by a tenth of its own range.
"""
from __future__ import annotations

import numpy as np

from ...targets.base import InputSpec
from ...util.epsilon import FeatureUnits


def _per_row(values: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, *([1] * (ndim - 1)))


def project_ball(x: np.ndarray, x0: np.ndarray, eps: float, norm: str, scale: np.ndarray | None = None) -> np.ndarray:
    """The point of the L-inf or L2 ball of radius ``eps`` around ``x0`` nearest to ``x`` (row-wise),
    sizes measured in units of ``scale`` (one value per feature, shaped like an input) when given."""
    delta = np.asarray(x, dtype=np.float64) - x0
    if scale is not None:
        delta = delta / scale
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        size = np.sqrt((delta.reshape(len(delta), -1) ** 2).sum(axis=1))
        delta = delta * _per_row(np.minimum(1.0, eps / np.maximum(size, 1e-12)), delta.ndim)
    if scale is not None:
        delta = delta * scale
    return (x0 + delta).astype(x.dtype, copy=False)


def make_feasible(x: np.ndarray, x0: np.ndarray, spec: InputSpec, eps: float | None = None,
                  norm: str = "l2", units: FeatureUnits | None = None) -> np.ndarray:
    """Map candidates ``x`` onto the inputs an attacker may send, given originals ``x0``.

    ``eps`` is in range units; ``units`` (the spec's, computed when not given) holds each
    feature's bounds. Order matters: ball, then bounds, then feature constraints. Clipping
    to a range and resetting immutable features only move a point towards a feasible
    ``x0``, but rounding integer or snapping categorical features can push it out of the
    ball again; rows where that happens keep those features at their original values,
    which keeps them inside.
    """
    units = units if units is not None else FeatureUnits.from_spec(spec)
    scale = None if units.identity else units.scale
    x = np.asarray(x, dtype=x0.dtype)
    if eps is not None:
        x = project_ball(x, x0, eps, norm, scale)
    x = units.clip(x)
    constraints = spec.constraints
    if not constraints:
        return x
    x = constraints.project(x, x0)
    if eps is None or not (constraints.integer or constraints.categorical):
        return x
    if norm == "linf":
        return _snap_inside_box(x, x0, eps, units, constraints)
    flat = x.reshape(len(x), -1)
    size = units.size(x - x0, norm)
    outside = size > eps * (1 + 1e-6)
    if outside.any():
        snapped = list(constraints.integer) + [i for i, _ in constraints.categorical]
        flat = flat.copy()
        flat[np.ix_(outside, snapped)] = x0.reshape(len(x0), -1)[np.ix_(outside, snapped)]
        x = project_ball(flat.reshape(x.shape), x0, eps, norm, scale)
    return x


def _snap_inside_box(x: np.ndarray, x0: np.ndarray, eps: float, units: FeatureUnits, constraints) -> np.ndarray:
    """L-inf: each snapped feature independently takes the allowed value nearest to its
    candidate among those inside its own box ``x0_j +- eps * range_j`` (the original value
    always is): a category one step away is reachable when the step fits the budget, and
    one feature snapping too far does not undo the others."""
    shape = x.shape
    flat = np.array(x, dtype=np.float64).reshape(len(x), -1)
    orig = np.asarray(x0, dtype=np.float64).reshape(len(x0), -1)
    reach = eps * np.asarray(units.scale, np.float64).reshape(-1) * (1 + 1e-6)
    if constraints.integer:
        idx = list(constraints.integer)
        low = np.ceil(orig[:, idx] - reach[idx])
        high = np.floor(orig[:, idx] + reach[idx])
        # An original that is not an integer stays where it is when no integer fits the box.
        inside = np.clip(flat[:, idx], low, high)
        flat[:, idx] = np.where(low <= high, inside, orig[:, idx])
    for i, values in constraints.categorical:
        allowed = np.asarray(values, dtype=np.float64)[None, :]
        cost = np.abs(flat[:, i, None] - allowed)
        cost[np.abs(allowed - orig[:, i, None]) > reach[i]] = np.inf
        pick = cost.argmin(axis=1)
        chosen = allowed[0, pick]
        flat[:, i] = np.where(np.isfinite(cost.min(axis=1)), chosen, orig[:, i])
    return flat.reshape(shape).astype(x.dtype, copy=False)
