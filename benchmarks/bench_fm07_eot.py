"""FM07.eot_perturbation against ART's PGD with EoT preprocessing, on the zoo MNIST CNN.

Both attacks get the same images, epsilon, step count and samples per step; ART averages
gradients over its EoT preprocessing chain (brightness and Gaussian noise: ART's rotation
and zoom-blur EoT need torchvision, which this project does not install, and its contrast
EoT takes channels-last images only, so ART optimises for fewer kinds of change than
redline's camera model). Both results are then scored with the same held-out transformations (redline's
camera model, ranges widened x1.25, fresh draws), which neither attack optimised on.
Prints success under held-out transformations and wall time of each, and the ratios.

    python benchmarks/bench_fm07_eot.py [--images 64] [--eps 0.25] [--steps 20] [--samples 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--eps", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()

    import torch
    from art.attacks.evasion import ProjectedGradientDescent as ArtPGD
    from art.estimators.classification import PyTorchClassifier
    from art.preprocessing.expectation_over_transformation import (
        EoTBrightnessPyTorch,
        EoTGaussianNoisePyTorch,
    )

    from redline import zoo
    from redline.checks.base import CheckContext
    from redline.checks.fm07_eot import EotPerturbation, _held_out_scores
    from redline.data.base import Dataset
    from redline.util.transforms import TransformRanges

    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    with target.ledger.evaluating():
        ok = target.predict_labels(data.x_test) == data.y_test
    x, y = data.x_test[ok][: args.images].astype(np.float32), data.y_test[ok][: args.images]
    sub = Dataset("bench", data.x_train, data.y_train, x, y, data.x_pool, data.y_pool, modality="image")
    ranges = TransformRanges()
    held_out = ranges.widened(1.25)

    check = EotPerturbation(epsilon=args.eps, steps=args.steps, samples=args.samples, n_inputs=len(x),
                            eval_samples=1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        finding = check(target, sub, budget=10**9, ctx=CheckContext(tmp))
        redline_seconds = time.perf_counter() - start
        saved = np.load(f"{tmp}/{finding.evidence['examples']}")
        x_red, y_red, adv_red = saved["x"], saved["y"], saved["x_adv"]

    clip = (0.0, 1.0)
    eot = [
        EoTBrightnessPyTorch(nb_samples=args.samples, delta=ranges.brightness, clip_values=clip),
        EoTGaussianNoisePyTorch(nb_samples=1, std=ranges.noise, clip_values=clip),
    ]
    classifier = PyTorchClassifier(model=target.module, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                   nb_classes=10, clip_values=clip, preprocessing_defences=eot)
    attack = ArtPGD(classifier, norm=np.inf, eps=args.eps, eps_step=2.5 * args.eps / args.steps,
                    max_iter=args.steps, num_random_init=0, verbose=False, batch_size=len(x_red))
    start = time.perf_counter()
    adv_art = attack.generate(x_red, y=y_red).astype(np.float32)
    art_seconds = time.perf_counter() - start

    gen = torch.Generator()
    scores = {}
    for name, adv in (("redline", adv_red), ("art", adv_art)):
        gen.manual_seed(123)
        with target.ledger.evaluating():
            clean_ok, adv_ok = _held_out_scores(target, x_red, adv, y_red, held_out, 32, gen)
        counted = clean_ok
        scores[name] = float((counted & ~adv_ok).sum() / max(1, counted.sum()))
    print(f"images {len(x_red)}, eps {args.eps}, steps {args.steps}, samples/step {args.samples}")
    print(f"redline EOT: held-out success {scores['redline']:.3f}, {redline_seconds:.1f}s (whole check)")
    print(f"ART EoT-PGD: held-out success {scores['art']:.3f}, {art_seconds:.1f}s (crafting only)")
    print(f"success ratio redline/ART {scores['redline'] / max(scores['art'], 1e-9):.2f}, "
          f"time ratio redline/ART {redline_seconds / art_seconds:.2f}")


if __name__ == "__main__":
    main()
