"""Describable slices where a model fails more often than elsewhere: found on one half of
the rows, confirmed on the other.

A *slice* is a rule any row can be tested against:

- :class:`RuleSlice` for tables: a conjunction of feature ranges or values
  ("age >= 37 and children = 0"), the lattice SliceLine searches (Sagadeeva & Boehm 2021)
  cut to one or two conditions over binned features;
- :class:`ClusterSlice` for images: the rows of one true class that fall in one cluster of
  a representation (k-means in a PCA of the inputs), i.e. "this class, drawn this way".

:func:`discover` screens every candidate on the discovery half: enough rows, an error rate
at least ``margin`` above the rest of the rows, and a lower bound on that gap above zero;
it keeps the best few by that lower bound, skipping near-duplicates. Those few, and only
those, are tested on the held-out half by :func:`confirm`, with Bonferroni-corrected exact
intervals: a slice is confirmed when the lower bound of its error rate minus the upper bound
of the error rate of every other row exceeds ``margin``. Searching thousands of candidates
on one half and testing a handful on the other keeps the multiple-testing correction small
and the family-wise chance of confirming any false slice at most 1 - confidence.

numpy only at import; scipy (the beta quantiles) and scikit-learn (k-means, PCA) are
imported inside the functions that use them.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ...util.stats import CONFIDENCE

# A candidate is scanned for duplicates against those already kept up to this many times.
_SCAN_LIMIT = 5000
# A slice sharing more than this share of the rows of the smaller of the two with a slice
# already kept is the same finding (a corner of it, or it with a little more): skipped.
_DUPLICATE_OVERLAP = 0.5


def cp_bounds(k: np.ndarray, n: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson intervals of ``k / n``, elementwise: the vector form of
    :func:`redline.util.stats.clopper_pearson` (same bounds; [0, 1] where ``n`` is 0)."""
    from scipy.stats import beta

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k <= 0, 0.0, beta.ppf(tail, np.maximum(k, 1), np.maximum(n - k + 1, 1)))
        high = np.where(k >= n, 1.0, beta.ppf(1.0 - tail, k + 1, np.maximum(n - k, 1)))
    return np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)


def gap_lower_bound(k_in, n_in, k_out, n_out, confidence: float = CONFIDENCE) -> np.ndarray:
    """A lower bound on (error rate inside) - (error rate outside) holding with ``confidence``:
    the inside rate's lower end minus the outside rate's upper end, each one-sided at half
    the risk (a union bound, as :func:`redline.checks.robustness.base.paired_drop` does)."""
    # One end of a two-sided interval at ``confidence`` risks half of 1 - confidence.
    low_in, _ = cp_bounds(k_in, n_in, confidence)
    _, high_out = cp_bounds(k_out, n_out, confidence)
    return low_in - high_out


class Slice(Protocol):
    """A rule that says which rows belong to the slice."""

    description: str

    def members(self, features: np.ndarray, y: np.ndarray) -> np.ndarray: ...


# -- tables: feature ranges ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Condition:
    """``low <= x[:, feature] < high`` (either end may be open); ``text`` says it in words."""

    feature: int
    low: float
    high: float
    text: str

    def holds(self, features: np.ndarray) -> np.ndarray:
        column = features[:, self.feature]
        return (column >= self.low) & (column < self.high)


@dataclasses.dataclass(frozen=True)
class RuleSlice:
    conditions: tuple[Condition, ...]

    @property
    def description(self) -> str:
        return " and ".join(c.text for c in self.conditions)

    def members(self, features: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        mask = np.ones(len(features), dtype=bool)
        for condition in self.conditions:
            mask &= condition.holds(features)
        return mask


def _nice(value: float) -> float:
    """``value`` to three significant digits: the edge a reader sees is the edge applied."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(f"{value:.3g}")


def _fmt(value: float) -> str:
    return f"{value:g}"


def feature_conditions(x: np.ndarray, names: Sequence[str], max_bins: int = 5) -> list[Condition]:
    """Every contiguous range of bins of every feature, but the whole range, as conditions.

    A feature with at most ``max_bins + 1`` distinct values (a code, a count, a category)
    keeps its values as bins ("children = 0", "2 <= religious <= 3"); any other is cut at
    its quantiles into up to ``max_bins`` bins ("age >= 37", "22 <= age < 32").
    """
    out: list[Condition] = []
    for j in range(x.shape[1]):
        column = x[:, j]
        values = np.unique(column)
        if len(values) < 2:
            continue
        name = names[j]
        if len(values) <= max_bins + 1:
            cuts = [(values[i] + values[i + 1]) / 2 for i in range(len(values) - 1)]
            edges = [-np.inf, *cuts, np.inf]
            for a in range(len(values)):
                for b in range(a, len(values)):
                    if a == 0 and b == len(values) - 1:
                        continue
                    if a == b:
                        text = f"{name} = {_fmt(values[a])}"
                    elif a == 0:
                        text = f"{name} <= {_fmt(values[b])}"
                    elif b == len(values) - 1:
                        text = f"{name} >= {_fmt(values[a])}"
                    else:
                        text = f"{_fmt(values[a])} <= {name} <= {_fmt(values[b])}"
                    out.append(Condition(j, float(edges[a]), float(edges[b + 1]), text))
            continue
        inner = np.unique([_nice(q) for q in np.quantile(column, np.arange(1, max_bins) / max_bins)])
        inner = inner[(inner > values[0]) & (inner <= values[-1])]
        edges = [-np.inf, *inner.tolist(), np.inf]
        bins = len(edges) - 1
        for a in range(bins):
            for b in range(a, bins):
                if a == 0 and b == bins - 1:
                    continue
                if a == 0:
                    text = f"{name} < {_fmt(edges[b + 1])}"
                elif b == bins - 1:
                    text = f"{name} >= {_fmt(edges[a])}"
                else:
                    text = f"{_fmt(edges[a])} <= {name} < {_fmt(edges[b + 1])}"
                out.append(Condition(j, float(edges[a]), float(edges[b + 1]), text))
    return out


def rule_candidates(x: np.ndarray, bad: np.ndarray, names: Sequence[str], *, max_conditions: int = 2,
                    max_bins: int = 5) -> tuple[list[RuleSlice], np.ndarray, np.ndarray]:
    """Every rule of one or two conditions on different features, with its rows and errors
    on (x, bad): (rules, rows, errors). Counted with two matrix products, not a loop."""
    conditions = feature_conditions(x, names, max_bins)
    if not conditions:
        return [], np.zeros(0), np.zeros(0)
    held = np.stack([c.holds(x) for c in conditions], axis=1).astype(np.float64)  # (n, p)
    bad = np.asarray(bad, dtype=np.float64)
    rules = [RuleSlice((c,)) for c in conditions]
    rows = [held.sum(axis=0)]
    errors = [held.T @ bad]
    if max_conditions >= 2:
        both = held.T @ held
        both_bad = held.T @ (held * bad[:, None])
        feature = np.array([c.feature for c in conditions])
        i, j = np.triu_indices(len(conditions), k=1)
        keep = feature[i] != feature[j]
        i, j = i[keep], j[keep]
        rules += [RuleSlice((conditions[a], conditions[b])) for a, b in zip(i.tolist(), j.tolist())]
        rows.append(both[i, j])
        errors.append(both_bad[i, j])
    return rules, np.concatenate(rows), np.concatenate(errors)


# -- images: clusters of one class in a representation ------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ClusterSlice:
    """Rows of true class ``label`` whose nearest of ``centroids`` is number ``index``."""

    label: int
    centroids: np.ndarray
    index: int
    label_name: str

    @property
    def description(self) -> str:
        k = len(self.centroids)
        if k == 1:
            return f"true class {self.label_name}"
        return f"true class {self.label_name}, look {self.index + 1} of {k}"

    def members(self, features: np.ndarray, y: np.ndarray) -> np.ndarray:
        mask = np.asarray(y) == self.label
        if len(self.centroids) == 1 or not mask.any():
            return mask
        d = ((features[mask, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        out = np.zeros(len(features), dtype=bool)
        out[np.flatnonzero(mask)[d.argmin(axis=1) == self.index]] = True
        return out


def cluster_candidates(z: np.ndarray, y: np.ndarray, *, ks: Sequence[int] = (1, 2, 3, 4), min_rows: int = 20,
                       seed: int = 0, class_names: Sequence[str] | None = None) -> list[ClusterSlice]:
    """Each class as a whole and its k-means clusters in ``z`` for every k in ``ks`` whose
    clusters can reach ``min_rows`` rows on average."""
    from sklearn.cluster import KMeans

    out: list[ClusterSlice] = []
    for label in np.unique(y):
        rows = z[y == label]
        name = class_names[int(label)] if class_names is not None and int(label) < len(class_names) else str(int(label))
        for k in ks:
            if k == 1:
                out.append(ClusterSlice(int(label), rows.mean(axis=0, keepdims=True), 0, name))
                continue
            if len(rows) < k * min_rows:
                continue
            centroids = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(rows).cluster_centers_
            out += [ClusterSlice(int(label), centroids, i, name) for i in range(k)]
    return out


def pca_representation(x_fit: np.ndarray, components: int = 20):
    """A function mapping inputs to their first ``components`` principal components of ``x_fit``
    (flattened): a representation of what the inputs look like that knows nothing of the model."""
    from sklearn.decomposition import PCA

    flat = np.asarray(x_fit, dtype=np.float64).reshape(len(x_fit), -1)
    pca = PCA(n_components=min(components, *flat.shape), svd_solver="randomized", random_state=0).fit(flat)
    return lambda x: pca.transform(np.asarray(x, dtype=np.float64).reshape(len(x), -1))


# -- discovery and confirmation -------------------------------------------------------------


def discover(candidates: Sequence[Slice], features: np.ndarray, y: np.ndarray, bad: np.ndarray, *,
             min_rows: int, margin: float, most: int, rows: np.ndarray | None = None,
             errors: np.ndarray | None = None) -> list[Slice]:
    """The (at most ``most``) candidates worth testing on held-out rows, best first.

    A candidate qualifies with at least ``min_rows`` rows inside and outside it, an error
    rate at least ``margin`` above the rows outside, and a gap whose 95% lower bound is
    above zero (a screen, not a test: the test is :func:`confirm` on other rows). They are
    ranked by that lower bound, which weighs size against error rate; a candidate sharing
    most of its rows (or of the kept one's) with one already kept is the same finding and
    is skipped.
    ``rows``/``errors`` may be given when the caller counted them already.
    """
    bad = np.asarray(bad, dtype=bool)
    n, total = len(bad), int(bad.sum())
    if not candidates or n == 0:
        return []
    masks: dict[int, np.ndarray] = {}

    def mask(i: int) -> np.ndarray:
        if i not in masks:
            masks[i] = candidates[i].members(features, y)
        return masks[i]

    if rows is None or errors is None:
        rows = np.array([mask(i).sum() for i in range(len(candidates))], dtype=float)
        errors = np.array([bad[mask(i)].sum() for i in range(len(candidates))], dtype=float)
    rows, errors = np.asarray(rows, float), np.asarray(errors, float)
    outside = n - rows
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = errors / np.maximum(rows, 1) - (total - errors) / np.maximum(outside, 1)
    fit = (rows >= min_rows) & (outside >= min_rows) & (gap >= margin)
    index = np.flatnonzero(fit)
    if not len(index):
        return []
    low = gap_lower_bound(errors[index], rows[index], total - errors[index], outside[index])
    ranked = np.argsort(-low, kind="stable")
    order = index[ranked][low[ranked] > 0]
    kept: list[int] = []
    for i in order[:_SCAN_LIMIT].tolist():
        m = mask(i)
        if any(_overlap(m, mask(j)) > _DUPLICATE_OVERLAP for j in kept):
            continue
        kept.append(i)
        if len(kept) >= most:
            break
    return [candidates[i] for i in kept]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Shared rows as a share of the smaller slice (1 when one holds the other)."""
    smaller = min(int(a.sum()), int(b.sum()))
    return int((a & b).sum()) / smaller if smaller else 0.0


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """One candidate tested on the held-out rows; intervals hold for all candidates together."""

    slice: Any
    rows: int
    errors: int
    error_rate: float
    error_interval: tuple[float, float]
    rest_error_rate: float
    rest_interval: tuple[float, float]
    gap_low: float
    confirmed: bool
    mask: np.ndarray = dataclasses.field(repr=False)

    @property
    def description(self) -> str:
        return self.slice.description

    @property
    def gap(self) -> float:
        return self.error_rate - self.rest_error_rate


def simultaneous_confidence(tested: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided level each of ``tested`` intervals needs so that all hold together
    with ``confidence`` (Bonferroni)."""
    return 1.0 - (1.0 - confidence) / max(int(tested), 1)


def confirm(candidates: Sequence[Slice], features: np.ndarray, y: np.ndarray, bad: np.ndarray, *,
            min_rows: int, margin: float, confidence: float = CONFIDENCE) -> list[Confirmation]:
    """Test each candidate on held-out rows: confirmed when it has ``min_rows`` rows and the
    lower end of its error rate exceeds the upper end of the other rows' error rate by more
    than ``margin``, both ends at the Bonferroni level for ``len(candidates)`` tests. Each end
    is one side of a two-sided interval, so each risks half of its level's error and the
    chance that any false slice (true gap at most ``margin``) is confirmed is at most
    1 - ``confidence``."""
    bad = np.asarray(bad, dtype=bool)
    level = simultaneous_confidence(len(candidates), confidence)
    out = []
    for candidate in candidates:
        inside = candidate.members(features, y)
        n_in, k_in = int(inside.sum()), int(bad[inside].sum())
        n_out, k_out = int((~inside).sum()), int(bad[~inside].sum())
        (low_in,), (high_in,) = cp_bounds([k_in], [n_in], level)
        (low_out,), (high_out,) = cp_bounds([k_out], [n_out], level)
        gap_low = float(low_in - high_out)
        out.append(Confirmation(
            slice=candidate, rows=n_in, errors=k_in, error_rate=k_in / n_in if n_in else 0.0,
            error_interval=(float(low_in), float(high_in)), rest_error_rate=k_out / n_out if n_out else 0.0,
            rest_interval=(float(low_out), float(high_out)), gap_low=gap_low,
            confirmed=n_in >= min_rows and gap_low > margin, mask=inside,
        ))
    return out


def could_confirm(rows: int, error_rate: float, *, min_rows: int, margin: float, tested: int,
                  confidence: float = CONFIDENCE) -> bool:
    """Whether ``rows`` held-out rows could confirm anything: a slice of ``min_rows`` rows
    that the model gets all wrong, among rows wrong at ``error_rate``, with ``tested``
    candidates. When not, a run that confirms nothing cannot say the model has no weak slice."""
    outside = rows - min_rows
    if outside < 1 or min_rows < 1:
        return False
    level = simultaneous_confidence(tested, confidence)
    (low_in,), _ = cp_bounds([min_rows], [min_rows], level)
    _, (high_out,) = cp_bounds([round(error_rate * outside)], [outside], level)
    return bool(low_in - high_out > margin)
