"""FM15 slice finding: planted failing subgroups recovered, and false slices reported,
by redline's FM15.natural_adversarial and by SliceLine (Sagadeeva & Boehm 2021; the
``sliceline`` package) in the same run.

Each *planted* model learns K subgroups wrong (their training labels flipped, or for images
one look of a digit relabelled), each *honest* model learns nothing wrong and has no slice
to find. Both tools see the same rows (the pool), the same per-row indicator (confidently
wrong: a wrong answer with confidence >= 0.7) and the same discovery half; SliceLine gets
the features binned as redline bins them (images: the class and its k-means look, the
representation redline clusters in), returns its top ``k`` slices, and is scored on the
held-out half like redline. A reported slice *recovers* a planted subgroup when at least
half of its held-out rows are in the subgroup and it holds at least a fifth of the
subgroup's held-out rows; a reported slice that recovers nothing is *false*.

    python benchmarks/bench_fm15_slices.py [--sliceline-k 4] [--quick] [--more-honest]

Prints one line per model and tool, then totals and the ratios redline / SliceLine.
The default run takes about two minutes on two busy cores; --quick drops the slower models.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class Case:
    name: str
    data: object
    model: object
    planted: list[Callable[[np.ndarray, np.ndarray], np.ndarray]]  # (x, y) -> rows in the subgroup
    kind: str  # "tabular" or "image"


# -- the models --------------------------------------------------------------------------------


def _flip(y, rows):
    y = y.copy()
    y[rows] = 1 - y[rows]
    return y


def _synthetic_table(seed):
    from redline.data.base import Dataset

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(4000, 8)).astype(np.float32)
    x[:, 6] = rng.integers(0, 5, size=4000) / 4
    x[:, 7] = rng.integers(0, 3, size=4000) / 2
    y = (x[:, 0] + 0.6 * x[:, 1] - 0.4 * x[:, 2] + rng.normal(0, 0.15, 4000) > 0.6).astype(np.int64)
    names = [f"f{j}" for j in range(6)] + ["region", "segment"]
    return Dataset(f"synthetic{seed}", x[:1500], y[:1500], x[1500:2000], y[1500:2000], x[2000:], y[2000:],
                   feature_names=names, spec=f"synthetic:{seed}")


def tabular_cases(quick: bool) -> list[Case]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from redline.data import load_data

    tree = lambda: DecisionTreeClassifier(max_depth=8, min_samples_leaf=5, random_state=0)
    cases = []
    data = _synthetic_table(0)
    groups = [lambda x, y: (x[:, 6] == 1.0) & (x[:, 0] >= 0.5),       # one region, high f0
              lambda x, y: (x[:, 3] < 0.2) & (x[:, 7] == 0.0),         # low f3 in one segment
              lambda x, y: x[:, 4] >= 0.85]                            # high f4
    rows = np.any([g(data.x_train, data.y_train) for g in groups], axis=0)
    cases.append(Case("synthetic K=3 tree", data, tree().fit(data.x_train, _flip(data.y_train, rows)), groups, "tabular"))
    cases.append(Case("synthetic honest tree", data, tree().fit(data.x_train, data.y_train), [], "tabular"))
    fair = load_data("builtin:fair")
    col = lambda name: fair.feature_names.index(name)
    groups = [lambda x, y: x[:, col("educ")] >= 17, lambda x, y: x[:, col("religious")] == 4]
    rows = np.any([g(fair.x_train, fair.y_train) for g in groups], axis=0)
    cases.append(Case("fair K=2 tree", fair, tree().fit(fair.x_train, _flip(fair.y_train, rows)), groups, "tabular"))
    cases.append(Case("fair honest tree", fair, tree().fit(fair.x_train, fair.y_train), [], "tabular"))
    cases.append(Case("fair honest logreg", fair, LogisticRegression(max_iter=2000).fit(fair.x_train, fair.y_train),
                      [], "tabular"))
    if not quick:
        # Honest models on data and families the check was not tuned on.
        for seed in (1, 2):
            data = _synthetic_table(seed)
            cases.append(Case(f"synthetic{seed} honest gbm", data,
                              GradientBoostingClassifier(random_state=0).fit(data.x_train, data.y_train), [], "tabular"))
        bc = load_data("builtin:breast_cancer")
        cases.append(Case("breast_cancer honest logreg", bc,
                          LogisticRegression(max_iter=3000).fit(bc.x_train, bc.y_train), [], "tabular"))
    return cases


def image_cases(quick: bool) -> list[Case]:
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from redline.data import load_data

    digits = load_data("builtin:digits")
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    groups, y = [], digits.y_train.copy()
    for label, to in ((3, 8), (7, 1)):
        rows = np.flatnonzero(digits.y_train == label)
        km = KMeans(2, n_init=4, random_state=0).fit(flat(digits.x_train[rows]))
        y[rows[km.labels_ == 0]] = to
        centroids = km.cluster_centers_

        def group(x, yy, label=label, centroids=centroids):
            nearest = ((flat(x)[:, None, :] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
            return (yy == label) & (nearest == 0)

        groups.append(group)
    cases = [Case("digits K=2 logreg", digits, LogisticRegression(max_iter=3000).fit(flat(digits.x_train), y),
                  groups, "image"),
             Case("digits honest logreg", digits,
                  LogisticRegression(max_iter=3000).fit(flat(digits.x_train), digits.y_train), [], "image")]
    if not quick:
        cases.append(Case("digits honest sklearn-mlp", digits,
                          MLPClassifier((64,), max_iter=600, random_state=0).fit(flat(digits.x_train), digits.y_train),
                          [], "image"))
    return cases


def more_honest_cases() -> list[Case]:
    """Honest models the defaults were not tuned on: redline.zoo.honest's three torch
    architectures on the digits (two seeds), and scikit-learn logistic regression and MLPs
    on generated classification tasks (three seeds). None has anything planted."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from redline.data import load_data
    from redline.data.base import Dataset
    from redline.zoo.honest import honest_target

    cases = []
    digits = load_data("builtin:digits")
    for name in ("mlp", "wide_cnn", "augmented_cnn"):
        for seed in (0, 1):
            cases.append(Case(f"digits zoo.honest {name} s{seed}", digits, honest_target(name, digits, seed, quick=True),
                              [], "image"))
    for seed in range(3):
        x, y = make_classification(n_samples=3000, n_features=10, n_informative=5, n_classes=3, n_clusters_per_class=2,
                                   flip_y=0.05, random_state=seed)
        x = ((x - x.min(0)) / (x.max(0) - x.min(0))).astype(np.float32)
        data = Dataset(f"generated{seed}", x[:1200], y[:1200], x[1200:1800], y[1200:1800], x[1800:], y[1800:],
                       spec=f"generated:{seed}")
        cases.append(Case(f"generated{seed} honest logreg", data,
                          LogisticRegression(max_iter=2000).fit(data.x_train, data.y_train), [], "tabular"))
        cases.append(Case(f"generated{seed} honest sklearn-mlp", data,
                          MLPClassifier((64,), max_iter=800, random_state=seed).fit(data.x_train, data.y_train),
                          [], "tabular"))
    return cases


# -- the tools ---------------------------------------------------------------------------------


def run_redline(case: Case, seed: int, params: dict) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, dict]:
    """(held-out member masks of the reported slices, the bad indicator, the discovery mask, metrics)."""
    from redline.checks.base import CheckContext
    from redline.checks.robustness.fm15_natural import NaturalAdversarial, halves
    from redline.targets import load_target

    data = case.data
    target = load_target(case.model, data=data)
    with tempfile.TemporaryDirectory() as out:
        finding = NaturalAdversarial(**params)(target, data, seed=seed, ctx=CheckContext(Path(out)))
        first = halves(data.y_pool, np.random.default_rng(seed))
        held = np.flatnonzero(~first)
        masks = []
        if finding.evidence.get("slice_rows"):
            with np.load(Path(out) / finding.evidence["slice_rows"]) as saved:
                for i in range(len(saved.files)):
                    masks.append(np.isin(held, saved[f"slice_{i}"]))
        bad = np.zeros(len(data.y_pool), dtype=bool)
        if finding.evidence.get("examples"):
            with np.load(Path(out) / finding.evidence["examples"]) as saved:
                bad[saved["row"]] = True
    return masks, bad, first, {"status": finding.status.value, "seconds": finding.seconds}


def sliceline_features(case: Case, first: np.ndarray, seed: int) -> np.ndarray:
    """SliceLine needs discrete features: redline's bins for tables, (class, look at k=2..4) for images."""
    from redline.checks.robustness import slices

    x, y = case.data.x_pool, case.data.y_pool
    if case.kind == "tabular":
        flat = x.reshape(len(x), -1)
        out = np.zeros(flat.shape, dtype=np.int64)
        conditions = slices.feature_conditions(flat[first], [str(j) for j in range(flat.shape[1])])
        for j in range(flat.shape[1]):
            # The single bins (runs of one) of feature j, in order: their lower edges cut the column.
            lows = sorted({c.low for c in conditions if c.feature == j and np.isfinite(c.low)})
            out[:, j] = np.searchsorted(np.asarray(lows), flat[:, j], side="right") + 1
        return out
    represent = slices.pca_representation(x[first], 20)
    z = represent(x)
    columns = [y + 1]
    for k in (2, 3, 4):
        look = np.zeros(len(y), dtype=np.int64)
        for label in np.unique(y[first]):
            candidates = slices.cluster_candidates(z[first & (y == label)], y[first & (y == label)], ks=(k,),
                                                   min_rows=1, seed=seed)
            for c in candidates:
                look[c.members(z, y)] = c.index + 1
        columns.append(look)
    return np.stack(columns, axis=1)


def run_sliceline(case: Case, bad: np.ndarray, first: np.ndarray, k: int, seed: int, min_sup: int) -> list[np.ndarray]:
    from sliceline.slicefinder import Slicefinder

    features = sliceline_features(case, first, seed)
    finder = Slicefinder(alpha=0.95, k=k, max_l=2, min_sup=min_sup, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.fit(features[first], bad[first].astype(float))
        if not len(finder.top_slices_):
            return []
        members = np.asarray(finder.transform(features[~first])).astype(bool)
    return [members[:, i] for i in range(members.shape[1])]


# -- scoring -------------------------------------------------------------------------------------


def score(masks: list[np.ndarray], planted: list[np.ndarray]) -> tuple[int, int]:
    """(planted subgroups recovered, reported slices that recover none)."""
    recovered, false = set(), 0
    for mask in masks:
        hits = [i for i, g in enumerate(planted)
                if mask.sum() and (mask & g).sum() / mask.sum() >= 0.5 and (mask & g).sum() >= 0.2 * g.sum()]
        recovered.update(hits)
        false += not hits
    return len(recovered), false


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sliceline-k", type=int, default=4, help="slices SliceLine reports per model")
    ap.add_argument("--quick", action="store_true", help="fewer honest models")
    ap.add_argument("--more-honest", action="store_true",
                    help="also 12 honest models the defaults were not tuned on (zoo.honest on digits, generated tasks)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()
    # No transfer models: the benchmark scores slices, and the families would only cost time.
    params = {"families": ()}
    totals = {"redline": [0, 0, 0, 0], "sliceline": [0, 0, 0, 0]}  # recovered, planted, false, honest models flagged
    honest_models = 0
    print(f"{'model':32s} {'tool':10s} {'recovered':>9s} {'false':>6s}  verdict / seconds")
    cases = tabular_cases(args.quick) + image_cases(args.quick) + (more_honest_cases() if args.more_honest else [])
    for case in cases:
        masks, bad, first, info = run_redline(case, args.seed, {**params, "min_slice_rows": 10 if case.kind == "image" else 20})
        held_x, held_y = case.data.x_pool[~first], case.data.y_pool[~first]
        planted = [g(held_x, held_y) for g in case.planted]
        peer = run_sliceline(case, bad, first, args.sliceline_k, args.seed, 10 if case.kind == "image" else 20)
        honest_models += not planted
        for tool, found, note in (("redline", masks, f"{info['status']}, {info['seconds']:.1f}s"),
                                  ("sliceline", peer, f"top {args.sliceline_k}")):
            got, false = score(found, planted)
            t = totals[tool]
            t[0] += got
            t[1] += len(planted)
            t[2] += false
            t[3] += bool(found) and not planted
            print(f"{case.name:32s} {tool:10s} {got:>4d}/{len(planted):<4d} {false:>6d}  {note}")
    print()
    for tool, (got, planted, false, flagged) in totals.items():
        print(f"{tool:10s} recovered {got}/{planted} planted subgroups, {false} false slices, "
              f"{flagged}/{honest_models} honest models with a slice reported")
    r, s = totals["redline"], totals["sliceline"]
    ratio = lambda a, b: f"{a / b:.2f}" if b else ("inf" if a else "n/a")
    print(f"ratios redline/SliceLine: recovered {ratio(r[0], s[0])}, false slices {ratio(r[2], s[2])} "
          f"(lower is better), honest models flagged {ratio(r[3], s[3])}")
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
