"""FM02 indiscriminate poisoning by label flipping: how much accuracy a few wrong labels cost.

The attacker changes the labels of a fraction of the training rows and the victim retrains
with its own recipe (``target.retrain``). Two choices of rows:

- ``random``: random rows, each given a random other class (label noise an attacker can
  inject without knowing the model);
- ``confident``: the rows the deployed model is most confident about (farthest from the
  decision boundary), each given the class the model finds least likely: flipped labels
  that far from the boundary have the largest loss and drag the boundary the most.

The accuracy drop is measured against a model retrained by the same recipe and seed on the
clean rows, for poisoning rates from 1% to 20%; the reported ``accuracy_drop`` is the worst
strategy's at ``report_rate``. Defences (loss-based sanitisation, the sphere defence, RONI;
see :func:`redline.checks.training_time.poisoning.measure_defences`) are retrained at
``report_rate`` and reported as ``accuracy_drop_with_<defence>`` and ``damage_undone_<defence>``.

Queries: ``confident`` asks the deployed target for its probabilities on the training rows
(attack queries, at most the budget; rows beyond it are picked at random). Every model the
recipe retrains is charged to the same ledger; measuring accuracies, and every model a
defence trains and consults, is counted as evaluation.
"""
from __future__ import annotations

import numpy as np

from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .poisoning import (
    ACCURACY_DROP_PARAM_DOCS,
    CLASSIFIER_DEFENCES,
    TrainingPipeline,
    check_rates,
    judge_drop,
    curve_evidence,
    measure_defences,
    replaced_count,
    split_holdout,
)

STRATEGIES = ("confident", "random")


class LabelFlip(Check):
    id = "FM02.label_flip"
    mode = "FM02"
    title = "Indiscriminate poisoning by label flipping"
    needs = Needs(trainable=True, roles=("train", "test"), attacker=True)
    default_budget = 10_000
    metrics = (
        "accuracy_drop", "accuracy_drop_*", "clean_accuracy", "damage_undone_*", "max_accuracy_drop",
        "poison_rate", "poisoned_accuracy", "strategy"
    )
    param_docs = {
        "strategies": "how flipped rows are chosen: confident, random (one or both)",
        "rates": "flip rates (shares of the training set) on the damage curve",
        "report_rate": "the flip rate the verdict is judged at (added to rates)",
        **ACCURACY_DROP_PARAM_DOCS,
        "roni_tolerance": "accuracy loss a group may cause before RONI rejects it",
    }

    def __init__(
        self,
        strategies: tuple[str, ...] = STRATEGIES,
        rates: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2),
        report_rate: float = 0.1,
        drop_threshold: float = 0.05,
        defences: tuple[str, ...] = CLASSIFIER_DEFENCES,
        roni_groups: int = 20,
        roni_tolerance: float = 0.0,
    ):
        self.strategies = strategies
        self.rates = rates
        self.report_rate = report_rate
        self.drop_threshold = drop_threshold
        self.defences = defences
        self.roni_groups = roni_groups
        self.roni_tolerance = roni_tolerance

    def _validate(self) -> list[float]:
        unknown = set(self.strategies) - set(STRATEGIES) or set(self.defences) - set(CLASSIFIER_DEFENCES)
        if unknown or not self.strategies:
            raise ValueError(f"strategies come from {STRATEGIES} (at least one), defences from {CLASSIFIER_DEFENCES}")
        return check_rates(self.rates, self.report_rate)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        rates = self._validate()
        x, y = data.x_train, np.asarray(data.y_train, dtype=np.int64)
        k = max(target.n_classes, int(y.max()) + 1)
        if k < 2 or len(x) < 10:
            raise NotApplicable("label flipping needs at least two classes and ten training rows")
        pipeline = TrainingPipeline(target, seed=int(rng.integers(2**31)))
        (x_val, y_val), (x_eval, y_eval) = split_holdout(*data.evaluation_data(), rng)  # apart from the pool
        clean_accuracy = pipeline.accuracy(pipeline.fit(x, y), x_eval, y_eval)

        plans, skipped = {}, {}
        for strategy in self.strategies:
            plan = self._plan(strategy, target, x, y, k, budget, rng, pipeline, data.attacker_data())
            if plan is None:
                skipped[strategy] = (
                    "the target answers labels only, so its confidence is unknown"
                    if target.capabilities.outputs != "probabilities"
                    else "a budget of 0 queries leaves no way to learn the target's confidence"
                )
            else:
                plans[strategy] = plan
        if not plans:
            raise NotApplicable("; ".join(f"{s}: {why}" for s, why in skipped.items()))

        curves: dict[str, list[float]] = {}
        for done, (strategy, (order, new_labels)) in enumerate(plans.items(), start=1):
            curves[strategy] = []
            for rate in rates:
                y_poisoned = flip(y, order, new_labels, replaced_count(len(y), rate))
                accuracy = pipeline.accuracy(pipeline.fit(x, y_poisoned), x_eval, y_eval)
                curves[strategy].append(clean_accuracy - accuracy)
            ctx.progress(done, len(plans) + 1)

        at = rates.index(float(self.report_rate))
        worst = max(curves, key=lambda s: curves[s][at])
        drop = curves[worst][at]
        metrics = {
            "poison_rate": float(self.report_rate),
            "accuracy_drop": float(drop),
            "clean_accuracy": clean_accuracy,
            "poisoned_accuracy": clean_accuracy - drop,
            "strategy": worst,
            "max_accuracy_drop": float(max(max(c) for c in curves.values())),
            **{f"accuracy_drop_{s}": float(c[at]) for s, c in curves.items()},
        }
        order, new_labels = plans[worst]
        y_report = flip(y, order, new_labels, replaced_count(len(y), self.report_rate))
        # The verdict: the worst strategy's models again (same seed, same models), row by row.
        vulnerable, undecided, _, drop_ci, drop_p = judge_drop(pipeline, pipeline.fit(x, y), pipeline.fit(x, y_report),
                                                       (x_eval, y_eval), float(self.drop_threshold))
        metrics.update(accuracy_drop_ci=drop_ci, accuracy_drop_p_value=drop_p)
        metrics.update(measure_defences(
            pipeline, self.defences, x, y_report, float(self.report_rate), (x_val, y_val), (x_eval, y_eval),
            clean_accuracy, drop, roni_groups=int(self.roni_groups), roni_tolerance=float(self.roni_tolerance), rng=rng,
        ))
        ctx.progress(len(plans) + 1, len(plans) + 1)

        evidence = curve_evidence(
            ctx, self.id, rates, {f"accuracy_drop_{s}": c for s, c in curves.items()}, series=tuple(curves),
            title="Accuracy drop against label-flipping rate", ylabel="accuracy drop", skipped=skipped,
        )
        summary = (
            f"Flipping {self.report_rate:.0%} of the training labels ({worst} rows) cut test accuracy from "
            f"{clean_accuracy:.1%} to {clean_accuracy - drop:.1%} (drop 95% CI {drop_ci[0]:.1%} to {drop_ci[1]:.1%} "
            f"on {len(y_eval)} rows)."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary, inconclusive=undecided)

    def _plan(self, strategy, target, x, y, k, budget, rng, pipeline, pool):
        """Rows in the order the attacker flips them, and the label each one gets."""
        n = len(x)
        if strategy == "random":
            return rng.permutation(n), (y + rng.integers(1, k, size=n)) % k
        if target.capabilities.outputs != "probabilities" or budget < 1:
            return None
        # Rows beyond the budget are never queried; they follow the ranked ones at random.
        asked = rng.permutation(n)[: min(n, budget)]
        probs = np.asarray(target.predict(x[asked]), dtype=np.float64)
        confidence = probs[np.arange(len(asked)), y[asked]]
        new_labels = (y + 1) % k
        least_likely = probs.copy()
        least_likely[np.arange(len(asked)), y[asked]] = np.inf
        new_labels[asked] = least_likely.argmin(axis=1)
        # Flips all in one direction move the boundary instead of cancelling out: the
        # attacker flips one class first, the one whose flips hurt most on its own data.
        by_class = {
            c: asked[y[asked] == c][np.argsort(-confidence[y[asked] == c], kind="stable")] for c in range(k)
        }
        source = self._worst_source(by_class, new_labels, x, y, pipeline, pool, rng)
        others = asked[y[asked] != source][np.argsort(-confidence[y[asked] != source], kind="stable")]
        ranked = np.concatenate([by_class[source], others])
        rest = np.setdiff1d(np.arange(n), asked)
        return np.concatenate([ranked, rng.permutation(rest)]), new_labels

    def _worst_source(self, by_class, new_labels, x, y, pipeline, pool, rng) -> int:
        """The class whose most confident rows, flipped at ``report_rate``, cost the most
        accuracy on the attacker's own data (attack queries); the largest class when the
        budget leaves too little to compare."""
        candidates = [c for c, rows in by_class.items() if len(rows)]
        largest = max(candidates, key=lambda c: len(by_class[c]))
        x_pool, y_pool = pool
        per_class = min(len(x_pool), 1000, (pipeline.ledger.remaining or 0) // max(1, len(candidates)))
        if len(candidates) < 2 or per_class < 20:
            return largest
        pick = rng.permutation(len(x_pool))[:per_class]
        count = replaced_count(len(y), float(self.report_rate))
        scores = {}
        for c in candidates:
            order = np.concatenate([by_class[c], rng.permutation(np.setdiff1d(np.arange(len(y)), by_class[c]))])
            model = pipeline.fit(x, flip(y, order, new_labels, count))
            scores[c] = float(np.mean(model.predict_labels(x_pool[pick]) == y_pool[pick]))
        return min(candidates, key=lambda c: (scores[c], c))


def flip(y: np.ndarray, order: np.ndarray, new_labels: np.ndarray, count: int) -> np.ndarray:
    """``y`` with the first ``count`` rows of ``order`` relabelled."""
    chosen = order[:count]
    out = y.copy()
    out[chosen] = new_labels[chosen]
    return out
