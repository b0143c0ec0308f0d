"""FM05 model stealing by equation solving (Tramer et al. 2016).

For a model that returns class probabilities of a (multinomial) logistic regression,
``log(p_c / p_K) = (w_c - w_K) . x + (b_c - b_K)`` is linear in the input. With d
features, d + 1 queries in general position give a square linear system per class, and
the solution reproduces the model exactly (softmax ignores the shift that stays unknown).
If the target is not of that family the system still solves but the copy disagrees with
the target on held-out inputs, so fidelity separates the two cases.

Answers rounded to a few decimals (or sent as float16), a common hardening of an API, make
each equation off by up to half a rounding step, and a square system carries that error
into the copy. When the first d + 1 answers are all multiples of a coarse step, the check
spends up to ``_ROUNDED_FACTOR`` times as many queries (within the budget) on a least-squares
fit, leaves out the equations of probabilities rounded to 0, weighs the others by how little
rounding moves their log-ratios (small probabilities count less), and judges the copy exact when
its probabilities are within ``_ROUNDED_SLACK`` rounding steps of the target's (not 1e-3).
"""
from __future__ import annotations

import numpy as np

from ...util.stats import with_intervals
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .fidelity import INPUT_RANGE, FIDELITY_PARAM_DOCS, agreement_phrase, copy_evidence, judge_copy, majority_metrics
from .onnx_export import save_linear_softmax

_P_FLOOR = 1e-12
#: Exactness of a copy on unrounded answers (largest probability error on held-out rows).
_EXACT = 1e-3
#: Queries per unknown a least-squares fit spends when the answers are rounded.
_ROUNDED_FACTOR = 8
#: Exactness on rounded answers, in rounding steps: the fit of the rounded equations leaves
#: the copy a few steps off where probabilities are small (0.033 at steps of 0.01 on a
#: 3-class model; copies of quadratic models were 1.0 off, agreeing on 41-57% of labels).
_ROUNDED_SLACK = 5


class EquationSolving(Check):
    id = "FM05.equation_solving"
    mode = "FM05"
    title = "Model stealing by equation solving (logistic models)"
    needs = Needs(outputs="probabilities", roles=("test",), attacker=True, labels=False)
    default_budget = 10_000
    metrics = (
        "classes", "features", "fidelity", "fidelity_beyond_majority", "majority_share", "other_answers", "fidelity_uniform", "max_abs_param_error",
        "max_abs_probability_error", "queries"
    )
    param_docs = {
        "spread": "spread of the query points around the data, relative to its scale, in (0, 1]",
        "fidelity_threshold": FIDELITY_PARAM_DOCS["fidelity_threshold"],
        "max_features": "most input features the attack will solve for",
    }

    def __init__(self, spread: float = 0.1, fidelity_threshold: float = 0.99, max_features: int = 5000):
        self.spread = spread
        self.fidelity_threshold = fidelity_threshold
        self.max_features = max_features

    def _validate(self) -> None:
        if not 0 < self.spread <= 1:
            raise ValueError("spread must be in (0, 1]")
        if not 0 < self.fidelity_threshold <= 1:
            raise ValueError("fidelity_threshold must be in (0, 1]")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        spec = target.input_spec
        d = spec.n_features
        if d > self.max_features:
            raise NotApplicable(f"{d} features exceed max_features={self.max_features} "
                                f"(raise it with --set {self.id}.max_features=N)")
        if budget < d + 1:
            raise NotApplicable(f"equation solving needs {d + 1} queries for {d} features; the budget is {budget}")

        # Queries near the data's centre keep probabilities away from 0 and 1, where the
        # log-ratios lose precision; a random simplex around it is in general position.
        x_ref = data.attacker_data()[0].reshape(-1, d).astype(np.float64)
        centre, scale = x_ref.mean(axis=0), x_ref.std(axis=0) + 1e-3
        def ask(n: int) -> tuple[np.ndarray, np.ndarray]:
            points = np.clip(centre + self.spread * scale * rng.standard_normal((n, d)), spec.lower, spec.upper)
            answers = target.predict(points.reshape(-1, *spec.shape).astype(spec.dtype))
            return points, np.asarray(answers, dtype=np.float64)

        queries, probs = ask(d + 1)
        step = rounding_step(probs)
        extra = min(budget, _ROUNDED_FACTOR * (d + 1)) - (d + 1) if step else 0
        if extra > 0:  # rounded answers: more equations than unknowns average the rounding out
            more_q, more_p = ask(extra)
            queries, probs = np.vstack([queries, more_q]), np.vstack([probs, more_p])
        k = probs.shape[1]
        usable = (probs > 0).all(axis=1) if step else np.ones(len(probs), dtype=bool)
        if usable.sum() < d + 1:  # too few answers without a rounded-away class: use them all
            usable[:] = True
        kept = np.clip(probs[usable], _P_FLOOR, 1.0)
        logp = np.log(kept)
        rhs = logp[:, :-1] - logp[:, -1:]  # log-ratios against the last class
        design = np.hstack([queries[usable], np.ones((int(usable.sum()), 1))])
        if step:
            # Rounding by up to half a step moves log p by about step / p: weigh each equation
            # by the inverse of that error, class by class, so small probabilities count less.
            error = np.sqrt(1.0 / kept[:, :-1] ** 2 + 1.0 / kept[:, -1:] ** 2)
            solution = np.stack([np.linalg.lstsq(design / error[:, [c]], rhs[:, c] / error[:, c], rcond=None)[0]
                                 for c in range(k - 1)], axis=1)
        else:
            solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
        weights = np.hstack([solution[:-1], np.zeros((d, 1))])
        bias = np.concatenate([solution[-1], [0.0]])

        # Fidelity: agreement with the target on held-out inputs (evaluation, not attack).
        x_held = data.evaluation_data()[0]  # apart from the rows the queries were centred on
        x_eval = x_held.reshape(len(x_held), -1).astype(np.float64)
        rand = rng.uniform(spec.lower, spec.upper, size=(min(len(x_eval), 500), d))
        with target.ledger.evaluating():
            p_eval = np.asarray(target.predict(x_eval.reshape(-1, *spec.shape).astype(spec.dtype)), dtype=np.float64)
            p_rand = np.asarray(target.predict(rand.reshape(-1, *spec.shape).astype(spec.dtype)), dtype=np.float64)
        stolen_eval, stolen_rand = _softmax(x_eval @ weights + bias), _softmax(rand @ weights + bias)
        fidelity = float((stolen_eval.argmax(1) == p_eval.argmax(1)).mean())
        metrics = {
            "fidelity": fidelity,
            "fidelity_uniform": float((stolen_rand.argmax(1) == p_rand.argmax(1)).mean()),
            **majority_metrics(p_eval, stolen_eval),
            "max_abs_probability_error": float(np.abs(stolen_eval - p_eval).max()),
            "queries": int(len(queries)),
            "features": int(d),
            "classes": int(k),
        }
        with_intervals(metrics, {"fidelity": len(x_eval), "fidelity_uniform": len(rand)})
        true_params = _true_parameters(target, k)
        if true_params is not None:
            w_true, b_true = true_params
            # Compare on the identifiable quantity: differences to the last class.
            w_err = np.abs((weights - weights[:, -1:]) - (w_true - w_true[:, -1:])).max()
            b_err = np.abs((bias - bias[-1]) - (b_true - b_true[-1])).max()
            metrics["max_abs_param_error"] = float(max(w_err, b_err))

        planned = _ROUNDED_FACTOR * (d + 1) if step else d + 1
        unfinished = ""
        if len(queries) < planned:  # rounded answers, and the budget cut the least-squares fit short
            unfinished = (f"the answers are rounded to steps of {step:g}, and the budget of {budget} queries allowed "
                          f"only {len(queries)} of the {planned} equations the least-squares fit averages the rounding "
                          f"out with; the copy fitted to fewer falls short, which one fitted to all might not "
                          f"(--budget {planned})")
        copied, undecided = judge_copy(metrics, self.fidelity_threshold, unfinished)
        exact = copied and metrics["max_abs_probability_error"] < max(_EXACT, _ROUNDED_SLACK * (step or 0.0))
        if copied and not exact and unfinished:
            undecided = unfinished  # the labels agree; the probabilities might with the planned fit
        evidence = {}
        if exact:
            evidence = copy_evidence(ctx, self.id, lambda path: save_linear_softmax(path, weights, bias, tuple(spec.shape)))
        summary = (
            f"{len(queries)} queries recovered a copy that {agreement_phrase(metrics, INPUT_RANGE)} "
            f"(largest probability error {metrics['max_abs_probability_error']:.2g}"
            + (f"; the answers are rounded to steps of {step:g}, so the copy was fitted to all of them by least "
               "squares" if step else "")
            + ")."
        )
        if not exact and not undecided:
            summary += " The target does not behave as a logistic model, so equation solving does not copy it."
        return Outcome(vulnerable=exact, metrics=metrics, evidence=evidence, summary=summary, inconclusive=undecided)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _true_parameters(target, k: int):
    """The auditor's view of an in-memory logistic regression, to report parameter error."""
    est = target.sklearn_estimator()
    coef, intercept = getattr(est, "coef_", None), getattr(est, "intercept_", None)
    if coef is None or intercept is None or type(est).__name__ != "LogisticRegression":
        return None
    coef, intercept = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
    if coef.shape[0] == 1 and k == 2:  # binary: p1 = sigmoid(w.x + b), i.e. logits (0, w.x + b)
        return np.hstack([np.zeros((coef.shape[1], 1)), coef.T]), np.array([0.0, intercept[0]])
    if coef.shape[0] == k:
        return coef.T, intercept
    return None


class EquationSolvingMlp(Check):
    """One-hidden-layer networks, fitted to probability answers (Tramer et al. 2016, section 4.2).

    With a known hidden width ``h`` the attacker's unknowns are the network's parameters;
    every query gives ``k - 1`` equations (log-ratios between classes), which are no longer
    linear. As in the paper, the equations are solved by minimising the misfit on the
    query/answer pairs, here with full-batch L-BFGS in float64 from a few random starts.

    What is exact and what is not: the copy reproduces every answered query to
    ``answer_error`` (reported), but nothing guarantees the optimiser found the global
    solution; fidelity on held-out and random inputs is the measurement that counts.
    Parameters are identifiable only up to the network's symmetries (hidden units can be
    permuted; a ReLU unit rescaled; a tanh unit's sign flipped; the output layer shifted by
    a common vector), so ``max_abs_param_error`` is measured after aligning those, and only
    when the target's true parameters can be read (an in-memory torch or scikit-learn MLP).

    ``query_factor``: equations per unknown; ``query_factor * unknowns / (k - 1)`` queries.
    At 8 a small ReLU network is recovered to 1e-6; at 2 the fit is often a local optimum.
    """

    id = "FM05.equation_solving_mlp"
    mode = "FM05"
    title = "Model stealing by equation solving (one-hidden-layer networks)"
    needs = Needs(outputs="probabilities", roles=("test",), attacker=True, labels=False)
    default_budget = 10_000
    metrics = (
        "answer_error", "fidelity", "fidelity_beyond_majority", "majority_share", "other_answers", "fidelity_uniform", "hidden", "max_abs_param_error",
        "max_abs_probability_error", "queries", "unknowns"
    )
    param_docs = {
        "hidden": "hidden width of the network (null: read from an in-memory model, else required)",
        "activation": "hidden activation: relu or tanh (null: read from the model, else relu)",
        "query_factor": "equations per unknown parameter (8 recovers small networks; 2 often does not)",
        "restarts": "random starts of the solver",
        "max_iter": "L-BFGS iterations per start",
        **FIDELITY_PARAM_DOCS,
    }

    def __init__(
        self,
        hidden: int | None = None,
        activation: str | None = None,
        query_factor: float = 8.0,
        restarts: int = 3,
        max_iter: int = 1000,
        fidelity_threshold: float = 0.99,
        n_uniform: int = 500,
    ):
        self.hidden = hidden
        self.activation = activation
        self.query_factor = query_factor
        self.restarts = restarts
        self.max_iter = max_iter
        self.fidelity_threshold = fidelity_threshold
        self.n_uniform = n_uniform

    def _validate(self) -> None:
        if self.activation is not None and self.activation not in ("relu", "tanh", "logistic"):
            raise ValueError(f"activation must be relu, tanh or logistic, not {self.activation!r}")
        if self.hidden is not None and int(self.hidden) < 1:
            raise ValueError("hidden must be at least 1")
        if self.query_factor <= 0 or int(self.restarts) < 1 or int(self.max_iter) < 1 or int(self.n_uniform) < 1:
            raise ValueError("query_factor must be positive, restarts, max_iter and n_uniform at least 1")
        if not 0 < self.fidelity_threshold <= 1:
            raise ValueError("fidelity_threshold must be in (0, 1]")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        from .fidelity import measure_fidelity, random_inputs_phrase
        from .input_domain import infer_domain
        from .mlp_solver import (
            align_error,
            fit_one_hidden_layer,
            one_hidden_layer_parameters,
        )

        spec = target.input_spec
        d, k = spec.n_features, int(target.n_classes)
        true_params = one_hidden_layer_parameters(target)
        hidden = self.hidden if self.hidden is not None else (true_params.hidden if true_params else None)
        activation = self.activation or (true_params.activation if true_params else "relu")
        if hidden is None:
            raise NotApplicable(f"the hidden width is unknown (the target is not a readable one-hidden-layer MLP): "
                                f"give it with --set {self.id}.hidden=N")
        if activation not in ("relu", "tanh", "logistic"):
            raise ValueError(f"activation must be relu, tanh or logistic, not {activation!r}")
        if int(hidden) < 1 or self.query_factor <= 0 or int(self.restarts) < 1 or int(self.max_iter) < 1:
            raise ValueError("hidden, query_factor, restarts and max_iter must be positive")
        if k < 2:
            raise NotApplicable("equation solving needs at least two classes")
        n_params = d * hidden + hidden + hidden * k + k
        n_queries = int(np.ceil(self.query_factor * n_params / (k - 1)))
        if n_queries > budget:
            raise NotApplicable(
                f"{n_params} unknowns need {n_queries} queries at query_factor={self.query_factor:g}; the budget is "
                f"{budget} (raise --budget to {n_queries}, or lower --set {self.id}.query_factor)"
            )

        # Random inputs over the whole domain, as in the paper: the answers then pin the
        # network down everywhere, not only where the attacker's data lie.
        x_pool = data.attacker_data()[0]
        domain = infer_domain(spec, x_pool)
        queries = domain.sample(rng, n_queries)
        probs = np.asarray(target.predict(queries.reshape(-1, *spec.shape).astype(spec.dtype)), dtype=np.float64)
        fitted = fit_one_hidden_layer(
            queries.astype(spec.dtype).astype(np.float64), probs, int(hidden), activation,
            restarts=int(self.restarts), max_iter=int(self.max_iter), seed=int(rng.integers(2**31)),
        )
        metrics = measure_fidelity(target, fitted.predict_proba, data.evaluation_data()[0], domain, rng, int(self.n_uniform))
        metrics.update(
            {
                "queries": n_queries,
                "unknowns": int(n_params),
                "hidden": int(hidden),
                "answer_error": fitted.answer_error,
            }
        )
        if true_params is not None and true_params.hidden == hidden and true_params.activation == activation:
            error = align_error(fitted, true_params)
            if error is not None:
                metrics["max_abs_param_error"] = error
        evidence = copy_evidence(ctx, self.id, lambda path: _save_torch_copy(path, fitted.to_torch(), spec.shape))
        vulnerable, undecided = judge_copy(metrics, self.fidelity_threshold)
        summary = (
            f"{n_queries} queries fitted all {n_params} parameters of a {hidden}-unit {activation} network "
            f"(largest log-ratio misfit {fitted.answer_error:.2g}); the copy "
            f"{agreement_phrase(metrics, random_inputs_phrase(spec))}."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)


def _save_torch_copy(path, module, shape) -> None:
    # Imported only when a copy is written, as in the rest of this module.
    from ...util.surrogates import save_torch_onnx

    save_torch_onnx(path, module, shape)


def rounding_step(probs: np.ndarray) -> float | None:
    """The step the answers are rounded to, when they are coarser than float32: 10^-k for
    answers that are all multiples of it (k = 1..4, within 1e-6: a rounded answer may have
    passed through float32), the float16 spacing near 1 for answers that float16 holds
    exactly, else None."""
    probs = np.asarray(probs, dtype=np.float64)
    for digits in range(1, 5):
        if np.allclose(probs, np.round(probs, digits), rtol=0.0, atol=1e-6):
            return 10.0**-digits
    if np.array_equal(probs.astype(np.float16).astype(np.float64), probs):
        return float(np.spacing(np.float16(0.5)))  # float16 resolution just below 1
    return None
