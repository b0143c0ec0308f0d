"""ROC curves of a scoring attack, and the numbers membership inference is judged by.

Scores are "higher means more likely a member"; labels are True for members. Ties are
handled exactly: records with equal scores enter the curve together, so an attack that
gives many records the same score cannot claim a lucky ordering among them. A true
positive rate "at" a false-positive rate is the best one reachable without exceeding that
false-positive rate (Carlini et al. 2022), so with n non-members nothing below 1/n can be
claimed except at zero false positives.
"""
from __future__ import annotations

import numpy as np

#: The false-positive rates DESIGN.md names (metric ``tpr_at_fpr_<rate>``).
REPORTED_FPRS = (0.001, 0.01)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1), fpr non-decreasing."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length ({scores.size} and {labels.size})")
    if not np.all(np.isfinite(scores)):
        raise ValueError("membership scores must be finite")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("an ROC curve needs both members and non-members")
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], labels[order]
    tp, fp = np.cumsum(lab), np.cumsum(~lab)
    # Keep only the last position of each run of equal scores: a threshold admits all of them.
    last = np.r_[s[1:] != s[:-1], True]
    tpr = np.r_[0.0, tp[last] / n_pos]
    fpr = np.r_[0.0, fp[last] / n_neg]
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the curve (trapezoids; ties count half, as in the Mann-Whitney statistic)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest true-positive rate whose false-positive rate does not exceed ``max_fpr``."""
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def advantage(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Membership advantage: the largest TPR - FPR over thresholds (Yeom et al. 2018)."""
    return float(np.max(tpr - fpr))


def membership_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``auc``, ``tpr_at_fpr_0.001``, ``tpr_at_fpr_0.01`` and ``advantage`` of one attack."""
    fpr, tpr = roc_curve(scores, labels)
    metrics = {"auc": auc(fpr, tpr)}
    for rate in REPORTED_FPRS:
        metrics[f"tpr_at_fpr_{rate:g}"] = tpr_at_fpr(fpr, tpr, rate)
    metrics["advantage"] = advantage(fpr, tpr)
    return metrics


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` points, spaced evenly in log(fpr) so the low-FPR end stays
    detailed on a log-log plot; the first and last points are kept."""
    if fpr.size <= points:
        return fpr, tpr
    positive = fpr[fpr > 0]
    grid = np.geomspace(positive.min(), 1.0, points) if positive.size else np.array([1.0])
    idx = np.unique(np.r_[0, np.searchsorted(fpr, grid, side="right") - 1, fpr.size - 1])
    return fpr[idx], tpr[idx]
