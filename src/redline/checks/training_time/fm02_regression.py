"""FM02 poisoning of a regression pipeline (the taxonomy's dosage scenario): OptP, Jagielski et al. 2018.

The attacker adds a few rows to the training set of a linear regression and optimises
their features and targets so that the retrained model's errors grow. A ridge model's
parameters are a closed-form function of its training data, so the gradient of the
validation loss with respect to every poison row flows exactly through that solution
(the stationarity/KKT condition the paper differentiates); projected gradient ascent keeps
the rows inside each feature's valid range (declared, else observed) and the observed
target range. The rows start from
attacker-owned rows with their targets flipped to the other end of the range.

The damage is measured on the victims (held-out rows) as ``prediction_shift``: the mean
change of their predictions between the model retrained on clean data and the one
retrained on poisoned data, in standard deviations of the training targets (0.75 =
predictions move by three quarters of the targets' spread on average), at
``report_rate`` (8% by default, as in the paper's headline result) and as a curve over
rates. TRIM, the paper's defence, is measured the same way (``prediction_shift_with_trim``,
``damage_undone_trim``). The spread, not each prediction, is the unit: a change relative to
the prediction itself depended on where the targets' zero lies (diabetes scores shifted by
+1000 passed, centred on 0 they were 'vulnerable' at 1.72, and a victim predicted near 0
made 26 clean rows look like poison). Constant targets have nothing to shift: not applicable.

The verdict is judged on intervals, not on the point estimate. Each victim's own shift is
one observation (paired: the same row under the clean and the poisoned model), and
``prediction_shift_ci`` is the 95% Student-t interval of their mean. The recipe is also
retrained, at the same seed, on the clean rows plus as many honest rows (attacker-owned rows
with their true targets): ``baseline_shift`` (with ``baseline_shift_ci``) is how far adding
rows moves the victims' predictions without an attacker, which for a recipe whose training
varies with its data by chance (SGD order, bootstrap samples) is that randomness. Vulnerable
when the lower end of the shift, less the upper end of the baseline, reaches
``shift_threshold``; not vulnerable when the shift itself is under it; inconclusive in
between (0.28 on 6 diabetes victims, 95% CI 0.08 to 0.48, had been "vulnerable").

The target's own recipe is retrained (``target.retrain``) and its answers are read as values,
so this check works with any trainable regressor; the attacker's surrogate is a ridge
regression (``surrogate_alpha``, by default the target estimator's ``alpha`` if it has one).

Queries: the optimisation runs on the local surrogate and sends nothing to any model; every
retrained model of the pipeline is charged to the target's ledger, and reading the victims'
predictions (and the residuals TRIM ranks) counts as evaluation. ``queries`` is therefore 0.
"""
from __future__ import annotations

import numpy as np

from ...defences.training.sanitisers import trim
from ...util.stats import mean_t_interval
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .poisoning import (
    ADDED_ROWS_PARAM_DOCS,
    TrainingPipeline,
    added_poison_curve,
    check_rates,
    curve_evidence,
    damage_undone,
    flat_rows,
    one_thread,
)

DEFENCES = ("trim",)
_MIN_ALPHA = 1e-6  # keeps the surrogate's normal equations solvable for plain least squares


class OptimizedRegressionPoisoning(Check):
    id = "FM02.regression"
    mode = "FM02"
    title = "Optimised poisoning of a regression model (OptP)"
    needs = Needs(task="regression", trainable=True, roles=("train", "test"), attacker=True)
    default_budget = 0
    metrics = (
        "baseline_shift", "baseline_shift_ci", "damage_undone_trim", "evaluation_rows", "max_prediction_shift",
        "poison_rate", "poison_rows", "prediction_shift", "prediction_shift_ci", "prediction_shift_with_trim",
        "surrogate_alpha", "trim_recall"
    )
    param_docs = {
        **ADDED_ROWS_PARAM_DOCS,
        "steps": "gradient steps on the poison rows",
        "surrogate_alpha": "ridge penalty of the surrogate (null: the target estimator's alpha if it has one)",
        "shift_threshold": "prediction shift, in standard deviations of the training targets, that the poison must "
                           "surely cause for the pipeline to be vulnerable (the lower end of its 95% interval less "
                           "the upper end of the honest rows' shift)",
        "defences": "defences to measure (trim; empty for none)",
    }

    def __init__(
        self,
        rates: tuple[float, ...] = (0.02, 0.04, 0.08, 0.12, 0.16, 0.2),
        report_rate: float = 0.08,
        steps: int = 100,
        step_size: float = 0.05,
        surrogate_alpha: float | None = None,
        shift_threshold: float = 0.25,
        defences: tuple[str, ...] = DEFENCES,
    ):
        self.rates = rates
        self.report_rate = report_rate
        self.steps = steps
        self.step_size = step_size
        self.surrogate_alpha = surrogate_alpha
        self.shift_threshold = shift_threshold
        self.defences = defences

    def _validate(self) -> None:
        check_rates(self.rates, self.report_rate)
        if int(self.steps) < 1 or self.step_size <= 0:
            raise ValueError("steps must be at least 1 and step_size positive")
        if set(self.defences) - set(DEFENCES):
            raise ValueError(f"defences come from {DEFENCES}")
        if self.surrogate_alpha is not None and self.surrogate_alpha < 0:
            raise ValueError("surrogate_alpha must not be negative")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        rates = check_rates(self.rates, self.report_rate)
        x, y, x_att, y_att = flat_rows(data, np.float64)
        if len(x) < 5 or len(x_att) < 5:
            raise NotApplicable("OptP needs at least five training rows and five attacker-owned rows")
        spec = target.input_spec
        shape = spec.shape
        lower, upper = spec.feature_bounds()
        # Each feature within its own valid range: under one box for all features a poison
        # column reached 13.6 where the data's own values lie within +-0.05. Without declared
        # per-feature bounds, the range the training and attacker rows show.
        seen = np.concatenate([x, x_att])
        if spec.feature_lower is None:
            lower = np.maximum(lower, seen.min(axis=0))
        if spec.feature_upper is None:
            upper = np.minimum(upper, seen.max(axis=0))
        y_low, y_high = float(min(y.min(), y_att.min())), float(max(y.max(), y_att.max()))
        scale = float(np.std(y))
        if scale <= 0 or y_high <= y_low:
            raise NotApplicable("the training targets are all the same value: there is no spread to move "
                                "predictions across")
        alpha = self._alpha(target)

        pipeline = TrainingPipeline(target, seed=int(rng.integers(2**31)))
        victims = data.evaluation_data()[0]  # apart from the attacker's rows
        clean_model = pipeline.fit(x.reshape(-1, *shape), y)
        clean_pred = pipeline.values(clean_model, victims)
        answers = []  # the victims' predictions under each rate's poisoned model, in the order of rates

        def damage(model):
            answers.append(pipeline.values(model, victims))
            return scaled_shift(clean_pred, answers[-1], scale)

        curve = added_poison_curve(
            pipeline, x, y, shape, rates,
            optimise=lambda count: self._optimise(x, y, x_att, y_att, count, alpha, (lower, upper), (y_low, y_high), rng),
            damage=damage,
            ctx=ctx,
        )

        rate = float(self.report_rate)
        shift, xp, yp = curve.at(rate)
        # Two sources of uncertainty. The victims: the two models are fixed (same recipe, same
        # seed) and each held-out row's own shift is one paired observation, so the t interval
        # of their mean is how far another sample of victims could put it. The recipe's own
        # randomness: retraining on changed data may move predictions by chance (SGD order,
        # bootstraps; not ridge or least squares, the paper's setting). A baseline retrained at
        # the same seed on as many honest rows takes the same chances, so it measures that
        # randomness in the very pairing the shift is measured in (a second seed would count
        # randomness the shared seed cancels), together with what adding honest rows does.
        _, shift_ci = mean_t_interval(row_shifts(clean_pred, answers[rates.index(rate)], scale))
        picks = np.random.default_rng(pipeline.seed).choice(len(x_att), size=len(xp), replace=len(xp) > len(x_att))
        honest = pipeline.fit(np.vstack([x, x_att[picks]]).reshape(-1, *shape), np.concatenate([y, y_att[picks]]))
        baseline, baseline_ci = mean_t_interval(row_shifts(clean_pred, pipeline.values(honest, victims), scale))
        metrics = {
            "poison_rate": rate,
            "prediction_shift": shift,
            "prediction_shift_ci": shift_ci,
            "baseline_shift": baseline,
            "baseline_shift_ci": baseline_ci,
            "evaluation_rows": len(victims),
            "poison_rows": len(xp),
            "max_prediction_shift": float(max(curve.damage)),
            "surrogate_alpha": alpha,
        }
        if "trim" in self.defences:
            x_all, y_all = np.vstack([x, xp]), np.concatenate([y, yp])

            def fit(xs, ys):
                model = pipeline.fit(xs.reshape(-1, *shape), ys)
                return lambda xq: pipeline.values(model, xq.reshape(-1, *shape))

            # The defender knows how many rows it collected itself, as in the paper.
            keep = trim(fit, x_all, y_all, len(x), rng=rng)
            defended = pipeline.fit(x_all[keep].reshape(-1, *shape), y_all[keep])
            shift_trim = scaled_shift(clean_pred, pipeline.values(defended, victims), scale)
            metrics["prediction_shift_with_trim"] = shift_trim
            metrics["damage_undone_trim"] = damage_undone(shift, shift_trim)
            metrics["trim_recall"] = float(np.mean(~keep[len(x):]))  # poison rows TRIM removed
        ctx.progress(len(rates) + 1, len(rates) + 1)

        evidence = curve_evidence(
            ctx, self.id, rates, {"prediction_shift": curve.damage}, series=("OptP",),
            title="Victims' prediction shift against poisoning rate", ylabel="mean prediction change (target std)",
            poisons={"x_poison": xp, "y_poison": yp},
        )
        threshold = float(self.shift_threshold)
        vulnerable, undecided = judge_shift(shift, shift_ci, baseline, baseline_ci, threshold, len(victims))
        summary = (
            f"Adding {len(xp)} optimised rows ({rate:.0%} of the training set) moved the predictions for "
            f"held-out cases by {shift:.2f} standard deviations of the training targets on average "
            f"(95% CI {shift_ci[0]:.2f} to {shift_ci[1]:.2f} on {len(victims)} rows; {shift * scale:.3g} in target "
            f"units; threshold {threshold:g}); as many honest rows moved them by {baseline:.2f}."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _alpha(self, target) -> float:
        if self.surrogate_alpha is not None:
            if self.surrogate_alpha < 0:
                raise ValueError("surrogate_alpha must not be negative")
            return max(float(self.surrogate_alpha), _MIN_ALPHA)
        alpha = getattr(target.sklearn_estimator(), "alpha", None)
        return max(float(alpha), _MIN_ALPHA) if isinstance(alpha, (int, float)) else 1.0

    def _optimise(self, x, y, x_att, y_att, count, alpha, box, y_box, rng):
        """``count`` poison rows (features, targets) that maximise the surrogate's error on the attacker's rows."""
        import torch

        with one_thread():
            return self._ascend(torch, x, y, x_att, y_att, count, alpha, box, y_box, rng)

    def _ascend(self, torch, x, y, x_att, y_att, count, alpha, box, y_box, rng):
        span = (y_box[1] - y_box[0]) or 1.0
        low, high = (torch.as_tensor(np.asarray(b, dtype=np.float64)) for b in box)  # per feature
        # Targets are optimised on a [0, 1] scale so one step size suits features and targets.
        to_unit = lambda v: (v - y_box[0]) / span
        start = rng.choice(len(x_att), size=count, replace=count > len(x_att))
        xc, yc = torch.from_numpy(x), torch.from_numpy(to_unit(y))
        xv, yv = torch.from_numpy(x_att), torch.from_numpy(to_unit(y_att))
        xp = torch.from_numpy(x_att[start].copy()).requires_grad_(True)
        yp = torch.from_numpy(1.0 - to_unit(y_att[start])).requires_grad_(True)  # flipped targets
        eye = alpha * torch.eye(x.shape[1], dtype=torch.float64)  # the solution is linear in y: same penalty
        for _ in range(int(self.steps)):
            w, b = ridge_solution(torch, torch.cat([xc, xp]), torch.cat([yc, yp]), eye)
            loss = torch.mean((xv @ w + b - yv) ** 2)
            gx, gy = torch.autograd.grad(loss, (xp, yp))
            with torch.no_grad():
                # Steps scaled per row keep every poison row moving, whatever its gradient size.
                g = torch.cat([gx, gy[:, None]], dim=1)
                g = g / (g.norm(dim=1, keepdim=True) + 1e-12)
                xp += self.step_size * (high - low) * g[:, :-1]
                yp += self.step_size * g[:, -1]
                xp.copy_(torch.maximum(torch.minimum(xp, high), low))
                yp.clamp_(0.0, 1.0)
        return xp.detach().numpy(), y_box[0] + span * yp.detach().numpy()


def ridge_solution(torch, x, y, penalty):
    """Weights and intercept of ridge regression (intercept not penalised), differentiable in x and y."""
    mx, my = x.mean(dim=0), y.mean()
    xc = x - mx
    w = torch.linalg.solve(xc.T @ xc + penalty, xc.T @ (y - my))
    return w, my - mx @ w


def judge_shift(shift: float, shift_ci: list[float], baseline: float, baseline_ci: list[float], threshold: float,
                rows: int) -> tuple[bool, str]:
    """(vulnerable, why undecided) for a mean prediction shift with its 95% interval, beside the
    shift that as many honest rows cause at the same seed (``baseline``).

    A shift is a mean of absolute changes, so whatever moves predictions without the attacker
    (the recipe's own randomness, new data as such) adds to it: per victim
    |poison + rest| >= |poison| - |rest|. Taking the rest to be as large as the honest rows'
    shift, the poison's own part is at least the shift's lower end less the baseline's upper
    end, and vulnerable means that bound reaches ``threshold``. Not vulnerable when the shift
    itself is under ``threshold``; undecided in between.
    """
    if shift < threshold:
        return False, ""
    if rows < 2:  # one victim's change has no spread to judge it by
        return False, (f"the mean prediction shift of {shift:.2f} target standard deviations reaches the threshold of "
                       f"{threshold:g} on a single evaluation row, which gives no interval; more test rows would decide")
    caused = shift_ci[0] - baseline_ci[1]
    if caused >= threshold:
        return True, ""
    measured = (f"the victims' mean prediction shift of {shift:.2f} target standard deviations (95% CI "
                f"{shift_ci[0]:.2f} to {shift_ci[1]:.2f} on {rows} evaluation rows) reaches the threshold of "
                f"{threshold:g}")
    if shift_ci[0] < threshold:
        return False, f"{measured}, but its interval does not clear it; more evaluation (test) rows would decide"
    return False, (f"{measured}, but as many honest rows, retrained at the same seed, move them by {baseline:.2f} "
                   f"(95% CI {baseline_ci[0]:.2f} to {baseline_ci[1]:.2f}), which leaves at least "
                   f"{max(caused, 0.0):.2f} that the poison surely caused: the recipe's training moves predictions "
                   "without an attacker; more evaluation rows would narrow both intervals, and if the baseline "
                   "stays this large only a recipe that retrains more reproducibly would decide")


def row_shifts(before: np.ndarray, after: np.ndarray, scale: float) -> np.ndarray:
    """Each row's |after - before| in units of ``scale``: the observations ``scaled_shift`` averages."""
    return np.abs(np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)) / scale


def scaled_shift(before: np.ndarray, after: np.ndarray, scale: float) -> float:
    """Mean of |after - before| in units of ``scale`` (the training targets' standard deviation)."""
    return float(np.mean(np.abs(after - before)) / scale)
