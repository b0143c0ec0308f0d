"""Accuracy under a reweighting shift, its drop, intervals, and a corrected test over many shifts.

A shift (:class:`.shifts.Shift`) partitions the evaluated rows into groups g with n_g rows, k_g
of them answered correctly, and gives each group a share w_g of the shifted population. With
f_g = n_g / n the group's share of the test rows and a_g = k_g / n_g its accuracy,

    reference accuracy = sum_g f_g a_g   (the plain test accuracy)
    shifted accuracy   = sum_g w_g a_g
    drop               = sum_g (f_g - w_g) a_g

Conditional on the partition, the k_g are independent binomials, so each a_g gets an exact
Clopper-Pearson bound and a linear combination of them gets a simultaneous bound from the
union bound (each of the G groups the shift moves at level alpha / G): conservative, exact at
any sample size, and the same construction as the paired drop of the corruption checks.

Whether a drop exceeds a tolerance is a one-sided test of ``drop <= tolerated``; its p-value is
the smallest alpha at which the simultaneous lower bound clears the tolerance. Over many shifts
the p-values go through Holm's step-down correction, which keeps the chance of flagging any
shift of a model that loses no more than the tolerance anywhere at most alpha.
"""
from __future__ import annotations

import numpy as np

from ...util.stats import CONFIDENCE

#: Smallest p-value the search resolves (anything this small is "certain" for a verdict).
P_FLOOR = 1e-12


def group_counts(groups: np.ndarray, correct: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, n): correct answers and rows per group."""
    n = np.bincount(groups, minlength=n_groups)
    k = np.bincount(groups, weights=np.asarray(correct, float), minlength=n_groups).round().astype(int)
    return k, n


def _lower(k: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
    """One-sided exact lower bounds at level 1 - a of the rates k / n (0 where k is 0)."""
    from scipy.stats import beta

    safe_k = np.maximum(k, 1)
    return np.where(k == 0, 0.0, beta.ppf(a, safe_k, n - safe_k + 1))


def _upper(k: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
    """One-sided exact upper bounds at level 1 - a of the rates k / n (1 where k is n)."""
    from scipy.stats import beta

    safe_k = np.minimum(k, n - 1)
    return np.where(k == n, 1.0, beta.ppf(1 - a, safe_k + 1, n - safe_k))


def _combination_bound(k: np.ndarray, n: np.ndarray, coefficients: np.ndarray, alpha: float, side: str) -> float:
    """Simultaneous one-sided bound (``side`` "lower" or "upper") at level 1 - alpha of
    sum_g c_g a_g, over the groups with a non-zero coefficient (alpha split evenly among them)."""
    used = (coefficients != 0) & (n > 0)
    if not used.any():
        return 0.0
    k, n, c = k[used], n[used], coefficients[used]
    a = alpha / int(used.sum())
    low, high = _lower(k, n, a), _upper(k, n, a)
    if side == "lower":
        return float(np.sum(np.where(c > 0, c * low, c * high)))
    return float(np.sum(np.where(c > 0, c * high, c * low)))


def _coefficients(n: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """c_g = f_g - w_g, the weight of each group's accuracy in the drop (0 for groups the shift leaves alone)."""
    reference = n / n.sum()
    c = reference - shares
    c[np.isclose(reference, shares)] = 0.0
    return c


def _interval(k: np.ndarray, n: np.ndarray, coefficients: np.ndarray) -> list[float]:
    """Simultaneous two-sided 95% interval of sum_g c_g a_g: each side at 2.5%, split over the groups."""
    tail = (1 - CONFIDENCE) / 2
    return [_combination_bound(k, n, coefficients, tail, "lower"),
            _combination_bound(k, n, coefficients, tail, "upper")]


def shifted_accuracy(k: np.ndarray, n: np.ndarray, shares: np.ndarray) -> tuple[float, list[float]]:
    """Accuracy under the shift and its simultaneous 95% interval (exact Clopper-Pearson for a
    shift to one group alone)."""
    rates = np.divide(k, n, out=np.zeros(len(k)), where=n > 0)
    low, high = _interval(k, n, np.asarray(shares, float))
    return float(np.sum(shares * rates)), [max(0.0, low), min(1.0, high)]


def accuracy_drop(k: np.ndarray, n: np.ndarray, shares: np.ndarray) -> tuple[float, list[float]]:
    """Reference minus shifted accuracy, and its simultaneous 95% interval."""
    c = _coefficients(n, np.asarray(shares, float))
    rates = np.divide(k, n, out=np.zeros(len(k)), where=n > 0)
    low, high = _interval(k, n, c)
    return float(np.sum(c * rates)), [max(-1.0, low), min(1.0, high)]


def excess_drop_pvalue(k: np.ndarray, n: np.ndarray, shares: np.ndarray, tolerated: float) -> float:
    """p-value of ``drop <= tolerated``: the smallest alpha whose simultaneous lower bound on the
    drop exceeds ``tolerated`` (the bound grows with alpha, so a bisection on log alpha finds it)."""
    c = _coefficients(n, np.asarray(shares, float))

    def clears(alpha: float) -> bool:
        return _combination_bound(k, n, c, alpha, "lower") > tolerated

    if not clears(1.0):
        return 1.0
    if clears(P_FLOOR):
        return P_FLOOR
    low, high = np.log(P_FLOOR), 0.0  # clears(exp(high)) holds, clears(exp(low)) does not
    for _ in range(40):
        middle = (low + high) / 2
        if clears(float(np.exp(middle))):
            high = middle
        else:
            low = middle
    return float(np.exp(high))
