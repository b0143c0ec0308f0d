"""FM01 black-box attacks against ART on the zoo MNIST CNN, in one run.

Labels only: redline's FM01.decision against ART's HopSkipJump, in L2 (success at L2 2.0)
and in L-inf (``norm="linf"`` against ART's ``norm=np.inf``, success at L-inf 0.3);
``--decision-norms`` picks them. For each per-image query budget (default 1000, 2500, 5000)
it prints success rate and median distance of both (median over all attacked images, an
image with no adversarial counting as infinite), and redline's median at a third of the
budget, the goal being that it is no larger than ART's at the full budget. ART runs once per
image with a large ``max_iter``; a subclass records the image's distance, the rows it has
sent and the time spent after every iteration, so ART's result at a budget is its state
after the last iteration that fits the budget (exactly what ART returns when run with that
``max_iter``). The L-inf part also runs redline with full-space probes (``subspace=1``), to
show what the low-frequency probe directions are worth for L-inf.

Probabilities: redline's FM01.square against ART's SquareAttack (L-inf and L2): success rate
at each budget (rows sent divided by images) and the median queries of successful images.

Timing, made fair and robust on a shared machine:

* both libraries query the same module object through the same row-counting wrapper, with
  the same batch cap (``--batch``: ART's ``batch_size`` and the redline target's
  ``max_batch``);
* redline runs once before and once after ART's run and its time is the mean of the two
  passes, so a change of machine load during the run hits both sides alike;
* every time is measured as wall time and as this process's CPU time (the CPU time does not
  count the waits for a core that other processes cause, so its ratio is the steadier one);
* "at equal budget" compares the time each library took to use a per-image budget; "per row"
  divides each side's time by the rows it actually sent (Square stops on broken images, ART
  keeps re-sending them), which is the cost of one query including the model's forward pass.

The "compiled target" columns time redline as it ships for zoo models and TorchScript files:
``TorchTarget(compile_inference=True)`` answers queries with the module compiled for
inference (exported to ONNX Runtime, else traced and frozen TorchScript; verified against the
eager module), while ART runs the module as the user gave it. The "equal budget" and "per row" columns keep both on the same eager
module, which isolates the attack code. ``--eager-only`` skips the compiled pass.

    python benchmarks/bench_fm01_blackbox.py [--images 20] [--budgets 1000,2500,5000] [--skip-square]
                                             [--decision-norms l2,linf]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
from art_harness import RowCounter, art_classifier, counting_module


class Clock:
    """Wall and CPU seconds since creation."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def counting_target(torch, module, input_spec, n_classes, counter, batch):
    from redline.targets.torch import TorchTarget

    target = TorchTarget(counting_module(module, counter), input_spec=input_spec, n_classes=n_classes,
                         spec="zoo:mnist_cnn(counted)")
    target.max_batch = batch
    return target


def compiled_module(torch, module, shape):
    """The module as redline's TorchTarget compiles it for queries (same code path)."""
    from redline.targets.torch import compile_for_inference

    fast = compile_for_inference(copy.deepcopy(module).eval(), torch.rand(8, *shape))
    if fast is None:
        raise RuntimeError("the module could not be compiled for inference")
    return fast


def median_size(dists):
    """Median of per-image distances (L2 or L-inf); nan for none."""
    return float(np.median(dists)) if len(dists) else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# -- labels only ---------------------------------------------------------------------------
def distance(delta, norm):
    return float(np.linalg.norm(delta)) if norm == "l2" else float(np.abs(delta).max())


def run_art_hsja(clf, counter, x, init_eval, stop_rows, batch, norm="l2"):
    """Per image: list of (rows sent, wall s, CPU s, distance in ``norm``) after each ART iteration."""
    from art.attacks.evasion import HopSkipJump

    class TracedHSJ(HopSkipJump):
        def _note(self, current, original):
            self._trace.append((counter.rows - self._start_rows, *self._clock.read(),
                                distance(current - original, norm)))

        def _attack(self, initial_sample, original_sample, target, mask, clip_min, clip_max):
            current = initial_sample
            iters = self.max_iter
            self.max_iter = 1
            try:
                for _ in range(iters):
                    current = super()._attack(current, original_sample, target, mask, clip_min, clip_max)
                    self._note(current, original_sample)
                    if counter.rows - self._start_rows >= stop_rows:
                        break
            finally:
                self.max_iter = iters
            return current

        def _init_sample(self, *args, **kwargs):
            out = super()._init_sample(*args, **kwargs)
            if out is not None:
                self._note(out[0], args[0])
            return out

    np.random.seed(0)  # ART draws its noise from the global generator
    traces = []
    for i in range(len(x)):
        attack = TracedHSJ(clf, norm=2 if norm == "l2" else np.inf, max_iter=10**6, max_eval=10_000,
                           init_eval=init_eval, init_size=100, batch_size=batch, verbose=False)
        attack._trace = []
        attack._start_rows, attack._clock = counter.rows, Clock()
        attack.curr_iter = 0
        attack.generate(x[i:i + 1])
        traces.append(attack._trace)
    return traces


def art_at(traces, budget):
    """ART's state after the last iteration within ``budget`` rows per image:
    (distance per image, rows, wall s, CPU s summed over images)."""
    dists, rows, wall, cpu = [], 0, 0.0, 0.0
    for trace in traces:
        fit = [t for t in trace if t[0] <= budget]
        dists.append(fit[-1][3] if fit else np.inf)
        if fit:
            rows += fit[-1][0]
            wall += fit[-1][1]
            cpu += fit[-1][2]
    return np.asarray(dists), rows, wall, cpu


def redline_decision(target, data, n_images, budget, norm="l2", **params):
    import tempfile

    from redline.checks.base import CheckContext
    from redline.checks.evasion.fm01_decision import DecisionAttack

    with tempfile.TemporaryDirectory() as out:
        check = DecisionAttack(norm=norm, n_inputs=n_images, epsilon=SUCCESS_AT[norm], **params)
        check._plots = lambda *args: []  # the trace is needed, the plots would only add matplotlib time
        clock = Clock()
        finding = check(target, data, budget=budget * n_images, seed=0, ctx=CheckContext(out))
        wall, cpu = clock.read()
        ex = np.load(f"{out}/{finding.evidence['examples']}")
        q, sizes = ex["trace_queries"], ex[f"trace_{norm}"]
        delta = (ex["x_adv"] - ex["x"]).reshape(len(ex["x"]), -1)
        size = np.sqrt((delta**2).sum(1)) if norm == "l2" else np.abs(delta).max(1)
        final = np.where(ex["found"], size, np.inf)
    return finding, final, q, sizes, wall, cpu


def redline_decision_pass(target, data, n_images, budgets, norm="l2", **params):
    return {b: redline_decision(target, data, n_images, b, norm, **params) for b in budgets}


def mean_times(passes, b):
    """Mean (wall, CPU) of redline's passes at budget ``b``."""
    return float(np.mean([p[b][-2] for p in passes])), float(np.mean([p[b][-1] for p in passes]))


SUCCESS_AT = {"l2": 2.0, "linf": 0.3}  # the distance at which the success rates are judged, per norm
# Column labels: "succ@2" / "L2" as the L2 table always printed them.
SUCCESS_LABEL = {"l2": "succ@2", "linf": "succ@.3"}
SIZE_LABEL = {"l2": "L2", "linf": "Linf"}


def labels_only(torch, target, data, x, budgets, batch, fast_module, norm="l2"):
    counter = RowCounter()
    module = target.module
    red = counting_target(torch, module, target.input_spec, target.n_classes, counter, batch)
    clf = art_classifier(module, target.n_classes, x.shape[1:], counter)
    n = len(x)
    eps, succ, size = SUCCESS_AT[norm], SUCCESS_LABEL[norm], SIZE_LABEL[norm]
    passes = [redline_decision_pass(red, data, n, budgets, norm)]
    art_runs = {}
    for init_eval in (100, 25):
        clock = Clock()
        art_runs[init_eval] = run_art_hsja(clf, counter, x, init_eval, max(budgets), batch, norm)
        print(f"  ART HopSkipJump{'' if norm == 'l2' else ' (L-inf)'} init_eval={init_eval}: "
              f"{clock.read()[0]:.1f}s for {n} images")
    passes.append(redline_decision_pass(red, data, n, budgets, norm))
    fast = None
    if fast_module is not None:
        fast_target = counting_target(torch, fast_module, target.input_spec, target.n_classes, RowCounter(), batch)
        fast = redline_decision_pass(fast_target, data, n, budgets, norm)

    print(f"\nLabels only ({size}), median over all attacked images; 'redline@1/3' is redline's median {size} "
          "using a third of the budget")
    print(f"{'budget':>7} | {'ART(100) ' + succ:>15} {size:>7} | {'ART(25) ' + succ:>14} {size:>7} | "
          f"{'redline ' + succ:>14} {size:>7} {'@1/3':>7}")
    timing = []
    for b in budgets:
        finding, final, q, sizes, _, _ = passes[-1][b]
        third = np.where(q <= b // 3, sizes, np.inf).min(axis=0)
        cols, best = [], None
        for init_eval in (100, 25):
            d, rows, wall, cpu = art_at(art_runs[init_eval], b)
            cols.append((float((d <= eps).mean()), median_size(d)))
            if best is None or median_size(d) < best[0]:
                best = (median_size(d), rows, wall, cpu, init_eval)
        print(f"{b:>7} | {cols[0][0]:>15.2f} {cols[0][1]:>7.3f} | {cols[1][0]:>14.2f} {cols[1][1]:>7.3f} | "
              f"{float((final <= eps).mean()):>14.2f} {median_size(final):>7.3f} {median_size(third):>7.3f}")
        print(f"        ratios: ART best median {size} / redline median {size} = {best[0] / median_size(final):.2f}; "
              f"redline@1/3 / ART@full = {median_size(third) / best[0]:.2f} (goal <= 1)")
        red_rows = finding.queries + finding.evaluation_queries
        wall, cpu = mean_times(passes, b)
        fast_t = None if fast is None else fast[b][-2:]
        timing.append((b, f"ART({best[4]})", best[1], best[2], best[3], red_rows, wall, cpu, fast_t))
    if norm == "linf":
        probe_ablation(red, data, n, budgets, passes[-1], eps)
    print_timing(f"Labels only{'' if norm == 'l2' else ' (L-inf)'}: time, ART against redline (the ART setting "
                 f"with the better median {size})", n, timing)


def probe_ablation(target, data, n, budgets, low_freq, eps):
    """Redline L-inf with probes in the full input space against the default low-frequency ones."""
    full = redline_decision_pass(target, data, n, budgets, "linf", subspace=1.0)
    print("\nL-inf probe directions: redline with low-frequency probes (default subspace 0.5) against "
          "full-space probes (subspace 1)")
    print(f"{'budget':>7} | {'low-freq succ@.3':>16} {'Linf':>7} | {'full succ@.3':>12} {'Linf':>7} | "
          f"{'full / low-freq Linf':>20}")
    for b in budgets:
        lo, hi = low_freq[b][1], full[b][1]
        print(f"{b:>7} | {float((lo <= eps).mean()):>16.2f} {median_size(lo):>7.3f} | "
              f"{float((hi <= eps).mean()):>12.2f} {median_size(hi):>7.3f} | {median_size(hi) / median_size(lo):>20.2f}")


def print_timing(title, n, rows_of):
    print(f"\n{title}; per image: rows sent; ratios are ART time / redline time")
    print(f"{'budget':>7} | {'ART rows':>8} {'wall s':>7} {'CPU s':>6} | {'red rows':>8} {'wall s':>7} {'CPU s':>6} | "
          f"{'equal budget: wall':>18} {'CPU':>5} | {'per row: wall':>13} {'CPU':>5}"
          + (f" | {'compiled target: wall':>21} {'CPU':>5}" if rows_of and rows_of[0][-1] is not None else ""))
    for b, _, art_rows, art_wall, art_cpu, red_rows, wall, cpu, fast in rows_of:
        line = (f"{b:>7} | {art_rows / n:>8.0f} {art_wall:>7.1f} {art_cpu:>6.1f} | {red_rows / n:>8.0f} {wall:>7.1f} "
                f"{cpu:>6.1f} | {ratio(art_wall, wall):>17.2f}x {ratio(art_cpu, cpu):>4.2f}x | "
                f"{ratio(art_wall / max(art_rows, 1), wall / max(red_rows, 1)):>12.2f}x "
                f"{ratio(art_cpu / max(art_rows, 1), cpu / max(red_rows, 1)):>4.2f}x")
        if fast is not None:
            line += f" | {ratio(art_wall, fast[0]):>20.2f}x {ratio(art_cpu, fast[1]):>4.2f}x"
        print(line)


# -- probabilities ---------------------------------------------------------------------------
def run_art_square(torch, module, n_classes, x, y, norm, eps, budget, batch):
    """ART's SquareAttack with per-iteration checkpoints: list of (rows per image, success, wall s, CPU s)."""
    from art.attacks.evasion import SquareAttack as ArtSquare

    counter = RowCounter()
    clf = art_classifier(module, n_classes, x.shape[1:], counter)
    checkpoints = []
    watch = {"armed": False}

    class Traced(ArtSquare):
        def _get_percentage_of_elements(self, i_iter):
            watch["armed"] = True  # the next predict in this iteration is on all current x_adv
            return super()._get_percentage_of_elements(i_iter)

    original_predict = clf.predict

    def predict(batch_x, **kwargs):
        rows_before = counter.rows
        out = original_predict(batch_x, **kwargs)
        if watch["armed"] and len(batch_x) == len(x):
            watch["armed"] = False
            checkpoints.append((rows_before / len(x), out.argmax(1) != y, *clock.read()))
        return out

    clf.predict = predict
    art_norm = np.inf if norm == "linf" else 2
    attack = Traced(clf, norm=art_norm, eps=eps, max_iter=budget, p_init=0.3 if norm == "linf" else 0.1,
                    nb_restarts=1, batch_size=batch, verbose=False)
    clock = Clock()
    x_adv = attack.generate(x, y=np.eye(n_classes)[y])
    wall, cpu = clock.read()
    final = original_predict(x_adv).argmax(1) != y
    checkpoints.append((counter.rows / len(x), final, wall, cpu))
    return checkpoints


def redline_square(target, data, n, norm, eps, b):
    from redline.checks.evasion.fm01_square import SquareAttack

    check = SquareAttack(norm=norm, epsilon=eps, n_inputs=n)
    check._plots = lambda *args: []  # as for ART: no plots in the timed run
    clock = Clock()
    finding = check(target, data, budget=b * n, seed=0)
    return (finding, *clock.read())


def probabilities(torch, target, data, x, y, budgets, settings, batch, fast_module):
    print("\nProbabilities (Square Attack): success rate at per-image budgets (rows sent / images)")
    n = len(x)
    red = counting_target(torch, target.module, target.input_spec, target.n_classes, RowCounter(), batch)
    fast_target = None
    if fast_module is not None:
        fast_target = counting_target(torch, fast_module, target.input_spec, target.n_classes, RowCounter(), batch)
    for norm, eps in settings:
        passes = [{b: redline_square(red, data, n, norm, eps, b) for b in budgets}]
        art = run_art_square(torch, target.module, target.n_classes, x, y, norm, eps, max(budgets), batch)
        passes.append({b: redline_square(red, data, n, norm, eps, b) for b in budgets})
        print(f"\n  {norm} eps {eps}")
        print(f"  {'budget':>7} | {'ART succ':>8} {'med q*':>7} | {'redline succ':>12} {'med q':>6} {'med size':>8}")
        timing = []
        for b in budgets:
            fit = [c for c in art if c[0] <= b]
            art_rows, art_succ, art_wall, art_cpu = fit[-1] if fit else (0, np.zeros(n, bool), 0.0, 0.0)
            # ART re-sends every image each iteration, broken or not: an image broken at
            # checkpoint t cost it about 3 rows per iteration until then (estimate).
            broken_at = [next((k for k, c in enumerate(fit) if c[1][i]), None) for i in range(n)]
            art_q = [3 * k + 3 for k in broken_at if k is not None]
            finding = passes[-1][b][0]
            m = finding.metrics
            mq = m["median_queries"] if m["median_queries"] is not None else float("nan")
            size = m.get("median_linf" if norm == "linf" else "median_l2")
            print(f"  {b:>7} | {art_succ.mean():>8.2f} {np.median(art_q) if art_q else float('nan'):>7.0f} | "
                  f"{m['success_rate']:>12.2f} {mq:>6.0f} {size if size is not None else float('nan'):>8.3f}")
            wall = float(np.mean([p[b][1] for p in passes]))
            cpu = float(np.mean([p[b][2] for p in passes]))
            fast = None
            if fast_target is not None:
                fast = redline_square(fast_target, data, n, norm, eps, b)[1:]
            timing.append((b, "ART", art_rows * n, art_wall, art_cpu,
                           finding.queries + finding.evaluation_queries, wall, cpu, fast))
        print_timing(f"  Square {norm} eps {eps}: time", n, timing)
    print("  * ART median queries estimated as 3 rows per iteration until the image broke")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--budgets", default="1000,2500,5000")
    ap.add_argument("--square-budgets", default="100,300,1000")
    ap.add_argument("--batch", type=int, default=256, help="batch cap for both libraries (ART batch_size, "
                                                           "redline target max_batch)")
    ap.add_argument("--eager-only", action="store_true",
                    help="skip the pass with queries compiled for inference (as redline runs zoo and TorchScript "
                         "targets; ART keeps the eager module)")
    ap.add_argument("--skip-square", action="store_true")
    ap.add_argument("--skip-decision", action="store_true")
    ap.add_argument("--decision-norms", default="l2,linf",
                    help="labels-only comparisons to run: l2 (success at L2 2.0), linf (success at L-inf 0.3)")
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
    fast = compiled_module(torch, target.module, x.shape[1:]) if not args.eager_only else None
    print(f"{len(x)} correctly classified MNIST test images, zoo:mnist_cnn, batch cap {args.batch} for both")

    norms = [v.strip() for v in args.decision_norms.split(",") if v.strip()]
    if any(v not in SUCCESS_AT for v in norms):
        ap.error(f"--decision-norms takes l2 and/or linf, not {args.decision_norms!r}")
    if not args.skip_decision:
        budgets = [int(b) for b in args.budgets.split(",")]
        for norm in norms:
            labels_only(torch, target, sub, x, budgets, args.batch, fast, norm)
    if not args.skip_square:
        budgets = [int(b) for b in args.square_budgets.split(",")]
        probabilities(torch, target, sub, x, y, budgets, [("linf", 0.1), ("linf", 0.3), ("l2", 2.0)], args.batch,
                      fast)


if __name__ == "__main__":
    main()
