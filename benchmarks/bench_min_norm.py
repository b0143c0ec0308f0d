"""FM01.min_norm (fast minimum-norm, L2) against ART's minimum-norm L2 attacks on the zoo
MNIST CNN, in one run: Carlini & Wagner L2 and DeepFool.

Same model and images. For each attack: the fraction of images it breaks, the median L2 of
the perturbations (over broken images, and over all images with unbroken ones counting as
infinitely robust), model rows queried and wall time. C&W gets the same number of gradient
steps as redline (its default 10 binary-search steps x 10 iterations for 100), DeepFool its
defaults.

    python benchmarks/bench_min_norm.py [--images 100] [--steps 100]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from art_harness import RowCounter, art_classifier


def summarise(x, x_adv, y, predict):
    broken = predict(x_adv) != y
    norms = np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)
    norms = np.where(broken, norms, np.inf)
    finite = norms[broken]
    return {
        "broken": float(broken.mean()),
        "median_l2_broken": float(np.median(finite)) if finite.size else float("nan"),
        "median_l2_all": float(np.median(norms)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from art.attacks.evasion import CarliniL2Method, DeepFool

    from redline import zoo
    from redline.checks.evasion.fm01_min_norm import FastMinimumNorm
    from redline.data.base import Dataset

    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.x_test))[: args.images]
    x, y = data.x_test[idx].astype(np.float32), data.y_test[idx]

    counter = RowCounter()
    clf = art_classifier(target.module, target.n_classes, x.shape[1:], counter)

    def predict(z):
        return clf.predict(z, batch_size=512).argmax(1)

    correct = predict(x) == y
    x, y = x[correct], y[correct]
    sub = Dataset("bench", data.x_train, data.y_train, x, y)

    rows = []
    check = FastMinimumNorm(norm="l2", steps=args.steps, n_inputs=len(x))
    start = time.perf_counter()
    finding = check(target, sub, budget=10**9, seed=0)
    elapsed = time.perf_counter() - start
    norms = np.array([np.inf if v is None else v for v in finding.evidence["min_norms"]])
    rows.append(("redline FMN", {
        "broken": float(np.isfinite(norms).mean()),
        "median_l2_broken": float(np.median(norms[np.isfinite(norms)])),
        "median_l2_all": float(np.median(norms)),
    }, finding.queries, elapsed))

    # ART's own defaults (10 binary-search steps x 10 iterations) match FMN's 100 steps.
    bs_steps = 10
    attacks = [
        ("ART C&W-L2", CarliniL2Method(clf, confidence=0.0, max_iter=args.steps // bs_steps,
                                       binary_search_steps=bs_steps, batch_size=len(x), verbose=False)),
        ("ART DeepFool", DeepFool(clf, max_iter=100, epsilon=1e-6, batch_size=len(x), verbose=False)),
    ]
    for name, attack in attacks:
        counter.rows = 0
        start = time.perf_counter()
        x_adv = attack.generate(x)
        elapsed = time.perf_counter() - start
        queried = counter.rows
        rows.append((name, summarise(x, x_adv.astype(np.float32), y, predict), queried, elapsed))

    print(f"images attacked: {len(x)} (L2, {args.steps} gradient steps for FMN and C&W)")
    print(f"{'':14}{'broken':>8}{'med L2 broken':>15}{'med L2 all':>12}{'queries':>10}{'seconds':>9}")
    for name, s, q, t in rows:
        print(f"{name:14}{s['broken']:>8.3f}{s['median_l2_broken']:>15.3f}{s['median_l2_all']:>12.3f}{q:>10}{t:>9.2f}")
    ours = rows[0]
    for name, s, q, t in rows[1:]:
        print(f"{name} / redline: median L2 (all) {s['median_l2_all'] / ours[1]['median_l2_all']:.2f}x, "
              f"queries {q / max(1, ours[2]):.2f}x, time {t / ours[3]:.2f}x")


if __name__ == "__main__":
    main()
