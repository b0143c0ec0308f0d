"""FM01 perturbation: the smallest perturbation that flips each input (Fast Minimum-Norm,
Pintor et al. 2021), L-inf and L2, white-box.

PGD answers "does a perturbation of size epsilon exist?"; this check answers "how small
can it be?" for every input, which is what a robustness curve needs: the fraction of
inputs broken at any budget follows from the per-input minimal norms of one run.

FMN keeps a radius per input. While the current point is adversarial the radius shrinks
(never above the best norm found); while it is not, the radius grows — on the first
approach by the linearised distance to the boundary (margin / dual norm of its gradient),
afterwards geometrically. Each step follows the normalised gradient of the margin loss
and is projected back onto the radius ball and the input domain. Step size and radius
change rate decay by cosine annealing, so the search settles on the boundary.

All inputs move as one batch; every forward pass is counted by the target's ledger, and
every example reported is re-checked on the deployed prediction path.

Norms, radii, ``epsilon`` and ``step_size`` are in units of each feature's range
(:mod:`redline.util.epsilon`): the search runs on inputs divided by their ranges, so a
raw-unit column 4000 wide and one 0.05 wide both move in proportion.
"""
from __future__ import annotations

import math

import numpy as np

from ...util.epsilon import EPSILON_METRICS, FeatureUnits, epsilon_units, units_note
from ...util.evidence import adversarial_grid, save_arrays, try_plot
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .ball import l2_norms, project_onto_ball, steepest_direction
from .bpda import straight_through
from .common import evasion_metrics
from .undecided import undecided_evasion


class FastMinimumNorm(Check):
    id = "FM01.min_norm"
    mode = "FM01"
    title = "White-box minimum-norm evasion (smallest perturbation per input)"
    needs = Needs(gradients=True, roles=("test",))
    default_budget = 20_000
    metrics = (
        "success_rate", "clean_accuracy", "robust_accuracy", "median_queries", "median_l2",
        "median_linf", "norm", "epsilon", "attacked_inputs", "bpda_layers", "found_rate",
        "median_min_norm", "median_min_norm_all",
        # the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
        *EPSILON_METRICS,
    )
    param_docs = {
        "norm": "norm that measures the perturbation: linf or l2 (default l2)",
        "epsilon": ("size at which success is judged; the attack itself looks for the smallest (null: redline's "
                    "default)"),
        "steps": "optimisation steps per input",
        "step_size": "initial step size (null: derived from the input range)",
        "gamma": "initial factor by which the norm budget shrinks or grows per step, in (0, 1)",
        "n_inputs": "how many test inputs to attack (fewer if the budget cannot cover them)",
        "success_threshold": "success rate at or above which the model is called vulnerable",
        "bpda": "attack gradient-masking layers through an identity backward pass (true/false)",
    }

    def __init__(
        self,
        norm: str = "l2",
        epsilon: float | None = None,
        steps: int = 100,
        step_size: float | None = None,
        gamma: float = 0.05,
        n_inputs: int = 64,
        success_threshold: float = 0.3,
        bpda: bool = True,
    ):
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps
        self.step_size = step_size
        self.gamma = gamma
        self.n_inputs = n_inputs
        self.success_threshold = success_threshold
        self.bpda = bpda

    def _validate(self, target=None) -> float | None:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', not {self.norm!r}")
        for name in ("steps", "n_inputs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < float(self.gamma) < 1:
            raise ValueError("gamma must be between 0 and 1")
        if self.step_size is not None and not float(self.step_size) > 0:
            raise ValueError("step_size must be positive")
        if target is None:  # the default epsilon depends on the target's input range
            return epsilon_units(self.epsilon, None, self.norm) if self.epsilon is not None else None
        return epsilon_units(self.epsilon, target.input_spec, self.norm)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        import torch

        eps = self._validate(target)
        steps = int(self.steps)
        idx = rng.permutation(len(data.x_test))[: int(self.n_inputs)]
        x, y = data.x_test[idx].astype(np.float32), data.y_test[idx].astype(int)
        with target.ledger.evaluating():
            clean_pred = target.predict_labels(x)
        correct = clean_pred == y
        xa, ya = x[correct], y[correct]
        # One forward pass per input and step, plus the starting point.
        n = min(len(xa), budget // (steps + 1))
        if n == 0 and len(xa):
            steps = budget - 1
            n = 1
            if steps < 1:
                raise NotApplicable(f"a budget of {budget} queries is too small for one minimum-norm step")
        xa, ya = xa[:n], ya[:n]

        # Gradient-masking front ends (input squeezing) are attacked through an identity
        # backward pass; every example is still judged on the deployed forward pass.
        with straight_through(target, xa[:8], enabled=bool(self.bpda)) as patched:
            x_best, min_norm, used = self._attack(torch, target, xa, ya, steps, ctx)
        with target.ledger.evaluating():
            adv_pred = target.predict_labels(x_best) if len(x_best) else np.zeros(0, dtype=int)
        # A mirror that disagrees with the deployed model must not count as a break.
        found = np.isfinite(min_norm) & (adv_pred != ya)
        min_norm = np.where(found, min_norm, np.inf)
        within = found & (min_norm <= eps * (1 + 1e-6))
        # Inputs broken only beyond epsilon are reported unperturbed at epsilon.
        x_at_eps = np.where(within.reshape(-1, *[1] * (xa.ndim - 1)), x_best, xa)
        units = FeatureUnits.from_spec(target.input_spec)
        metrics = evasion_metrics(self.norm, eps, xa, x_at_eps, within, correct, used, units=units)
        metrics["bpda_layers"] = list(patched)
        finite = min_norm[found]
        metrics["found_rate"] = float(found.mean()) if len(found) else 0.0
        metrics["median_min_norm"] = float(np.median(finite)) if finite.size else None
        # The median over all attacked inputs (unbroken ones count as infinitely robust):
        # None when fewer than half were broken at any size.
        metrics["median_min_norm_all"] = (float(np.median(min_norm)) if len(min_norm) and
                                          np.isfinite(np.median(min_norm)) else None)

        levels, curve_rate = self._curve(min_norm, eps)
        evidence: dict = {
            "curve": {"epsilon": levels, "success_rate": curve_rate},
            "min_norms": [float(v) if np.isfinite(v) else None for v in min_norm],
            **units.describe(eps)[1],
        }
        if patched.note:  # a TorchScript model: what the gradient-masking probe could and could not do
            evidence["bpda"] = patched.note
        rel = save_arrays(ctx, f"{self.id}-examples.npz", x=xa, x_adv=x_best, y=ya, y_adv=adv_pred,
                          min_norm=min_norm)
        if rel:
            evidence["examples"] = rel
        plots = self._plots(ctx, levels, curve_rate, xa, x_best, found)
        if plots:
            evidence["plots"] = plots
        rate = metrics["success_rate"]
        vulnerable = len(xa) > 0 and rate >= self.success_threshold
        med = metrics["median_min_norm"]
        summary = (
            f"Fast minimum-norm ({self.norm}) broke {found.sum()} of {len(xa)} correctly classified inputs"
            + (f"; median smallest perturbation {med:.3g}" if med is not None else "")
            + f"; {within.sum()} ({rate:.0%}) within epsilon {eps:.3g}{units_note(units)}."
            + (f" {patched.note}." if patched.note and "vanish" in patched.note else "")
        )
        # A budget that left only a handful of inputs cannot rule the cut-off out.
        undecided = "" if vulnerable else undecided_evasion(
            rate=rate, n=len(xa), threshold=self.success_threshold, budget=budget,
            per_input=budget // max(len(xa), 1), budget_limited=len(xa) < int(correct.sum()))
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _attack(self, torch, target, x0_np, y_np, steps, ctx):
        """Per input: the smallest-norm adversarial point found (or the input), its norm
        (inf when none was found) and the forward passes spent on it."""
        n = len(x0_np)
        # Forward passes spent until the first adversarial point was found (the search
        # goes on afterwards to shrink it; the check's query count includes that).
        to_first = np.zeros(n, dtype=np.int64)
        if n == 0:
            return x0_np.copy(), np.full(0, np.inf), to_first
        spec = target.input_spec
        constraints = spec.constraints
        relaxed = constraints.continuous()
        # The search runs in range units (each feature divided by its own range), so norms,
        # radii and steps mean the same for every feature, whatever its raw scale.
        units = FeatureUnits.from_spec(spec).for_torch(torch)
        lo, hi = units.lower, units.upper
        linf_norm = self.norm == "linf"
        dim = int(np.prod(x0_np.shape[1:]))
        # Step sizes: a tenth of each feature's range (L-inf) or of the range diagonal (L2),
        # so one setting fits images and tabular data alike.
        alpha0 = float(self.step_size) if self.step_size is not None else (
            0.1 if linf_norm else 0.1 * math.sqrt(dim))
        alpha_min = alpha0 / 100.0
        gamma0, gamma_min = float(self.gamma), 0.001

        x0 = units.to_unit(x0_np)
        y = torch.from_numpy(y_np.astype(np.int64))
        delta = torch.zeros_like(x0)
        radius = torch.full((n,), float("inf"))
        best_norm = torch.full((n,), float("inf"))
        best = x0.clone()
        rows = torch.arange(n)

        for k in range(steps + 1):
            xk = x0 + delta
            if constraints:
                # The model sees (and the norm is taken of) the submittable point; the steps
                # accumulate on the unconstrained iterate (straight-through), since snapping
                # it every step would undo steps shorter than half a category's spacing.
                xk = units.project_constraints(xk, x0_np, constraints)
            xk = xk.detach().requires_grad_(True)
            logits = target.logits(units.to_target(xk))
            true = logits[rows, y]
            others = logits.clone()
            others[rows, y] = -float("inf")
            margin = true - others.max(dim=1).values
            # The deployed model decides by argmax; a margin of -1e-7 that argmax resolves the
            # other way is not an adversarial example.
            is_adv = logits.detach().argmax(dim=1) != y
            dnorm = self._norm(torch, xk.detach() - x0 if constraints else delta)
            fresh = (is_adv & torch.isinf(best_norm)).numpy()
            to_first[fresh] = k + 1
            improved = is_adv & (dnorm < best_norm)
            best_norm = torch.where(improved, dnorm, best_norm)
            best[improved] = xk.detach()[improved]
            if k == steps:
                break
            (grad,) = torch.autograd.grad(margin.sum(), xk)
            with torch.no_grad():
                # Pixels pinned at a bound cannot move the way the step wants; leaving them in
                # would waste the step's length on clipping and underestimate the distance.
                xd = xk.detach()
                blocked = ((xd <= lo) & (grad > 0)) | ((xd >= hi) & (grad < 0))
                grad = grad.masked_fill(blocked, 0.0)
                cos = 0.5 * (1 + math.cos(math.pi * k / steps))
                gamma = gamma_min + (gamma0 - gamma_min) * cos
                alpha = alpha_min + (alpha0 - alpha_min) * cos
                gnorm = self._dual_norm(torch, grad).clamp_min(1e-12)
                never_found = torch.isinf(best_norm)
                # First approach: jump the radius to the linearised distance to the boundary,
                # overshooting a little so the search does not balance exactly on it.
                first = (dnorm + margin.detach().clamp_min(0) / gnorm) * (1 + gamma)
                grow = torch.where(never_found, first, radius * (1 + gamma))
                shrink = torch.minimum(radius * (1 - gamma), best_norm)
                shrink = torch.where(torch.isinf(radius), dnorm * (1 - gamma), shrink)
                radius = torch.where(is_adv, shrink, grow)
                step = steepest_direction(grad, self.norm)
                delta = delta - alpha * step
                delta = project_onto_ball(delta, radius, self.norm)
                x = units.clamp(x0 + delta)
                if relaxed:  # immutable features and ranges hold on the iterate itself
                    x = units.project_constraints(x, x0_np, relaxed)
                delta = x - x0
            ctx.progress(k + 1, steps)
        best_np = units.to_numpy(best, x0_np.dtype)
        found = np.isfinite(best_norm.numpy())
        if constraints and found.any():  # back in target units: exact immutable and integer values again
            best_np[found] = constraints.project(best_np[found], x0_np[found])
        return best_np, best_norm.numpy().astype(np.float64), to_first

    def _norm(self, torch, delta):
        delta = delta.detach()
        return delta.flatten(1).abs().max(dim=1).values if self.norm == "linf" else l2_norms(delta)

    def _dual_norm(self, torch, grad):
        flat = grad.flatten(1)
        return flat.abs().sum(dim=1) if self.norm == "linf" else flat.norm(dim=1)

    @staticmethod
    def _curve(min_norm: np.ndarray, eps: float, points: int = 12) -> tuple[list[float], list[float]]:
        """Fraction of attacked inputs broken at each perturbation size up to twice epsilon."""
        levels = [2 * eps * i / points for i in range(1, points + 1)]
        if not len(min_norm):
            return levels, [0.0] * len(levels)
        return levels, [float(np.mean(min_norm <= e * (1 + 1e-6))) for e in levels]

    def _plots(self, ctx, levels, rate, xa, x_best, found) -> list[str]:
        from ...util import plots

        out = []
        rel = try_plot(ctx, f"{self.id}-curve.png", plots.line_plot, {"broken inputs": (levels, rate)},
                       title="Inputs broken against perturbation size (minimum-norm)",
                       xlabel=f"perturbation size ({self.norm})", ylabel="fraction broken")
        if rel:
            out.append(rel)
        rel = adversarial_grid(ctx, f"{self.id}-examples.png", xa, x_best, found)
        if rel:
            out.append(rel)
        return out

