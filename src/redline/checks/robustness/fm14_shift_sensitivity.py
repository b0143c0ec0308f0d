"""FM14 distributional shift, sensitivity: which synthetic shifts of its own test data break a model.

The model answers the labelled test rows once; every shift then reweights those rows into a
hypothetical deployment population (:mod:`.shifts`): only the rows in a band of one feature or
principal direction, only one k-means cluster or every row but it (a held-out subgroup), one
class at ``prior_share`` of the rows, random class priors from a flat Dirichlet. No input is
edited (that is FM16), so the budget is the number of test rows sent, each sent once.

For each shift the check reports the shifted accuracy and its drop from the plain test accuracy,
each with a simultaneous exact 95% interval (:mod:`.shift_stats`), and the subgroup's size. A
shift whose subgroup has fewer than ``min_rows`` rows is skipped and listed as such: a handful of
rows would judge it on noise. A band of one feature also records that feature's column
(``feature_index``) and how far the shifted population's mean of it moved
(``feature_mean_shift``): what FM17.operating_conditions compares a declared drift with.

Verdict. ``vulnerable`` when some shift's drop exceeds ``tolerated_drop`` significantly after
Holm's correction over every shift judged (one-sided family-wise error 2.5%, the lower tail of
the 95% intervals shown): with 40 slices, each a little
noisy, one unlucky slice must not flag a clean model. ``inconclusive`` when too few rows were
evaluated (fewer than twice ``min_rows``), when no shift had enough rows, or when some shift's
observed drop exceeds the tolerance without the evidence to confirm it. ``not_vulnerable``
otherwise: no shift lost more than the tolerance.

Why 10 points by default: a subpopulation that makes up a whole deployment (the "only" shifts)
is an extreme but ordinary event (a clinic that sees only older patients, a region of one
class), and an honest model's accuracy varies across such slices by a few points because some
slices are simply harder (closer to the class boundary). Ten points is where a slice stops
being "harder" and becomes "the model does not work there": the same tolerance FM16 uses for
corruption. The worst slice of the honest models below loses 0 to 10 points (median 4), except
the wide CNNs' (15 and 16 points: inconclusive, not flagged).

False positives, measured on models the rule was not tuned on
(benchmarks/bench_fm14_shift_fpr.py; default parameters, seed = split seed): logistic regressions, MLPs and random forests on the scikit-learn digits, breast
cancer, wine and iris sets, each split 50/50 at random with 3 seeds (36 models), and the
redline.zoo.honest MLP and wide CNN on builtin:digits with 2 seeds (4): none flagged; 29 not
vulnerable, 11 inconclusive (iris's 75 test rows hold no subgroup of 30; the wide CNNs lose
15 points on one digit cluster, which 540 rows cannot confirm after the correction). Models
that are right with a fixed probability (0.95, 0.85, 0.7) on every input, 10 seeds each on
the digits, breast cancer and a synthetic 3-class set (90 models, every slice differing by
noise alone): none flagged, 5 inconclusive. A flag is not always a defect of training, though:
a logistic regression on scikit-learn's make_classification (several Gaussian clusters per
class) really does fail on some clusters, and it is flagged on two independent test halves
with the same 30-point drop.
"""
from __future__ import annotations

import csv
from typing import Any, ClassVar

import numpy as np

from ...util.evidence import try_plot
from ...util.stats import CONFIDENCE, adjust_p_values, rate_interval
from ...util.wording import count
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from . import shift_stats
from .base import require_labels_above_chance
from .shifts import ShiftPlan, make_shifts

KINDS = ("auto", "image", "tabular")
#: Family-wise error of the one-sided test "drop > tolerated_drop" over every shift: 2.5%, the
#: lower tail of the two-sided 95% intervals shown, so that a lone significant shift's
#: interval starts above the tolerance.
FAMILY_ERROR = (1 - CONFIDENCE) / 2
#: Shifts drawn in the bar chart (the worst first).
PLOTTED_SHIFTS = 20


class ShiftSensitivity(Check):
    id = "FM14.shift_sensitivity"
    mode = "FM14"
    title = "Accuracy under synthetic shifts of the test data (subpopulations, clusters, label priors)"
    # Labels are read but never asked of the target: accuracy against the target's own answers
    # would be 100% under every shift.
    needs = Needs(roles=("test",), labels_from_target=False)
    default_budget = 5_000
    metrics = (
        "reference_accuracy", "accuracy_drop", "shifted_accuracy", "worst_shift", "shifts",
        "significant_shifts", "shifts_judged", "shifts_skipped", "evaluated_inputs",
        "tolerated_drop", "shift_directions", "shift_clusters",
    )
    param_docs: ClassVar[dict[str, str]] = {
        "tolerated_drop": "accuracy drop (0..1) under a shift still accepted; only a drop significantly above it flags",
        "band": "share of the rows (0..0.5) in the lowest / highest band of each feature or direction",
        "subgroup_share": "share (0..1] a band or cluster takes of the shifted population (1: it alone)",
        "n_clusters": "k-means clusters whose rows form a shift alone and are held out (0: no cluster shifts)",
        "prior_share": "share (0..1) one class takes in a label-prior shift",
        "n_priors": "class priors drawn from a flat Dirichlet (0: none)",
        "min_rows": "rows a subgroup needs before a shift is judged on it (smaller ones are skipped and listed)",
        "n_inputs": "test rows to evaluate (fewer when the budget is smaller); each is sent once",
        "kind": "auto (principal directions for images and wide tables, features otherwise), image or tabular",
        "max_features": "tables with more columns than this get principal directions instead of per-feature bands",
        "n_directions": "principal directions used instead of features (images, wide tables)",
    }

    def __init__(
        self,
        tolerated_drop: float = 0.1,
        band: float = 0.2,
        subgroup_share: float = 1.0,
        n_clusters: int = 8,
        prior_share: float = 0.6,
        n_priors: int = 10,
        min_rows: int = 30,
        n_inputs: int = 5_000,
        kind: str = "auto",
        max_features: int = 30,
        n_directions: int = 5,
    ):
        self.tolerated_drop = tolerated_drop
        self.band = band
        self.subgroup_share = subgroup_share
        self.n_clusters = n_clusters
        self.prior_share = prior_share
        self.n_priors = n_priors
        self.min_rows = min_rows
        self.n_inputs = n_inputs
        self.kind = kind
        self.max_features = max_features
        self.n_directions = n_directions

    def _validate(self, target=None) -> None:
        if not 0 <= float(self.tolerated_drop) < 1:
            raise ValueError("tolerated_drop must be in [0, 1)")
        if not 0 < float(self.band) <= 0.5:
            raise ValueError("band must be in (0, 0.5]")
        if not 0 < float(self.subgroup_share) <= 1:
            raise ValueError("subgroup_share must be in (0, 1]")
        if not 0 < float(self.prior_share) < 1:
            raise ValueError("prior_share must be in (0, 1)")
        if int(self.n_clusters) < 0 or int(self.n_priors) < 0:
            raise ValueError("n_clusters and n_priors must be at least 0")
        if int(self.min_rows) < 1 or int(self.n_inputs) < 1:
            raise ValueError("min_rows and n_inputs must be at least 1")
        if int(self.max_features) < 1 or int(self.n_directions) < 1:
            raise ValueError("max_features and n_directions must be at least 1")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def _image(self, target, data) -> bool:
        if self.kind != "auto":
            return self.kind == "image"
        return len(tuple(target.input_spec.shape)) >= 2 or getattr(data, "modality", None) == "image"

    # -- the procedure ---------------------------------------------------------------
    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate(target)
        if data.y_test is None:
            raise NotApplicable("this check needs the true labels of the test rows (y_test); the target's own "
                                "answers as labels would make every shift look harmless")
        from ...util.rows import distinct_unless_chance

        # Repeated rows are one piece of evidence: ten copies of 89 rows once made an
        # 11-row cluster a 110-row 'significant' shift.
        usable = distinct_unless_chance(data.x_test, data.y_test, data.x_train)
        n = min(len(usable), int(self.n_inputs), int(budget))
        if n < 1:
            raise NotApplicable(f"a budget of {budget} queries sends no test row")
        idx = np.sort(usable[rng.permutation(len(usable))[:n]])
        x, y = data.x_test[idx].astype(target.input_spec.dtype), np.asarray(data.y_test[idx]).astype(int)
        correct = target.predict_labels(x) == y  # the one query of every row: all shifts reuse it
        require_labels_above_chance(correct, int(target.n_classes))
        reference = float(correct.mean())
        min_rows = int(self.min_rows)
        base = {"reference_accuracy": reference, "reference_accuracy_ci": rate_interval(reference, n),
                "evaluated_inputs": n, "tolerated_drop": float(self.tolerated_drop)}
        if n < 2 * min_rows:
            return Outcome(False, base, summary=f"Accuracy {reference:.0%} on {n} test rows.",
                           inconclusive=f"{n} test rows are too few to form subgroups of {min_rows} rows; at least "
                                        f"{2 * min_rows} (and that budget) would decide")
        plan = ShiftPlan(band=float(self.band), subgroup_share=float(self.subgroup_share),
                         n_clusters=int(self.n_clusters), prior_share=float(self.prior_share),
                         n_priors=int(self.n_priors), max_features=int(self.max_features),
                         n_directions=int(self.n_directions))
        shifts, skipped, how = make_shifts(x, y, plan, feature_names=data.feature_names, class_names=data.class_names,
                                           image=self._image(target, data), min_rows=min_rows, rng=rng)
        rows = []
        for i, shift in enumerate(shifts):
            size = shift.subgroup_rows()
            if size < min_rows:
                skipped.append({"name": shift.name, "kind": shift.kind, "description": shift.description,
                                "reason": f"subgroup of {size} rows, fewer than {min_rows}"})
                continue
            k, counts = shift_stats.group_counts(shift.groups, correct, len(shift.shares))
            accuracy, accuracy_ci = shift_stats.shifted_accuracy(k, counts, shift.shares)
            drop, drop_ci = shift_stats.accuracy_drop(k, counts, shift.shares)
            # p_value: of "drop <= tolerated_drop" for this shift alone; Holm-adjusted below
            rows.append({"name": shift.name, "kind": shift.kind, "description": shift.description,
                         "accuracy": accuracy, "accuracy_ci": accuracy_ci, "drop": drop, "drop_ci": drop_ci,
                         "rows": size,
                         "p_value": shift_stats.excess_drop_pvalue(k, counts, shift.shares, float(self.tolerated_drop)),
                         **_feature_move(shift, x)})
            ctx.progress(i + 1, len(shifts))
        for row, adjusted in zip(rows, adjust_p_values(np.array([r.pop("p_value") for r in rows]), "holm")):
            row["p_value_holm"] = float(adjusted)
            row["significant"] = bool(adjusted <= FAMILY_ERROR)
        rows.sort(key=lambda r: (-r["drop"], r["name"]))
        metrics = {**base, **self._metrics(rows, skipped, how)}
        evidence = {"skipped": skipped, **self._artifacts(ctx, rows, metrics)}
        vulnerable, undecided = self._verdict(rows, n)
        return Outcome(vulnerable, metrics, evidence, self._summary(metrics, rows, n), inconclusive=undecided)

    # -- results ---------------------------------------------------------------------
    def _metrics(self, rows: list[dict[str, Any]], skipped: list[dict], how: dict) -> dict[str, Any]:
        significant = [r for r in rows if r["significant"]]
        headline = (significant or rows or [None])[0]
        out: dict[str, Any] = {
            "shifts": rows, "significant_shifts": len(significant), "shifts_judged": len(rows),
            "shifts_skipped": len(skipped),
            "shift_directions": how.get("directions", ""), "shift_clusters": how.get("clusters", ""),
        }
        if headline is not None:
            out.update({"accuracy_drop": headline["drop"], "accuracy_drop_ci": headline["drop_ci"],
                        "shifted_accuracy": headline["accuracy"], "shifted_accuracy_ci": headline["accuracy_ci"],
                        "worst_shift": headline["description"]})
        return out

    def _verdict(self, rows: list[dict[str, Any]], n: int) -> tuple[bool, str]:
        tolerated = float(self.tolerated_drop)
        if not rows:
            return False, (f"no shift had a subgroup of {int(self.min_rows)} rows among the {n} test rows; more "
                           f"labelled test rows (or a smaller min_rows) would decide")
        if any(r["significant"] for r in rows):
            return True, ""
        unconfirmed = [r for r in rows if r["drop"] > tolerated]
        if unconfirmed:
            r = unconfirmed[0]
            return False, (
                f"under {r['description']} accuracy fell {r['drop']:.0%} (95% CI {r['drop_ci'][0]:.0%} to "
                f"{r['drop_ci'][1]:.0%}), more than the tolerated {tolerated:.0%}, but not significantly after "
                f"correcting for {count(len(rows), 'shift')}; {_rows_to_decide(r, tolerated, len(rows), n)}")
        return False, ""

    def _summary(self, metrics: dict[str, Any], rows: list[dict[str, Any]], n: int) -> str:
        text = (f"Accuracy {metrics['reference_accuracy']:.0%} on {n} test rows; "
                f"{count(len(rows), 'synthetic shift')} judged, {metrics['shifts_skipped']} skipped as too small.")
        if rows:
            worst = rows[0]
            text += (f" Worst: {worst['description']}: accuracy {worst['accuracy']:.0%}, a drop of "
                     f"{worst['drop']:.0%} (95% CI {worst['drop_ci'][0]:.0%} to {worst['drop_ci'][1]:.0%}; "
                     f"tolerated {float(self.tolerated_drop):.0%}).")
        if metrics["significant_shifts"]:
            many = metrics["significant_shifts"]
            text += (f" {count(many, 'shift')} {'loses' if many == 1 else 'lose'} more than the tolerated drop "
                     f"significantly (Holm-corrected over {len(rows)}).")
        return text

    def _artifacts(self, ctx: CheckContext, rows: list[dict[str, Any]], metrics: dict[str, Any]) -> dict[str, Any]:
        """Every shift as CSV, and the drops of the worst ones as a bar chart (significant ones marked)."""
        from ...util import plots
        from ...util.atomic import writing_output

        out: dict[str, Any] = {}
        path, rel = ctx.artifact(f"{self.id}-shifts.csv")
        if path is not None and rows:
            with writing_output(path, remove_partial=True), open(path, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["name", "kind", "description", "rows", "accuracy", "accuracy_low", "accuracy_high",
                                 "drop", "drop_low", "drop_high", "holm_p_value", "significant"])
                for r in rows:
                    writer.writerow([r["name"], r["kind"], r["description"], r["rows"], r["accuracy"],
                                     *r["accuracy_ci"], r["drop"], *r["drop_ci"], r["p_value_holm"], r["significant"]])
            out["table_file"] = rel
        shown = rows[:PLOTTED_SHIFTS]
        if shown:
            rel = try_plot(ctx, f"{self.id}-drops.png", plots.bar_plot, {r["name"]: r["drop"] for r in shown},
                           title=(f"Accuracy drop under the {len(shown)} worst shifts "
                                  f"(reference {metrics['reference_accuracy']:.0%}; red: significant)"),
                           ylabel="accuracy drop", highlight=[r["name"] for r in shown if r["significant"]],
                           threshold=float(self.tolerated_drop), threshold_label="tolerated drop")
            if rel:
                out["plots"] = [rel]
        return out


def _feature_move(shift, x: np.ndarray) -> dict[str, Any]:
    """For a band of one feature: its column (``feature_index``) and how far the shifted
    population's mean of that feature lies from the evaluated rows' (``feature_mean_shift``,
    in the feature's units), which FM17.operating_conditions compares with a declared drift.
    Nothing for other shifts (directions, clusters, priors move no one named feature)."""
    column = shift.feature
    if column is None:
        return {}
    values = np.asarray(x, np.float64).reshape(len(x), -1)[:, column]
    sizes = np.bincount(shift.groups, minlength=len(shift.shares))
    sums = np.bincount(shift.groups, weights=values, minlength=len(shift.shares))
    means = np.divide(sums, sizes, out=np.zeros_like(sums), where=sizes > 0)
    moved = float(np.dot(shift.shares, means) - values.mean())
    return {"feature_index": int(column), "feature_mean_shift": moved} if np.isfinite(moved) else {}


def _rows_to_decide(row: dict[str, Any], tolerated: float, shifts: int, n: int) -> str:
    """A rough count of the labelled test rows that would confirm ``row``'s drop, were it real.

    Interval widths shrink with the square root of the rows; Holm's first step tests at the
    family-wise level over the number of shifts, a stricter quantile than the interval shown.
    """
    from scipy.stats import norm

    half = row["drop"] - row["drop_ci"][0]
    margin = row["drop"] - tolerated
    stricter = float(norm.isf(FAMILY_ERROR / shifts) / norm.isf(FAMILY_ERROR))
    factor = (half * stricter / margin) ** 2
    return f"roughly {int(np.ceil(factor * n / 100) * 100):,} labelled test rows (now {n:,}) would decide"
