"""FM01.pgd against ART's ProjectedGradientDescent on the zoo MNIST CNN, in one run.

Same model, same images, same epsilon, steps and step size. Prints success rate, model
queries (rows through the network) and wall time of each, and the ratios. redline drops an
image from the batch once it is misclassified, so it spends fewer queries for the same
success; ART runs every step for every image.

    python benchmarks/bench_pgd.py [--images 200] [--eps 0.1] [--steps 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from art_harness import RowCounter, art_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()

    from art.attacks.evasion import ProjectedGradientDescent as ArtPGD

    from redline import zoo
    from redline.checks.evasion.fm01_pgd import ProjectedGradientDescent
    from redline.data.base import Dataset

    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.x_test))[: args.images]
    x, y = data.x_test[idx].astype(np.float32), data.y_test[idx]
    sub = Dataset("bench", data.x_train, data.y_train, x, y)
    alpha = 2.5 * args.eps / args.steps

    check = ProjectedGradientDescent(epsilon=args.eps, steps=args.steps, step_size=alpha, n_inputs=args.images,
                                     curve_points=1, restarts=1)
    start = time.perf_counter()
    finding = check(target, sub, budget=10**9, seed=0)
    ours_time = time.perf_counter() - start
    ours = finding.metrics

    counter = RowCounter()
    clf = art_classifier(target.module, target.n_classes, x.shape[1:], counter)
    correct = clf.predict(x).argmax(1) == y
    counter.rows = 0
    attack = ArtPGD(clf, norm=np.inf, eps=args.eps, eps_step=alpha, max_iter=args.steps, num_random_init=1,
                    batch_size=256, verbose=False)
    start = time.perf_counter()
    x_adv = attack.generate(x[correct])
    art_time = time.perf_counter() - start
    art_rows = counter.rows
    art_success = float((clf.predict(x_adv).argmax(1) != y[correct]).mean())

    print(f"images attacked: {correct.sum()} (eps {args.eps} linf, {args.steps} steps)")
    print(f"{'':10}{'success':>10}{'queries':>12}{'seconds':>10}")
    print(f"{'redline':10}{ours['success_rate']:>10.3f}{finding.queries:>12}{ours_time:>10.2f}")
    print(f"{'ART':10}{art_success:>10.3f}{art_rows:>12}{art_time:>10.2f}")
    print(f"ratio ART/redline: queries {art_rows / max(1, finding.queries):.2f}x, time {art_time / ours_time:.2f}x; "
          f"success difference {ours['success_rate'] - art_success:+.3f}")


if __name__ == "__main__":
    main()
