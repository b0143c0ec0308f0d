"""FM15 natural adversarial examples: unmodified inputs the model gets confidently wrong,
grouped into slices a person can read, each confirmed on rows it was not found on.

Adversarial filtration (Hendrycks et al. 2021, ImageNet-A) keeps the natural inputs a model
gets wrong. This check runs it on labelled rows the auditor holds (the pool, else the test
rows), unchanged, one query each:

1. *Filter.* A row is kept when the target answers a wrong class with confidence at least
   ``min_confidence`` (default 0.7). Unsure wrong answers gather where the data are noisy
   or classes meet, for any model; the filter keeps the confident ones, the failures that
   ImageNet-A is about. On the fair survey (28% of a logistic regression's answers wrong)
   it keeps 11% of the rows, while the planted subgroups' errors stay mostly above it. A target that answers labels only has no confidence; a stand-in
   (a random forest for tables, a CNN for images) trained on the target's own answers for
   the other half of the rows says how sure the target's kind of model is of that answer.
2. *Discover.* The rows are split in two halves (stratified by label, from the check's
   seed). On the first, slices whose rate of kept rows exceeds the rest's by
   ``tolerated_gap`` are searched: for tables every rule of up to ``max_conditions``
   feature ranges or values; for images the rows of each class and their k-means clusters
   in a PCA of the inputs (a representation that knows nothing of the model, so a slice is
   a kind of input, not a restatement of the model's mistakes). :mod:`.slices` ranks them.
3. *Confirm.* The best ``max_candidates`` are tested on the held-out half, and only there,
   with exact intervals Bonferroni-corrected over those candidates: a slice is confirmed
   when, with 95% confidence for all of them together, its rate is more than
   ``tolerated_gap`` above the other rows' and it has ``min_slice_rows`` held-out rows.
4. *Transfer.* Other model families (``families``) trained on the first half with its true
   labels are measured on the held-out half: accuracy on the filtered rows against accuracy
   on all rows. A large drop means the filtered inputs are hard for any model (ImageNet-A's
   finding); a small one that they are this model's own blind spot.

Verdict: vulnerable when some slice is confirmed; not vulnerable when none is and the
held-out rows could have confirmed a slice of ``min_slice_rows`` rows the model gets all
wrong; inconclusive otherwise (too few rows). A pass must rest on slices that were looked
at, so three more cases are inconclusive when nothing is confirmed:

- a *constant model* (one answer to every row while the rows hold several classes): it
  gets every row of the other classes wrong whatever the input, a failure of the whole
  model that slices of inputs cannot rate (a 99/1 majority-class model once passed with
  0 candidates); its accuracy per class is the measure;
- *no slice screened*: the discovery rows' features gave no slice to search (every
  feature had a single value; the ``screened_slices`` metric is 0);
- *a failing class below the slice size*: a true class whose rows are confidently wrong
  more than ``tolerated_gap`` above the other rows' rate (lower bound of the gap, exact
  intervals Bonferroni-corrected over the classes) but that has fewer than
  ``min_slice_rows`` rows in a half, so it could never be a candidate (a rare class the
  model ignores). More labelled rows of that class would decide.

A run with no candidate that is none of these passes: the screen measured every slice
(``screened_slices``) on the discovery half and none had confident errors gathering above
the tolerated gap, which is what an accurate model with few, scattered errors shows.

Why ``tolerated_gap`` is 20 points: honest models' errors vary across subgroups too
(noisy regions, rare classes). On honest models of the fair survey and the digits
(logistic regression, trees of depth 5 and 8, boosting; 3 seeds each) the candidates
tested on held-out rows reached point gaps of up to 42 points on small slices, but their
simultaneous lower bounds stayed at or under 9 points; a subgroup learned wrong (the
zoo's planted controls) gives lower bounds of 20 to 76 points.

The filtered rows are saved as ``artifacts/FM15.natural_adversarial-filtered.npz`` (x, y,
prediction, confidence, half, row: the row's number among the role's rows), the held-out
rows of each confirmed slice as ``...-slices.npz`` (``slice_0``, ``slice_1``... in the order
of the ``slices`` metric), and for images examples of each confirmed slice as a PNG.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...util.evidence import save_arrays, try_plot
from ...util.stats import clopper_pearson, rate_interval
from ...util.wording import count
from ..base import Check, CheckContext, Inconclusive, Needs, NotApplicable, Outcome
from . import other_models, slices as slicing
from .base import require_labels_above_chance

ROWS = ("auto", "pool", "test")
KINDS = ("auto", "image", "tabular")
# k-means cluster counts tried within each class of images (1: the class as a whole).
_CLUSTER_KS = (1, 2, 3, 4)
_PCA_COMPONENTS = 20
# Examples of each confirmed image slice drawn in the montage, and slices drawn.
_MONTAGE_COLUMNS, _MONTAGE_ROWS = 8, 6


class NaturalAdversarial(Check):
    id = "FM15.natural_adversarial"
    mode = "FM15"
    title = "Natural adversarial examples: unmodified inputs the model gets confidently wrong, by slice"
    # The rows are the pool (attacker-owned) or the test rows; their true labels are needed
    # (labels from the target would make every answer right), so none are asked for.
    needs = Needs(roles=(), attacker=True, disjoint=False, labels_from_target=False)
    default_budget = 10_000
    metrics = (
        "clean_accuracy", "success_rate", "filtered_rows", "filtered_accuracy", "transfer_accuracy",
        "transfer_accuracy_drop", "slices", "rejected_slices", "candidate_slices", "slice_kind",
        "overall_error_rate", "worst_slice_gap", "slice_row_share", "discovery_rows", "heldout_rows",
        "confidence_source", "rows_role", "screened_slices",
    )
    param_docs: ClassVar[dict[str, str]] = {
        "rows": "labelled rows to filter: auto (the pool when it has labels, else the test rows), pool or test",
        "kind": "slices to look for: auto (clusters for (C,H,W) images, feature ranges otherwise), image or tabular",
        "min_confidence": "a wrong answer counts as confidently wrong from this confidence on (0..1; 0: every wrong answer)",
        "tolerated_gap": "how much higher (0..1) a slice's rate of confident errors may be than the other rows' before it is reported",
        "min_slice_rows": "fewest held-out rows a reported slice must have (and discovery rows a candidate)",
        "max_candidates": "slices found on the discovery half that are tested on the held-out half",
        "max_conditions": "feature conditions per table slice (1 or 2)",
        "families": "other model families for the transfer measurement (logreg, forest, mlp, cnn; null: two suited to the data; []: none)",
    }

    def __init__(
        self,
        rows: str = "auto",
        kind: str = "auto",
        min_confidence: float = 0.7,
        tolerated_gap: float = 0.2,
        min_slice_rows: int = 20,
        max_candidates: int = 8,
        max_conditions: int = 2,
        families: tuple[str, ...] | None = None,
    ):
        self.rows = rows
        self.kind = kind
        self.min_confidence = min_confidence
        self.tolerated_gap = tolerated_gap
        self.min_slice_rows = min_slice_rows
        self.max_candidates = max_candidates
        self.max_conditions = max_conditions
        self.families = families

    def _validate(self, target=None) -> None:
        if self.rows not in ROWS:
            raise ValueError(f"rows must be one of {', '.join(ROWS)}, not {self.rows!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0 <= float(self.min_confidence) < 1:
            raise ValueError("min_confidence must be in [0, 1)")
        if not 0 <= float(self.tolerated_gap) < 1:
            raise ValueError("tolerated_gap must be in [0, 1)")
        if int(self.min_slice_rows) < 5:
            raise ValueError("min_slice_rows must be at least 5 (an interval on fewer rows says nothing)")
        if int(self.max_candidates) < 1:
            raise ValueError("max_candidates must be at least 1")
        if int(self.max_conditions) not in (1, 2):
            raise ValueError("max_conditions must be 1 or 2")
        for name in self.families or ():
            if name not in other_models.FAMILIES:
                raise ValueError(f"unknown model family {name!r} (known: {', '.join(other_models.FAMILIES)})")

    # -- which rows, which slices ------------------------------------------------------
    def _rows(self, data) -> tuple[str, np.ndarray, np.ndarray]:
        from_target = set(data.meta.get("labels_from_target", []))
        labelled = [r for r in ("pool", "test") if data.has(r) and data.y(r) is not None and r not in from_target]
        wanted = ("pool", "test") if self.rows == "auto" else (self.rows,)
        for role in wanted:
            if role in labelled:
                return role, np.asarray(data.x(role)), np.asarray(data.y(role)).astype(np.int64)
        raise NotApplicable(
            f"this check needs the true labels of the {' or '.join(wanted)} rows (it compares the model's answers "
            f"with them; labels from the target would make every answer right), and the data set has none")

    def _kind(self, target, data) -> str:
        if self.kind != "auto":
            return self.kind
        shape = tuple(target.input_spec.shape)
        return "image" if len(shape) == 3 or (len(shape) == 2 and data.modality == "image") else "tabular"

    def _families(self, kind: str, shape: tuple[int, ...]) -> tuple[str, ...]:
        names = other_models.default_families(kind) if self.families is None else tuple(self.families)
        if kind == "image" and len(shape) != 3 and self.families is None:
            names = tuple("mlp" if n == "cnn" else n for n in names)
        try:
            other_models.check_families(names, shape)
        except ValueError as exc:
            raise NotApplicable(str(exc)) from None
        return names

    # -- the procedure ---------------------------------------------------------------
    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate(target)
        role, x, y = self._rows(data)
        min_rows = int(self.min_slice_rows)
        if len(x) > budget:  # one query per row: as many rows as the budget covers
            keep = np.sort(rng.choice(len(x), size=int(budget), replace=False))
            x, y, rows_index = x[keep], y[keep], keep
        else:
            rows_index = np.arange(len(x))
        if len(x) < 4 * min_rows:
            raise Inconclusive(f"{len(x)} labelled {role} rows are too few: two halves of at least "
                               f"{2 * min_rows} rows each are needed (min_slice_rows={min_rows}; a larger "
                               f"budget or more rows would decide)")
        kind = self._kind(target, data)
        shape = tuple(target.input_spec.shape)
        families = self._families(kind, shape)
        x = x.astype(target.input_spec.dtype)  # float32 would change large values
        first = halves(y, rng)
        second = ~first

        answers = np.asarray(target.predict(x))
        ctx.progress(1, 4)
        if answers.ndim == 2:
            predicted = answers.argmax(axis=1)
            confidence = answers[np.arange(len(x)), predicted].astype(float)
            source = "target"
        else:
            predicted = answers.astype(np.int64)
            confidence, source = self._stand_in_confidence(x, predicted, first, kind, shape, int(target.n_classes),
                                                           rng)
        if role == "test":  # a pool may be hard examples on purpose: below chance proves nothing there
            require_labels_above_chance(predicted == y, int(target.n_classes))
        wrong = predicted != y
        bad = wrong & (confidence >= float(self.min_confidence))

        features, names, describe = self._representation(kind, x, first, data)
        candidates, screened = self._find_candidates(kind, features[first], y[first], bad[first], names, data, rng)
        ctx.progress(2, 4)
        tested = slicing.confirm(candidates, features[second], y[second], bad[second], min_rows=min_rows,
                                 margin=float(self.tolerated_gap))
        transfer = self._transfer(families, x, y, first, second, bad, int(target.n_classes), rng)
        ctx.progress(3, 4)

        confirmed = [t for t in tested if t.confirmed]
        level = slicing.simultaneous_confidence(len(tested))
        report = [self._slice_record(t, y[second], predicted[second], wrong[second], transfer, level, describe)
                  for t in confirmed]
        overall = float(bad[second].mean())
        metrics: dict[str, Any] = {
            "rows_role": role,
            "clean_accuracy": float(1 - wrong.mean()),
            "clean_accuracy_ci": rate_interval(float(1 - wrong.mean()), len(y)),
            "success_rate": float(bad.mean()),
            "success_rate_ci": rate_interval(float(bad.mean()), len(y)),
            "filtered_rows": int(bad.sum()),
            "confidence_source": source,
            "slice_kind": "clusters" if kind == "image" else "feature ranges",
            "discovery_rows": int(first.sum()),
            "heldout_rows": int(second.sum()),
            "overall_error_rate": overall,
            "screened_slices": screened,
            "candidate_slices": len(tested),
            "slices": report,
            "rejected_slices": [t.description for t in tested if not t.confirmed],
            "worst_slice_gap": max((t.gap for t in confirmed), default=0.0),
            "slice_row_share": float(np.any([t.mask for t in confirmed], axis=0).mean()) if confirmed else 0.0,
        }
        metrics.update(transfer["metrics"])
        evidence = self._evidence(ctx, kind, x, y, predicted, confidence, bad, second, rows_index, confirmed, describe)
        ctx.progress(4, 4)

        undecided = ""
        if not confirmed:
            undecided = self._undecided(y, predicted, bad, first, screened, len(tested), overall)
        summary = self._summary(metrics, confirmed, report, role, len(y))
        return Outcome(vulnerable=bool(confirmed), metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _undecided(self, y, predicted, bad, first, screened, tested, overall) -> str:
        """Why no confirmed slice is not a pass, or "" when it is one."""
        min_rows, margin = int(self.min_slice_rows), float(self.tolerated_gap)
        second = ~first
        answered = np.unique(predicted)
        if len(answered) == 1 and len(np.unique(y)) > 1:
            label = int(answered[0])
            others = y != label
            return (f"a constant model: it answered class {label} to every one of the {len(y)} rows, so every row "
                    f"of another class is wrong ({int(others.sum())} rows, {int(bad[others].sum())} of them "
                    f"confidently) whatever its features. That is a failure of the whole model, not of a kind of "
                    f"input: slices of inputs cannot rate it (none was confirmed), its accuracy per class can "
                    f"(none right outside class {label})")
        if screened == 0:
            return (f"no slice could be screened: the features of the {int(first.sum())} discovery rows gave no "
                    f"rule to test (every feature has a single value); rows whose features vary would decide")
        weak = _small_failing_classes(y, bad, first, min_rows=min_rows, margin=margin)
        if weak:
            label, n, k, rest = weak[0]
            halves_n = (int((y[first] == label).sum()), int((y[second] == label).sum()))
            also = f" (and {count(len(weak) - 1, 'other class')})" if len(weak) > 1 else ""
            return (f"class {label} fails as a whole: {k} of its {n} rows are confidently wrong against "
                    f"{rest:.0%} of the other rows{also}, but its {halves_n[0]} discovery and {halves_n[1]} "
                    f"held-out rows are fewer than the {min_rows} a slice needs (min_slice_rows), so no slice of "
                    f"them could be tested; at least {min_rows} labelled rows of class {label} in each half "
                    f"({2 * min_rows} in all) would decide")
        if not slicing.could_confirm(int(second.sum()), overall, min_rows=min_rows, margin=margin,
                                     tested=max(1, tested)):
            return (f"the {int(second.sum())} held-out rows could not confirm even a slice of {min_rows} rows "
                    f"the model gets all wrong (tolerated gap {margin:.0%}); more labelled rows would decide")
        return ""

    # -- steps -----------------------------------------------------------------------
    def _stand_in_confidence(self, x, predicted, first, kind, shape, n_classes, rng) -> tuple[np.ndarray, str]:
        """For a labels-only target: how sure a model trained on the target's answers for the
        other half is of the label the target gave (cross-fitted, so no row judges itself)."""
        family = "cnn" if kind == "image" and len(shape) == 3 else ("mlp" if kind == "image" else "forest")
        confidence = np.zeros(len(x))
        if float(self.min_confidence) <= 0:
            return np.ones(len(x)), "none needed (min_confidence 0)"
        for train_rows, judge_rows in ((first, ~first), (~first, first)):
            model = other_models.train(family, x[train_rows], predicted[train_rows], n_classes=n_classes,
                                       seed=int(rng.integers(2**31 - 1)))
            proba = model(x[judge_rows])
            confidence[judge_rows] = proba[np.arange(len(proba)), predicted[judge_rows]]
        return confidence, f"stand-in {family} trained on the target's labels"

    def _representation(self, kind, x, first, data):
        """(features the slices are read from, feature names, how to describe a slice's rows)."""
        if kind == "image":
            represent = slicing.pca_representation(x[first], _PCA_COMPONENTS)
            return represent(x), None, "image"
        flat = x.reshape(len(x), -1)
        names = list(data.feature_names or [])
        if len(names) != flat.shape[1]:
            names = [f"x{j}" for j in range(flat.shape[1])]
        return flat, names, "table"

    def _find_candidates(self, kind, features, y, bad, names, data, rng) -> tuple[list, int]:
        """(the candidates to test on held-out rows, how many slices the screen measured)."""
        min_rows, margin, most = int(self.min_slice_rows), float(self.tolerated_gap), int(self.max_candidates)
        if kind == "image":
            candidates = slicing.cluster_candidates(features, y, ks=_CLUSTER_KS, min_rows=min_rows,
                                                    seed=int(rng.integers(2**31 - 1)), class_names=data.class_names)
            kept = slicing.discover(candidates, features, y, bad, min_rows=min_rows, margin=margin, most=most)
            return kept, len(candidates)
        rules, rows, errors = slicing.rule_candidates(features, bad, names, max_conditions=int(self.max_conditions))
        kept = slicing.discover(rules, features, y, bad, min_rows=min_rows, margin=margin, most=most,
                                rows=rows, errors=errors)
        return kept, len(rules)

    def _transfer(self, families, x, y, first, second, bad, n_classes, rng) -> dict[str, Any]:
        """Other families trained on the discovery half (true labels), measured on the held-out
        half: all of it (random rows) against its filtered rows. ``correct`` holds each
        family's right answers on the held-out rows, in their order."""
        filtered = bad[second]
        correct: dict[str, np.ndarray] = {}
        per_family: dict[str, dict[str, float | None]] = {}
        for name in families:
            model = other_models.train(name, x[first], y[first], n_classes=n_classes,
                                       seed=int(rng.integers(2**31 - 1)))
            right = model(x[second]).argmax(axis=1) == y[second]
            correct[name] = right
            per_family[name] = {"random": float(right.mean()),
                                "filtered": float(right[filtered].mean()) if filtered.any() else None,
                                "filtered_ci": list(clopper_pearson(int(right[filtered].sum()), int(filtered.sum())))}
        metrics: dict[str, Any] = {}
        if per_family:
            metrics["transfer_accuracy"] = per_family
        if per_family and filtered.any():
            metrics["filtered_accuracy"] = float(np.mean([v["filtered"] for v in per_family.values()]))
            metrics["transfer_accuracy_drop"] = float(np.mean([v["random"] - v["filtered"] for v in per_family.values()]))
        return {"metrics": metrics, "correct": correct}

    def _slice_record(self, t, y, predicted, wrong, transfer, level, describe) -> dict[str, Any]:
        inside = t.mask
        n = int(inside.sum())
        right = n - int(wrong[inside].sum())
        low, high = clopper_pearson(right, n, level)
        record: dict[str, Any] = {
            "description": _described(t, y, predicted, describe),
            "size": n,
            "accuracy": right / n,
            "interval": [low, high],
            "confident_error_rate": t.error_rate,
            "confident_error_interval": list(t.error_interval),
            "rest_confident_error_rate": t.rest_error_rate,
            "gap_lower_bound": t.gap_low,
        }
        others = transfer["correct"]
        if others:
            record["other_models_accuracy"] = float(np.mean([right[inside].mean() for right in others.values()]))
        return record

    def _evidence(self, ctx, kind, x, y, predicted, confidence, bad, second, rows_index, confirmed, describe):
        evidence: dict[str, Any] = {}
        rel = save_arrays(ctx, f"{self.id}-filtered.npz", x=x[bad], y=y[bad], prediction=predicted[bad],
                          confidence=confidence[bad], half=second[bad].astype(np.int8), row=rows_index[bad])
        if rel:
            evidence["examples"] = rel
        if confirmed:  # which rows each confirmed slice holds: row numbers of the role's rows
            held_rows = rows_index[second]
            rel = save_arrays(ctx, f"{self.id}-slices.npz",
                              **{f"slice_{i}": held_rows[t.mask] for i, t in enumerate(confirmed)})
            if rel:
                evidence["slice_rows"] = rel
        if kind == "image" and confirmed:
            held_x, held_pred = x[second], predicted[second]
            rows, titles, captions = [], [], []
            for t in confirmed[:_MONTAGE_ROWS]:
                pick = np.flatnonzero(t.mask)[:_MONTAGE_COLUMNS]
                rows.append(list(held_x[pick]))
                titles.append(t.description)
                captions.append([f"-> {int(p)}" for p in held_pred[pick]])
            from ...util import plots

            plot = try_plot(ctx, f"{self.id}-slices.png", plots.image_grid, rows, row_titles=titles,
                            captions=captions, title="Held-out examples of each confirmed slice (model's answer below)")
            if plot:
                evidence["plots"] = [plot]
        return evidence

    def _summary(self, metrics, confirmed, report, role, n) -> str:
        head = (f"{metrics['filtered_rows']} of {n} unmodified {role} rows ({metrics['success_rate']:.0%}) are "
                f"confidently wrong (confidence >= {float(self.min_confidence):g}); accuracy {metrics['clean_accuracy']:.0%}.")
        if "transfer_accuracy_drop" in metrics:
            head += (f" Other model families lose {metrics['transfer_accuracy_drop']:.0%} accuracy on the held-out "
                     f"filtered rows (accuracy {metrics['filtered_accuracy']:.0%} there).")
        if not confirmed:
            return head + (f" No slice was confirmed on the {metrics['heldout_rows']} held-out rows "
                           f"({count(metrics['screened_slices'], 'slice')} screened on the discovery half, "
                           f"{count(metrics['candidate_slices'], 'candidate')} tested).")
        worst = max(report, key=lambda r: r["confident_error_rate"] - r["rest_confident_error_rate"])
        return head + (f" {count(len(confirmed), 'slice')} confirmed on held-out rows, e.g. {worst['description']}: "
                       f"accuracy {worst['accuracy']:.0%} on {worst['size']} rows, confident errors "
                       f"{worst['confident_error_rate']:.0%} against {worst['rest_confident_error_rate']:.0%} elsewhere.")


def halves(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of the discovery half, stratified by label (each class split in two)."""
    first = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        first[rows[: (len(rows) + 1) // 2]] = True
    return first


def _small_failing_classes(y: np.ndarray, bad: np.ndarray, first: np.ndarray, *, min_rows: int,
                           margin: float) -> list[tuple[int, int, int, float]]:
    """True classes too small to be a slice (fewer than ``min_rows`` rows in a half) whose
    rows are confidently wrong more than ``margin`` above the other rows', by the lower bound
    of the gap over all rows (exact intervals, Bonferroni over the classes), worst first:
    [(label, rows, confidently wrong rows, the other rows' rate)]."""
    labels = np.unique(y)
    level = slicing.simultaneous_confidence(len(labels))
    out = []
    for label in labels:
        inside = y == label
        if min(int((inside & first).sum()), int((inside & ~first).sum())) >= min_rows:
            continue
        n_in, k_in = int(inside.sum()), int(bad[inside].sum())
        n_out, k_out = int((~inside).sum()), int(bad[~inside].sum())
        if not n_out:
            continue
        (low_in,), _ = slicing.cp_bounds([k_in], [n_in], level)
        _, (high_out,) = slicing.cp_bounds([k_out], [n_out], level)
        if low_in - high_out > margin:
            out.append((float(low_in - high_out), int(label), n_in, k_in, k_out / n_out))
    return [item[1:] for item in sorted(out, key=lambda item: -item[0])]


def _described(t, y, predicted, describe) -> str:
    """The slice's rule, and for clusters what the model answers on it."""
    if describe != "image":
        return t.description
    answers = predicted[t.mask]
    values, counts = np.unique(answers, return_counts=True)
    top = values[counts.argmax()]
    return f"{t.description} (model answers {int(top)} on {counts.max() / len(answers):.0%})"
