"""FM06.reprogramming black box (BAR-style zeroth-order) on the zoo MNIST CNN, by query budget.

ART has no adversarial-reprogramming attack, so the references are: chance, the same task
inputs in a blank frame, the white-box check at the same budget, and the estimator this
check used before (antithetic NES on a 7x7 program against a fixed random label mapping,
its old defaults), run here as a subclass. Every variant sees the same seeds, so each row
is a paired comparison; the table gives mean (min..max) held-out task accuracy over seeds.
A labels-only twin must come out not applicable.

    python benchmarks/bench_fm06_reprogramming.py [--budgets 5000,10000,20000,50000] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def nes_variant():
    """The previous black-box estimator, kept here only as a baseline."""
    import torch

    from redline.checks.evasion.fm06_reprogramming import Reprogramming
    from redline.util.nes import Adam, nes_gradient

    class NesReprogramming(Reprogramming):
        def _estimated(self, torch_, target, frame, x_tr, y_tr, k, steps, batch, rng):
            q, sigma = int(self.directions), float(self.smoothing)
            shape = frame.init_program(torch).shape
            theta = np.zeros((1, int(np.prod(shape))))
            optimizer = Adam(theta.shape, lr=float(self.lr))
            cols = rng.permutation(target.n_classes)[:k]
            x_all = torch.from_numpy(x_tr)
            # NES's two probes per direction cost 2q rows per task input instead of q + 1.
            steps = steps * (q + 1) // (2 * q)
            for _ in range(steps):
                rows = rng.integers(0, len(x_all), size=batch)

                def losses(probes, rows=rows):
                    with torch.no_grad():
                        inputs = torch.cat([frame.apply(torch.from_numpy(p.astype(np.float32)).view(shape), x_all[rows])
                                            for p in probes[0]]).numpy()
                    probs = target.predict(inputs).reshape(len(probes[0]), batch, -1)[:, :, cols]
                    probs = probs / np.clip(probs.sum(axis=2, keepdims=True), 1e-12, None)
                    picked = probs[:, np.arange(batch), y_tr[rows]]
                    return -np.log(np.clip(picked, 1e-12, None)).mean(axis=1)[None, :]

                theta = optimizer.step(theta, nes_gradient(losses, theta, q, sigma, rng))
            return torch.from_numpy(theta.reshape(shape).astype(np.float32))

    return NesReprogramming


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="5000,10000,20000,50000")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    import torch

    torch.set_num_threads(1)
    from redline import zoo
    from redline.checks.evasion.fm06_reprogramming import Reprogramming
    from redline.targets.torch import TorchTarget

    white = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    # The same network answering probabilities only: what a black-box attacker sees.
    black = TorchTarget(white.module, input_spec=white.input_spec, n_classes=10)
    black.capabilities = type(black.capabilities)(outputs="probabilities", gradients=False)

    variants = {
        "black box, BAR (default)": (lambda: Reprogramming(), black),
        "black box, 7x7 program": (lambda: Reprogramming(program_resolution=7), black),
        "black box, old NES": (lambda: nes_variant()(batch_size=32, lr=0.05, program_resolution=7), black),
        "white box": (lambda: Reprogramming(), white),
    }
    print(f"zoo:mnist_cnn, task digits (10 classes) in a 10x10 window, seeds {seeds}")
    print(f"{'variant':26s} {'budget':>7s} {'queries':>8s} {'task acc':>20s} {'blank':>6s} {'chance':>6s} "
          f"{'flagged':>7s} {'max p':>8s} {'s/run':>6s}")
    for budget in budgets:
        for name, (make, target) in variants.items():
            acc, blank, chance, flagged, p, queries, seconds = [], [], [], 0, [], [], []
            for seed in seeds:
                start = time.perf_counter()
                f = make()(target, data, budget=budget, seed=seed)
                seconds.append(time.perf_counter() - start)
                if f.reason:
                    raise SystemExit(f"{name} at {budget}: {f.status.value}: {f.reason}")
                m = f.metrics
                acc.append(m["task_accuracy"])
                blank.append(m["unprogrammed_accuracy"])
                chance.append(m["chance_accuracy"])
                p.append(m["p_value"])
                queries.append(f.queries)
                flagged += f.status.value == "vulnerable"
            spread = f"{np.mean(acc):.3f} ({min(acc):.2f}..{max(acc):.2f})"
            print(f"{name:26s} {budget:7d} {int(np.mean(queries)):8d} {spread:>20s} {np.mean(blank):6.3f} "
                  f"{np.mean(chance):6.3f} {flagged:3d}/{len(seeds):<3d} {max(p):8.1e} {np.mean(seconds):6.1f}",
                  flush=True)

    labels_only = zoo.load_target("mnist_cnn_labels")
    f = Reprogramming()(labels_only, zoo.load_data_for("mnist_cnn_labels"))
    print(f"labels-only twin (zoo:mnist_cnn_labels): {f.status.value}, {f.queries} queries: {f.reason}")


if __name__ == "__main__":
    main()
