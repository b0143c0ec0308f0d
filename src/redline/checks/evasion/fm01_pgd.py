"""FM01 perturbation: white-box projected gradient descent (Madry et al. 2018), L-inf and L2.

Batched over inputs; an input leaves the batch as soon as it is misclassified, so the
attack spends queries only on inputs that still resist. Every step's forward pass goes
through ``Target.logits`` and is counted. Success is re-checked through the target's
ordinary ``predict`` path, so a white-box mirror that disagrees with the deployed model
cannot inflate the result.

``epsilon`` (and ``step_size``) are in units of each feature's range
(:mod:`redline.util.epsilon`; default L-inf 0.2, L2 0.1 * sqrt(d) on images and 0.2 on
tables); the attack runs in those units, so every feature's step is proportional to its
own range. Steps ascend the margin loss by default (``loss="margin"``; ``"ce"`` for cross-entropy), which keeps a useful
gradient on confident models where cross-entropy's vanishes.
"""
from __future__ import annotations

import numpy as np

from ...util.epsilon import EPSILON_METRICS, FeatureUnits, epsilon_units, units_note
from ...util.evidence import adversarial_grid, save_arrays, try_plot
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .ball import project_onto_ball, steepest_direction
from .bpda import straight_through
from .common import evasion_metrics
from .feasible import make_feasible
from .undecided import undecided_evasion


class ProjectedGradientDescent(Check):
    id = "FM01.pgd"
    mode = "FM01"
    title = "White-box projected gradient descent evasion"
    needs = Needs(gradients=True, roles=("test",))
    default_budget = 20_000
    metrics = (
        "success_rate", "clean_accuracy", "robust_accuracy", "median_queries", "median_l2",
        "median_linf", "norm", "epsilon", "attacked_inputs", "bpda_layers",
        # the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
        *EPSILON_METRICS,
    )
    param_docs = {
        "norm": "norm that measures the perturbation: linf or l2 (default linf)",
        "epsilon": ("largest perturbation allowed, in the attack's norm, as a fraction of each feature's range "
                    "(null: 0.2 for L-inf; see the README's 'Input domain and epsilon')"),
        "steps": "gradient steps per restart",
        "step_size": "size of one step (null: 2.5 * epsilon / steps)",
        "restarts": "random restarts per input; the best result counts",
        "n_inputs": "how many test inputs to attack (fewer if the budget cannot cover them)",
        "curve_points": "epsilon levels on the success curve (up to epsilon)",
        "success_threshold": "success rate at or above which the model is called vulnerable",
        "bpda": "attack gradient-masking layers through an identity backward pass (true/false)",
        "loss": "the loss each step ascends: margin (default) or ce (cross-entropy)",
    }

    def __init__(
        self,
        norm: str = "linf",
        epsilon: float | None = None,
        steps: int = 20,
        step_size: float | None = None,
        restarts: int = 1,
        n_inputs: int = 64,
        curve_points: int = 4,
        success_threshold: float = 0.3,
        bpda: bool = True,
        loss: str = "margin",
    ):
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps
        self.step_size = step_size
        self.restarts = restarts
        self.n_inputs = n_inputs
        self.curve_points = curve_points
        self.success_threshold = success_threshold
        self.bpda = bpda
        self.loss = loss

    def _validate(self, target=None) -> float | None:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', not {self.norm!r}")
        for name in ("steps", "restarts", "n_inputs", "curve_points"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if target is None:  # the default epsilon depends on the target's input range
            return epsilon_units(self.epsilon, None, self.norm) if self.epsilon is not None else None
        if self.loss not in ("margin", "ce"):
            raise ValueError(f"loss must be 'margin' or 'ce', not {self.loss!r}")
        return epsilon_units(self.epsilon, target.input_spec, self.norm)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        import torch

        eps_max = self._validate(target)
        levels = [eps_max * (i + 1) / self.curve_points for i in range(self.curve_points)]
        steps, restarts = int(self.steps), int(self.restarts)

        idx = rng.permutation(len(data.x_test))[: int(self.n_inputs)]
        x, y = data.x_test[idx].astype(np.float32), data.y_test[idx].astype(int)
        with target.ledger.evaluating():
            clean_pred = target.predict_labels(x)
        correct = clean_pred == y
        xa, ya = x[correct], y[correct]
        # Spread the budget: each curve level attacks the same inputs; keep the most inputs
        # that fit, dropping curve levels first, then steps.
        # An input costs at most (steps + 1) forward passes per restart and curve level.
        n = min(len(xa), budget // (len(levels) * (steps + 1) * restarts))
        if n == 0:
            levels = [eps_max]
            n = min(len(xa), budget // ((steps + 1) * restarts))
        if n == 0 and len(xa):
            n, steps, restarts = 1, budget - 1, 1
            if steps < 0:
                raise NotApplicable(f"a budget of {budget} queries is too small for one PGD step")
        xa, ya = xa[:n], ya[:n]

        results = {}
        # Layers that mask gradients (input squeezing) get an identity backward pass, so the
        # attack cannot mistake a zero gradient for robustness; success is still judged on
        # the deployed forward pass below.
        with straight_through(target, xa[:8], enabled=bool(self.bpda)) as patched:
            for i, eps in enumerate(levels):
                x_adv, found, used = self._attack(torch, target, xa, ya, eps, steps, restarts, rng)
                results[eps] = (x_adv, found, used)
                ctx.progress(i + 1, len(levels))

        x_adv, found, used = results[eps_max]
        with target.ledger.evaluating():
            adv_pred = target.predict_labels(x_adv) if len(x_adv) else np.zeros(0, dtype=int)
        success = adv_pred != ya  # re-checked on the deployed prediction path
        units = FeatureUnits.from_spec(target.input_spec)
        metrics = evasion_metrics(self.norm, eps_max, xa, x_adv, success, correct, used, units=units)
        metrics["bpda_layers"] = list(patched)
        success_rate = metrics["success_rate"]
        curve = {"epsilon": levels, "success_rate": [float(results[e][1].mean()) if len(xa) else 0.0 for e in levels]}
        evidence: dict = {"curve": curve, **units.describe(eps_max)[1]}
        if patched.note:  # a TorchScript model: what the gradient-masking probe could and could not do
            evidence["bpda"] = patched.note
        rel = save_arrays(ctx, f"{self.id}-examples.npz", x=xa, x_adv=x_adv, y=ya, y_adv=adv_pred)
        if rel:
            evidence["examples"] = rel
        plots = self._plots(ctx, curve, xa, x_adv, success)
        if plots:
            evidence["plots"] = plots
        vulnerable = len(xa) > 0 and success_rate >= self.success_threshold
        summary = (
            f"PGD-{self.norm} with epsilon {eps_max:.3g}{units_note(units)} turned {success.sum()} of {len(xa)} correctly "
            f"classified inputs into errors ({success_rate:.0%})."
        )
        if patched.note and "vanish" in patched.note:
            summary += f" {patched.note}."
        if patched:
            summary += (f" The gradient-masking layer(s) {', '.join(patched)} were attacked through an identity "
                        "backward pass (BPDA).")
        # A budget that left only a handful of inputs cannot rule the cut-off out.
        undecided = "" if vulnerable else undecided_evasion(
            rate=success_rate, n=len(xa), threshold=self.success_threshold, budget=budget,
            per_input=budget // max(len(xa), 1), budget_limited=len(xa) < int(correct.sum()))
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _attack(self, torch, target, x0_np, y_np, eps, steps, restarts, rng):
        """Best adversarial example per input over restarts, whether one was found, and queries used.

        The attack runs in range units (``eps`` too): every feature's step and ball are
        proportional to its own range, so raw-unit columns 0.05 and 4000 wide both move.
        """
        n = len(x0_np)
        best = x0_np.copy()
        found = np.zeros(n, dtype=bool)
        used = np.zeros(n, dtype=np.int64)
        if n == 0:
            return best, found, used
        spec = target.input_spec
        units = FeatureUnits.from_spec(spec).for_torch(torch)
        alpha = self.step_size if self.step_size is not None else 2.5 * eps / steps
        constraints = spec.constraints
        relaxed = constraints.continuous()
        x0_all = units.to_unit(x0_np)
        y_all = torch.from_numpy(y_np.astype(np.int64))
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for _ in range(restarts):
            active = np.flatnonzero(~found)
            if active.size == 0:
                break
            x0, y = x0_all[active], y_all[active]
            x = x0 + self._random_start(torch, x0, eps, gen)
            x = self._project(x, x0, x0_np[active], eps, units, relaxed)
            for step in range(steps + 1):
                # Feature constraints: the model sees (and is judged on) the submittable point,
                # while the steps accumulate on the unconstrained iterate, moved by the
                # gradient taken at the submittable point (straight-through). Snapping every
                # step would undo any step shorter than half a category's spacing.
                xe = self._feasible(x, x0_np[active], eps, units, spec) if constraints else x
                xe = xe.detach().requires_grad_(True)
                logits = target.logits(units.to_target(xe))
                used[active] += 1
                pred = logits.argmax(dim=1)
                hit = (pred != y).numpy()
                if hit.any():
                    rows = active[hit]
                    best[rows] = units.to_numpy(xe[torch.from_numpy(hit)], x0_np.dtype)
                    found[rows] = True
                keep = ~hit
                if not keep.any():
                    break
                if step == steps:
                    break
                (grad,) = torch.autograd.grad(self._loss(torch, logits, y), xe)
                keep_t = torch.from_numpy(keep)
                x, x0, y, grad = x.detach()[keep_t], x0[keep_t], y[keep_t], grad[keep_t]
                active = active[keep]
                x = x + alpha * steepest_direction(grad, self.norm)
                x = self._project(x, x0, x0_np[active], eps, units, relaxed)
        if constraints and found.any():  # back in target units: exact immutable and integer values again
            best[found] = constraints.project(best[found], x0_np[found])
        return best, found, used

    def _loss(self, torch, logits, y):
        """What each step ascends. ``margin`` (default): the best other class's logit minus the
        true class's (Carlini-Wagner). Cross-entropy saturates when the model is confident:
        a logistic regression on raw features has logits in the hundreds, its softmax
        rounds to exactly one in float32 and the gradient to zero, so those inputs never
        move; the margin's gradient does not depend on confidence."""
        if self.loss == "ce":
            return torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        rows = torch.arange(len(y))
        others = logits.detach().clone()
        others[rows, y] = -float("inf")
        runner_up = others.argmax(dim=1)
        return (logits[rows, runner_up] - logits[rows, y]).sum()

    def _random_start(self, torch, x0, eps, gen):
        if self.norm == "linf":
            return (torch.rand(x0.shape, generator=gen, dtype=x0.dtype) * 2 - 1) * eps
        d = steepest_direction(torch.randn(x0.shape, generator=gen, dtype=x0.dtype), "l2")  # a random unit direction
        r = torch.rand(x0.shape[0], generator=gen, dtype=x0.dtype).view(-1, *[1] * (x0.dim() - 1))
        return d * r * eps

    def _project(self, x, x0, x0_np, eps, units, relaxed):
        """Into the ball and each feature's bounds (range units); immutable features and
        ranges (``relaxed``: the constraints without rounding) hold on the iterate too."""
        x = units.clamp(x0 + project_onto_ball(x - x0, eps, self.norm))
        if relaxed:
            x = units.project_constraints(x, x0_np, relaxed)
        return x

    def _feasible(self, x, x0_np, eps, units, spec):
        """The submittable point nearest ``x`` (range units): feature constraints applied in
        target units, kept inside the ball (util.feasible.make_feasible)."""
        x0 = np.asarray(x0_np, np.float64)
        feasible = make_feasible(units.to_numpy(x, np.float64), x0, spec, eps, self.norm, units.units)
        return units.to_unit(feasible)

    def _plots(self, ctx, curve, xa, x_adv, success) -> list[str]:
        from ...util import plots

        out = []
        rel = try_plot(ctx, f"{self.id}-curve.png", plots.line_plot,
                       {"success rate": (curve["epsilon"], curve["success_rate"])},
                       title="PGD success against perturbation size", xlabel=f"epsilon ({self.norm})",
                       ylabel="success rate")
        if rel:
            out.append(rel)
        rel = adversarial_grid(ctx, f"{self.id}-examples.png", xa, x_adv, success)
        if rel:
            out.append(rel)
        return out
