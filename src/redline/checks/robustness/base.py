"""Accuracy under transformation: the procedure the shift and corruption checks share
(FM14 distributional shift, FM16 common corruption; FM15 transforms nothing and has its own).

A subclass names its transformations, family by family and severity by severity, each a
function of a batch of inputs (target units) and a seeded RNG that returns the changed
batch (:meth:`AccuracyUnderTransformation.transformations`). The base draws the inputs,
measures the target's accuracy on them as they are and under every transformation through
its ordinary ``predict``, and reports how far accuracy drops, with exact intervals:

- every accuracy carries its Clopper-Pearson 95% interval (:mod:`redline.util.stats`);
- every drop is paired (the same inputs, clean and transformed): it is the share of inputs
  turned wrong minus the share turned right, and its interval comes from the exact
  intervals of those two shares (:func:`paired_drop`).

Queries: the clean answers are evaluation queries; every transformed input is one attack
query, so the budget bounds the check (inputs are dropped to fit it). Each transformation
gets its own RNG, seeded from one draw of the check's RNG in a fixed order, so adding a
family does not change what the others draw.

Verdict: vulnerable when some transformation's drop is, with 95% confidence, larger than
``tolerated_drop``; not vulnerable when every drop is, with 95% confidence, smaller; and
inconclusive in between, with the number of inputs that would decide.
"""
from __future__ import annotations

import abc
import csv
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from ...util.epsilon import FeatureUnits
from ...util.evidence import try_plot
from ...util.stats import CONFIDENCE, clopper_pearson, rate_interval
from ...util.wording import count
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome

#: A transformation: (inputs in target units, a seeded RNG) -> inputs of the same shape.
TransformFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]

#: The metrics every accuracy-under-transformation check reports (besides its per-family table).
TRANSFORMATION_METRICS = (
    "clean_accuracy", "mean_transformed_accuracy", "accuracy_drop", "worst_transformation",
    "worst_accuracy", "worst_accuracy_drop", "evaluated_inputs", "transformations",
)


#: A test accuracy this improbably far below a random guess's says the labels are numbered
#: unlike the model's classes (binomial tail against 1/k; strict, as an honest model never
#: scores below guessing on its own task).
BELOW_CHANCE_P = 1e-4


def require_labels_above_chance(correct: np.ndarray, n_classes: int, where: str = "test rows") -> None:
    """Raise :class:`~..base.Inconclusive` when the target gets ``correct`` (one bool per
    labelled row) right significantly less often than a random guess (1/``n_classes``,
    whatever the class mix): the labels then mean other classes than the model's (text
    labels numbered in sorted order, 1..k against 0..k-1), and every accuracy, drop and
    verdict measured on them would be noise, read as a result."""
    from scipy.stats import binom

    from ..base import Inconclusive

    correct = np.asarray(correct, dtype=bool).reshape(-1)
    n, k = len(correct), int(correct.sum())
    if n == 0 or n_classes < 2:
        return
    guess = 1.0 / n_classes
    p = float(binom.cdf(k, n, guess))
    if k / n < guess and p < BELOW_CHANCE_P:
        raise Inconclusive(
            f"the target answers only {k} of {n} {where} right ({k / n:.0%}), below the {guess:.0%} a random guess "
            f"gets (p = {p:.1g}): the labels most likely name other classes than the model's (text labels are "
            f"numbered in sorted order; labels 1..k against classes 0..k-1), so no accuracy measured on them means "
            f"anything; check the label column against the model's classes")


def paired_drop(clean_ok: np.ndarray, changed_ok: np.ndarray) -> tuple[float, list[float]]:
    """Accuracy drop from ``clean_ok`` to ``changed_ok`` (booleans, one per input) and its
    95% interval. With ``b`` of ``n`` inputs turned wrong and ``c`` turned right, the drop is
    (b - c) / n, the difference of two shares of the same inputs; each share gets its exact
    interval at 97.5%, so both hold together at least 95% of the time (union bound), and the
    drop lies between the lowest and highest difference they allow. Exact and unconditional:
    an interval conditional on b + c would stop at (b + c) / n."""
    clean_ok, changed_ok = np.asarray(clean_ok, bool), np.asarray(changed_ok, bool)
    n = len(clean_ok)
    if n == 0:
        return 0.0, [-1.0, 1.0]
    turned_wrong = int((clean_ok & ~changed_ok).sum())
    turned_right = int((~clean_ok & changed_ok).sum())
    each = 1 - (1 - CONFIDENCE) / 2
    wrong_low, wrong_high = clopper_pearson(turned_wrong, n, each)
    right_low, right_high = clopper_pearson(turned_right, n, each)
    return (turned_wrong - turned_right) / n, [wrong_low - right_high, wrong_high - right_low]


#: Inputs below which the average drop's normal interval is not trusted (the verdict is inconclusive).
MIN_INPUTS_FOR_MEAN = 30


def mean_drop_interval(clean_ok: np.ndarray, changed_ok: np.ndarray) -> list[float]:
    """95% interval of the accuracy drop averaged over transformations: ``changed_ok`` is
    (transformations, inputs). Each input contributes its own paired drop (clean right minus
    the share of transformations it survives, in [-1, 1]); their mean is the average drop, and
    the normal interval on that mean is sound for the tens to hundreds of inputs checks use."""
    per_input = np.asarray(clean_ok, float) - np.asarray(changed_ok, float).mean(axis=0)
    n = len(per_input)
    if n < 2:
        return [-1.0, 1.0]
    half = 1.959963984540054 * float(per_input.std(ddof=1)) / np.sqrt(n)
    mean = float(per_input.mean())
    return [max(-1.0, mean - half), min(1.0, mean + half)]


@dataclasses.dataclass(frozen=True)
class Measured:
    """One transformation's result on the evaluated inputs."""

    family: str
    severity: int
    accuracy: float
    accuracy_ci: list[float]
    drop: float
    drop_ci: list[float]

    @property
    def name(self) -> str:
        return f"{self.family}/{self.severity}"

    def row(self) -> dict[str, Any]:
        return {"family": self.family, "severity": self.severity, "accuracy": self.accuracy,
                "accuracy_ci": self.accuracy_ci, "drop": self.drop, "drop_ci": self.drop_ci}


class AccuracyUnderTransformation(Check):
    """Base of the shift and corruption checks. A subclass sets the class attributes of a
    check (id, mode, title, metrics including ``accuracy_metric``), stores ``n_inputs`` and
    ``tolerated_drop`` (and its own parameters) and implements :meth:`transformations`."""

    needs = Needs(roles=("test",))
    default_budget = 10_000
    #: The metric holding accuracy per family, a list by increasing severity.
    accuracy_metric: ClassVar[str] = "transformed_accuracy"
    #: What the verdict judges against ``tolerated_drop``: the worst single transformation
    #: ("worst"), or the drop averaged over every transformation ("mean"; a per-input paired
    #: mean with a normal 95% interval, as corruption benchmarks average over families).
    judged_on: ClassVar[str] = "worst"

    @abc.abstractmethod
    def transformations(self, target, data) -> Mapping[str, Mapping[int, TransformFn]]:
        """family -> severity -> transformation, for this target's inputs (``data`` for
        transformations fitted to the data set, e.g. a shift of its feature statistics)."""

    def _validate(self, target=None) -> None:
        if int(self.n_inputs) < 1:
            raise ValueError("n_inputs must be at least 1")
        if not 0 <= float(self.tolerated_drop) < 1:
            raise ValueError("tolerated_drop must be in [0, 1)")

    # -- the procedure ---------------------------------------------------------------
    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate(target)
        table = [(family, int(severity), fn) for family, levels in self.transformations(target, data).items()
                 for severity, fn in sorted(levels.items())]
        if not table:
            raise NotApplicable("no transformation applies to this target's inputs")
        idx = rng.permutation(len(data.x_test))[: int(self.n_inputs)]
        # Every transformed input is one query: as many inputs as the budget covers for all.
        idx = idx[: budget // len(table)]
        if not len(idx):
            raise NotApplicable(f"a budget of {budget} queries cannot send one input through each of "
                                f"{len(table)} transformations")
        x, y = data.x_test[idx].astype(target.input_spec.dtype), data.y_test[idx].astype(int)
        seeds = rng.integers(2**31 - 1, size=len(table))
        with target.ledger.evaluating():
            clean_ok = target.predict_labels(x) == y
        require_labels_above_chance(clean_ok, target.n_classes)
        results, changed_oks = [], []
        for i, ((family, severity, fn), seed) in enumerate(zip(table, seeds)):
            changed = np.asarray(fn(x.copy(), np.random.default_rng(int(seed))))
            if changed.shape != x.shape:
                raise ValueError(f"transformation {family}/{severity} returned shape {changed.shape}, not {x.shape}")
            changed_ok = target.predict_labels(self._acceptable(target, changed, x)) == y
            changed_oks.append(changed_ok)
            accuracy = float(changed_ok.mean())
            drop, drop_ci = paired_drop(clean_ok, changed_ok)
            results.append(Measured(family, severity, accuracy, rate_interval(accuracy, len(y)), drop, drop_ci))
            ctx.progress(i + 1, len(table))
        judged = self._judged(results)
        metrics = self._metrics(clean_ok, results, judged)
        metrics["accuracy_drop_ci"] = mean_drop_interval(clean_ok, np.stack(changed_oks)[judged])
        metrics.update(self._more_metrics(y, clean_ok, results))
        evidence = {"table": [r.row() for r in results], **self._artifacts(ctx, results, metrics)}
        if self.judged_on == "mean":
            vulnerable, undecided = self._mean_verdict(metrics, len(y), len(results))
        else:
            vulnerable, undecided = self._verdict([results[i] for i in judged], len(y))
        # among the judged transformations: one reported as context only (a pipeline fault)
        # would read as the reason for the verdict
        worst = max((results[i] for i in judged) if judged else results, key=lambda r: r.drop)
        summary = (
            f"Accuracy {metrics['clean_accuracy']:.0%} on {len(y)} inputs as they are, "
            f"{metrics['mean_transformed_accuracy']:.0%} on average over {count(len(judged), 'transformation')}; "
            f"the largest drop, {worst.drop:.0%} (95% CI {worst.drop_ci[0]:.0%} to {worst.drop_ci[1]:.0%}), "
            f"under {worst.name} (tolerated: {float(self.tolerated_drop):.0%})."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    @staticmethod
    def _acceptable(target, changed: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``changed`` mapped onto what the target accepts: each feature's bounds, and its
        feature constraints (immutable, integer, one-hot) around the original inputs."""
        spec = target.input_spec
        # In the target's own dtype: float32 would change large values (integers above 2**24).
        changed = FeatureUnits.from_spec(spec).clip(changed.astype(spec.dtype))
        return spec.constraints.project(changed, x).astype(spec.dtype) if spec.constraints else changed

    def _judged(self, results: list[Measured]) -> list[int]:
        """Indices of the results the verdict and the average judge (all of them here; a
        subclass may leave out transformations it reports as context only)."""
        return list(range(len(results)))

    def _metrics(self, clean_ok: np.ndarray, results: list[Measured], judged: list[int]) -> dict[str, Any]:
        n = len(clean_ok)
        clean = float(clean_ok.mean())
        mean_accuracy = float(np.mean([results[i].accuracy for i in judged]))
        # among the judged transformations: one reported as context only (a pipeline fault)
        # would read as the reason for the verdict
        worst = max((results[i] for i in judged) if judged else results, key=lambda r: r.drop)
        by_family: dict[str, list[float]] = {}
        for r in results:
            by_family.setdefault(r.family, []).append(r.accuracy)
        return {
            "clean_accuracy": clean,
            "clean_accuracy_ci": rate_interval(clean, n),
            self.accuracy_metric: by_family,
            "mean_transformed_accuracy": mean_accuracy,
            "accuracy_drop": clean - mean_accuracy,
            "worst_transformation": worst.name,
            "worst_accuracy": worst.accuracy,
            "worst_accuracy_ci": worst.accuracy_ci,
            "worst_accuracy_drop": worst.drop,
            "worst_accuracy_drop_ci": worst.drop_ci,
            "evaluated_inputs": n,
            "transformations": len(results),
        }

    def _more_metrics(self, y: np.ndarray, clean_ok: np.ndarray, results: list[Measured]) -> dict[str, Any]:
        """Metrics a subclass adds, given the evaluated labels ``y`` (none here)."""
        return {}

    def _mean_verdict(self, metrics: dict[str, Any], n: int, transformations: int) -> tuple[bool, str]:
        """(vulnerable, why undecided) judging the average drop over every transformation."""
        tolerated = float(self.tolerated_drop)
        low, high = metrics["accuracy_drop_ci"]
        if n < MIN_INPUTS_FOR_MEAN:
            return False, (f"{n} inputs are too few for an interval on the average drop; at least "
                           f"{MIN_INPUTS_FOR_MEAN} (a budget of {MIN_INPUTS_FOR_MEAN} x {transformations} queries) would decide")
        if low > tolerated:
            return True, ""
        if high <= tolerated:
            return False, ""
        return False, (
            f"the average drop ({metrics['accuracy_drop']:.0%}, 95% CI {low:.0%} to {high:.0%}) on {n} inputs "
            f"cannot be told from the tolerated {tolerated:.0%}; more inputs (n_inputs and a budget of "
            f"n_inputs x {transformations} queries) would decide"
        )

    def _verdict(self, results: list[Measured], n: int) -> tuple[bool, str]:
        """(vulnerable, why undecided): a drop surely above the tolerance, all surely below, or neither."""
        tolerated = float(self.tolerated_drop)
        above = [r for r in results if r.drop_ci[0] > tolerated]
        if above:
            return True, ""
        unsure = [r for r in results if r.drop_ci[1] > tolerated]
        if not unsure:
            return False, ""
        worst = max(unsure, key=lambda r: r.drop_ci[1])
        return False, (
            f"the drop under {worst.name} ({worst.drop:.0%}, 95% CI up to {worst.drop_ci[1]:.0%}) on {n} inputs "
            f"cannot rule out more than the tolerated {tolerated:.0%}; more inputs (n_inputs and a budget of "
            f"n_inputs x {len(results)} queries) would decide"
        )

    def _artifacts(self, ctx: CheckContext, results: list[Measured], metrics: dict[str, Any]) -> dict[str, Any]:
        """The table as CSV and accuracy against severity per family as a plot."""
        from ...util import plots
        from ...util.atomic import writing_output

        out: dict[str, Any] = {}
        path, rel = ctx.artifact(f"{self.id}-accuracy.csv")
        if path is not None:
            with writing_output(path, remove_partial=True), open(path, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["family", "severity", "accuracy", "accuracy_low", "accuracy_high", "drop",
                                 "drop_low", "drop_high"])
                for r in results:
                    writer.writerow([r.family, r.severity, r.accuracy, *r.accuracy_ci, r.drop, *r.drop_ci])
            out["table_file"] = rel
        series = {family: ([r.severity for r in results if r.family == family],
                           [r.accuracy for r in results if r.family == family])
                  for family in metrics[self.accuracy_metric]}
        rel = try_plot(ctx, f"{self.id}-accuracy.png", plots.line_plot, series,
                       title=f"Accuracy under transformation (clean: {metrics['clean_accuracy']:.0%})",
                       xlabel="severity", ylabel="accuracy")
        if rel:
            out["plots"] = [rel]
        return out
