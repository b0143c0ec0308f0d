"""FM02 availability poisoning: optimised rows that make the retrained model worse for everyone.

The attacker adds rows whose features are optimised by gradient ascent on a surrogate's
validation loss (Biggio et al. 2012; Mei and Zhu 2015). The surrogate is a multinomial
logistic regression, refitted after every step by a few Newton iterations from its previous
solution (``inner_steps``); the gradient of the loss on the attacker's own rows with respect
to the poison features is exact at the optimum, through the implicit-function theorem on
its optimality condition (the influence-function form of the bilevel gradient). Poison rows start from attacker-owned rows relabelled with the
class the clean surrogate finds least likely, and stay in the valid input box.

The rows then go into the target's own recipe (``target.retrain``), so the attack transfers
from the linear surrogate to whatever the target trains (a logistic regression, a linear
SVM, a small MLP). ``accuracy_drop`` is measured against the same recipe and seed on clean
rows, as a curve over poisoning rates (the poison rows' share of the poisoned training set)
and at ``report_rate``; defences (loss sanitisation, the sphere defence, RONI) are measured
at ``report_rate`` as ``accuracy_drop_with_<defence>`` and ``damage_undone_<defence>``.

Queries: the optimisation runs on the local surrogate and sends nothing to any model, so
``queries`` is 0; every model the recipe retrains is charged to the target's ledger, and
measuring accuracies (and what the defences train and consult) counts as evaluation.
"""
from __future__ import annotations

import numpy as np

from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .poisoning import (
    ACCURACY_DROP_PARAM_DOCS,
    ADDED_ROWS_PARAM_DOCS,
    CLASSIFIER_DEFENCES,
    TrainingPipeline,
    judge_drop,
    added_poison_curve,
    check_rates,
    curve_evidence,
    flat_rows,
    measure_defences,
    one_thread,
    split_holdout,
)
from .softmax_surrogate import (
    expected_error,
    fit_newton,
    implicit_gradient,
    logits,
)


class GradientAvailabilityPoisoning(Check):
    id = "FM02.availability"
    mode = "FM02"
    title = "Availability poisoning by optimised training rows"
    needs = Needs(trainable=True, roles=("train", "test"), attacker=True)
    default_budget = 0
    metrics = (
        "accuracy_drop", "accuracy_drop_ci", "accuracy_drop_p_value", "accuracy_drop_with_*", "clean_accuracy", "damage_undone_*",
        "max_accuracy_drop", "poison_rate", "poison_rows", "poisoned_accuracy"
    )
    param_docs = {
        **ADDED_ROWS_PARAM_DOCS,
        "steps": "outer optimisation steps on the poison rows",
        "inner_steps": "Newton steps refitting the surrogate per outer step",
        "surrogate_l2": "L2 penalty of the logistic surrogate (null: 1 / training rows)",
        **ACCURACY_DROP_PARAM_DOCS,
        "max_surrogate_parameters": "largest surrogate (features x classes) the attack optimises",
    }

    def __init__(
        self,
        rates: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2),
        report_rate: float = 0.1,
        steps: int = 30,
        inner_steps: int = 3,
        step_size: float = 0.02,
        surrogate_l2: float | None = None,
        drop_threshold: float = 0.05,
        defences: tuple[str, ...] = CLASSIFIER_DEFENCES,
        roni_groups: int = 20,
        max_surrogate_parameters: int = 2000,
    ):
        self.rates = rates
        self.report_rate = report_rate
        self.steps = steps
        self.inner_steps = inner_steps
        self.step_size = step_size
        self.surrogate_l2 = surrogate_l2
        self.drop_threshold = drop_threshold
        self.defences = defences
        self.roni_groups = roni_groups
        self.max_surrogate_parameters = max_surrogate_parameters

    def _validate(self) -> None:
        check_rates(self.rates, self.report_rate)
        if int(self.steps) < 1 or int(self.inner_steps) < 1 or self.step_size <= 0:
            raise ValueError("steps and inner_steps must be at least 1 and step_size positive")
        if set(self.defences) - set(CLASSIFIER_DEFENCES):
            raise ValueError(f"defences come from {CLASSIFIER_DEFENCES}")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        rates = check_rates(self.rates, self.report_rate)
        spec = target.input_spec
        x, y, x_att, y_att = flat_rows(data, np.int64)
        k = max(target.n_classes, int(y.max()) + 1)
        # The poison gradient solves with the surrogate's Hessian, cubic in its parameter count.
        n_params = (spec.n_features + 1) * k
        if n_params > self.max_surrogate_parameters:
            raise NotApplicable(
                f"the linear surrogate would have {n_params} parameters ({spec.n_features} features x {k} classes), "
                f"more than max_surrogate_parameters={self.max_surrogate_parameters} "
                f"(raise it with --set {self.id}.max_surrogate_parameters=N)"
            )
        if len(x) < 10 or len(x_att) < 10:
            raise NotApplicable("availability poisoning needs ten training rows and ten attacker-owned rows")
        shape = tuple(spec.shape)
        pipeline = TrainingPipeline(target, seed=int(rng.integers(2**31)))
        x_held, y_held = data.evaluation_data()  # apart from the attacker's rows
        val, evaluation = split_holdout(x_held, np.asarray(y_held, dtype=np.int64), rng)
        clean_accuracy = pipeline.accuracy(pipeline.fit(x.reshape(-1, *shape), y), *evaluation)

        l2 = float(self.surrogate_l2) if self.surrogate_l2 is not None else 1.0 / len(x)
        curve = added_poison_curve(
            pipeline, x, y, shape, rates,
            optimise=lambda count: self._optimise(x, y, x_att, y_att, k, count, l2, spec, rng),
            damage=lambda model: clean_accuracy - pipeline.accuracy(model, *evaluation),
            ctx=ctx,
        )

        rate = float(self.report_rate)
        drop, xp, yp = curve.at(rate)
        metrics = {
            "poison_rate": rate,
            "accuracy_drop": float(drop),
            "clean_accuracy": clean_accuracy,
            "poisoned_accuracy": clean_accuracy - drop,
            "poison_rows": len(xp),
            "max_accuracy_drop": float(max(curve.damage)),
        }
        x_all, y_all = np.vstack([x, xp]).reshape(-1, *shape), np.concatenate([y, yp])
        # The verdict: the clean and the poisoned model again (same seed, same models), row by row.
        vulnerable, undecided, _, drop_ci, drop_p = judge_drop(pipeline, pipeline.fit(x.reshape(-1, *shape), y),
                                                       pipeline.fit(x_all, y_all), evaluation, float(self.drop_threshold))
        metrics.update(accuracy_drop_ci=drop_ci, accuracy_drop_p_value=drop_p)
        metrics.update(measure_defences(pipeline, self.defences, x_all, y_all, rate, val, evaluation, clean_accuracy,
                                        drop, roni_groups=int(self.roni_groups), roni_tolerance=0.0, rng=rng))
        ctx.progress(len(rates) + 1, len(rates) + 1)

        evidence = curve_evidence(
            ctx, self.id, rates, {"accuracy_drop": curve.damage}, series=("optimised rows",),
            title="Accuracy drop against poisoning rate", ylabel="accuracy drop",
            poisons={"x_poison": xp.reshape(-1, *shape), "y_poison": yp},
        )
        summary = (
            f"Adding {len(xp)} optimised rows ({rate:.0%} of the training set) cut test accuracy from "
            f"{clean_accuracy:.1%} to {clean_accuracy - drop:.1%} (drop 95% CI {drop_ci[0]:.1%} to {drop_ci[1]:.1%} "
            f"on {len(evaluation[1])} rows)."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary, inconclusive=undecided)

    def _optimise(self, x, y, x_att, y_att, k, count, l2, spec, rng):
        import torch

        with one_thread():
            return self._ascend(torch, x, y, x_att, y_att, k, count, l2, spec, rng)

    def _start(self, torch, theta, xc, yc, xv, yv, x_att, y_att, k, count, l2, rng):
        """Starting rows: the attacker's rows of one class that the clean surrogate is surest
        about, relabelled as the class it finds least likely (the strongest label flips);
        the class whose flips raise the surrogate's error most is chosen."""
        with torch.no_grad():
            scores = logits(xv, theta)
            confidence = torch.softmax(scores, dim=1)[torch.arange(len(yv)), yv].numpy()
            scores[torch.arange(len(yv)), yv] = np.inf
            least_likely = scores.argmin(dim=1)
        best = None
        for label in np.unique(y_att):
            members = np.flatnonzero(y_att == label)
            rows = members[np.argsort(-confidence[members], kind="stable")][:count]
            if len(rows) < count:  # too few rows of this class: top up with random ones
                rows = np.concatenate([rows, rng.choice(len(x_att), size=count - len(rows))])
            labels = least_likely[torch.from_numpy(rows)]
            fitted = fit_newton(torch, theta, torch.cat([xc, xv[rows]]), torch.cat([yc, labels]), l2, iterations=5)
            error = float(expected_error(torch, fitted, xv, yv))
            if best is None or error > best[0]:
                best = (error, rows, labels)
        return best[1], best[2]

    def _ascend(self, torch, x, y, x_att, y_att, k, count, l2, spec, rng):
        """``count`` poison rows and their labels that raise the surrogate's loss on the attacker's rows."""
        lo, hi = float(spec.lower), float(spec.upper)
        xc, yc = torch.from_numpy(x), torch.from_numpy(y)
        xv, yv = torch.from_numpy(x_att), torch.from_numpy(y_att)
        theta = fit_newton(torch, torch.zeros(x.shape[1] + 1, k, dtype=torch.float64), xc, yc, l2, iterations=25)
        start, yp = self._start(torch, theta, xc, yc, xv, yv, x_att, y_att, k, count, l2, rng)
        xp = torch.from_numpy(x_att[start].copy())
        ys = torch.cat([yc, yp])
        step = self.step_size * (hi - lo) * np.sqrt(x.shape[1])
        for _ in range(int(self.steps)):
            xs = torch.cat([xc, xp])
            theta = fit_newton(torch, theta, xs, ys, l2, iterations=int(self.inner_steps))
            grad = implicit_gradient(
                torch, theta, xc, yc, xp, yp, l2, lambda t: expected_error(torch, t, xv, yv)
            )
            with torch.no_grad():
                xp = (xp + step * grad / (grad.norm(dim=1, keepdim=True) + 1e-12)).clamp(lo, hi)
        out = xp.numpy()
        if spec.constraints:
            out = spec.constraints.project(out.reshape(-1, *spec.shape), x_att[start].reshape(-1, *spec.shape))
        return out.reshape(count, -1), yp.numpy().astype(np.int64)
