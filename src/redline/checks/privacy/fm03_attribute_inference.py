"""FM03 model inversion: inferring a record's sensitive attribute from the model (Fredrikson et al.).

The attacker knows a person's other answers (and, in the default ``map`` variant, the
label the model was trained on, e.g. from a public record) and wants the sensitive one.
They complete the record with each candidate value, ask the model about each completion,
and pick the value that maximises

    map:         prior(v) * P(model says the known label | record with v)
    confidence:  prior(v) * max_c P(c | record with v)          (label unknown)

where ``prior`` is the attribute's marginal distribution in the attacker's own data
(Fredrikson et al. 2014/2015's MAP estimator). A label-only model still supports ``map``
(the probability becomes 1 when the answer matches the label, else 0).

Two baselines, neither using the model: the prior's most likely value, and an imputation
model the attacker fits on their own rows (the other features and the label predict the
attribute; gradient-boosted trees). The stronger of the two on the members is the one the
attack must beat: an attribute another feature copies, or one of a one-hot pair, is read
off the record without any model, and the prior-only baseline once called a model that
generalised well vulnerable there (60% against 35%, where reading the copy gives 100%).
The attack is
run on training records (members) and held-out records (non-members): a model that has
memorised its training set leaks on members only. The verdict is on members: vulnerable
when the attack beats the baseline by at least ``margin`` and an exact one-sided McNemar
test on the paired outcomes rejects "no better than the baseline" at level ``alpha``.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...util.evidence import save_arrays, try_plot
from ...util.stats import mcnemar_greater
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome

VARIANTS = ("map", "confidence")
_MAX_CANDIDATES = 50
#: Fewest attacker rows an imputation baseline is fitted on (fewer: the prior alone).
_MIN_IMPUTATION_ROWS = 20


class AttributeInference(Check):
    id = "FM03.attribute_inference"
    mode = "FM03"
    title = "Sensitive attribute inference by model inversion"
    needs = Needs(modality=("tabular",), roles=("train", "test"), attacker=True)
    default_budget = 10_000
    metrics = (
        "advantage_nonmembers", "advantage_over_baseline", "attack_accuracy", "attack_accuracy_members",
        "attack_accuracy_nonmembers", "baseline_accuracy", "baseline_accuracy_nonmembers", "candidates",
        "baseline", "imputation_accuracy", "p_value", "p_value_nonmembers", "records_per_role", "sensitive_feature",
        "variant"
    )
    param_docs = {
        "sensitive_feature": ("the feature to infer, by name or column index (null: the data set's own, if it "
                              "names one)"),
        "candidate_values": "values the sensitive feature can take (null: those seen in the data)",
        "variant": ("how a guess is made: map (most likely value given the answer) or confidence (the value the "
                    "model is surest of)"),
        "n_records": "records per role (members, non-members) to infer",
        "margin": "accuracy over the baseline at or above which the attribute leaks",
        "alpha": "significance level of the test against the baseline",
    }

    def __init__(
        self,
        sensitive_feature: str | int | None = None,
        candidate_values: tuple[float, ...] | None = None,
        variant: str = "map",
        n_records: int = 500,
        margin: float = 0.05,
        alpha: float = 0.01,
    ):
        self.sensitive_feature = sensitive_feature
        self.candidate_values = candidate_values
        self.variant = variant
        self.n_records = n_records
        self.margin = margin
        self.alpha = alpha

    def _validate(self) -> None:
        if self.variant not in VARIANTS:
            raise UsageError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if int(self.n_records) < 1 or not 0 <= self.margin < 1 or not 0 < self.alpha < 1:
            raise UsageError("n_records must be at least 1, margin in [0, 1) and alpha in (0, 1)")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        if self.variant == "confidence" and target.capabilities.outputs != "probabilities":
            raise NotApplicable("the confidence variant needs probabilities and the target answers labels only")
        column, name = _sensitive_column(self.sensitive_feature, data, target.input_spec.n_features)
        values = self._candidates(data, column, name)
        x_own = data.attacker_data()[0].reshape(len(data.attacker_data()[0]), -1)
        # Non-members come from rows the attacker's prior was not counted on.
        x_out, y_out = data.evaluation_data()
        # Laplace smoothing keeps a value the attacker's sample lacks possible.
        counts = np.array([(x_own[:, column] == v).sum() for v in values], dtype=np.float64) + 1.0
        prior = counts / counts.sum()

        k = len(values)
        per_role = min(int(self.n_records), len(data.x_train), len(x_out), budget // (2 * k))
        if per_role < 1:
            raise NotApplicable(f"{k} candidate values need at least {2 * k} queries; the budget is {budget}")
        roles = {}
        for role, (x, y) in {"members": (data.x_train, data.y_train), "nonmembers": (x_out, y_out)}.items():
            idx = np.sort(rng.permutation(len(x))[:per_role])
            roles[role] = (x[idx], np.asarray(y[idx]).astype(int))

        guesses = {role: self._infer(target, x, y, column, values, prior) for role, (x, y) in roles.items()}
        mode_value = values[int(prior.argmax())]
        imputed = _imputation_guesses(data, column, values, roles)
        truths = {role: _snap(x.reshape(len(x), -1)[:, column], values) for role, (x, _) in roles.items()}
        imputation_accuracy = float(np.mean(imputed["members"] == truths["members"])) if imputed else None
        mode_accuracy = float(np.mean(truths["members"] == mode_value))
        baseline = "imputation" if imputed and imputation_accuracy > mode_accuracy else "prior"
        results = {}
        for role, truth in truths.items():
            base = imputed[role] == truth if baseline == "imputation" else truth == mode_value
            results[role] = (guesses[role] == truth, base)

        attack_m, base_m = results["members"]
        attack_n, base_n = results["nonmembers"]
        p_value = mcnemar_greater(attack_m, base_m)
        advantage = float(attack_m.mean() - base_m.mean())
        metrics = {
            "attack_accuracy": float(attack_m.mean()),
            "baseline_accuracy": float(base_m.mean()),
            "attack_accuracy_members": float(attack_m.mean()),
            "attack_accuracy_nonmembers": float(attack_n.mean()),
            "baseline_accuracy_nonmembers": float(base_n.mean()),
            "advantage_over_baseline": advantage,
            "advantage_nonmembers": float(attack_n.mean() - base_n.mean()),
            "p_value": p_value,
            "p_value_nonmembers": mcnemar_greater(attack_n, base_n),
            "records_per_role": int(per_role),
            "baseline": baseline,
            "imputation_accuracy": imputation_accuracy,
            "candidates": int(k),
            "sensitive_feature": name,
            "variant": self.variant,
        }
        vulnerable = advantage >= self.margin and p_value < self.alpha
        evidence = self._evidence(ctx, metrics, roles, guesses, column)
        summary = (
            f"Inferring {name!r} of {per_role} training records ({self.variant} variant) was right "
            f"{metrics['attack_accuracy']:.0%} of the time against {metrics['baseline_accuracy']:.0%} for "
            + ("imputing it from the record's other features and label without the model"
               if baseline == "imputation" else "guessing the most common value")
            + f" (p = {p_value:.2g}); on held-out records "
            f"{metrics['attack_accuracy_nonmembers']:.0%} against {metrics['baseline_accuracy_nonmembers']:.0%}."
        )
        if not vulnerable:
            summary += (f" That is not a leak beyond what the attacker knows without the model (margin "
                        f"{self.margin:.0%}, alpha {self.alpha:g}).")
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    def _candidates(self, data, column: int, name: str) -> np.ndarray:
        if self.candidate_values is not None:
            values = np.asarray(sorted({float(v) for v in self.candidate_values}))
        elif data.meta.get("sensitive_values") is not None and data.meta.get("sensitive_index") == column:
            values = np.asarray(sorted(float(v) for v in data.meta["sensitive_values"]))
        elif name in (data.meta.get("feature_values") or {}):
            values = np.asarray(sorted(float(v) for v in data.meta["feature_values"][name]))
        else:
            own = data.attacker_data()[0]
            values = np.unique(own.reshape(len(own), -1)[:, column]).astype(np.float64)
        if len(values) < 2:
            raise NotApplicable(f"feature {name!r} takes fewer than two values; there is nothing to infer")
        if len(values) > _MAX_CANDIDATES:
            raise NotApplicable(
                f"feature {name!r} takes {len(values)} values; enumeration needs a categorical feature "
                f"(at most {_MAX_CANDIDATES} values; list the values with --set {self.id}.candidate_values=[A, B])"
            )
        return values

    def _infer(self, target, x, y, column, values, prior) -> np.ndarray:
        """The MAP guess of the sensitive value for each record: one batch of n * k queries."""
        n, k = len(x), len(values)
        flat = x.reshape(n, -1)
        completed = np.repeat(flat[None], k, axis=0)  # (k, n, d)
        completed[:, :, column] = values[:, None]
        out = np.asarray(target.predict(completed.reshape(k * n, *x.shape[1:]).astype(x.dtype)))
        if out.ndim == 2:
            out = out.reshape(k, n, -1)
            likelihood = out.max(axis=2) if self.variant == "confidence" else out[:, np.arange(n), y]
        else:
            likelihood = (out.reshape(k, n) == y[None]).astype(np.float64)
        # The tiny prior term settles ties (e.g. no candidate matches the label) towards the base rate.
        score = likelihood * prior[:, None] + 1e-12 * prior[:, None]
        return values[score.argmax(axis=0)]

    def _evidence(self, ctx, metrics, roles, guesses, column) -> dict:
        from ...util import plots

        evidence: dict = {}
        arrays = {}
        for role, (x, _) in roles.items():
            arrays[f"{role}_true"] = x.reshape(len(x), -1)[:, column]
            arrays[f"{role}_guess"] = guesses[role]
        rel = save_arrays(ctx, f"{self.id}-guesses.npz", **arrays)
        if rel:
            evidence["examples"] = rel
        bars = {
            "members": metrics["attack_accuracy_members"],
            "non-members": metrics["attack_accuracy_nonmembers"],
            "baseline": metrics["baseline_accuracy"],
        }
        rel = try_plot(ctx, f"{self.id}-accuracy.png", plots.bar_plot, bars, highlight=["members"],
                       title=f"Inferring {metrics['sensitive_feature']!r}", ylabel="accuracy")
        if rel:
            evidence["plots"] = [rel]
        return evidence


def _snap(column_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each true value as the nearest candidate: candidates are float64, the data may be float32,
    in which 0.1 is not 0.1 (the attack was once scored 0% against 0% for that alone)."""
    column_values = np.asarray(column_values, dtype=np.float64)
    nearest = np.abs(column_values[:, None] - values[None, :]).argmin(axis=1)
    close = np.isclose(column_values, values[nearest], rtol=1e-6, atol=1e-6)
    return np.where(close, values[nearest], column_values)


def _imputation_guesses(data, column: int, values: np.ndarray, roles: dict) -> dict | None:
    """The attribute each record of ``roles`` gets from a model fitted on the attacker's own rows
    (the other features and the label, no target query); None with too few rows or one value."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x_own, y_own = data.attacker_data()
    flat = np.asarray(x_own, dtype=np.float64).reshape(len(x_own), -1)
    secret = _snap(flat[:, column], values)
    if len(flat) < _MIN_IMPUTATION_ROWS or len(np.unique(secret)) < 2:
        return None

    def features(rows: np.ndarray, labels) -> np.ndarray:
        rest = np.delete(np.asarray(rows, dtype=np.float64).reshape(len(rows), -1), column, axis=1)
        return rest if labels is None else np.column_stack([rest, np.asarray(labels, dtype=np.float64)])

    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
        model.fit(features(flat, y_own), secret.astype(str))
        return {role: model.predict(features(x, y if y_own is not None else None)).astype(np.float64)
                for role, (x, y) in roles.items()}


def _sensitive_column(feature, data, n_features: int) -> tuple[int, str]:
    """(column index, display name) of the sensitive feature, from the parameter or data.meta."""
    names = data.feature_names or []
    if feature is None:
        feature = data.meta.get("sensitive_feature", data.meta.get("sensitive_index"))
        if feature is None:
            raise NotApplicable("the data set names no sensitive feature "
                                "(name one with --set FM03.attribute_inference.sensitive_feature=NAME)")
    if isinstance(feature, str) and not feature.isdigit():
        if feature not in names:
            raise UsageError(f"unknown sensitive feature {feature!r} (features: {', '.join(names) or 'unnamed'})")
        column = names.index(feature)
    else:
        column = int(feature)
        if not 0 <= column < n_features:
            raise UsageError(f"sensitive feature index {column} is outside the {n_features} features")
    return column, names[column] if column < len(names) else str(column)
