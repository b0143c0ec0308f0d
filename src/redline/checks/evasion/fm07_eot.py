"""FM07 adversarial examples in the physical domain: Expectation over Transformation.

A printed perturbation or sticker reaches the model through a camera: rotated, zoomed,
shifted, with other lighting, blurred and noisy. Expectation over Transformation (EOT,
Athalye et al. 2018) optimises the attack for the average loss over random draws of those
changes (:mod:`redline.checks.evasion.transforms`), so it survives them. Two checks:

* ``FM07.eot_perturbation``: one L-inf bounded perturbation per input (``epsilon`` a fraction
  of the pixel range, default 0.2, the default of every FM01/FM07 check; see
  :mod:`redline.util.epsilon`).
* ``FM07.eot_patch``: one universal square patch (a given fraction of the image area)
  that fools the model wherever it is stuck (Brown et al. 2017).

Both are measured under *held-out* transformations: new random draws from ranges wider
than the ones the attack optimised for, sent to the target as evaluation queries. A pair
(image, transformation) counts only when the clean image under that same transformation
is still classified correctly, so errors caused by the transformation alone are not
credited to the attack.

Access: white box through the target's gradients (each optimisation row is a counted
``logits`` query), or black box through a surrogate trained on labels the target gives
for the attacker's own data (:mod:`redline.checks.evasion.surrogate`; those labelling queries are
the attack's only queries).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ...util.epsilon import LINF_FRACTION, epsilon_units
from ...util.evidence import save_arrays, try_plot
from ...util.norms import l2, linf, median_or_none
from ...util.stats import with_intervals
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .base import (
    EVASION_METRICS, N_INPUTS_DOC, THRESHOLD_DOC, Attempt, EvasionCheck, EvasionRun, Plan,
    require_at_least_one,
)

_ACCESS = ("auto", "white_box", "surrogate")
_MIN_LABELS = 20
# What the parameters both EOT checks share mean.
_EOT_DOCS = {
    "access": "how gradients are obtained: auto, white_box (the target's) or surrogate (trained on its labels)",
    "ranges": "transformation ranges (rotation, scale, brightness...) as a mapping; null: the defaults",
    "holdout_widen": "factor by which the transformation ranges are widened for held-out scoring (at least 1)",
}


class _EotCheck(Check):
    """What both EOT checks share: choosing the model to optimise on, and held-out scoring."""

    needs = Needs(modality=("image",), roles=("test",), attacker=True)
    sample_rows = "evaluation"  # apart from the attacker's (surrogate or patch) rows

    def _validate(self, target=None) -> None:
        """The parameters both EOT checks share; the image shape only when a target is given."""
        if self.access not in _ACCESS:
            raise ValueError(f"access must be one of {', '.join(_ACCESS)}, not {self.access!r}")
        if self.holdout_widen < 1:
            raise ValueError("holdout_widen must be at least 1")
        require_at_least_one(self, "steps", "eval_samples")
        if target is not None and len(target.input_spec.shape) != 3:
            raise NotApplicable(f"EOT transformations need (channels, height, width) images, not {target.input_spec.shape}")

    _common_validation = _validate

    def _model(self, target, data, label_budget: int, rng) -> tuple[Any, str, Any]:
        """(differentiable logits function, access used, surrogate or None)."""
        from .surrogate import train_surrogate

        access = self.access
        if access == "auto":
            access = "white_box" if target.capabilities.gradients else "surrogate"
        if access == "white_box":
            if not target.capabilities.gradients:
                raise NotApplicable(f"white-box EOT needs the target's gradients; use --set {self.id}.access=surrogate")
            return target.logits, access, None
        x_owned, _ = data.attacker_data()
        n_label = min(len(x_owned), label_budget)
        if n_label < _MIN_LABELS:
            raise NotApplicable(f"the budget leaves {n_label} queries to label a surrogate's training data")
        try:
            surrogate = train_surrogate(target, x_owned[rng.permutation(len(x_owned))], max_queries=n_label,
                                        seed=int(rng.integers(2**31 - 1)))
        except ValueError as exc:
            raise NotApplicable(f"could not train a surrogate: {exc}") from None
        return surrogate.logits, access, surrogate

    @staticmethod
    def _access_metrics(access: str, surrogate, target, data) -> dict[str, Any]:
        from .surrogate import agreement

        metrics: dict[str, Any] = {"access": access}
        if surrogate is not None:
            with target.ledger.evaluating():
                metrics["surrogate_agreement"] = agreement(surrogate, target, data.evaluation_data()[0][:300].astype(np.float32))
            metrics["labelling_queries"] = int(surrogate.labelling_queries)
        return metrics


class EotPerturbation(_EotCheck, EvasionCheck):
    id = "FM07.eot_perturbation"
    mode = "FM07"
    title = "Perturbations that survive physical transformations (Expectation over Transformation)"
    norm = "linf"  # the ball the base class re-checks the perturbations against
    budget_can_decide = False  # judged on held-out transformations, not a query-limited search
    default_budget = 20_000
    metrics = (
        *EVASION_METRICS, "access", "eval_transformations",
        "holdout_widen", "inputs_fooled_majority", "labelling_queries", "surrogate_agreement",
        "transformed_clean_accuracy", "untransformed_success_rate"
    )
    param_docs = {
        "epsilon": f"largest L-inf perturbation, a fraction of the input range (null: {LINF_FRACTION:g}, the shared default)",
        "steps": "optimisation steps",
        "samples": "transformations averaged per step",
        "n_inputs": N_INPUTS_DOC,
        "access": _EOT_DOCS["access"],
        "ranges": _EOT_DOCS["ranges"],
        "holdout_widen": _EOT_DOCS["holdout_widen"],
        "eval_samples": "held-out transformations per input when scoring",
        "success_threshold": THRESHOLD_DOC,
    }

    def __init__(
        self,
        epsilon: float | None = None,
        steps: int = 20,
        samples: int = 8,
        n_inputs: int = 32,
        access: str = "auto",
        ranges: dict | None = None,
        holdout_widen: float = 1.25,
        eval_samples: int = 16,
        success_threshold: float = 0.3,
    ):
        self.epsilon = epsilon
        self.steps = steps
        self.samples = samples
        self.n_inputs = n_inputs
        self.access = access
        self.ranges = ranges
        self.holdout_widen = holdout_widen
        self.eval_samples = eval_samples
        self.success_threshold = success_threshold

    def attack_epsilon(self, target) -> float:
        from .transforms import TransformRanges

        self._common_validation(target)
        require_at_least_one(self, "samples", "n_inputs")
        TransformRanges.from_value(self.ranges)  # bad ranges are refused before any query
        # The default every FM01/FM07 check shares: 0.2 of the pixel range (L-inf), so a
        # finding here compares with FM01's on the same images; ``epsilon`` is a fraction of
        # that range, as everywhere (redline.util.epsilon).
        return epsilon_units(self.epsilon, target.input_spec, "linf")

    def plan(self, run: EvasionRun) -> Plan:
        steps, samples, budget = int(self.steps), int(self.samples), run.budget
        n = len(run.xa)
        if self.access == "white_box" or (self.access == "auto" and run.target.capabilities.gradients):
            # Every step sends n x samples transformed rows through the target; shrink the
            # number of inputs first, then the samples per step, to fit the budget.
            n = min(n, budget // (steps * samples))
            if n == 0 and len(run.xa):
                n, samples = 1, max(1, budget // steps)
                if budget < steps:
                    raise NotApplicable(f"a budget of {budget} queries is too small for {steps} EOT steps")
        return Plan(n, details=samples)

    def run_attack(self, run: EvasionRun) -> Attempt:
        import torch

        from ...util.momentum import momentum_linf_attack
        from .transforms import TransformRanges, apply_transform, sample_params

        ranges = TransformRanges.from_value(self.ranges)
        spec = run.target.input_spec
        span = float(spec.upper - spec.lower) or 1.0
        steps, samples, xa, ya, n = int(self.steps), run.plan.details, run.xa, run.ya, run.n
        model, access, surrogate = self._model(run.target, run.data, run.budget, run.rng)
        run.ctx.progress(1, 3)

        gen = torch.Generator().manual_seed(int(run.rng.integers(2**31 - 1)))
        y_rep = torch.from_numpy(np.tile(ya, samples).astype(np.int64))

        def expected_loss(batch):
            # A fresh draw of `samples` transformations per input at every step.
            params = sample_params(n * samples, ranges, gen)
            seen = apply_transform(batch.repeat(samples, 1, 1, 1), params, spec.lower, spec.upper)
            loss = torch.nn.functional.cross_entropy(model(seen), y_rep, reduction="none")
            return loss.view(samples, n).mean(dim=0)

        if n:
            x_adv = momentum_linf_attack(expected_loss, torch.from_numpy(xa), epsilon=run.epsilon * span, steps=steps,
                                         lower=spec.lower, upper=spec.upper).numpy()
        else:
            x_adv = xa.copy()
        run.ctx.progress(2, 3)
        state = {"ranges": ranges, "access": access, "surrogate": surrogate, "span": span, "samples": samples}
        return Attempt(x_adv, state=state)

    def metrics_for(self, run, attempt) -> dict:
        """Scored under held-out transformations (evaluation queries), beside the base's
        untransformed re-check (``untransformed_success_rate``)."""
        import torch

        state, target, n, x_adv = attempt.state, run.target, run.n, attempt.x_adv
        state["held_out"] = held_out = state["ranges"].widened(float(self.holdout_widen))
        eval_gen = torch.Generator().manual_seed(int(run.rng.integers(2**31 - 1)))
        with target.ledger.evaluating():
            clean_ok, adv_ok, clean_again = _held_out_scores(target, run.xa, x_adv, run.ya, held_out,
                                                             int(self.eval_samples), eval_gen)
        run.ctx.progress(3, 3)
        # The target's own changes of mind on the same transformed clean inputs, pair by pair.
        state["pair_flips"] = (int((clean_ok & ~clean_again).sum()), int(clean_ok.sum()))
        rates, per_input = _pair_rates(run.correct, clean_ok, adv_ok)
        state["per_input"] = per_input
        state["robust_inputs"] = robust_inputs = per_input >= 0.5
        delta = (x_adv - run.xa)[robust_inputs]
        access, span, steps = state["access"], state["span"], int(self.steps)
        metrics = {
            "norm": "linf",
            "epsilon": run.epsilon,
            "success_rate": rates["success_rate"],
            "clean_accuracy": rates["clean_accuracy"],
            "transformed_clean_accuracy": rates["transformed_clean_accuracy"],
            "robust_accuracy": rates["robust_accuracy"],
            "untransformed_success_rate": float((run.adv_pred != run.ya).mean()) if n else 0.0,
            "inputs_fooled_majority": float(robust_inputs.mean()) if n else 0.0,
            "median_linf": median_or_none(linf(delta / span)),  # in range units, like epsilon
            "median_l2": median_or_none(l2(delta / span)),
            "median_queries": float(steps * state["samples"]) if access == "white_box" and n else None,
            "attacked_inputs": int(n),
            "eval_transformations": int(clean_ok.size),
            "holdout_widen": float(self.holdout_widen),
            **self._access_metrics(access, state["surrogate"], target, run.data),
        }
        # Pairs of one input are correlated: the interval counts inputs, not pairs (wider, honest).
        return with_intervals(metrics, {"success_rate": n, "clean_accuracy": len(run.correct)})

    def attack_evidence(self, run, attempt) -> dict:
        return {"ranges": attempt.state["ranges"].to_dict(), "held_out_ranges": attempt.state["held_out"].to_dict()}

    def clean_changes(self, run, attempt) -> tuple[int, int]:
        """Every held-out transformed clean input was asked twice: far more pairs than the
        base's one re-ask per attacked input."""
        own = super().clean_changes(run, attempt)
        pairs = attempt.state.get("pair_flips")
        return pairs if pairs and pairs[1] > own[1] else own

    def ball_evidence(self, run) -> dict:
        return {}  # one range for every pixel: nothing per feature to list

    def example_arrays(self, run, attempt) -> dict:
        return {"success_per_input": attempt.state["per_input"]}

    def examples_plot(self, run, attempt) -> list[str]:
        robust_inputs = attempt.state["robust_inputs"]
        if not (run.n and robust_inputs.any()):
            return []
        return _example_plot(run.ctx, f"{self.id}-examples.png", run.xa, attempt.x_adv, robust_inputs,
                             attempt.state["held_out"], run.target.input_spec, labels=(run.ya, run.adv_pred))

    def summary(self, run, attempt, metrics) -> str:
        n, access = run.n, attempt.state["access"]
        robust_inputs = attempt.state["robust_inputs"]
        return (
            f"EOT perturbations (L-inf {run.epsilon:.3g}, {access.replace('_', '-')}) kept fooling the target under "
            f"{metrics['success_rate']:.0%} of held-out transformations ({int(self.eval_samples)} per input, ranges "
            f"widened x{self.holdout_widen:g}) on {n} inputs; {robust_inputs.mean() if n else 0:.0%} of the inputs "
            "were fooled under most of them."
        )


class EotPatch(_EotCheck):
    id = "FM07.eot_patch"
    mode = "FM07"
    title = "Universal adversarial patch robust to placement and physical transformations"
    default_budget = 10_000
    metrics = (
        "access", "clean_accuracy", "eval_transformations", "evaluated_images", "holdout_widen",
        "images_fooled_any", "images_fooled_majority", "labelling_queries", "median_queries",
        "optimisation_steps", "patch_area", "patch_side", "random_patch_success_rate",
        "patch_over_random_p_value", "robust_accuracy", "success_rate", "surrogate_agreement", "target_class",
        "transformed_clean_accuracy"
    )
    param_docs = {
        "area": "patch area as a share of the image, in (0, 1)",
        "steps": "optimisation steps of the patch",
        "batch_size": "images per step",
        "lr": "learning rate of the patch",
        "target_class": "class the patch should force (null: untargeted)",
        "n_inputs": N_INPUTS_DOC,
        "access": _EOT_DOCS["access"],
        "ranges": _EOT_DOCS["ranges"],
        "holdout_widen": _EOT_DOCS["holdout_widen"],
        "eval_samples": "held-out transformations per image when scoring",
        "success_threshold": THRESHOLD_DOC,
        "random_margin": "how much the patch must beat a random patch to count",
    }

    def __init__(
        self,
        area: float = 0.1,
        steps: int = 150,
        batch_size: int = 32,
        lr: float = 0.1,
        target_class: int | None = None,
        n_inputs: int = 100,
        access: str = "auto",
        ranges: dict | None = None,
        holdout_widen: float = 1.25,
        eval_samples: int = 8,
        success_threshold: float = 0.3,
        random_margin: float = 0.1,
    ):
        self.area = area
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.target_class = target_class
        self.n_inputs = n_inputs
        self.access = access
        self.ranges = ranges
        self.holdout_widen = holdout_widen
        self.eval_samples = eval_samples
        self.success_threshold = success_threshold
        self.random_margin = random_margin

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        import torch

        from .transforms import TransformRanges

        self._common_validation(target)
        if not 0 < self.area < 1:
            raise ValueError("area must be a fraction of the image in (0, 1)")
        require_at_least_one(self, "batch_size", "n_inputs")
        if self.target_class is not None and not 0 <= int(self.target_class) < target.n_classes:
            raise UsageError(f"{self.id}.target_class must be a class index in [0, {target.n_classes})")
        ranges = TransformRanges.from_value(self.ranges)
        spec = target.input_spec
        c, h, w = spec.shape
        side = max(1, round(np.sqrt(self.area * h * w)))
        steps, batch = int(self.steps), int(self.batch_size)
        x_owned, y_owned = data.attacker_data()
        white = self.access == "white_box" or (self.access == "auto" and target.capabilities.gradients)
        if white:
            if budget < steps:
                raise NotApplicable(f"a budget of {budget} queries is too small for {steps} patch steps")
            batch = min(batch, budget // steps)
        model, access, surrogate = self._model(target, data, budget, rng)
        ctx.progress(1, 3)

        gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        patch = self._optimise(torch, model, x_owned, y_owned, side, c, h, w, steps, batch, ranges, spec, gen, rng)
        ctx.progress(2, 3)

        x_held, y_held = data.evaluation_data()  # apart from the attacker's (surrogate or patch) rows
        idx = rng.permutation(len(x_held))[: int(self.n_inputs)]
        x, y = x_held[idx].astype(np.float32), y_held[idx].astype(int)
        held_out = ranges.widened(float(self.holdout_widen))
        eval_seed = int(rng.integers(2**31 - 1))
        noise_patch = torch.rand(patch.shape, generator=torch.Generator().manual_seed(eval_seed + 1))
        noise_patch = spec.lower + (spec.upper - spec.lower) * noise_patch
        with target.ledger.evaluating():
            correct = target.predict_labels(x) == y
            xa, ya = x[correct], y[correct]
            clean_ok, patched_ok, random_ok, again_ok = _patch_scores(
                target, xa, ya, patch, noise_patch, held_out, int(self.eval_samples), eval_seed, self.target_class)
        ctx.progress(3, 3)

        n = len(xa)
        rates, per_image = _pair_rates(correct, clean_ok, patched_ok)
        success_rate = rates["success_rate"]
        random_rate = _pair_rates(correct, clean_ok, random_ok)[0]["success_rate"]
        metrics = {
            "success_rate": success_rate,
            "random_patch_success_rate": random_rate,
            "images_fooled_any": float((per_image > 0).mean()) if n else 0.0,
            "images_fooled_majority": float((per_image >= 0.5).mean()) if n else 0.0,
            "clean_accuracy": rates["clean_accuracy"],
            "transformed_clean_accuracy": rates["transformed_clean_accuracy"],
            "robust_accuracy": rates["robust_accuracy"],
            "patch_area": float(side * side / (h * w)),
            "patch_side": int(side),
            "target_class": None if self.target_class is None else int(self.target_class),
            "optimisation_steps": steps,
            "median_queries": float(steps * batch) if access == "white_box" else None,
            "evaluated_images": int(n),
            "eval_transformations": int(clean_ok.size),
            "holdout_widen": float(self.holdout_widen),
            **self._access_metrics(access, surrogate, target, data),
        }
        with_intervals(metrics, {"success_rate": n, "random_patch_success_rate": n, "clean_accuracy": len(correct)})
        patch_np = patch.detach().numpy()
        evidence: dict = {"ranges": ranges.to_dict(), "held_out_ranges": held_out.to_dict()}
        rel = save_arrays(ctx, f"{self.id}-patch.npz", patch=patch_np, success_per_image=per_image)
        if rel:
            evidence["examples"] = rel
        plots = _patch_plot(ctx, f"{self.id}-patch.png", patch_np, xa, patch, held_out, spec, eval_seed)
        if plots:
            evidence["plots"] = plots
        random_per_image = _pair_rates(correct, clean_ok, random_ok)[1]
        better, p_value = _images_beating(per_image, random_per_image, clean_ok.sum(axis=1) > 0)
        metrics["patch_over_random_p_value"] = p_value
        beats_random = success_rate >= random_rate + float(self.random_margin) and p_value < _PATCH_ALPHA
        flips = int((clean_ok & ~again_ok).sum())
        noise = flips / max(int(clean_ok.sum()), 1)
        vulnerable = n > 0 and success_rate >= self.success_threshold and beats_random
        goal = "any wrong class" if self.target_class is None else f"class {int(self.target_class)}"
        summary = (
            f"A {side}x{side} universal patch ({side * side / (h * w):.0%} of the image, {access.replace('_', '-')}) "
            f"turned {success_rate:.0%} of held-out placements and transformations of {n} images into {goal} "
            f"(a random patch of the same size: {random_rate:.0%}; the patch did better on {better} of the images, "
            f"sign test p = {p_value:.2g})."
        )
        undecided = ""
        if noise > 0:
            evidence["clean_recheck"] = {"changed": flips, "asked": int(clean_ok.sum()), "rate": noise}
            summary += f" Asked again about the unpatched images, the target changed its answer on {noise:.0%} of them."
            if vulnerable and success_rate - noise < self.success_threshold:
                vulnerable, undecided = False, (
                    f"the target changes its answer on {noise:.0%} of unpatched images asked twice, about as often as "
                    f"the patch fools it ({success_rate:.0%}): its own randomness, not the patch, may explain the errors")
        if not vulnerable and not undecided and success_rate >= self.success_threshold and not beats_random and n < 20:
            undecided = (f"the patch fooled {success_rate:.0%} but {n} images are too few to tell it from a random "
                         "patch; more held-out images (n_inputs) would decide")
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _optimise(self, torch, model, x_owned, y_owned, side, c, h, w, steps, batch, ranges, spec, gen, rng):
        """Adam on the patch (through a sigmoid, so it stays in range) over random images,
        placements and transformations."""
        lo, span = float(spec.lower), float(spec.upper - spec.lower) or 1.0
        raw = torch.zeros((c, side, side), requires_grad=True)
        optimizer = torch.optim.Adam([raw], lr=float(self.lr))
        pool = torch.from_numpy(np.ascontiguousarray(x_owned, dtype=np.float32))
        pool_labels = torch.from_numpy(np.asarray(y_owned, dtype=np.int64))
        for _ in range(steps):
            rows = torch.from_numpy(rng.integers(0, len(pool), size=batch))
            xb, yb = pool[rows], pool_labels[rows]
            patch = lo + span * torch.sigmoid(raw)
            seen = stick_patch(xb, patch, ranges, gen, spec.lower, spec.upper)
            logits = model(seen)
            loss = _patch_loss(torch, logits, yb, self.target_class)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (lo + span * torch.sigmoid(raw)).detach()


#: One-sided sign test over images (patch's fooled share against the random patch's): the
#: patch must beat the random one on significantly more images than it loses on.
_PATCH_ALPHA = 0.01


def _images_beating(patch_rate: np.ndarray, random_rate: np.ndarray, counted: np.ndarray) -> tuple[int, float]:
    """(images where the patch fooled more than the random patch, one-sided sign-test p-value
    over the images where they differ). Pairs of one image share the image: the test counts
    images, not pairs."""
    from ...util.stats import mcnemar_greater

    diff = (patch_rate - random_rate)[counted]
    # The sign test is McNemar's on "the patch did better" against "the random patch did".
    return int((diff > 0).sum()), mcnemar_greater(diff > 0, diff < 0)


def _pair_rates(correct, clean_ok, attack_ok) -> tuple[dict[str, float], np.ndarray]:
    """Rates over (input, held-out transformation) pairs, each array (n, samples). A pair
    counts only where the clean input under that transformation is still right, so errors
    of the transformation alone are not credited to the attack. Returns the rates and the
    share of each input's counted pairs the attack fooled."""
    n = len(clean_ok)
    fooled = clean_ok & ~attack_ok
    counted = clean_ok.sum(axis=1)
    per_input = np.divide(fooled.sum(axis=1), counted, out=np.zeros(n), where=counted > 0)
    clean_accuracy = float(correct.mean()) if len(correct) else 0.0
    return {
        "success_rate": float(fooled.sum() / clean_ok.sum()) if clean_ok.any() else 0.0,
        "clean_accuracy": clean_accuracy,
        "transformed_clean_accuracy": float(clean_ok.mean()) if n else 0.0,
        "robust_accuracy": clean_accuracy * (float(attack_ok.mean()) if n else 1.0),
    }, per_input


def _patch_loss(torch, logits, labels, target_class):
    """Targeted: cross-entropy towards ``target_class``. Untargeted: -log(1 - p_true), which
    is bounded near zero once an image is fooled, so the patch keeps working on the images
    it does not fool yet instead of pushing the easy ones further."""
    if target_class is not None:
        goal = torch.full((len(logits),), int(target_class), dtype=torch.long)
        return torch.nn.functional.cross_entropy(logits, goal)
    p_true = torch.softmax(logits, dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    return -torch.log((1 - p_true).clamp_min(1e-6)).mean()


def stick_patch(x, patch, ranges, gen, lower, upper, params=None):
    """Paste ``patch`` onto each image at a random position, angle and size, then apply the
    photometric part of the camera model to the whole picture (differentiable in ``patch``)."""
    import torch
    import torch.nn.functional as F

    from .transforms import photometric, sample_params

    n, c, h, w = x.shape
    side = patch.shape[-1]
    if params is None:
        params = sample_params(n, ranges, gen)
    scale = params["scale"]
    # Centre positions that keep the (scaled) patch inside the image, in [-1, 1] coordinates.
    room_x = (1 - scale * side / w).clamp_min(0)
    room_y = (1 - scale * side / h).clamp_min(0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * room_x if "cx" not in params else params["cx"]
    cy = (torch.rand(n, generator=gen) * 2 - 1) * room_y if "cy" not in params else params["cy"]
    params["cx"], params["cy"] = cx, cy
    cos, sin = torch.cos(params["angle"]), torch.sin(params["angle"])
    # Output coordinates -> patch coordinates: undo the shift, rotation and size.
    ax, ay = w / (scale * side), h / (scale * side)
    a11, a12, a21, a22 = cos * ax, sin * ay, -sin * ax, cos * ay
    theta = torch.stack([
        torch.stack([a11, a12, -(a11 * cx + a12 * cy)], dim=1),
        torch.stack([a21, a22, -(a21 * cx + a22 * cy)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    placed = F.grid_sample(patch.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    mask = F.grid_sample(torch.ones(n, 1, side, side), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
    composite = x * (1 - mask) + placed * mask
    span = float(upper - lower) or 1.0
    return photometric(composite, params, span).clamp(lower, upper)


def _held_out_scores(target, x, x_adv, y, ranges, samples, gen):
    """(clean correct, adversarial correct, clean correct when asked again), each (n, samples),
    under the same held-out draws. The second ask of the clean inputs measures how often the
    target changes its answer on its own (a model answering at random 'was fooled' 83% of the
    time by perturbations that did nothing)."""
    import torch

    from .transforms import apply_transform, sample_params

    n = len(x)
    if not n:
        return tuple(np.zeros((0, samples), dtype=bool) for _ in range(3))
    spec = target.input_spec
    params = sample_params(n * samples, ranges, gen)
    with torch.no_grad():
        clean = apply_transform(torch.from_numpy(x).repeat(samples, 1, 1, 1), params, spec.lower, spec.upper)
        adv = apply_transform(torch.from_numpy(x_adv).repeat(samples, 1, 1, 1), params, spec.lower, spec.upper)
    y_rep = np.tile(y, samples)
    clean_ok = target.predict_labels(clean.numpy()) == y_rep
    adv_ok = target.predict_labels(adv.numpy()) == y_rep
    again_ok = target.predict_labels(clean.numpy()) == y_rep
    return clean_ok.reshape(samples, n).T, adv_ok.reshape(samples, n).T, again_ok.reshape(samples, n).T


def _patch_scores(target, x, y, patch, noise_patch, ranges, samples, seed, target_class):
    """(clean ok, patched ok, random-patch ok), each (n, samples): 'ok' means the attack
    failed on that pair (true label kept, or for a targeted patch: not the target class)."""
    import torch

    from .transforms import photometric, sample_params

    n = len(x)
    if not n:
        empty = np.zeros((0, samples), dtype=bool)
        return empty, empty, empty, empty
    spec = target.input_spec
    span = float(spec.upper - spec.lower) or 1.0
    gen = torch.Generator().manual_seed(seed)
    params = sample_params(n * samples, ranges, gen)
    x_rep = torch.from_numpy(x).repeat(samples, 1, 1, 1)
    with torch.no_grad():
        patched = stick_patch(x_rep, patch, ranges, gen, spec.lower, spec.upper, params=params)
        random = stick_patch(x_rep, noise_patch, ranges, gen, spec.lower, spec.upper, params=params)
        clean = photometric(x_rep, params, span).clamp(spec.lower, spec.upper)
    y_rep = np.tile(y, samples)
    answers = [target.predict_labels(batch.numpy()) for batch in (clean, patched, random, clean)]
    clean_ok = answers[0] == y_rep
    if target_class is None:
        oks = [a == y_rep for a in answers[1:]]
    else:
        # A targeted patch succeeds only when the answer becomes the target class; images
        # of that class cannot be fooled into it and never count.
        clean_ok = clean_ok & (y_rep != int(target_class))
        oks = [a != int(target_class) for a in answers[1:]]
    return tuple(v.reshape(samples, n).T for v in (clean_ok, *oks))


def _example_plot(ctx, name, x, x_adv, keep, ranges, spec, labels=None):
    """Original / adversarial / transformed rows; ``labels`` (true classes, the target's
    answers on the untransformed adversarial images) caption the first two rows."""
    import torch

    from ...util import plots
    from .transforms import apply_transform, sample_params

    pick = np.flatnonzero(keep)[:6]
    params = sample_params(len(pick), ranges, torch.Generator().manual_seed(0))
    with torch.no_grad():
        seen = apply_transform(torch.from_numpy(x_adv[pick]), params, spec.lower, spec.upper).numpy()
    captions = None
    if labels is not None:
        y, y_adv = labels
        captions = [[f"class {int(c)}" for c in y[pick]], [f"predicted {int(c)}" for c in y_adv[pick]], []]
    rel = try_plot(ctx, name, plots.image_grid, [list(x[pick]), list(x_adv[pick]), list(seen)],
                   row_titles=["original", "adversarial", "through a held-out transformation"], captions=captions)
    return [rel] if rel else []


def _patch_plot(ctx, name, patch_np, x, patch, ranges, spec, seed):
    import torch

    from ...util import plots

    if not len(x):
        return []
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        seen = stick_patch(torch.from_numpy(x[:6]), patch, ranges, gen, spec.lower, spec.upper).numpy()
    rows = [[patch_np], list(seen)]
    rel = try_plot(ctx, name, plots.image_grid, rows, row_titles=["patch", "stuck on held-out images"])
    return [rel] if rel else []
