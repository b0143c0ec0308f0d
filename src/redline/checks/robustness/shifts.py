"""Synthetic distribution shifts of a labelled test set, made by reweighting its rows.

A shift never edits an input (editing inputs is FM16's business): it says how much of a
hypothetical deployment population each group of test rows would make up. Every shift here
is a partition of the rows into groups and a target share per group, so the model's
accuracy under the shift is the share-weighted mean of its accuracy per group, and a single
prediction of the test rows answers every shift (:mod:`.shift_stats` does the arithmetic).

The shifts (groups are defined from the inputs and labels only, never from the model's
answers, so that a subgroup is not chosen because the model fails on it):

- **subpopulation along a feature**: only the rows in the lowest or highest ``band`` share of
  one feature. Images, and tables with more than ``max_features`` columns, use the leading
  principal components of the test inputs as directions instead of every pixel;
- **subpopulation along a cluster**: only the rows of one k-means cluster (on the standardised
  inputs, or their leading principal components when there are many);
- **held-out subgroup**: every row *but* one cluster's (a deployment that no longer sees it);
- **label prior**: one class at ``prior_share`` of the rows, the others in their test
  proportions; and (three classes or more) priors drawn from a flat Dirichlet over the classes.

Everything is numpy and deterministic given the generator passed in.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np

#: Principal components after which a clustering stops adding directions.
CLUSTER_COMPONENTS = 10
#: Lloyd iterations and restarts of k-means; a few restarts keep a bad start from deciding.
KMEANS_ITERATIONS = 50
KMEANS_RESTARTS = 4


@dataclasses.dataclass(frozen=True)
class Shift:
    """One synthetic shift: ``groups[i]`` is the group of evaluated row ``i`` and ``shares[g]``
    the share of group ``g`` in the shifted population (they sum to one)."""

    name: str  # short and stable, e.g. "band:age:high", "cluster:3", "prior:2"
    kind: str  # "feature band", "direction band", "cluster", "held-out cluster", "label prior", "dirichlet prior"
    description: str
    groups: np.ndarray
    shares: np.ndarray
    feature: int | None = None  # the column a "feature band" selects on; None for every other shift

    def group_sizes(self) -> np.ndarray:
        return np.bincount(self.groups, minlength=len(self.shares))

    def reference_shares(self) -> np.ndarray:
        sizes = self.group_sizes()
        return sizes / sizes.sum()

    def subgroup_rows(self) -> int:
        """Rows of the smallest group whose share the shift changes: the subgroup it is judged on."""
        sizes = self.group_sizes()
        moved = ~np.isclose(self.reference_shares(), self.shares)
        return int(sizes[moved].min()) if moved.any() else int(sizes.sum())


def subset_shift(name: str, kind: str, description: str, inside: np.ndarray, keep: bool = True) -> Shift:
    """The rows ``inside`` only (``keep``), or every row but those (``keep=False``)."""
    groups = np.asarray(inside, bool).astype(int)  # group 1: the subgroup
    shares = np.array([0.0, 1.0]) if keep else np.array([1.0, 0.0])
    return Shift(name, kind, description, groups, shares)


def subgroup_shift(name: str, kind: str, what: str, inside: np.ndarray, share: float) -> Shift | None:
    """The subgroup ``inside`` (worded ``what``) alone when ``share`` is 1, else up-weighted to
    ``share`` of the population with the other rows in their test proportions; None when the
    subgroup already makes up at least that share (that would be no up-weighting)."""
    if share >= 1:
        return subset_shift(name, kind, f"only {what}", inside)
    if np.mean(inside) >= share:
        return None
    return subset_shift_with_share(name, kind, f"{what} at {share:.0%} of the population", inside, share)


# -- the directions and clusters the shifts follow ---------------------------------------------

def principal_scores(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the rows of ``x`` (n, d) on its leading principal components, and the share of
    variance each explains. Components are signed so that their largest loading is positive
    (an eigenvector's sign is arbitrary; this makes "high along component 1" reproducible)."""
    centred = x - x.mean(axis=0)
    n, d = centred.shape
    if d <= n:
        # The d x d scatter matrix's eigenvectors: for narrow rows far quicker than an SVD.
        values, vectors = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(values)[::-1]
        k = min(int(components), len(order))
        top = vectors[:, order[:k]].T
    else:
        # Wider than tall (images): the n x n Gram matrix has the same non-zero eigenvalues,
        # and its eigenvectors map to the components. The d x d route took minutes and
        # gigabytes at 3x64x64 and could not run at 3x224x224.
        values, vectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(values)[::-1]
        k = min(int(components), len(order))
        top = (centred.T @ vectors[:, order[:k]]).T
        top /= np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-300)
    top *= np.sign(top[np.arange(k), np.abs(top).argmax(axis=1)])[:, None]
    total = float(np.clip(values, 0, None).sum())
    explained = np.clip(values[order[:k]], 0, None) / total if total > 0 else np.zeros(k)
    return centred @ top.T, explained


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Linear algebra on one thread: these matrices are small, and BLAS threads competing for
    a few busy cores slow an eigendecomposition down many times over."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings threadpoolctl; without it, keep the defaults
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def standardised(x: np.ndarray) -> np.ndarray:
    """Each column centred and scaled to unit spread (constant columns left at zero)."""
    spread = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def kmeans(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster labels of the rows of ``z`` by k-means (k-means++ starts, the best of a few
    restarts by within-cluster sum of squares). Empty clusters are allowed to stay empty."""
    best_labels, best_cost = np.zeros(len(z), int), np.inf
    for _ in range(KMEANS_RESTARTS):
        centres = _kmeans_plus_plus(z, k, rng)
        labels = np.full(len(z), -1)
        for _ in range(KMEANS_ITERATIONS):
            distances = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new = distances.argmin(axis=1)
            if np.array_equal(new, labels):  # converged
                break
            labels = new
            for c in range(len(centres)):
                members = z[labels == c]
                if len(members):
                    centres[c] = members.mean(axis=0)
        cost = float(((z - centres[labels]) ** 2).sum())
        if cost < best_cost:
            best_labels, best_cost = labels, cost
    return _numbered_by_size(best_labels)


def _kmeans_plus_plus(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d2 = np.min([((z - c) ** 2).sum(axis=1) for c in centres], axis=0)
        if d2.sum() <= 0:  # fewer distinct rows than clusters
            break
        centres.append(z[rng.choice(len(z), p=d2 / d2.sum())])
    return np.array(centres, dtype=float)


def _numbered_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters largest first, so "cluster 1" names the same group run after run."""
    order = np.argsort(-np.bincount(labels), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels]


# -- the shifts --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShiftPlan:
    """What to generate; the defaults are the check's."""

    band: float = 0.2
    subgroup_share: float = 1.0  # share a band or cluster takes of the shifted population
    n_clusters: int = 8
    prior_share: float = 0.6
    n_priors: int = 10
    max_features: int = 30
    n_directions: int = 5


def feature_band_shifts(x: np.ndarray, names: list[str], band: float, kind: str = "feature band",
                        share: float = 1.0) -> list[Shift]:
    """Only the rows in the lowest, and only those in the highest, ``band`` share of each
    column of ``x`` (n, d), or those rows up-weighted to ``share`` of the population;
    ``names`` words each column. With ties (a 0/1 feature) a band
    holds every row at the threshold, so its share can exceed ``band``; the description gives
    the real one. A column whose band would hold every row (a constant) gives no shift."""
    shifts = []
    n = len(x)
    for j, name in enumerate(names):
        column = x[:, j]
        low, high = np.quantile(column, band), np.quantile(column, 1 - band)
        for side, inside, words in (
            ("low", column <= low, f"≤ {low:.4g}"),
            ("high", column >= high, f"≥ {high:.4g}"),
        ):
            rows = int(inside.sum())
            if rows == n or rows == 0:
                continue
            label = "lowest" if side == "low" else "highest"
            what = f"rows with {name} in its {label} {band:.0%} ({words}; {rows} of {n} rows)"
            if rows > 1.5 * band * n:
                what = f"rows with {name} {words} (its {label} values, tied: {rows / n:.0%} of {n} rows)"
            shift = subgroup_shift(f"band:{name}:{side}", kind, what, inside, share)
            if shift is not None:
                shifts.append(dataclasses.replace(shift, feature=j) if kind == "feature band" else shift)
    return shifts


def cluster_shifts(labels: np.ndarray, space: str, share: float = 1.0) -> list[Shift]:
    """Each cluster alone (or up-weighted to ``share``), and every row but that cluster (the
    held-out subgroup)."""
    shifts = []
    n, k = len(labels), int(labels.max()) + 1
    for c in range(k):
        inside = labels == c
        rows = int(inside.sum())
        if rows in (0, n):
            continue
        shift = subgroup_shift(f"cluster:{c + 1}", "cluster",
                               f"cluster {c + 1} of {k} (k-means on {space}; {rows} of {n} rows)", inside, share)
        if shift is not None:
            shifts.append(shift)
        shifts.append(subset_shift(
            f"without-cluster:{c + 1}", "held-out cluster",
            f"every row but cluster {c + 1} of {k} (k-means on {space}; {n - rows} of {n} rows kept)",
            inside, keep=False))
    return shifts


def class_word(c: int, class_names: list[str]) -> str:
    """"class 3", or "class 1 (affair)" when the data set names its classes."""
    name = str(class_names[c]) if c < len(class_names) else ""
    return f"class {c}" if name in ("", str(c)) else f"class {c} ({name})"


def label_prior_shifts(y: np.ndarray, class_names: list[str], share: float, n_priors: int, min_rows: int,
                       rng: np.random.Generator) -> tuple[list[Shift], list[dict]]:
    """One class at ``share`` of the rows (the rest in their test proportions), for each class
    that is not already that common; and, with three classes or more, ``n_priors`` class priors
    from a flat Dirichlet, drawn only when every class has ``min_rows`` rows (a prior on a class of three rows would be
    judged on those three). Returns the shifts and the ones left out, with why."""
    shifts, skipped = [], []
    classes, counts = np.unique(y, return_counts=True)
    n = len(y)
    for c, rows in zip(classes, counts):
        if rows / n >= share:
            continue  # already at least that common: up-weighting it is no shift
        name = class_word(int(c), class_names)
        shifts.append(subset_shift_with_share(
            f"prior:{int(c)}", "label prior",
            f"{name} at {share:.0%} of rows ({rows / n:.0%} in the test data; {rows} rows)", y == c, share))
    # With two classes a prior is one number, already covered by the prior_share shifts (a flat
    # Dirichlet would add random, often extreme, versions of them).
    if n_priors and len(classes) > 2:
        if counts.min() < min_rows:
            small = classes[counts.argmin()]
            skipped.append({"name": "dirichlet", "kind": "dirichlet prior",
                            "reason": f"class {int(small)} has {int(counts.min())} rows, fewer than {min_rows}: "
                                      f"no Dirichlet prior drawn"})
        else:
            index = np.searchsorted(classes, y)
            for i in range(int(n_priors)):
                prior = rng.dirichlet(np.ones(len(classes)))
                top = np.argsort(-prior)[:3]
                words = ", ".join(f"{class_word(int(classes[t]), class_names)} {prior[t]:.0%}" for t in top)
                shifts.append(Shift(f"dirichlet:{i + 1}", "dirichlet prior",
                                    f"class prior {i + 1} drawn from a flat Dirichlet ({words}, ...)", index, prior))
    return shifts, skipped


def subset_shift_with_share(name: str, kind: str, description: str, inside: np.ndarray, share: float) -> Shift:
    """The rows ``inside`` at ``share`` of the population, the others at the rest."""
    return Shift(name, kind, description, np.asarray(inside, bool).astype(int), np.array([1.0 - share, share]))


def make_shifts(x: np.ndarray, y: np.ndarray, plan: ShiftPlan, *, feature_names: list[str] | None,
                class_names: list[str] | None, image: bool, min_rows: int,
                rng: np.random.Generator) -> tuple[list[Shift], list[dict], dict]:
    """Every shift of the rows ``x`` (n, ...) labelled ``y``; also the shifts left out with why,
    and how the directions and clusters were found (for the finding)."""
    with one_thread():
        return _make_shifts(np.asarray(x, float).reshape(len(x), -1), np.asarray(y, int), plan,
                            feature_names=feature_names, class_names=class_names, image=image, min_rows=min_rows,
                            rng=rng)


def _make_shifts(flat: np.ndarray, y: np.ndarray, plan: ShiftPlan, *, feature_names: list[str] | None,
                 class_names: list[str] | None, image: bool, min_rows: int,
                 rng: np.random.Generator) -> tuple[list[Shift], list[dict], dict]:
    d = flat.shape[1]
    how: dict = {}
    shifts: list[Shift] = []
    if image or d > plan.max_features:
        scores, explained = principal_scores(flat, plan.n_directions)
        names = [f"principal component {i + 1}" for i in range(scores.shape[1])]
        shifts += feature_band_shifts(scores, names, plan.band, kind="direction band", share=plan.subgroup_share)
        how["directions"] = (f"{len(names)} leading principal components of the test inputs "
                             f"({float(explained.sum()):.0%} of their variance)")
    else:
        named = bool(feature_names) and len(feature_names) == d
        names = [f"'{f}'" for f in feature_names] if named else [f"feature {j}" for j in range(d)]
        shifts += feature_band_shifts(flat, names, plan.band, share=plan.subgroup_share)
        how["directions"] = f"each of the {d} features"
    if plan.n_clusters > 1:
        z = standardised(flat)
        space = "the standardised inputs"
        if d > CLUSTER_COMPONENTS:
            z, _ = principal_scores(z, CLUSTER_COMPONENTS)
            space = f"the {z.shape[1]} leading principal components of the standardised inputs"
        labels = kmeans(z, min(int(plan.n_clusters), len(z)), rng)
        shifts += cluster_shifts(labels, space, plan.subgroup_share)
        how["clusters"] = f"{int(labels.max()) + 1} k-means clusters on {space}"
    prior_shifts, skipped = label_prior_shifts(y, list(class_names or []), plan.prior_share,
                                               plan.n_priors, min_rows, rng)
    shifts += prior_shifts
    return shifts, skipped, how
