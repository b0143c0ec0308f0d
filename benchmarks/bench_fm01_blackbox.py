"""FM01 black-box attacks against ART on the zoo MNIST CNN, in one run.

Labels only: redline's FM01.decision against ART's HopSkipJump (L2). For each per-image
query budget (default 1000, 2500, 5000) it prints success rate and median L2 of both
(median over all attacked images, an image with no adversarial counting as infinite), and
redline's median L2 at a third of the budget, the goal being that it is no larger than ART's
at the full budget. ART runs once per image with a large ``max_iter``; a subclass records
the image's distance and the rows it has sent after every iteration, so ART's result at a
budget is its state after the last iteration that fits the budget (exactly what ART returns
when run with that ``max_iter``).

Probabilities: redline's FM01.square against ART's SquareAttack (L-inf and L2): success rate
at each budget (rows sent divided by images) and the median queries of successful images.

Every row either library sends to the network is counted by a wrapper around the module.
Wall time is compared at equal queries.

    python benchmarks/bench_fm01_blackbox.py [--images 20] [--budgets 1000,2500,5000] [--skip-square]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


class RowCounter:
    def __init__(self):
        self.rows = 0


def counting_module(torch, module, counter):
    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            counter.rows += int(t.shape[0])
            return self.inner(t.float())  # ART sometimes hands float64 batches

    return Counting(module).eval()


def counting_target(torch, target, counter):
    from redline.targets.torch import TorchTarget

    return TorchTarget(counting_module(torch, target.module, counter), input_spec=target.input_spec,
                       n_classes=target.n_classes, spec="zoo:mnist_cnn(counted)")


def art_classifier(torch, module, counter, n_classes, shape):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(counting_module(torch, module, counter), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=shape, nb_classes=n_classes, clip_values=(0.0, 1.0))


def median_l2(dists):
    return float(np.median(dists)) if len(dists) else float("nan")


# -- labels only ---------------------------------------------------------------------------
def run_art_hsja(torch, clf, counter, x, init_eval):
    """Per image: list of (rows sent, seconds, L2) after each ART iteration."""
    from art.attacks.evasion import HopSkipJump

    class TracedHSJ(HopSkipJump):
        def _attack(self, initial_sample, original_sample, target, mask, clip_min, clip_max):
            current = initial_sample
            iters = self.max_iter
            self.max_iter = 1
            try:
                for _ in range(iters):
                    current = super()._attack(current, original_sample, target, mask, clip_min, clip_max)
                    self._trace.append((counter.rows - self._start_rows, time.perf_counter() - self._start_time,
                                        float(np.linalg.norm(current - original_sample))))
                    if counter.rows - self._start_rows >= self._stop_rows:
                        break
            finally:
                self.max_iter = iters
            return current

        def _init_sample(self, *args, **kwargs):
            out = super()._init_sample(*args, **kwargs)
            if out is not None:
                self._trace.append((counter.rows - self._start_rows, time.perf_counter() - self._start_time,
                                    float(np.linalg.norm(out[0] - args[0]))))
            return out

    np.random.seed(0)  # ART draws its noise from the global generator
    traces = []
    for i in range(len(x)):
        attack = TracedHSJ(clf, norm=2, max_iter=10**6, max_eval=10_000, init_eval=init_eval, init_size=100,
                           batch_size=256, verbose=False)
        attack._trace, attack._stop_rows = [], BUDGET_MAX
        attack._start_rows, attack._start_time = counter.rows, time.perf_counter()
        attack.curr_iter = 0
        attack.generate(x[i:i + 1])
        traces.append(attack._trace)
    return traces


def art_at(traces, budget):
    """(L2 per image, seconds per image) of ART's state after the last iteration within budget."""
    dists, secs = [], []
    for trace in traces:
        fit = [t for t in trace if t[0] <= budget]
        dists.append(fit[-1][2] if fit else np.inf)
        secs.append(fit[-1][1] if fit else 0.0)
    return np.asarray(dists), float(np.sum(secs))


def redline_decision(torch, target, data, n_images, budget):
    import tempfile

    from redline.checks.base import CheckContext
    from redline.checks.fm01_decision import DecisionAttack

    with tempfile.TemporaryDirectory() as out:
        check = DecisionAttack(n_inputs=n_images, epsilon=2.0)
        check._plots = lambda *args: []  # the trace is needed, the plots would only add matplotlib time
        start = time.perf_counter()
        finding = check(target, data, budget=budget * n_images, seed=0, ctx=CheckContext(out))
        seconds = time.perf_counter() - start
        ex = np.load(f"{out}/{finding.evidence['examples']}")
        q, sizes = ex["trace_queries"], ex["trace_l2"]
        final = np.where(ex["found"], np.sqrt(((ex["x_adv"] - ex["x"]) ** 2).reshape(len(ex["x"]), -1).sum(1)), np.inf)
    return finding, final, q, sizes, seconds


def labels_only(torch, target, data, x, budgets):
    global BUDGET_MAX
    BUDGET_MAX = max(budgets)
    counter = RowCounter()
    clf = art_classifier(torch, target.module, counter, target.n_classes, x.shape[1:])
    art_runs = {}
    for init_eval in (100, 25):
        start = time.perf_counter()
        art_runs[init_eval] = run_art_hsja(torch, clf, counter, x, init_eval)
        print(f"  ART HopSkipJump init_eval={init_eval}: {time.perf_counter() - start:.1f}s for {len(x)} images")

    print("\nLabels only (L2), median over all attacked images; 'redline@1/3' is redline's median L2 "
          "using a third of the budget")
    print(f"{'budget':>7} | {'ART(100) succ@2':>15} {'L2':>7} | {'ART(25) succ@2':>14} {'L2':>7} | "
          f"{'redline succ@2':>14} {'L2':>7} {'@1/3':>7} | {'time ART/red':>12}")
    for b in budgets:
        finding, final, q, sizes, secs = redline_decision(torch, target, data, len(x), b)
        third = np.where(q <= b // 3, sizes, np.inf).min(axis=0)
        cols = []
        best_art = np.inf
        art_secs = None
        for init_eval in (100, 25):
            d, s = art_at(art_runs[init_eval], b)
            cols.append((float((d <= 2.0).mean()), median_l2(d)))
            if median_l2(d) < best_art:
                best_art, art_secs = median_l2(d), s
        print(f"{b:>7} | {cols[0][0]:>15.2f} {cols[0][1]:>7.3f} | {cols[1][0]:>14.2f} {cols[1][1]:>7.3f} | "
              f"{float((final <= 2.0).mean()):>14.2f} {median_l2(final):>7.3f} {median_l2(third):>7.3f} | "
              f"{art_secs / secs:>11.1f}x")
        print(f"        ratios: ART best median L2 / redline median L2 = {best_art / median_l2(final):.2f}; "
              f"redline@1/3 / ART@full = {median_l2(third) / best_art:.2f} (goal <= 1); redline sent "
              f"{finding.queries / len(x):.0f} rows per image")


# -- probabilities ---------------------------------------------------------------------------
def run_art_square(torch, module, n_classes, x, y, norm, eps, budget):
    """ART's SquareAttack with per-iteration checkpoints: (rows per image, success) list, seconds."""
    from art.attacks.evasion import SquareAttack as ArtSquare

    counter = RowCounter()
    clf = art_classifier(torch, module, counter, n_classes, x.shape[1:])
    checkpoints = []
    watch = {"armed": False}

    class Traced(ArtSquare):
        def _get_percentage_of_elements(self, i_iter):
            watch["armed"] = True  # the next predict in this iteration is on all current x_adv
            return super()._get_percentage_of_elements(i_iter)

    original_predict = clf.predict

    def predict(batch, **kwargs):
        rows_before = counter.rows
        out = original_predict(batch, **kwargs)
        if watch["armed"] and len(batch) == len(x):
            watch["armed"] = False
            checkpoints.append((rows_before / len(x), out.argmax(1) != y, time.perf_counter() - start))
        return out

    clf.predict = predict
    art_norm = np.inf if norm == "linf" else 2
    attack = Traced(clf, norm=art_norm, eps=eps, max_iter=budget, p_init=0.3 if norm == "linf" else 0.1,
                    nb_restarts=1, batch_size=512, verbose=False)
    start = time.perf_counter()
    x_adv = attack.generate(x, y=np.eye(n_classes)[y])
    seconds = time.perf_counter() - start
    final = original_predict(x_adv).argmax(1) != y
    checkpoints.append((counter.rows / len(x), final, seconds))
    return checkpoints


def probabilities(torch, target, data, x, y, budgets, settings):
    from redline.checks.fm01_square import SquareAttack

    print("\nProbabilities (Square Attack): success rate at per-image budgets (rows sent / images)")
    for norm, eps in settings:
        art = run_art_square(torch, target.module, target.n_classes, x, y, norm, eps, max(budgets))
        print(f"\n  {norm} eps {eps}")
        print(f"  {'budget':>7} | {'ART succ':>8} {'med q*':>7} {'sec':>6} | {'redline succ':>12} {'med q':>6} "
              f"{'sec':>6} | {'time ART/red':>12}")
        for b in budgets:
            fit = [c for c in art if c[0] <= b]
            art_rows, art_succ, art_secs = fit[-1] if fit else (0, np.zeros(len(x), bool), 0.0)
            # ART re-sends every image each iteration, broken or not: an image broken at
            # checkpoint t cost it about 3 rows per iteration until then (estimate).
            broken_at = [next((k for k, c in enumerate(fit) if c[1][i]), None) for i in range(len(x))]
            art_q = [3 * k + 3 for k in broken_at if k is not None]
            check = SquareAttack(norm=norm, epsilon=eps, n_inputs=len(x))
            start = time.perf_counter()
            finding = check(target, data, budget=b * len(x), seed=0)
            secs = time.perf_counter() - start
            m = finding.metrics
            mq = m["median_queries"] if m["median_queries"] is not None else float("nan")
            print(f"  {b:>7} | {art_succ.mean():>8.2f} {np.median(art_q) if art_q else float('nan'):>7.0f} "
                  f"{art_secs:>6.1f} | {m['success_rate']:>12.2f} {mq:>6.0f} {secs:>6.1f} | "
                  f"{art_secs / secs:>11.1f}x  (redline rows/image {finding.queries / len(x):.0f}, "
                  f"ART {art_rows:.0f})")
    print("  * ART median queries estimated as 3 rows per iteration until the image broke")


BUDGET_MAX = 5000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--budgets", default="1000,2500,5000")
    ap.add_argument("--square-budgets", default="100,300,1000")
    ap.add_argument("--skip-square", action="store_true")
    ap.add_argument("--skip-decision", action="store_true")
    args = ap.parse_args()

    import torch

    from redline import zoo
    from redline.data.base import Dataset

    torch.set_num_threads(1)  # both libraries on one core: the comparison is about the algorithms
    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.x_test))[: 4 * args.images]
    x, y = data.x_test[idx].astype(np.float32), data.y_test[idx]
    correct = target.predict_labels(x) == y
    x, y = x[correct][: args.images], y[correct][: args.images]
    # Give both attacks the same images: redline samples from x_test with its own seed, so
    # hand it exactly these images as the test split; the pool stays the attacker's data.
    sub = Dataset("bench", data.x_train, data.y_train, x, y, x_pool=data.x_pool, y_pool=data.y_pool)
    print(f"{len(x)} correctly classified MNIST test images, zoo:mnist_cnn")

    if not args.skip_decision:
        budgets = [int(b) for b in args.budgets.split(",")]
        labels_only(torch, target, sub, x, budgets)
    if not args.skip_square:
        budgets = [int(b) for b in args.square_budgets.split(",")]
        probabilities(torch, target, sub, x, y, budgets, [("linf", 0.1), ("linf", 0.3), ("l2", 2.0)])


if __name__ == "__main__":
    main()
