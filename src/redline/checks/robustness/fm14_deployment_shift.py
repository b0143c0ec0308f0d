"""FM14 distributional shift on a real deployment sample: how accurate is the model where it runs now?

The data set's ``deploy`` role holds inputs from where the model runs now, with labels or
without. The check asks the target about the test rows (the labelled reference, evaluation
queries) and the deployment rows (within the budget), then:

- estimates the accuracy on the deployment rows without their labels
  (:func:`redline.drift.estimate.estimate_accuracy`, average thresholded confidence by
  default), with a bootstrap interval, and the drop from the reference accuracy;
- when the deployment rows carry labels, measures their accuracy (exact interval), the
  measured drop (Newcombe's interval for a difference of two independent rates, built from
  the two exact intervals) and how far the estimate was from it.

The verdict judges the measured drop when there are labels, else the estimated one:
vulnerable when its interval lies wholly above ``tolerated_drop``, not vulnerable when
wholly below, inconclusive otherwise (with the number of deployment rows that would
decide). The default tolerance is 5 points: unlike a synthetic stress test this is the
model's accuracy on the inputs it meets now, and for the 90-97% accurate models that are
usual here 5 points is a half to a double of the error rate, which a model owner wants to
hear about; a smaller drop sits inside what the estimate can resolve on a few hundred rows.

It also tests whether the deployment rows come from the test rows' distribution at all
(:class:`redline.drift.ShiftDetector`: by default the model's output probabilities, every
input feature and a kernel test, Bonferroni-combined at ``alpha``): ``shift_detected`` and
``p_value``. A detected shift alone is not a vulnerability (a model may be as accurate on the
new inputs), but it keeps a label-free "the accuracy holds" from passing the model: label-free
estimates miss drops that leave the model as confident as before, so with a detected shift and
no deployment labels a small estimated drop is ``inconclusive``, asking for some labels.
For a table the evidence also keeps each feature's mean on both sets (``feature_means``):
FM17.operating_conditions counts a declared drift covered here only when the deployment rows
moved that feature at least as far.

Each step returns a dict of metrics and ``run`` merges them.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ...drift import ShiftDetector, ShiftTest
from ...drift.detect import METHODS as SHIFT_METHODS
from ...drift.estimate import METHODS, AccuracyEstimate, estimate_accuracy
from ...util.stats import clopper_pearson
from ..base import Check, Inconclusive, Needs, NotApplicable, Outcome
from .base import require_labels_above_chance

#: Fewest deployment (and reference) rows an interval on accuracy means anything for.
MIN_ROWS = 30
#: Widest table whose per-feature means the evidence records (for FM17's drift conditions).
MAX_MEAN_COLUMNS = 200


class DeploymentShift(Check):
    id = "FM14.deployment_shift"
    mode = "FM14"
    title = "Accuracy on a deployment sample: estimated without its labels, measured with them"
    # Labels are read as given and never asked of the target: the test rows' labels must be
    # true ones (checked in run), the deployment rows' are optional.
    needs = Needs(outputs="probabilities", roles=("test", "deploy"), labels_from_target=False)
    default_budget = 10_000
    metrics = (
        "reference_accuracy", "estimated_accuracy", "deploy_accuracy", "accuracy_drop",
        "estimated_accuracy_drop", "estimation_error", "estimation_method", "deploy_rows",
        "reference_rows", "deploy_labelled", "effective_sample_size", "shift_detected", "p_value",
        "shift_method",
    )
    param_docs: ClassVar[dict[str, str]] = {
        "method": f"label-free accuracy estimate: {', '.join(METHODS)} (atc: thresholded negative entropy)",
        "tolerated_drop": "accuracy drop (0..1) from the test rows to the deployment rows still accepted",
        "shift_test": f"shift test of the deployment rows against the test rows: auto or {'+'.join(SHIFT_METHODS)} "
                      "(one or several joined by +)",
        "alpha": "false-alarm rate of the shift test (0..1)",
    }

    def __init__(self, method: str = "atc", tolerated_drop: float = 0.05, shift_test: str = "auto",
                 alpha: float = 0.05):
        self.method = method
        self.tolerated_drop = tolerated_drop
        self.shift_test = shift_test
        self.alpha = alpha

    def _validate(self, target=None) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0 <= float(self.tolerated_drop) < 1:
            raise ValueError("tolerated_drop must be in [0, 1)")
        names = str(self.shift_test).split("+")
        if self.shift_test != "auto" and not all(name in SHIFT_METHODS for name in names):
            raise ValueError(f"shift_test must be auto or any of {', '.join(SHIFT_METHODS)} joined by +, "
                             f"not {self.shift_test!r}")
        if not 0 < float(self.alpha) < 1:
            raise ValueError("alpha must be in (0, 1)")

    # -- the procedure ---------------------------------------------------------------
    def run(self, target, data, budget, rng, ctx) -> Outcome:
        self._validate(target)
        if data.y_test is None:
            raise NotApplicable("the test rows carry no labels; the reference accuracy needs true labels")
        x_ref, y_ref = data.x_test, np.asarray(data.y_test).astype(int)
        x_dep, y_dep, note = self._deploy_rows(data, budget, rng)
        if len(x_ref) < MIN_ROWS or len(x_dep) < MIN_ROWS:
            raise Inconclusive(f"{len(x_ref)} test rows and {len(x_dep)} deployment rows: at least {MIN_ROWS} "
                               "of each are needed for an interval on accuracy")
        with target.ledger.evaluating():
            ref_p = np.asarray(target.predict(x_ref), dtype=np.float64)
        require_labels_above_chance(ref_p.argmax(axis=1) == y_ref, target.n_classes)
        dep_p = np.asarray(target.predict(x_dep), dtype=np.float64)
        ctx.progress(1, 1)
        estimate = estimate_accuracy(ref_p, y_ref, dep_p, method=self.method, reference_inputs=x_ref,
                                     deploy_inputs=x_dep, seed=int(rng.integers(2**31 - 1)))
        shift = self._shift(x_ref, ref_p, x_dep, dep_p, seed=int(rng.integers(2**31 - 1)))
        steps = [self._estimated(estimate, len(x_ref), len(x_dep)), self._shift_metrics(shift)]
        if y_dep is not None:
            steps.append(self._measured(estimate, dep_p, y_dep, y_ref, ref_p))
        metrics: dict[str, Any] = {}
        for step in steps:
            metrics.update(step)
        evidence = {"estimation": estimate.to_dict(), "shift_test": _shift_evidence(shift),
                    **_feature_means(x_ref, x_dep), **({"note": note} if note else {})}
        vulnerable, undecided = self._verdict(metrics, estimate, len(x_dep))
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence,
                       summary=self._summary(metrics), inconclusive=undecided)

    def _deploy_rows(self, data, budget, rng) -> tuple[np.ndarray, np.ndarray | None, str]:
        """The deployment rows to ask about: all of them, or a seeded sample the budget covers."""
        x, y = data.x_deploy, data.y_deploy
        if len(x) <= budget:
            return x, (None if y is None else np.asarray(y).astype(int)), ""
        rows = np.sort(rng.permutation(len(x))[: max(int(budget), 0)])
        note = f"the budget covers {len(rows)} of the {len(x)} deployment rows (a seeded random sample)"
        return x[rows], (None if y is None else np.asarray(y)[rows].astype(int)), note

    # -- the steps: each returns metrics ------------------------------------------------
    def _shift(self, x_ref, ref_p, x_dep, dep_p, seed: int) -> ShiftTest:
        """Two-sample test of the deployment rows (inputs and the model's outputs) against the test rows."""
        method = "auto" if self.shift_test == "auto" else str(self.shift_test).split("+")
        detector = ShiftDetector(method=method, alpha=float(self.alpha), seed=seed)
        detector.fit(np.asarray(x_ref), reference_outputs=ref_p)
        return detector.test(np.asarray(x_dep), sample_outputs=dep_p)

    @staticmethod
    def _shift_metrics(shift: ShiftTest) -> dict[str, Any]:
        return {"shift_detected": bool(shift.shifted), "p_value": float(shift.p_value), "shift_method": shift.method}

    @staticmethod
    def _estimated(estimate: AccuracyEstimate, n_ref: int, n_dep: int) -> dict[str, Any]:
        """The label-free estimate; ``accuracy_drop`` is the estimated drop until labels measure it."""
        metrics: dict[str, Any] = {
            "reference_accuracy": estimate.reference_accuracy,
            "reference_accuracy_ci": list(clopper_pearson(round(estimate.reference_accuracy * n_ref), n_ref)),
            "estimation_method": estimate.method,
            "reference_rows": n_ref,
            "deploy_rows": n_dep,
            "deploy_labelled": False,
        }
        if "effective_sample_size" in estimate.details:
            metrics["effective_sample_size"] = estimate.details["effective_sample_size"]
        if estimate.accuracy is not None:
            metrics.update(
                estimated_accuracy=estimate.accuracy, estimated_accuracy_ci=list(estimate.interval),
                estimated_accuracy_drop=estimate.drop, estimated_accuracy_drop_ci=list(estimate.drop_interval),
                accuracy_drop=estimate.drop, accuracy_drop_ci=list(estimate.drop_interval),
            )
        return metrics

    @staticmethod
    def _measured(estimate: AccuracyEstimate, dep_p, y_dep, y_ref, ref_p) -> dict[str, Any]:
        """With deployment labels: measured accuracy and drop, and the estimate's error."""
        ref_hits, n_ref = int(np.sum(ref_p.argmax(axis=1) == y_ref)), len(y_ref)
        dep_hits, n_dep = int(np.sum(dep_p.argmax(axis=1) == y_dep)), len(y_dep)
        deploy_accuracy = dep_hits / n_dep
        metrics: dict[str, Any] = {
            "deploy_labelled": True,
            "deploy_accuracy": deploy_accuracy,
            "deploy_accuracy_ci": list(clopper_pearson(dep_hits, n_dep)),
            "accuracy_drop": ref_hits / n_ref - deploy_accuracy,
            "accuracy_drop_ci": newcombe_difference(ref_hits, n_ref, dep_hits, n_dep),
        }
        if estimate.accuracy is not None:
            metrics["estimation_error"] = abs(estimate.accuracy - deploy_accuracy)
        return metrics

    # -- verdict and words ----------------------------------------------------------------
    def _verdict(self, metrics: dict[str, Any], estimate: AccuracyEstimate, n_dep: int) -> tuple[bool, str]:
        if "accuracy_drop_ci" not in metrics:
            why = estimate.details.get("inconclusive", f"the {estimate.method} estimate gave no number")
            return False, f"{why}; labels for the deployment rows (y_deploy) would measure the accuracy instead"
        tolerated = float(self.tolerated_drop)
        low, high = metrics["accuracy_drop_ci"]
        if low > tolerated:
            return True, ""
        if high < tolerated and metrics["shift_detected"] and not metrics["deploy_labelled"]:
            return False, (f"the deployment rows differ from the test rows (shift test p = {metrics['p_value']:.2g}) "
                           f"while the label-free estimate sees no drop beyond {tolerated:.0%}; such estimates miss "
                           "drops that leave the model as confident as before, so labels for some deployment rows "
                           "(y_deploy) are needed to clear it")
        if high < tolerated:
            return False, ""
        basis = "measured" if metrics["deploy_labelled"] else "estimated"
        wanted = _rows_to_decide(high - low, abs(metrics["accuracy_drop"] - tolerated), n_dep)
        return False, (f"the {basis} drop ({metrics['accuracy_drop']:.1%}, 95% CI {low:.1%} to {high:.1%}) straddles "
                       f"the tolerated {tolerated:.0%}; about {wanted} deployment rows would decide")

    def _summary(self, m: dict[str, Any]) -> str:
        text = f"Accuracy {m['reference_accuracy']:.1%} on {m['reference_rows']} test rows"
        if "estimated_accuracy" in m:
            low, high = m["estimated_accuracy_ci"]
            text += (f"; estimated without labels ({m['estimation_method']}) {m['estimated_accuracy']:.1%} "
                     f"(95% CI {low:.1%} to {high:.1%}) on {m['deploy_rows']} deployment rows")
        else:
            text += f"; no label-free estimate ({m['estimation_method']}) on {m['deploy_rows']} deployment rows"
        text += (f"; the deployment rows {'differ' if m['shift_detected'] else 'do not differ detectably'} from "
                 f"the test rows (shift test p = {m['p_value']:.2g})")
        if m["deploy_labelled"]:
            low, high = m["deploy_accuracy_ci"]
            text += f", measured with their labels {m['deploy_accuracy']:.1%} (95% CI {low:.1%} to {high:.1%})"
            if "estimation_error" in m:
                text += f", so the estimate was off by {m['estimation_error']:.1%}"
        if "accuracy_drop" in m:
            low, high = m["accuracy_drop_ci"]
            text += (f". Drop {m['accuracy_drop']:.1%} (95% CI {low:.1%} to {high:.1%}; "
                     f"tolerated {float(self.tolerated_drop):.0%}).")
        return text + ("" if text.endswith(".") else ".")


def newcombe_difference(hits_a: int, n_a: int, hits_b: int, n_b: int) -> list[float]:
    """95% interval of ``hits_a/n_a - hits_b/n_b`` for two independent samples (Newcombe's
    method, square-and-add of each rate's own interval; exact Clopper-Pearson intervals
    here, which makes it a little conservative)."""
    p_a, p_b = hits_a / n_a, hits_b / n_b
    low_a, high_a = clopper_pearson(hits_a, n_a)
    low_b, high_b = clopper_pearson(hits_b, n_b)
    diff = p_a - p_b
    return [diff - math.hypot(p_a - low_a, high_b - p_b), diff + math.hypot(high_a - p_a, p_b - low_b)]


def _rows_to_decide(width: float, margin: float, n: int) -> int:
    """Deployment rows at which an interval of ``width`` on ``n`` rows shrinks (as 1/sqrt(n))
    to clear a ``margin`` from the tolerance; a rough guide, not a promise."""
    if margin <= 0:
        return n * 100
    return math.ceil(n * (width / (2.0 * margin)) ** 2)


def _feature_means(x_ref, x_dep) -> dict[str, Any]:
    """For a table (rows of at most ``MAX_MEAN_COLUMNS`` features): each feature's mean on the
    test rows and on the deployment rows asked about (``feature_means``, by column; None where
    a column has no finite value), which FM17.operating_conditions compares a declared drift
    with. Nothing for images and wider inputs."""
    ref, dep = np.asarray(x_ref), np.asarray(x_dep)
    if ref.ndim != 2 or ref.shape[1] > MAX_MEAN_COLUMNS or dep.shape[1:] != ref.shape[1:]:
        return {}

    def means(rows: np.ndarray) -> list[float | None]:
        rows = np.asarray(rows, np.float64)
        finite = np.isfinite(rows)
        counts = finite.sum(axis=0)
        sums = np.where(finite, rows, 0.0).sum(axis=0)
        return [float(s / c) if c else None for s, c in zip(sums, counts)]

    return {"feature_means": {"reference": means(ref), "deploy": means(dep)}}


def _shift_evidence(shift: ShiftTest, top: int = 10) -> dict[str, Any]:
    """The shift test's record for the finding: the verdict, each method's p-value and the
    features (or outputs) that moved most."""
    record = shift.to_dict()
    features = record.pop("per_feature", None) or []
    record["most_shifted_features"] = sorted(features, key=lambda f: (f.get("p_adjusted") is None,
                                                                       f.get("p_adjusted") or 1.0))[:top]
    return record
