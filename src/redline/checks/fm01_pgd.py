"""FM01 perturbation: white-box projected gradient descent (Madry et al. 2018), L-inf and L2.

Batched over inputs; an input leaves the batch as soon as it is misclassified, so the
attack spends queries only on inputs that still resist. Every step's forward pass goes
through ``Target.logits`` and is counted. Success is re-checked through the target's
ordinary ``predict`` path, so a white-box mirror that disagrees with the deployed model
cannot inflate the result.
"""
from __future__ import annotations

import numpy as np

from ..util.ball import project_onto_ball, steepest_direction
from ..util.bpda import straight_through
from ..util.epsilon import resolve_epsilon
from ..util.evasion import evasion_metrics
from ..util.evidence import adversarial_grid, save_arrays, try_plot
from ..util.undecided import undecided_evasion
from .base import Check, CheckContext, Needs, NotApplicable, Outcome


class ProjectedGradientDescent(Check):
    id = "FM01.pgd"
    mode = "FM01"
    title = "White-box projected gradient descent evasion"
    needs = Needs(gradients=True)
    default_budget = 20_000

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

    def _validate(self, target) -> float:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', not {self.norm!r}")
        for name in ("steps", "restarts", "n_inputs", "curve_points"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        return resolve_epsilon(self.epsilon, target.input_spec, self.norm)

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
        metrics = evasion_metrics(self.norm, eps_max, xa, x_adv, success, correct, used)
        metrics["bpda_layers"] = patched
        success_rate = metrics["success_rate"]
        curve = {"epsilon": levels, "success_rate": [float(results[e][1].mean()) if len(xa) else 0.0 for e in levels]}
        evidence: dict = {"curve": curve}
        rel = save_arrays(ctx, f"{self.id}-examples.npz", x=xa, x_adv=x_adv, y=ya, y_adv=adv_pred)
        if rel:
            evidence["examples"] = rel
        plots = self._plots(ctx, curve, xa, x_adv, success)
        if plots:
            evidence["plots"] = plots
        vulnerable = len(xa) > 0 and success_rate >= self.success_threshold
        summary = (
            f"PGD-{self.norm} with epsilon {eps_max:.3g} turned {success.sum()} of {len(xa)} correctly "
            f"classified inputs into errors ({success_rate:.0%})."
        )
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
        """Best adversarial example per input over restarts, whether one was found, and queries used."""
        n = len(x0_np)
        best = x0_np.copy()
        found = np.zeros(n, dtype=bool)
        used = np.zeros(n, dtype=np.int64)
        if n == 0:
            return best, found, used
        spec = target.input_spec
        lo, hi = spec.lower, spec.upper
        alpha = self.step_size if self.step_size is not None else 2.5 * eps / steps
        constraints = spec.constraints
        x0_all = torch.from_numpy(x0_np)
        y_all = torch.from_numpy(y_np.astype(np.int64))
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for _ in range(restarts):
            active = np.flatnonzero(~found)
            if active.size == 0:
                break
            x0, y = x0_all[active], y_all[active]
            x = x0 + self._random_start(torch, x0, eps, gen)
            x = self._project(torch, x, x0, eps, lo, hi, constraints)
            for step in range(steps + 1):
                x = x.detach().requires_grad_(True)
                logits = target.logits(x)
                used[active] += 1
                pred = logits.argmax(dim=1)
                hit = (pred != y).numpy()
                if hit.any():
                    rows = active[hit]
                    best[rows] = x.detach().numpy()[hit]
                    found[rows] = True
                keep = ~hit
                if not keep.any():
                    break
                if step == steps:
                    break
                loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
                keep_t = torch.from_numpy(keep)
                x, x0, y, grad = x.detach()[keep_t], x0[keep_t], y[keep_t], grad[keep_t]
                active = active[keep]
                x = x + alpha * steepest_direction(grad, self.norm)
                x = self._project(torch, x, x0, eps, lo, hi, constraints)
        return best, found, used

    def _random_start(self, torch, x0, eps, gen):
        if self.norm == "linf":
            return (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps
        d = steepest_direction(torch.randn(x0.shape, generator=gen), "l2")  # a random unit direction
        r = torch.rand(x0.shape[0], generator=gen).view(-1, *[1] * (x0.dim() - 1))
        return d * r * eps

    def _project(self, torch, x, x0, eps, lo, hi, constraints):
        x = (x0 + project_onto_ball(x - x0, eps, self.norm)).clamp(lo, hi)
        if constraints:
            x = torch.from_numpy(constraints.project(x.detach().numpy(), x0.numpy()))
        return x

    def _plots(self, ctx, curve, xa, x_adv, success) -> list[str]:
        from ..report import plots

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
