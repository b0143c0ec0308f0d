"""FM17 incomplete testing (b): can the labelled test rows support a claim about the model?

Conditions, each covered or ``untested`` with the reason:

- every class the model knows has at least ``min_rows`` test rows (30 by default: about the
  fewest on which a 15-point accuracy drop from 90% shows, see :mod:`.conditions`);
- every population declared in the operating conditions (``--context`` or ``conditions``)
  has at least ``min_rows`` rows;
- the accuracy is measured to +-``tolerance``: the larger side of its Clopper-Pearson 95%
  interval is at most that (the summary also says how many rows +-1 and +-2 points need);
- the class mix is the expected one: declared ``class_priors``, else the training labels'
  shares. Untested only when both a chi-square test rejects (p < 0.01) and the mixes differ
  by more than ``max_prior_gap`` in total variation (a p-value alone flags trivial gaps on
  large sets).

Reported, never decided on: test prioritisation (which rows to label or inspect first) by
margin, entropy and distance-based surprise adequacy on a representation (penultimate
activations of a white-box torch model, else the probabilities), scored by the errors in
the first ``top_share`` of rows and by APFD against a random order; and neuron coverage of
torch models, with how few rows saturate it and how few errors a coverage-guided order finds.
See :mod:`.adequacy`.

Where equal rows cannot be chance draws (measurements, images: the rows' space is far larger
than the square of their number; :func:`redline.util.rows.repeats_can_be_chance`), every count is of distinct held-out rows: a row repeated in the test set
is counted once (40 rows each given 50 times once passed as 2,000 rows measuring the
accuracy to +-0.8 points), and test rows that are also training rows are left out, since a
model's answers on its own training rows support no claim about other rows (a 1-NN tested
on its training set once passed at 100% +-0.9). Tables of a few categorical features repeat
rows honestly (a quarter of the ``fair`` survey's test rows are also training rows), so
there rows count as given. Either way a further condition, ``held out``, is untested when
more test rows are training rows than the training set's own repeat rate explains (a
one-sided binomial test at p < 0.001, with a rate of at least 1%). FM14.shift_sensitivity
counts rows the same way.

Verdict: vulnerable when a condition is untested, not vulnerable when all hold.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...util.stats import rate_interval
from ...util.wording import count
from ..base import Check, Needs, NotApplicable, Outcome
from . import adequacy as adq
from .base import require_labels_above_chance
from .conditions import (
    DEFAULT_MIN_ROWS,
    chosen_conditions,
    load_conditions_file,
    population_mask,
)

# A class mix is called different only when the chi-square test is this sure.
MIX_P_VALUE = 0.01
# Test rows that are training rows are called too many when a binomial test at the training
# set's own repeat rate (at least MIN_REPEAT_RATE) is this sure.
MIN_REPEAT_RATE = 0.01
HELD_OUT_P_VALUE = 0.001


class TestAdequacy(Check):
    __test__ = False  # not a pytest test class, whatever its name says

    id = "FM17.test_adequacy"
    mode = "FM17"
    title = "Test set adequacy: class and population balance, precision, prioritisation"
    needs = Needs(roles=("test",), labels_from_target=False)
    default_budget = 10_000
    metrics = (
        "conditions_total", "conditions_covered", "untested", "test_rows", "duplicate_test_rows",
        "training_rows_in_test", "accuracy", "accuracy_ci",
        "accuracy_half_width", "rows_for_1_point", "rows_for_2_points", "class_counts", "class_accuracy",
        "class_mix_p_value", "class_mix_distance", "class_priors_from", "min_rows", "population_counts", "prioritisation",
        "prioritised_rows", "representation", "neuron_coverage", "neuron_coverage_saturation_rows",
    )
    param_docs: ClassVar[dict[str, str]] = {
        "tolerance": "accuracy precision the test set must give: the larger side of its 95% interval, at most this (0..1)",
        "min_rows": "test rows each class and declared population needs (null: the conditions' min_rows, else 30)",
        "max_prior_gap": "total variation distance between the test and expected class mix still accepted (0..1)",
        "top_share": "share of test rows the prioritisation looks at first (errors found there are reported)",
        "reference_rows": "training (or pool) rows that surprise adequacy compares the test rows with",
        "coverage_threshold": "activation above which a neuron counts as covered (before the nonlinearity)",
        "conditions": "YAML file of operating conditions (null: the operating_conditions of the --context file)",
    }

    def __init__(self, tolerance: float = 0.05, min_rows: int | None = None, max_prior_gap: float = 0.1,
                 top_share: float = 0.1, reference_rows: int = 1000, coverage_threshold: float = 0.0,
                 conditions: str | None = None):
        self.tolerance = tolerance
        self.min_rows = min_rows
        self.max_prior_gap = max_prior_gap
        self.top_share = top_share
        self.reference_rows = reference_rows
        self.coverage_threshold = coverage_threshold
        self.conditions = conditions

    def _validate(self, target=None) -> None:
        if not 0 < float(self.tolerance) < 0.5:
            raise ValueError("tolerance must be in (0, 0.5)")
        if self.min_rows is not None and int(self.min_rows) < 1:
            raise ValueError("min_rows must be at least 1")
        if not 0 < float(self.max_prior_gap) <= 1:
            raise ValueError("max_prior_gap must be in (0, 1]")
        if not 0 < float(self.top_share) <= 1:
            raise ValueError("top_share must be in (0, 1]")
        if int(self.reference_rows) < 2:
            raise ValueError("reference_rows must be at least 2")
        if self.conditions:
            load_conditions_file(self.conditions)  # a missing or malformed file fails at plan time

    def run(self, target, data, budget, rng, ctx) -> Outcome:
        self._validate(target)
        if data.y_test is None:
            raise NotApplicable("test adequacy needs labelled test rows (y_test); the test rows have no labels")
        conditions = chosen_conditions(self.conditions, ctx, data)
        n_min = int(self.min_rows) if self.min_rows is not None else (
            conditions.min_rows if conditions is not None else DEFAULT_MIN_ROWS)
        from scipy.stats import binomtest

        from ...util.rows import first_occurrences, repeat_share, repeats_can_be_chance, rows_in

        x = np.asarray(data.x_test, target.input_spec.dtype)
        y = np.asarray(data.y_test).astype(int)
        given = len(y)
        repeats = repeat_share(data.x_train)
        pooled = x.reshape(given, -1) if data.x_train is None else np.concatenate(
            [x.reshape(given, -1), np.asarray(data.x_train, x.dtype).reshape(len(data.x_train), -1)])
        natural = repeats_can_be_chance(pooled)
        distinct = np.arange(given) if natural else first_occurrences(x, y)
        seen_in_training = rows_in(x[distinct], data.x_train)
        held_out = distinct if natural else distinct[~seen_in_training]
        if not len(held_out):  # the test set cannot support any claim about unseen rows
            entry = {"condition": "held out", "kind": "held_out", "rows": len(distinct),
                     "reason": f"all {len(distinct)} distinct test rows are training rows"}
            metrics = {"conditions_total": 1, "conditions_covered": 0, "untested": [entry], "test_rows": 0,
                       "duplicate_test_rows": given - len(distinct), "training_rows_in_test": len(distinct)}
            return Outcome(vulnerable=True, metrics=metrics,
                           summary=(f"Every one of the {given} test rows is also a training row: nothing is held out, "
                                    "so the test set supports no claim about rows the model has not seen."))
        x, y = x[held_out], y[held_out]
        rows = x.reshape(len(x), -1)
        if conditions is not None:  # a bad feature name fails before any query
            masks = {p.name: population_mask(p, rows, data.feature_names) for p in conditions.populations}
        else:
            masks = {}
        with target.ledger.evaluating():
            answers = target.predict(x)
        probabilities = answers if answers.ndim == 2 else None
        predicted = answers.argmax(axis=1) if probabilities is not None else answers.astype(int)
        correct = predicted == y
        require_labels_above_chance(correct, int(target.n_classes))
        n = len(y)
        k_classes = max(int(target.n_classes or 0), int(y.max()) + 1,
                        int(data.y_train.max()) + 1 if data.y_train is not None and len(data.y_train) else 0)
        untested: list[dict[str, Any]] = []
        checked = 1
        overlap = int(seen_in_training.sum())
        expected = max(repeats, MIN_REPEAT_RATE)
        if overlap and binomtest(overlap, len(distinct), expected, alternative="greater").pvalue < HELD_OUT_P_VALUE:
            untested.append({"condition": "held out", "kind": "held_out", "rows": overlap,
                             "reason": (f"{overlap} of the {len(distinct)} test rows are training rows, more than the "
                                        f"training set's own repeat rate ({expected:.0%}) explains"
                                        + ("" if natural else "; they are left out of every count")
                                        + ", so the test set may not be held out")})

        # Classes.
        counts = np.bincount(y, minlength=k_classes)
        class_names = _class_names(data, k_classes)
        class_accuracy = {}
        for c in range(k_classes):
            checked += 1
            if counts[c]:
                acc = float(correct[y == c].mean())
                class_accuracy[class_names[c]] = {"rows": int(counts[c]), "accuracy": acc,
                                                  "accuracy_ci": rate_interval(acc, int(counts[c]))}
            if counts[c] < n_min:
                untested.append({"condition": f"class {class_names[c]}", "kind": "class", "rows": int(counts[c]),
                                 "reason": f"{count(int(counts[c]), 'test row')}, fewer than {n_min}"})
        # Declared populations.
        for name, mask in masks.items():
            checked += 1
            if mask.sum() < n_min:
                entry = {"condition": name, "kind": "population", "rows": int(mask.sum()),
                         "reason": f"{count(int(mask.sum()), 'test row')}, fewer than {n_min}"}
                if mask.any():
                    acc = float(correct[mask].mean())
                    entry.update({"accuracy": acc, "accuracy_ci": rate_interval(acc, int(mask.sum()))})
                untested.append(entry)
        # Precision of the accuracy.
        accuracy = float(correct.mean())
        half = adq.interval_half_width(int(correct.sum()), n)
        need = {d: adq.rows_for_precision(accuracy, d / 100) for d in (1, 2)}
        checked += 1
        if half > float(self.tolerance):
            untested.append({"condition": "accuracy precision", "kind": "precision", "rows": n,
                             "reason": (f"accuracy {accuracy:.1%} is known to +-{half * 100:.1f} points only "
                                        f"(tolerance +-{float(self.tolerance) * 100:g}); "
                                        f"+-{float(self.tolerance) * 100:g} needs "
                                        f"{adq.rows_for_precision(accuracy, float(self.tolerance)):,} rows")})
        metrics: dict[str, Any] = {
            "test_rows": n, "duplicate_test_rows": 0 if natural else given - len(distinct),
            "training_rows_in_test": 0 if natural else overlap,
            "min_rows": n_min, "accuracy": accuracy, "accuracy_ci": rate_interval(accuracy, n),
            "accuracy_half_width": half, "rows_for_1_point": need[1], "rows_for_2_points": need[2],
            "class_counts": {class_names[c]: int(counts[c]) for c in range(k_classes)},
            "class_accuracy": class_accuracy,
        }
        # Class mix against the expected one.
        priors, source = self._priors(conditions, data, k_classes, class_names)
        if priors is not None:
            checked += 1
            if source == "training labels":  # shares of a sample, not exact priors
                p_value, distance = adq.mix_against_sample(counts, np.bincount(
                    np.asarray(data.y_train).astype(int), minlength=k_classes))
            else:
                p_value, distance = adq.mix_against_priors(counts, priors)
            metrics.update({"class_mix_p_value": p_value, "class_mix_distance": distance, "class_priors_from": source})
            if p_value < MIX_P_VALUE and distance > float(self.max_prior_gap):
                untested.append({"condition": "class mix", "kind": "class_mix",
                                 "reason": (f"the test rows' class mix differs from the {source} by {distance:.0%} "
                                            f"(total variation; chi-square p = {p_value:.2g})")})
        if masks:
            metrics["population_counts"] = {name: int(mask.sum()) for name, mask in masks.items()}
        # The FM17 metrics first: the reports head a finding with its first metrics.
        metrics = {"conditions_total": checked, "conditions_covered": checked - len(untested),
                   "untested": untested, **metrics}
        evidence: dict[str, Any] = {}
        if conditions is not None and conditions.path:
            evidence["conditions_file"] = conditions.path  # what `redline replay` reads them from
        metrics.update(self._prioritise(target, data, x, probabilities, predicted, correct, rng, evidence))
        return Outcome(vulnerable=bool(untested), metrics=metrics, evidence=evidence,
                       summary=self._summary(metrics, untested))

    # -- expected class mix ------------------------------------------------------------------
    @staticmethod
    def _priors(conditions, data, k: int, class_names: list[str]) -> tuple[np.ndarray | None, str]:
        from ...errors import UsageError

        if conditions is not None and conditions.class_priors:
            shares = np.zeros(k)
            for label, share in conditions.class_priors:
                if isinstance(label, int) and 0 <= label < k:
                    shares[label] = share
                elif isinstance(label, str) and label in class_names:
                    shares[class_names.index(label)] = share
                else:
                    raise UsageError(f"operating_conditions.class_priors names class {label!r}, which the model "
                                     f"and data do not have (classes: {', '.join(class_names)})")
            return shares, "declared class priors"
        if data.y_train is not None and len(data.y_train):
            return np.bincount(np.asarray(data.y_train).astype(int), minlength=k) / len(data.y_train), "training labels"
        return None, ""

    # -- prioritisation and neuron coverage (reported, never decisive) ---------------------------
    def _prioritise(self, target, data, x, probabilities, predicted, correct, rng, evidence) -> dict[str, Any]:
        wrong = ~correct
        n = len(x)
        k = max(1, round(float(self.top_share) * n))
        out: dict[str, Any] = {"prioritised_rows": k}
        if probabilities is None:
            evidence["prioritisation"] = "not measured: the target returns labels only (margin, entropy and SA need probabilities)"
            return out
        representation, active = None, None
        if target.capabilities.gradients:
            with target.ledger.evaluating():
                representation, active = adq.torch_representations(target, x, float(self.coverage_threshold))
        scores = {"margin": adq.margin_scores(probabilities), "entropy": adq.entropy_scores(probabilities)}
        surprise = self._surprise(target, data, representation, probabilities, predicted, rng)
        if surprise is not None:
            scores["surprise_adequacy"], out["representation"] = surprise
        orders = {name: adq.ordering(s, rng) for name, s in scores.items()}
        orders["random"] = rng.permutation(n)
        if active is not None:
            orders["neuron_coverage"] = adq.greedy_coverage_order(active, rng)
            curve = adq.coverage_curve(active, orders["random"])
            out["neuron_coverage"] = float(curve[-1])
            out["neuron_coverage_saturation_rows"] = adq.rows_to_saturate(curve, 0.95)
            evidence["neuron_coverage_note"] = (
                f"neuron coverage (threshold {float(self.coverage_threshold):g}) reaches 95% of its final "
                f"{curve[-1]:.0%} after {out['neuron_coverage_saturation_rows']} of {n} rows in random order; "
                "it is reported, never used for the verdict")
        errors = int(wrong.sum())
        out["prioritisation"] = {
            name: {"errors_in_first": adq.errors_in_first(order, wrong, k),
                   "share_of_errors": adq.errors_in_first(order, wrong, k) / errors if errors else None,
                   "apfd": adq.apfd(order, wrong)}
            for name, order in orders.items()
        }
        return out

    def _surprise(self, target, data, representation, probabilities, predicted, rng):
        """(DSA scores, representation name), or None without labelled reference rows."""
        for role in ("train", "pool"):
            xr, yr = getattr(data, f"x_{role}"), getattr(data, f"y_{role}")
            if xr is not None and yr is not None and len(xr) >= 2:
                break
        else:
            return None
        pick = rng.permutation(len(xr))[: int(self.reference_rows)]
        xr, yr = np.asarray(xr, np.float32)[pick], np.asarray(yr).astype(int)[pick]
        with target.ledger.evaluating():
            if representation is not None:
                reference, _ = adq.torch_representations(target, xr, float(self.coverage_threshold))
                test, name = representation, "penultimate activations"
            else:
                reference, test, name = target.predict(xr), probabilities, "probabilities"
        if reference is None:
            return None
        return adq.distance_surprise(test, predicted, reference, yr), f"{name} ({role} rows as reference)"

    @staticmethod
    def _summary(m: dict[str, Any], untested: list[dict[str, Any]]) -> str:
        low, high = m["accuracy_ci"]
        repeats = [f"{m[k]:,} {what}" for k, what in (("duplicate_test_rows", "repeated"),
                                                        ("training_rows_in_test", "also training rows"))
                   if m.get(k)]
        left_out = f" ({', '.join(repeats)}, left out)" if repeats else ""
        text = (f"{m['test_rows']:,} labelled test rows{left_out}: accuracy {m['accuracy']:.1%} (95% CI {low:.1%}-{high:.1%}, "
                f"+-{m['accuracy_half_width'] * 100:.1f} points; +-1 point needs {m['rows_for_1_point']:,} rows, "
                f"+-2 points {m['rows_for_2_points']:,}).")
        if "class_mix_p_value" in m:
            text += (f" Class mix against the {m['class_priors_from']}: chi-square p = {m['class_mix_p_value']:.2g}, "
                     f"{m['class_mix_distance']:.0%} apart.")
        ranked = m.get("prioritisation") or {}
        if ranked and ranked.get("random", {}).get("share_of_errors") is not None:
            best = max((k for k in ranked if k != "random"), key=lambda k: ranked[k]["errors_in_first"])
            text += (f" The first {m['prioritised_rows']} rows by {best.replace('_', ' ')} hold "
                     f"{ranked[best]['errors_in_first']} errors (random order: {ranked['random']['errors_in_first']}")
            if "neuron_coverage" in ranked:
                text += f", coverage-guided: {ranked['neuron_coverage']['errors_in_first']}"
            text += ")."
        if "neuron_coverage" in m:
            text += (f" Neuron coverage {m['neuron_coverage']:.0%}, 95% of it reached after "
                     f"{m['neuron_coverage_saturation_rows']} rows (reported only).")
        if untested:
            text += " Not supported: " + "; ".join(f"{e['condition']} ({e['reason']})" for e in untested) + "."
        return text


def _class_names(data, k: int) -> list[str]:
    names = list(data.class_names or [])
    return [str(names[c]) if c < len(names) else str(c) for c in range(k)]
