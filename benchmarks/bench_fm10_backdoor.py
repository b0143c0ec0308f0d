"""FM10 detectors against ART's poison detectors and STRIP, on the zoo's backdoored MNIST CNN, in one run.

Same model (zoo:mnist_cnn_backdoor), same poisoned training set (5% BadNets patch to class
0, ground truth in ``meta["poisoned_indices"]``), same clean twin (zoo:mnist_cnn_clean).

* activation clustering: redline ``FM10.activation_clustering`` vs ART ``ActivationDefence``
  (2 clusters, 10 PCA dimensions, "smaller cluster" analysis; its relative-size analysis fails on numpy 2), precision / recall of flagged rows;
* spectral signatures: redline ``FM10.spectral_signatures`` vs ART ``SpectralSignatureDefense``
  (same expected poison share), precision / recall;
* STRIP: redline ``FM10.strip`` vs ART ``STRIP`` (same number of overlays and false-rejection
  target), false-rejection rate on clean inputs and detection rate on triggered inputs;
* trigger reverse-engineering (redline only; ART 1.20 ships Neural Cleanse only as a
  Keras-specific defence): anomaly index on both controls, white-box and gradient-free
  (the controls wrapped as probabilities-only callables; the NES variant's grid against the
  earlier fine grid, over several seeds);
* clean-label injection (redline only): FM10.injection's label-consistent poisons
  (Turner et al. 2019) against plain stamping of the same rows, on a 1,200-row MNIST subset
  with a one-hidden-layer MLP recipe (the test's), several seeds, and Turner's options
  (four corners, half amplitude).

Prints each measurement, wall time, and redline/ART ratios (machines are noisy: ratios).

    python benchmarks/bench_fm10_backdoor.py [--sections art,nc,nes,injection] [--strip-inputs 200]
        [--nc-steps 300] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def pr(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((flagged & truth).sum())
    return (hits / max(int(flagged.sum()), 1), hits / max(int(truth.sum()), 1))


def art_classifier(target, probabilities=False):
    """ART's wrapper of the target's module; ``probabilities`` adds a softmax head (ART's STRIP
    takes the entropy of what the classifier answers, so it needs probabilities, not logits)."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    module = torch.nn.Sequential(target.module, torch.nn.Softmax(dim=1)) if probabilities else target.module
    return PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=target.input_spec.shape,
                             nb_classes=target.n_classes, clip_values=(0.0, 1.0))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strip-inputs", type=int, default=200)
    ap.add_argument("--overlays", type=int, default=20)
    ap.add_argument("--frr", type=float, default=0.05)
    ap.add_argument("--nc-steps", type=int, default=300)
    ap.add_argument("--epsilon", type=float, default=0.33, help="expected poison share per class (spectral)")
    ap.add_argument("--sections", default="art,nc,nes,injection")
    ap.add_argument("--seeds", default="0,1,2", help="seeds for the gradient-free and injection sections")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    sections = set(args.sections.split(","))
    seeds = [int(v) for v in args.seeds.split(",")]
    if "art" in sections:
        compare_with_art(args)
    if "nc" in sections:
        model_only_detectors(args)
    if "nes" in sections:
        gradient_free_neural_cleanse(seeds)
    if "injection" in sections:
        clean_label_injection(seeds)


def compare_with_art(args) -> None:
    """Activation clustering, spectral signatures and STRIP against ART's, on the same model and data."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.defences.transformer.poisoning import STRIP

    from redline import zoo
    from redline.checks.training_time.fm10_activation_clustering import (
        ActivationClustering,
    )
    from redline.checks.training_time.fm10_spectral_signatures import SpectralSignatures
    from redline.checks.training_time.fm10_strip import Strip
    from redline.util.triggers import Trigger

    target = zoo.load_target("mnist_cnn_backdoor")
    data = zoo.load_data_for("mnist_cnn_backdoor")
    twin = zoo.load_target("mnist_cnn_clean")
    truth = np.zeros(len(data.x_train), dtype=bool)
    truth[data.meta["poisoned_indices"]] = True
    onehot = np.eye(10, dtype=np.float32)[data.y_train]
    clf = art_classifier(target)
    print(f"poisoned rows: {truth.sum()} of {len(truth)} (target class 0)")

    # -- activation clustering -------------------------------------------------------
    ours, t_ours = timed(lambda: ActivationClustering()(target, data, budget=10**6))
    art_ac = ActivationDefence(clf, data.x_train, onehot)
    (_, clean_list), t_art = timed(lambda: art_ac.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA",
                                                                cluster_analysis="smaller"))
    p_art, r_art = pr(np.asarray(clean_list) == 0, truth)
    m = ours.metrics
    print(f"\nactivation clustering   redline: precision {m['precision']:.3f} recall {m['recall']:.3f} "
          f"flagged classes {m['flagged_classes']}  {t_ours:.1f}s")
    print(f"                        ART    : precision {p_art:.3f} recall {r_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: precision {m['precision'] / max(p_art, 1e-9):.2f} "
          f"recall {m['recall'] / max(r_art, 1e-9):.2f} time {t_ours / t_art:.2f}")
    twin_ac = ActivationClustering()(twin, zoo.load_data_for("mnist_cnn_clean"), budget=10**6)
    print(f"                        clean twin: redline flags {twin_ac.metrics['flagged_samples']} rows")

    # -- spectral signatures ---------------------------------------------------------
    ours, t_ours = timed(lambda: SpectralSignatures(epsilon=args.epsilon)(target, data, budget=10**6))
    art_ss = SpectralSignatureDefense(clf, data.x_train, onehot, expected_pp_poison=args.epsilon, eps_multiplier=1.5)
    (_, clean_list), t_art = timed(art_ss.detect_poison)
    p_art, r_art = pr(np.asarray(clean_list) == 0, truth)
    m = ours.metrics
    every = m["remove_everywhere"]
    print(f"\nspectral signatures     redline: precision {m['precision']:.3f} recall {m['recall']:.3f} "
          f"flagged classes {m['flagged_classes']}  {t_ours:.1f}s  (remove-everywhere rule: precision "
          f"{every['precision']:.3f} recall {every['recall']:.3f})")
    print(f"                        ART    : precision {p_art:.3f} recall {r_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: precision {m['precision'] / max(p_art, 1e-9):.2f} "
          f"recall {m['recall'] / max(r_art, 1e-9):.2f} time {t_ours / t_art:.2f}")

    # -- STRIP ------------------------------------------------------------------------
    n = args.strip_inputs
    ours, t_ours = timed(lambda: Strip(n_inputs=n, overlays=args.overlays, frr=args.frr)(target, data, budget=10**6))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.x_test))
    calibration, clean = data.x_test[order[:n]], data.x_test[order[n:2 * n]]
    triggered = data.x_train[truth][:n]

    def art_strip():
        defended = STRIP(art_classifier(target, probabilities=True))(num_samples=args.overlays, false_acceptance_rate=args.frr)
        defended.mitigate(calibration)
        def abstained(x):  # ART's STRIP answers all-zero rows for inputs it rejects
            return np.all(defended.predict(x) == 0, axis=1)

        return float(abstained(clean).mean()), float(abstained(triggered).mean())

    (frr_art, det_art), t_art = timed(art_strip)
    m = ours.metrics
    print(f"\nSTRIP                   redline: FRR {m['false_rejection_rate']:.3f} detection {m['detection_rate']:.3f}  "
          f"{t_ours:.1f}s")
    print(f"                        ART    : FRR {frr_art:.3f} detection {det_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: detection {m['detection_rate'] / max(det_art, 1e-9):.2f} "
          f"time {t_ours / t_art:.2f}")
    trig = Trigger.from_dict(data.meta["trigger"])
    twin_strip = Strip(n_inputs=n, overlays=args.overlays, frr=args.frr)(twin, zoo.load_data_for("mnist_cnn_clean"),
                                                                       budget=10**6)
    print(f"                        clean twin ({trig.kind} trigger stamped): redline detection "
          f"{twin_strip.metrics['detection_rate']:.3f}, FRR {twin_strip.metrics['false_rejection_rate']:.3f}")


def model_only_detectors(args) -> None:
    """White-box Neural Cleanse and max-margin on both controls (no ART peer for torch)."""
    from redline import zoo
    from redline.checks.training_time.fm10_max_margin import MaxMargin
    from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse

    target, twin = zoo.load_target("mnist_cnn_backdoor"), zoo.load_target("mnist_cnn_clean")
    data = zoo.load_data_for("mnist_cnn_backdoor")
    for check in (NeuralCleanse(steps=args.nc_steps), MaxMargin()):
        for name, model in (("backdoor", target), ("clean twin", twin)):
            finding, seconds = timed(lambda c=check, t=model: c(t, data, budget=10**7))
            print(f"\n{check.id:<24}{name:<11}: {finding.status.value:<15} flagged {finding.metrics['flagged_classes']} "
                  f"anomaly index {finding.metrics['anomaly_index']:.2f}  queries {finding.queries}  {seconds:.1f}s")



def gradient_free_neural_cleanse(seeds) -> None:
    """NES Neural Cleanse on both controls as probabilities-only callables: the 4x4 grid
    (default) against the earlier 7x7 grid of 4-pixel cells with 10 probes, per seed."""
    from redline import zoo
    from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse
    from redline.targets.callable import CallableTarget

    configs = {"grid 4, 5 probes, 300 steps": NeuralCleanse(),
               "grid 7, 10 probes, 150 steps": NeuralCleanse(steps=150, nes_samples=10, blackbox_grid=7)}
    print("\ngradient-free Neural Cleanse (budget 300,000): anomaly index backdoor / clean twin, flagged")
    for label, check in configs.items():
        for seed in seeds:
            row = []
            for name in ("mnist_cnn_backdoor", "mnist_cnn_clean"):
                model, data = zoo.load_target(name), zoo.load_data_for(name)
                blackbox = CallableTarget(model._predict, input_spec=model.input_spec, n_classes=10)
                finding, seconds = timed(lambda c=check, t=blackbox, d=data, s=seed: c(t, d, budget=300_000, seed=s))
                row.append(f"{finding.metrics['anomaly_index']:.2f} {finding.metrics['flagged_classes']} "
                           f"({finding.queries} queries, {seconds:.0f}s)")
            print(f"  {label:<30} seed {seed}: backdoor {row[0]}  |  clean twin {row[1]}", flush=True)


def clean_label_injection(seeds) -> None:
    """Label-consistent poisons against plain stamping of the same rows (5% of 1,200 MNIST rows)."""
    import dataclasses

    import torch

    from redline.checks.training_time.fm10_injection import BackdoorInjection
    from redline.data import load_data
    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    spec = InputSpec(shape=(1, 28, 28))

    def recipe(x, y, seed):  # the test's recipe: 784-64-10 MLP, 80 full-batch Adam steps
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
        for _ in range(80):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
        return TorchTarget(net, input_spec=spec, n_classes=10, trainer=recipe)

    full = load_data("builtin:mnist")
    data = dataclasses.replace(full, x_train=full.x_train[:1200], y_train=full.y_train[:1200])
    target = recipe(data.x_train, data.y_train, 0)
    options = {"one corner, full amplitude": {},
               "four corners, full amplitude": {"clean_corners": "all"},
               "four corners, half amplitude": {"clean_corners": "all", "clean_amplitude": 0.5},
               "one corner, epsilon 0.15": {"clean_epsilon": 0.15}}
    print("\nclean-label injection, 5% of 1,200 MNIST rows (target class 0), MLP recipe: attack success "
          "(accuracy drop)")
    for label, extra in options.items():
        for seed in seeds:
            check = BackdoorInjection(kinds=("patch",), labels=("clean", "clean_stamp"), poison_rate=0.05,
                                      n_eval=500, **extra)
            finding, seconds = timed(lambda c=check, s=seed: c(target, data, seed=s))
            v = finding.metrics["variants"]
            print(f"  {label:<30} seed {seed}: Turner {v['patch/clean']['attack_success_rate']:.3f} "
                  f"({v['patch/clean']['accuracy_drop']:+.3f})  plain stamping "
                  f"{v['patch/clean_stamp']['attack_success_rate']:.3f} ({v['patch/clean_stamp']['accuracy_drop']:+.3f})"
                  f"  {seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
