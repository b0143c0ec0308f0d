"""FM10 detectors on honest models they were not tuned on: the false-positive rate per detector.

Each detector (FM10.max_margin, neural_cleanse, activation_clustering, spectral_signatures,
strip) runs with its defaults on clean models of the three architectures of
``redline.zoo.honest`` (an MLP, a wide one-block CNN, a CNN trained with shifted images),
trained here on ``--data`` (MNIST by default, the digits with ``--data builtin:digits``) at
several seeds, and on the zoo's backdoored CNN as the positive control. Prints one line
per model and detector (the statistic the verdict rests on) and, per detector, how many
honest models it flagged; the defaults must keep that at or under 5% per model.

No peer ships calibrated versions of these detectors, so there is no ratio to print: the
point is the false-positive count.

    python benchmarks/bench_fm10_calibration.py [--data builtin:mnist] [--seeds 0,1,2]
        [--detectors max_margin,neural_cleanse,...] [--quick]
"""
from __future__ import annotations

import argparse
import time

STATISTIC = {
    "max_margin": ("anomaly_index", "margin_ratio"),
    "neural_cleanse": ("anomaly_index", "candidate_gap"),
    "activation_clustering": ("flagged_classes",),
    "spectral_signatures": ("flagged_classes",),
    "strip": ("detection_rate",),
}


def detectors(quick: bool):
    from redline.checks.training_time.fm10_activation_clustering import (
        ActivationClustering,
    )
    from redline.checks.training_time.fm10_max_margin import MaxMargin
    from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse
    from redline.checks.training_time.fm10_spectral_signatures import SpectralSignatures
    from redline.checks.training_time.fm10_strip import Strip

    return {
        "max_margin": MaxMargin,
        "neural_cleanse": (lambda: NeuralCleanse(steps=120, n_images=16)) if quick else NeuralCleanse,
        "activation_clustering": ActivationClustering,
        "spectral_signatures": SpectralSignatures,
        "strip": Strip,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="builtin:mnist")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--detectors", default=",".join(STATISTIC))
    ap.add_argument("--architectures", default="mlp,wide_cnn,augmented_cnn")
    ap.add_argument("--quick", action="store_true", help="shorter training and Neural Cleanse runs")
    ap.add_argument("--no-control", action="store_true", help="skip the zoo's backdoored CNN")
    args = ap.parse_args()

    import torch

    from redline import zoo
    from redline.data import load_data
    from redline.findings import Status
    from redline.util.triggers import Trigger
    from redline.zoo.honest import honest_target

    torch.set_num_threads(1)  # small models: threads cost more than they save on a shared machine
    data = load_data(args.data)
    side = data.x_train.shape[-1]
    data.meta.setdefault("trigger", Trigger(target_class=0, size=2 if side < 16 else 4).to_dict())
    make = {name: build for name, build in detectors(args.quick).items() if name in args.detectors.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    alarms = {name: [] for name in make}

    def report(label, target, dataset, seed):
        for name, build in make.items():
            start = time.perf_counter()
            finding = build()(target, dataset, seed=seed)
            stats = " ".join(f"{key}={finding.metrics.get(key)!s:.6}" for key in STATISTIC[name])
            print(f"{label:<28} {name:<22} {finding.status.value:<15} {stats}  {time.perf_counter() - start:.0f}s",
                  flush=True)
            yield name, finding

    for arch in args.architectures.split(","):
        for seed in seeds:
            start = time.perf_counter()
            target = honest_target(arch, data, seed, quick=args.quick)
            accuracy = float((target.predict_labels(data.x_test) == data.y_test).mean())
            print(f"honest {arch} seed {seed}: test accuracy {accuracy:.3f}, trained in "
                  f"{time.perf_counter() - start:.0f}s", flush=True)
            for name, finding in report(f"  {arch}/{seed}", target, data, seed):
                alarms[name].append(finding.status is Status.VULNERABLE)

    missed = []
    if not args.no_control and side == 28:
        target, backdoor_data = zoo.load_target("mnist_cnn_backdoor"), zoo.load_data_for("mnist_cnn_backdoor")
        flagged = [name for name, f in report("  zoo:mnist_cnn_backdoor", target, backdoor_data, 0)
                   if f.status is Status.VULNERABLE]
        missed = [name for name in make if name not in flagged]
        print(f"positive control zoo:mnist_cnn_backdoor flagged by {len(flagged)} of {len(make)}: {flagged}")

    print("\nfalse positives on honest models (defaults; must be <= 5% per model):")
    too_many = []
    for name, flags in alarms.items():
        print(f"  {name:<22} {sum(flags)} of {len(flags)} ({sum(flags) / max(len(flags), 1):.0%})")
        if sum(flags) > 0.05 * len(flags):
            too_many.append(name)
    # Exit 1 when a detector fails its calibration or misses the backdoor, so run.py reports it.
    return 1 if too_many or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
