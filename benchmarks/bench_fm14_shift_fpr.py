"""FM14.shift_sensitivity on models it was not tuned on: how often it flags them.

Three groups, all with the check's defaults:

1. honest scikit-learn models (a standardised logistic regression, an MLP, a random forest)
   on the digits, breast cancer, wine and iris sets that ship with scikit-learn, each split
   50/50 at random per seed;
2. the ``redline.zoo.honest`` MLP and wide CNN on builtin:digits;
3. models right with a fixed probability on every input (a fixed random draw per row), on
   the digits, the breast cancer set and a synthetic 3-class set: every slice differs from
   another by noise alone, so any flag there is a false positive of the statistics.

Prints one line per model (verdict, accuracy, worst drop, shifts judged) and a count per
group. No peer tool tests synthetic subpopulation shifts with a corrected verdict, so there
is no ratio to print: the point is the false-positive count, which must stay at zero for
group 3 (the rule's family-wise error is 2.5% per model).

    python benchmarks/bench_fm14_shift_fpr.py [--seeds 3] [--quick]
"""
from __future__ import annotations

import argparse
import collections
import time
import zlib

import numpy as np


class RightWithProbability:
    """A callable model: the true label with probability ``p``, else another class."""

    def __init__(self, x, y, p: float, seed: int):
        self.labels = {row.tobytes(): int(label) for row, label in zip(np.asarray(x, np.float32), y)}
        self.p, self.seed, self.k = p, seed, int(np.max(y)) + 1

    def __call__(self, x):
        out = []
        for row in np.asarray(x, np.float32):
            key = row.tobytes()
            right, other = np.random.default_rng([zlib.crc32(key), self.seed]).random(2)
            label = self.labels[key]
            out.append(label if right < self.p else (label + 1 + int(other * (self.k - 1))) % self.k)
        return np.array(out)


def sklearn_sets():
    from sklearn import datasets

    for name, loader in (("digits", datasets.load_digits), ("breast_cancer", datasets.load_breast_cancer),
                         ("wine", datasets.load_wine), ("iris", datasets.load_iris)):
        bunch = loader()
        live = bunch.data.std(axis=0) > 0  # the digits' always-blank pixels have no range
        yield name, bunch.data[:, live].astype(np.float32), bunch.target.astype(int), \
            [str(f) for f, keep in zip(bunch.feature_names, live) if keep]


def sklearn_models(seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        "mlp": make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=800, random_state=seed)),
        "forest": RandomForestClassifier(100, random_state=seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed, fewer noise models")
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)

    from sklearn.datasets import make_classification
    from threadpoolctl import threadpool_limits

    from redline.checks.robustness.fm14_shift_sensitivity import ShiftSensitivity
    from redline.data import load_data
    from redline.data.base import Dataset
    from redline.targets import load_target
    from redline.zoo.honest import honest_target

    tally: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    start = time.perf_counter()

    def judge(group: str, label: str, target, data, seed: int) -> None:
        finding = ShiftSensitivity()(target, data, seed=seed)
        m = finding.metrics
        tally[group][finding.status.value] += 1
        print(f"{label:44s} {finding.status.value:15s} accuracy {m.get('reference_accuracy', float('nan')):.3f}  "
              f"worst drop {m.get('accuracy_drop', float('nan')):6.3f}  judged {m.get('shifts_judged', 0):3d}",
              flush=True)

    with threadpool_limits(1):
        for name, x, y, features in sklearn_sets():
            for seed in seeds:
                order = np.random.default_rng(seed).permutation(len(x))
                train, test = order[: len(x) // 2], order[len(x) // 2:]
                data = Dataset(name=name, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test],
                               feature_names=features)
                for model_name, model in sklearn_models(seed).items():
                    model.fit(x[train], y[train])
                    judge("1 scikit-learn", f"{name} {model_name} seed {seed}", load_target(model, data=data), data,
                          seed)
        import torch

        torch.set_num_threads(1)
        digits = load_data("builtin:digits")
        for name in ("mlp", "wide_cnn"):
            for seed in seeds if args.quick else range(2):
                judge("2 zoo.honest", f"honest {name} digits seed {seed}",
                      honest_target(name, digits, seed, quick=True), digits, seed)
        x, y = make_classification(3000, 10, n_informative=6, n_classes=3, random_state=0)
        noise_sets = {"digits": digits, "breast_cancer": load_data("builtin:breast_cancer"),
                      "synthetic": Dataset(name="synthetic", x_train=x[:1000].astype(np.float32), y_train=y[:1000],
                                           x_test=x[1000:].astype(np.float32), y_test=y[1000:])}
        for name, data in noise_sets.items():
            for p in (0.95, 0.85, 0.7):
                for seed in range(2 if args.quick else 10):
                    model = RightWithProbability(data.x_test, data.y_test, p, seed)
                    judge("3 uniform accuracy", f"{name} right with p={p} seed {seed}", load_target(model, data=data),
                          data, seed)
    print()
    for group, counts in sorted(tally.items()):
        total = sum(counts.values())
        print(f"{group:20s} {counts['vulnerable']} of {total} flagged  ({dict(counts)})")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
