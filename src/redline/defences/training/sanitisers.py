"""Screening methods against training-set poisoning, as functions and as sanitisers.

Each takes the (possibly poisoned) training set and returns the rows it keeps; an FM02
check then retrains on those rows and measures how much of the damage is undone. The
models a method trains come from a :class:`~.base.Fitter`; in a check that is the target's
``TrainingPipeline``, which charges them to the target's ledger as evaluation queries
(defending is the auditor's measurement, not the attacker's effort).

- :func:`loss_sanitize`: train once, drop the rows the model fits worst (label noise and
  outliers have high loss), the simplest data-sanitisation defence.
- :func:`sphere_filter`: the sphere defence (Steinhardt et al. 2017): drop the rows farthest
  from the median of their labelled class; a flipped or injected row sits far from the class
  it claims. Needs no model.
- :func:`reject_on_negative_impact`: RONI (Nelson et al. 2008), on groups of rows: a group
  whose removal raises accuracy on trusted validation data is rejected.
- :func:`trim`: TRIM (Jagielski et al. 2018) for regression: alternate between fitting and
  keeping the ``n_keep`` rows with the smallest residuals.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Fitter, Sanitiser


def loss_sanitize(pipeline: Fitter, x: np.ndarray, y: np.ndarray, fraction: float) -> np.ndarray:
    """Keep-mask that drops the ``fraction`` of rows with the highest loss under a model fitted on all rows.

    With a labels-only recipe the loss is 0/1 (misclassified rows go first, ties in order).
    """
    if not 0 <= fraction < 1:
        raise ValueError("the sanitisation fraction must lie in [0, 1)")
    n_drop = round(fraction * len(x))
    keep = np.ones(len(x), dtype=bool)
    if n_drop == 0:
        return keep
    model = pipeline.fit(x, y)
    probs = pipeline.confidences(model, x)
    if probs is not None:
        loss = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    else:
        loss = (pipeline.labels(model, x) != y).astype(np.float64)
    keep[np.argsort(-loss, kind="stable")[:n_drop]] = False
    return keep


def sphere_filter(x: np.ndarray, y: np.ndarray, fraction: float) -> np.ndarray:
    """Keep-mask that drops, in every class, the ``fraction`` of its rows farthest (L2) from
    the class's coordinate-wise median (a centre a minority of poisoned rows cannot drag far)."""
    if not 0 <= fraction < 1:
        raise ValueError("the sphere fraction must lie in [0, 1)")
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    keep = np.ones(len(x), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        distance = np.linalg.norm(flat[members] - np.median(flat[members], axis=0), axis=1)
        keep[members[np.argsort(-distance, kind="stable")[: round(fraction * len(members))]]] = False
    return keep


def reject_on_negative_impact(
    pipeline: Fitter,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    groups: int,
    tolerance: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Keep-mask after RONI over ``groups`` random groups of rows.

    Screening one row at a time costs a retraining per row; groups trade that precision
    for ``groups + 1`` retrainings. A group is rejected when the model trained without it
    is more accurate on the trusted validation data by more than ``tolerance``.
    """
    if groups < 2:
        raise ValueError("RONI needs at least two groups")
    base = pipeline.accuracy(pipeline.fit(x, y), x_val, y_val)
    keep = np.ones(len(x), dtype=bool)
    for members in np.array_split(rng.permutation(len(x)), groups):
        rest = np.ones(len(x), dtype=bool)
        rest[members] = False
        without = pipeline.accuracy(pipeline.fit(x[rest], y[rest]), x_val, y_val)
        if without - base > tolerance:
            keep[members] = False
    return keep


def trim(
    fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    n_keep: int,
    *,
    max_iter: int = 20,
    restarts: int = 10,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Keep-mask of TRIM: fit on a subset, keep the ``n_keep`` rows with the smallest squared
    residuals, refit, until the subset stops changing (a local minimum of the trimmed loss).

    ``fit(x, y)`` returns a predict function. The alternation finds a local minimum only, so
    it starts from every row and from ``restarts - 1`` small random subsets (twice the number
    of features, as in FAST-LTS: a small subset is often free of poison, a large one rarely),
    and keeps the subset with the smallest trimmed loss.
    """
    n = len(x)
    if not 0 < n_keep <= n:
        raise ValueError(f"TRIM must keep between 1 and {n} rows, not {n_keep}")
    rng = rng or np.random.default_rng(0)
    best, best_loss = None, np.inf
    for attempt in range(max(1, int(restarts))):
        keep = np.ones(n, dtype=bool)
        if attempt:
            keep[:] = False
            start = min(n_keep, 2 * (int(np.prod(x.shape[1:])) + 1))
            keep[rng.choice(n, size=start, replace=False)] = True
        loss = np.inf
        for _ in range(max_iter):
            predict = fit(x[keep], y[keep])
            residual = (np.asarray(predict(x), dtype=np.float64) - y) ** 2
            new = np.zeros(n, dtype=bool)
            new[np.argsort(residual, kind="stable")[:n_keep]] = True
            loss = float(residual[new].sum())
            if np.array_equal(new, keep):
                break
            keep = new
        if loss < best_loss:
            best, best_loss = new, loss
    return best


# -- the same methods behind the Sanitiser interface, parameters bound -------------------------


class LossFilter(Sanitiser):
    """:func:`loss_sanitize` with a fitter and a fraction."""

    def __init__(self, fitter: Fitter, fraction: float):
        self.fitter = fitter
        self.fraction = fraction

    def keep(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return loss_sanitize(self.fitter, x, y, self.fraction)


class SphereFilter(Sanitiser):
    """:func:`sphere_filter` with a fraction."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def keep(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sphere_filter(x, y, self.fraction)


class Roni(Sanitiser):
    """:func:`reject_on_negative_impact` against trusted validation data."""

    def __init__(self, fitter: Fitter, x_val: np.ndarray, y_val: np.ndarray, *, groups: int, tolerance: float,
                 rng: np.random.Generator):
        self.fitter = fitter
        self.x_val = x_val
        self.y_val = y_val
        self.groups = groups
        self.tolerance = tolerance
        self.rng = rng

    def keep(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return reject_on_negative_impact(self.fitter, x, y, self.x_val, self.y_val, groups=self.groups,
                                         tolerance=self.tolerance, rng=self.rng)


class Trim(Sanitiser):
    """:func:`trim` for regression: keep the ``keep_fraction`` of rows a model fits best."""

    def __init__(self, fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
                 keep_fraction: float, *, max_iter: int = 20, rng: np.random.Generator | None = None):
        self.fit = fit
        self.keep_fraction = keep_fraction
        self.max_iter = max_iter
        self.rng = rng

    def keep(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n_keep = max(1, round(self.keep_fraction * len(x)))
        return trim(self.fit, x, y, n_keep, max_iter=self.max_iter, rng=self.rng)
