"""FM03 model inversion: reconstructing a class representative (MI-Face, Fredrikson et al. 2015).

For each class the attack searches the input box for an image the model is sure belongs to
it, starting from the average image of the attacker's own data (class-agnostic):

    maximise  log p(c | x) - tv_weight * TV(x)   subject to  lower <= x <= upper

The total-variation term keeps the image smooth so the result looks like the class instead
of adversarial noise. A white-box target gives exact gradients (``Target.logits``); a
black-box one with probabilities gets gradient estimates from antithetic Gaussian probes
(NES, 2 * ``samples`` queries per image and step), spread over the budget. A model that
answers labels only is out of scope; rounded probabilities starve the estimates (flat
log-probabilities), so the search stalls at its start.

Whether a reconstruction shows the class is judged by a classifier the check trains on the
attacker's data (not the target): its accuracy on the reconstructions against its accuracy
on the starting images (the baseline), with a one-sided binomial test against chance; and
the target must itself give its reconstructions the intended class with a mean confidence
of at least 0.5. SSIM
to the class's mean training image and to its nearest training image are reported too.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...util.evidence import save_arrays, try_plot
from ...util.ssim import ssim, ssim_matrix
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome

_LOG_FLOOR = 1e-12
#: Mean confidence of the target in the intended class on its reconstructions needed to count them.
_MIN_TARGET_CONFIDENCE = 0.5


class ClassReconstruction(Check):
    id = "FM03.reconstruction"
    mode = "FM03"
    title = "Class representative reconstruction by model inversion (MI-Face)"
    needs = Needs(outputs="probabilities", modality=("image",), roles=("train",), attacker=True, disjoint=False)
    default_budget = 20_000
    metrics = (
        "attack_accuracy", "baseline_accuracy", "classes", "gradients", "p_value",
        "reconstruction_eval_accuracy", "reconstruction_ssim", "reconstruction_ssim_identification",
        "reconstruction_ssim_nearest", "reconstruction_ssim_other_classes", "reconstruction_ssim_start",
        "reconstruction_target_confidence", "steps"
    )
    param_docs = {
        "classes": "class indices to reconstruct (null: all)",
        "steps": "optimisation steps per class (fewer if the budget is smaller)",
        "step_size": "step size, relative to the input range",
        "tv_weight": "total-variation penalty that keeps reconstructions smooth (0 or more)",
        "samples": "probe pairs per gradient estimate when gradients are estimated",
        "sigma": "probe radius for estimated gradients, relative to the input range",
        "gradients": "auto, exact (the target's) or estimated (from probabilities)",
        "min_eval_accuracy": "accuracy of an independent model on the reconstructions needed to call it vulnerable",
        "alpha": "significance level against chance",
    }

    def __init__(
        self,
        classes: tuple[int, ...] | None = None,
        steps: int = 150,
        step_size: float = 0.01,
        tv_weight: float = 0.001,
        samples: int = 10,
        sigma: float = 0.05,
        gradients: str = "auto",
        min_eval_accuracy: float = 0.5,
        alpha: float = 0.01,
    ):
        self.classes = classes
        self.steps = steps
        self.step_size = step_size
        self.tv_weight = tv_weight
        self.samples = samples
        self.sigma = sigma
        self.gradients = gradients
        self.min_eval_accuracy = min_eval_accuracy
        self.alpha = alpha

    def _validate(self, target=None) -> tuple[np.ndarray, bool] | None:
        if self.gradients not in ("auto", "exact", "estimated"):
            raise UsageError(f"gradients must be 'auto', 'exact' or 'estimated', not {self.gradients!r}")
        for name in ("steps", "samples"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1")
        if self.step_size <= 0 or self.sigma <= 0 or self.tv_weight < 0:
            raise UsageError("step_size and sigma must be positive, tv_weight non-negative")
        if target is None:  # class indices and gradients are checked against the target in run
            return None
        classes = np.arange(target.n_classes) if self.classes is None else np.asarray(self.classes, dtype=int)
        if classes.size == 0 or classes.min() < 0 or classes.max() >= target.n_classes:
            raise UsageError(f"classes must be indices in [0, {target.n_classes})")
        exact = target.capabilities.gradients if self.gradients == "auto" else self.gradients == "exact"
        if exact and not target.capabilities.gradients:
            raise NotApplicable("exact gradients were asked for and the target exposes none")
        return classes, exact

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        from ..base import Inconclusive

        classes, exact = self._validate(target)
        spec = target.input_spec
        if len(spec.shape) < 2:
            raise NotApplicable(f"reconstructions are judged as images (SSIM), and the target takes flat rows shaped "
                                f"{tuple(spec.shape)}; an image-shaped input spec (C, H, W) would do")
        if (1.0 / target.n_classes) ** len(classes) >= float(self.alpha):
            # Even every class right could not be told from chance at alpha.
            raise Inconclusive(f"{len(classes)} of {target.n_classes} classes reconstructed perfectly would still "
                               f"be chance at p >= {float(self.alpha):g}; more classes would decide")
        x_own, y_own = data.attacker_data(disjoint=False)
        start = np.broadcast_to(x_own.mean(axis=0), (len(classes), *spec.shape)).astype(np.float64)
        k = len(classes)
        if exact:
            steps = min(int(self.steps), budget // k)
            cost = 1
        else:
            cost = 2 * int(self.samples)
            steps = min(int(self.steps), budget // (k * cost))
        if steps < 1:
            raise NotApplicable(f"one step for {k} classes needs {k * cost} queries; the budget is {budget}")

        if exact:
            recon = self._ascend_exact(target, start, classes, steps)
        else:
            recon = self._ascend_estimated(target, start, classes, steps, rng)

        evaluator = _train_evaluator(x_own, y_own)
        recon_pred = evaluator.predict(recon.reshape(k, -1))
        start_pred = evaluator.predict(start.reshape(k, -1))
        hits = recon_pred == classes
        chance = 1.0 / target.n_classes
        from scipy import stats

        p_value = float(stats.binomtest(int(hits.sum()), k, chance, alternative="greater").pvalue)
        with target.ledger.evaluating():
            confidence = np.asarray(target.predict(recon.astype(spec.dtype)))[np.arange(k), classes]

        means = np.stack([_class_images(data, c).mean(axis=0) for c in classes])
        # Every reconstruction against every class mean: the own class should stand out.
        by_class = ssim_matrix(recon, means)
        ssim_mean = np.diag(by_class)
        others = (by_class.sum(axis=1) - ssim_mean) / max(k - 1, 1)
        nearest = np.array([ssim_matrix(recon[i : i + 1], _class_images(data, c)).max() for i, c in enumerate(classes)])
        eval_accuracy = float(hits.mean())
        metrics = {
            "reconstruction_ssim": float(ssim_mean.mean()),
            "reconstruction_ssim_nearest": float(nearest.mean()),
            "reconstruction_ssim_start": float(ssim(start, means).mean()),
            "reconstruction_ssim_other_classes": float(others.mean()),
            "reconstruction_ssim_identification": float((by_class.argmax(axis=1) == np.arange(k)).mean()),
            "reconstruction_eval_accuracy": eval_accuracy,
            "reconstruction_target_confidence": float(confidence.mean()),
            "attack_accuracy": eval_accuracy,
            "baseline_accuracy": float((start_pred == classes).mean()),
            "p_value": p_value,
            "gradients": "exact" if exact else "estimated",
            "steps": int(steps),
            "classes": int(k),
        }
        # The target must recognise its own reconstructions too: a heavily regularised linear
        # model answered them at 0.10 (uniform over 10 classes) while the check's linear
        # evaluator, reading the same gradient direction, placed 8 of 10.
        recognised = float(confidence.mean()) >= _MIN_TARGET_CONFIDENCE
        vulnerable = eval_accuracy >= self.min_eval_accuracy and p_value < self.alpha and recognised
        evidence = self._evidence(ctx, recon, means, classes)
        how = "exact gradients" if exact else f"estimated gradients ({cost} queries per image and step)"
        summary = (
            f"{steps} steps of gradient ascent with {how} produced images that an independent classifier "
            f"assigns to the intended class for {hits.sum()} of {k} classes (SSIM to the class mean "
            f"{metrics['reconstruction_ssim']:.2f}, to other classes' means "
            f"{metrics['reconstruction_ssim_other_classes']:.2f}); the target itself gives them the intended class "
            f"with confidence {metrics['reconstruction_target_confidence']:.2f} on average"
            + ("" if recognised else f", under the {_MIN_TARGET_CONFIDENCE:g} needed to count them") + "."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    # -- the two searches ----------------------------------------------------------------
    def _ascend_exact(self, target, start, classes, steps) -> np.ndarray:
        import torch

        spec = target.input_spec
        span = float(spec.upper - spec.lower) or 1.0  # steps are relative to the input range
        x = torch.tensor(start, dtype=torch.float32)
        index = torch.as_tensor(classes)
        for _ in range(steps):
            x.requires_grad_(True)
            logp = torch.log_softmax(target.logits(x), dim=1)[torch.arange(len(x)), index]
            objective = logp.sum() - self.tv_weight * _total_variation(x).sum()
            (grad,) = torch.autograd.grad(objective, x)
            with torch.no_grad():
                x = (x + self.step_size * span * _unit(grad)).clamp(spec.lower, spec.upper)
        return x.detach().numpy().astype(np.float64)

    def _ascend_estimated(self, target, start, classes, steps, rng) -> np.ndarray:
        import torch

        spec = target.input_spec
        x = start.copy()
        k, q = len(x), int(self.samples)
        rows = np.arange(k)
        span = float(spec.upper - spec.lower) or 1.0
        for _ in range(steps):
            noise = rng.standard_normal((k, q, *x.shape[1:]))
            probes = np.concatenate([x[:, None] + self.sigma * span * noise, x[:, None] - self.sigma * span * noise], axis=1)
            probs = np.asarray(target.predict(probes.reshape(-1, *x.shape[1:]).astype(spec.dtype)))
            logp = np.log(np.clip(probs.reshape(k, 2 * q, -1)[rows, :, classes], _LOG_FLOOR, None))
            diff = (logp[:, :q] - logp[:, q:]).reshape(k, q, *[1] * (x.ndim - 1))
            grad = (diff * noise).mean(axis=1) / (2 * self.sigma * span)
            xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (tv_grad,) = torch.autograd.grad(_total_variation(xt).sum(), xt)
            grad = torch.from_numpy(grad) - self.tv_weight * tv_grad
            x = np.clip(x + self.step_size * span * _unit(grad).numpy(), spec.lower, spec.upper)
        return x

    def _evidence(self, ctx, recon, means, classes) -> dict:
        from ...util import plots

        evidence: dict = {}
        rel = save_arrays(ctx, f"{self.id}-reconstructions.npz", reconstructions=recon, class_means=means, classes=classes)
        if rel:
            evidence["examples"] = rel
        if recon.ndim >= 3:
            rel = try_plot(ctx, f"{self.id}-reconstructions.png", plots.image_grid, [list(recon), list(means)],
                           row_titles=["reconstructed", "class mean"], col_titles=[str(c) for c in classes])
            if rel:
                evidence["plots"] = [rel]
        return evidence


def _total_variation(x):
    """Anisotropic total variation over the last two axes (image rows and columns), per image."""
    if x.dim() < 3:
        return x.new_zeros(len(x))
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    return dh + dw


def _unit(grad):
    """Each image's gradient scaled to unit RMS, so the step size is per pixel whatever the scale."""
    rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
    return grad / rms.view(-1, *[1] * (grad.dim() - 1))


def _class_images(data, c: int) -> np.ndarray:
    images = data.x_train[np.asarray(data.y_train) == c]
    if not len(images):
        raise NotApplicable(f"class {c} has no training image to compare a reconstruction with")
    return images.astype(np.float64)


def _train_evaluator(x, y):
    """An independent judge: logistic regression on the attacker's own labelled data."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500, C=1.0).fit(x.reshape(len(x), -1), y)
