"""FM07 EOT checks against ART on the zoo MNIST CNN: the perturbation, then the patch.

Perturbation: FM07.eot_perturbation against ART's PGD with EoT preprocessing.

Both attacks get the same images, epsilon, step count and samples per step; ART averages
gradients over its EoT preprocessing chain (brightness and Gaussian noise: ART's rotation
and zoom-blur EoT need torchvision, which this project does not install, and its contrast
EoT takes channels-last images only, so ART optimises for fewer kinds of change than
redline's camera model). Both results are then scored with the same held-out transformations (redline's
camera model, ranges widened x1.25, fresh draws), which neither attack optimised on.
Prints success under held-out transformations and wall time of each, and the ratios.

Patch: FM07.eot_patch against ART's adversarial patch (Brown et al.), both targeted at
one class (ART's patch attacks are targeted), white box, trained on the same attacker
images with the same number of image gradients, the same patch area (redline's square,
ART's circle of about the same number of pixels) and the same rotation and size ranges;
ART optimises over placement, rotation and size only, redline over its whole camera
model. Both patches are then stuck on the same held-out test images with the same
held-out draws of placement, angle, size and photometry (redline's camera model, ranges
widened x1.25); the score is the fraction of (image, draw) pairs, among those the model
gets right without a patch under that draw and not already of the target class, that the
patch turns into the target class. ART's AdversarialPatchPyTorch needs torchvision,
which has no CPU build to install here; without it the benchmark runs ART's
framework-independent AdversarialPatchNumpy (same method, scipy transformations) and
says so.

    python benchmarks/bench_fm07_eot.py [--part perturbation|patch|both] [--images 64] [--eps 0.25]
        [--steps 20] [--samples 8] [--patch-steps 150] [--patch-batch 32] [--target-class 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("perturbation", "patch", "both"), default="both")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--eps", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--patch-steps", type=int, default=150)
    ap.add_argument("--patch-batch", type=int, default=32)
    ap.add_argument("--patch-area", type=float, default=0.1)
    ap.add_argument("--target-class", type=int, default=3)
    ap.add_argument("--eval-images", type=int, default=200)
    ap.add_argument("--eval-samples", type=int, default=8)
    ap.add_argument("--art-lr", default="1,5,20", help="ART learning rates to try; the best one is compared")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.part in ("perturbation", "both"):
        perturbation_comparison(args)
    if args.part in ("patch", "both"):
        patch_comparison(args)


def perturbation_comparison(args) -> None:
    import torch
    from art.attacks.evasion import ProjectedGradientDescent as ArtPGD
    from art.estimators.classification import PyTorchClassifier
    from art.preprocessing.expectation_over_transformation import (
        EoTBrightnessPyTorch,
        EoTGaussianNoisePyTorch,
    )

    from redline import zoo
    from redline.checks.base import CheckContext
    from redline.checks.evasion.fm07_eot import EotPerturbation, _held_out_scores
    from redline.checks.evasion.transforms import TransformRanges
    from redline.data.base import Dataset

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



def patch_comparison(args) -> None:
    import math
    import random

    import torch
    import torch.nn.functional as F
    from art.attacks.evasion import AdversarialPatchNumpy
    from art.estimators.classification import PyTorchClassifier

    from redline import zoo
    from redline.checks.base import CheckContext
    from redline.checks.evasion.fm07_eot import EotPatch
    from redline.checks.evasion.transforms import TransformRanges

    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    spec = target.input_spec
    c, h, w = spec.shape
    ranges = TransformRanges()
    held_out = ranges.widened(1.25)
    goal = int(args.target_class)
    x_pool, _ = data.attacker_data()

    import redline.util.plots  # noqa: F401  (import matplotlib before the clock starts)

    def run_redline():
        """The whole check, with the smallest evaluation it allows (one image, one draw)."""
        check = EotPatch(area=args.patch_area, steps=args.patch_steps, batch_size=args.patch_batch, lr=0.1,
                         target_class=goal, n_inputs=1, eval_samples=1, access="white_box")
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            finding = check(target, data, budget=10**9, ctx=CheckContext(tmp))
            seconds = time.perf_counter() - start
            return torch.from_numpy(np.load(f"{tmp}/{finding.evidence['examples']}")["patch"]), seconds

    # redline runs before and after ART's runs, so that load on the machine hits both alike.
    red_patch, first_seconds = run_redline()
    red_side = red_patch.shape[-1]

    # ART: a circle with about as many pixels as redline's square, trained on pool images, with
    # as many image gradients in all (it computes one per training image per iteration).
    art_side = max(2, round(red_side * math.sqrt(4 / math.pi)))
    n_art = 160
    iterations = math.ceil(args.patch_steps * args.patch_batch / n_art)
    picked = np.random.default_rng(0).choice(len(x_pool), size=n_art, replace=False)
    x_art = x_pool[picked].astype(np.float32)
    relative = art_side / h
    classifier = PyTorchClassifier(model=target.module, loss=torch.nn.CrossEntropyLoss(), input_shape=(c, h, w),
                                   nb_classes=target.n_classes, clip_values=(spec.lower, spec.upper))
    try:
        import torchvision  # noqa: F401  (AdversarialPatchPyTorch needs it)

        art_name = "ART AdversarialPatchNumpy (torchvision is installed, but only the numpy variant is wired up)"
    except (ImportError, RuntimeError) as exc:  # a CUDA-only build fails with RuntimeError
        art_name = f"ART AdversarialPatchNumpy (AdversarialPatchPyTorch unavailable: torchvision: {type(exc).__name__})"

    class _ArtPatch(AdversarialPatchNumpy):
        """ART 1.20.1 refuses its own starting value (a numpy float32, not a Python float) when
        it builds the patch; None asks for that same mid-range value by another path."""

        def reset_patch(self, initial_patch_value):
            if isinstance(initial_patch_value, np.floating):
                initial_patch_value = None
            super().reset_patch(initial_patch_value)

    art_results = {}
    for lr in (float(v) for v in args.art_lr.split(",")):
        random.seed(0)  # ART draws its placements from the random module
        attack = _ArtPatch(classifier, target=goal, rotation_max=float(ranges.rotation),
                                       scale_min=relative * ranges.scale[0], scale_max=relative * ranges.scale[1],
                                       learning_rate=lr, max_iter=iterations, batch_size=args.patch_batch,
                                       targeted=True, verbose=False)
        start = time.perf_counter()
        art_full, _ = attack.generate(x_art, y=np.full(n_art, goal))
        seconds = time.perf_counter() - start
        # ART's patch spans the image and is scaled down when stuck on; shrink it once to its size.
        art_patch = F.interpolate(torch.from_numpy(art_full[None].astype(np.float32)), size=(art_side, art_side),
                                  mode="area")[0]
        art_results[lr] = (art_patch, seconds)
    again, second_seconds = run_redline()
    assert torch.equal(again, red_patch), "redline's patch should not depend on the run"
    redline_seconds = (first_seconds + second_seconds) / 2

    idx = np.random.default_rng(1).permutation(len(data.x_test))[: args.eval_images]
    x_eval = torch.from_numpy(data.x_test[idx].astype(np.float32))
    y_eval = np.asarray(data.y_test[idx], dtype=int)
    square = torch.ones(1, red_side, red_side)
    noise = spec.lower + (spec.upper - spec.lower) * torch.rand(red_patch.shape, generator=torch.Generator().manual_seed(7))
    scored = {"redline eot_patch": (red_patch, square), "random square": (noise, square)}
    scored.update({f"ART lr {lr:g}": (patch, _circle(art_side)) for lr, (patch, _) in art_results.items()})
    rates = {}
    with target.ledger.evaluating():
        for name, (patch, mask) in scored.items():
            rates[name] = _targeted_patch_rates(target, x_eval, y_eval, patch, mask, held_out, args.eval_samples,
                                                seed=123, goal=goal)
    best_lr = max(art_results, key=lambda lr: rates[f"ART lr {lr:g}"][0])
    art_seconds = art_results[best_lr][1]
    red_rate, art_rate = rates["redline eot_patch"][0], rates[f"ART lr {best_lr:g}"][0]
    print(f"\npatch: target class {goal}, {len(x_eval)} held-out test images x {args.eval_samples} held-out draws, "
          f"redline square {red_side}x{red_side}, ART circle of diameter {art_side}; {args.patch_steps * args.patch_batch} "
          f"image gradients each ({args.patch_steps} x {args.patch_batch} redline, {iterations} x {n_art} ART)")
    print(f"peer: {art_name}")
    for name, (rate, majority, pairs) in rates.items():
        print(f"  {name:20s} pairs turned to class {goal}: {rate:.3f}   images fooled in most draws: {majority:.3f}   "
              f"(pairs counted {pairs})")
    print(f"redline eot_patch: {red_rate:.3f}, {redline_seconds:.1f}s (whole check, minimal evaluation; "
          f"mean of a run before and one after ART's: {first_seconds:.1f}s, {second_seconds:.1f}s)")
    print(f"ART (best lr {best_lr:g}): {art_rate:.3f}, {art_seconds:.1f}s (crafting only)")
    print(f"success ratio redline/ART {red_rate / max(art_rate, 1e-9):.2f}, "
          f"time ratio redline/ART {redline_seconds / art_seconds:.2f}")


def _circle(side: int):
    """A soft-edged disc filling a side x side square (ART's patch mask, recomputed at this size)."""
    import torch

    t = torch.linspace(-1, 1, side)
    radius2 = t[None, :] ** 2 + t[:, None] ** 2
    return (1 - (radius2**40).clamp(max=1)).unsqueeze(0)


def _targeted_patch_rates(target, x, y, patch, mask, ranges, samples, seed, goal):
    """(fraction of counted pairs answered as ``goal``, fraction of images where most counted
    draws are, pairs counted). A pair (image, draw) counts when the model gets the image right
    under that draw without a patch and its class is not ``goal``. The patch is laid on through
    ``mask`` with redline's placement geometry (stick_patch), then the draw's photometry applies."""
    import torch

    from redline.checks.evasion.fm07_eot import stick_patch
    from redline.checks.evasion.transforms import photometric, sample_params

    spec = target.input_spec
    span = float(spec.upper - spec.lower) or 1.0
    n = len(x)
    x_rep = x.repeat(samples, 1, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    params = sample_params(n * samples, ranges, gen)
    # Geometry alone first (no photometric change). stick_patch lays a patch p on an image x as
    # x * (1 - w(1)) + w(p) * w(1), w the warp; on a blank image it gives w(p) * w(1), so w(1) is
    # the root of that for p = 1. The masked version x * (1 - w(mask)) + w(p * mask) * w(1) is
    # the same thing for a square mask.
    flat = {**params, "brightness": torch.zeros(n * samples), "contrast": torch.ones(n * samples),
            "blur": torch.zeros(n * samples), "noise": torch.zeros(n * samples)}
    blank = torch.zeros_like(x_rep)
    with torch.no_grad():
        footprint = stick_patch(blank, torch.ones_like(patch), ranges, gen, 0.0, 1.0, params=flat).sqrt()
        on_mask = stick_patch(blank, mask.expand_as(patch), ranges, gen, 0.0, 1.0, params=flat)
        cover = torch.where(footprint > 0, on_mask / footprint.clamp_min(1e-6), 0.0)
        ink = stick_patch(blank, patch * mask, ranges, gen, 0.0, 1.0, params=flat)
        patched = photometric(x_rep * (1 - cover) + ink, params, span).clamp(spec.lower, spec.upper)
        clean = photometric(x_rep, params, span).clamp(spec.lower, spec.upper)
    y_rep = np.tile(y, samples)
    counted = (target.predict_labels(clean.numpy()) == y_rep) & (y_rep != goal)
    hit = counted & (target.predict_labels(patched.numpy()) == goal)
    counted, hit = counted.reshape(samples, n).T, hit.reshape(samples, n).T
    per_image = np.divide(hit.sum(1), counted.sum(1), out=np.zeros(n), where=counted.sum(1) > 0)
    has_pairs = counted.sum(1) > 0
    return (float(hit.sum() / max(1, counted.sum())), float((per_image[has_pairs] > 0.5).mean()),
            int(counted.sum()))


if __name__ == "__main__":
    main()
