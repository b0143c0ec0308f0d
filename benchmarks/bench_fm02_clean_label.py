"""FM02.clean_label against ART's FeatureCollisionAttack on the same victim, targets and budget.

Victim: the zoo's transfer-learning model digits_transfer_head (the digits_mlp_overfit
network frozen as a feature extractor, and a logistic-regression head the recipe refits on
its features at every retraining). redline's check picks the targets, adversarial classes
and base rows (saved as evidence); ART then poisons the same base rows for the same targets
(its perturbation is penalised, not bounded, so its poisons are also reported clipped to
the same L-inf box), and the same recipe retrains on each poison set. Reports target
success rate, clean accuracy change and wall time per method.

    PYTHONPATH=src python benchmarks/bench_fm02_clean_label.py [--targets 8] [--epsilon 0.2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.training_time.fm02_clean_label import CleanLabelPoisoning
from redline.data import load_data


def art_poisons(target, x_base, x_goal, epsilon):
    from art.attacks.poisoning import FeatureCollisionAttack
    from art.estimators.classification import PyTorchClassifier

    # Two layers for ART: the extractor, then the head (same parameters as the target's).
    module = nn.Sequential(target.module[:-1], target.module[-1]).eval()
    classifier = PyTorchClassifier(
        module, loss=nn.CrossEntropyLoss(), input_shape=x_base.shape[1:], nb_classes=10,
        clip_values=(0.0, 1.0), device_type="cpu",
    )
    # Layer 0 of the ART wrapper is the extractor; its output is what the head reads.
    attack = FeatureCollisionAttack(classifier, x_goal[None], feature_layer=0, max_iter=120, verbose=False)
    poisons, _ = attack.poison(x_base.astype(np.float32))
    clipped = np.clip(poisons, x_base - epsilon, x_base + epsilon).clip(0.0, 1.0)
    return poisons, clipped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data("builtin:digits")
    target = zoo.load_target("digits_transfer_head")

    with tempfile.TemporaryDirectory() as tmp:
        check = CleanLabelPoisoning(n_targets=args.targets, victim_seeds=1, epsilon=args.epsilon, defences=())
        started = time.perf_counter()
        finding = check(target, data, seed=args.seed, ctx=CheckContext(Path(tmp)))
        redline_seconds = time.perf_counter() - started
        saved = dict(np.load(Path(tmp) / finding.evidence["examples"]))
    m = finding.metrics
    print(f"victim: fixed digits_mlp_overfit features + logistic-regression head; {m['n_targets']} targets, "
          f"{m['poison_rows']} poisons each ({m['poison_rate']:.1%}), L-inf {m['epsilon']:g}")
    print(f"redline FM02.clean_label  success {m['target_success_rate']:.2f}  clean acc change "
          f"{m['clean_accuracy_change']:+.4f}  baseline (clean copies) {m['baseline_target_success_rate']:.2f}  "
          f"{redline_seconds:.1f}s (incl. victim retraining)")

    x, y = data.x_train, np.asarray(data.y_train, np.int64)
    clean = target.retrain(x, y, 0)
    clean_accuracy = float(np.mean(clean.predict_labels(data.x_test) == data.y_test))
    results = {"ART unbounded": [], "ART clipped": []}
    changes = {"ART unbounded": [], "ART clipped": []}
    art_seconds = 0.0
    for index, adv, base in zip(saved["target_index"], saved["adversarial_class"], saved["x_base"]):
        started = time.perf_counter()
        raw, clipped = art_poisons(target, base, data.x_test[index], args.epsilon)
        art_seconds += time.perf_counter() - started
        for name, poisons in (("ART unbounded", raw), ("ART clipped", clipped)):
            victim = target.retrain(np.concatenate([x, poisons]), np.concatenate([y, np.full(len(poisons), adv)]), 0)
            results[name].append(victim.predict_labels(data.x_test[index][None])[0] == adv)
            changes[name].append(float(np.mean(victim.predict_labels(data.x_test) == data.y_test)) - clean_accuracy)
        print(f"  target {index}: ART max |delta| {np.abs(raw - base).max():.3f}", flush=True)
    for name in results:
        print(f"{name:<25} success {np.mean(results[name]):.2f}  clean acc change {np.mean(changes[name]):+.4f}  "
              f"{art_seconds:.1f}s (poison generation only)")


if __name__ == "__main__":
    main()
