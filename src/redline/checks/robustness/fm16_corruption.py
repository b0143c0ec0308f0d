"""FM16 common corruption: accuracy under the everyday degradations of real inputs.

Images (an input spec shaped (C, H, W), or (H, W) on image data) meet the image library's
families (noise, blur, weather, digital, geometric; :mod:`.corruptions.images`); every other
input, flat vectors included, is a table and meets the faults of data pipelines (noise per
feature, missing values imputed with the median, outliers, unit errors, rounding, swapped
and stuck columns; :mod:`.corruptions.tabular`), fitted to the training rows (the test rows
when the data set has none). Unit errors, swapped and stuck columns break the pipeline, not
the measurement, and no model survives them: unless named in ``families`` they are measured
and reported (``pipeline_fault_accuracy``) but left out of the average the verdict judges
(with them, 9 of 16 honest table models on four scikit-learn data sets were "vulnerable"). Each family runs at severities 1..5; the base
(:class:`AccuracyUnderTransformation`) measures accuracy per family and severity with
intervals, the drop, and gives the verdict: accuracy averaged over every family and severity
lower than on clean inputs by more than ``tolerated_drop`` with 95% confidence (the average,
not the worst cell, as the benchmarks and the triage rules judge).

On top, the corruption error of Hendrycks & Dietterich (2019): with E(f, s) the error rate
(1 - accuracy) under family f at severity s, ``CE_f = sum_s E(f, s)``. Normalised to a
reference model r measured on exactly the same corrupted inputs,

    mCE = mean_f  sum_s E(f, s) / sum_s E_r(f, s)
    relative mCE = mean_f  sum_s (E(f, s) - E_clean) / sum_s (E_r(f, s) - E_r,clean)

so 100% means "as robust as the reference". The reference is a target the user names
(``reference=zoo:NAME`` or a model file); it answers outside the target's budget. Without
one, the check reports the un-normalised ``mean_corruption_error`` (the mean of E over
families and severities) and says that nothing was normalised: no reference is invented.
A family whose reference error sums to zero has no normalised value and is left out.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ...errors import UsageError
from ...util.evidence import try_plot
from ..base import Needs, NotApplicable, Outcome
from .base import (
    TRANSFORMATION_METRICS,
    AccuracyUnderTransformation,
    Measured,
    TransformFn,
)
from .corruptions import families as corruption_families
from .corruptions.tabular import SEVERITIES, TableReference

KINDS = ("auto", "image", "tabular")


class CommonCorruption(AccuracyUnderTransformation):
    id = "FM16.corruption"
    mode = "FM16"
    title = "Accuracy under common corruptions (noise, blur, weather, digital; pipeline faults for tables)"
    needs = Needs(roles=("test",))
    # One query per corrupted input: the default 300 inputs through 23 image families x 5
    # severities need 34,500 (a smaller --budget evaluates fewer inputs, the summary says how many).
    default_budget = 35_000
    accuracy_metric = "corrupted_accuracy"
    # Judged like the benchmarks and the triage rules: on accuracy averaged over every family
    # and severity. The worst cell says little: severity-5 translation or noise breaks almost
    # any model, robust or not.
    judged_on = "mean"
    metrics = (
        *TRANSFORMATION_METRICS, "corrupted_accuracy", "corruption_kind", "corruption_error",
        "mean_corruption_error", "mce", "relative_mce", "normalised_corruption_error",
        "relative_corruption_error", "mce_reference", "reference_clean_accuracy",
        "reference_mean_corruption_error", "judged_families", "pipeline_fault_accuracy",
    )
    param_docs: ClassVar[dict[str, str]] = {
        "families": "corruption families to run (null: every family of the input kind; a table's unit, schema and "
                    "sensor faults are then reported, not judged)",
        "severities": "severities to run, each 1..5",
        "n_inputs": "test inputs to corrupt (fewer when the budget cannot send each through every corruption)",
        "tolerated_drop": "accuracy drop (0..1), averaged over every corruption and severity, still accepted",
        "reference": "target to normalise the corruption error to, e.g. zoo:NAME or a model file (null: none)",
        "kind": "corruptions to apply: auto (image for (C,H,W) inputs, tabular otherwise), image or tabular",
    }
    # Run state, set by run for one call and read by the transformations and _more_metrics:
    # the reference model, its answers by (family, severity) and "clean", the kind used.
    _reference_model: Any = None
    _reference_answers: dict[Any, np.ndarray] | None = None
    _kind_used: str = ""

    def __init__(
        self,
        families: tuple[str, ...] | None = None,
        severities: tuple[int, ...] = SEVERITIES,
        n_inputs: int = 300,
        tolerated_drop: float = 0.1,
        reference: str | None = None,
        kind: str = "auto",
    ):
        self.families = families
        self.severities = severities
        self.n_inputs = n_inputs
        self.tolerated_drop = tolerated_drop
        self.reference = reference
        self.kind = kind

    def _validate(self, target=None) -> None:
        super()._validate(target)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.severities or any(int(s) not in SEVERITIES for s in self.severities):
            raise ValueError("severities must be a non-empty list of values in 1..5")
        if self.families is not None and not self.families:
            raise ValueError("families must name at least one family (null: all)")

    # -- which corruptions -----------------------------------------------------------
    def _kind(self, target, data) -> str:
        """Image only when the input spec is image-shaped; a flat vector is a table."""
        if self.kind != "auto":
            return self.kind
        shape = tuple(target.input_spec.shape)
        if len(shape) == 3 or (len(shape) == 2 and getattr(data, "modality", None) == "image"):
            return "image"
        return "tabular"

    def _chosen(self, kind: str) -> dict[str, Any]:
        known = corruption_families(kind)
        if self.families is None:
            return dict(known)
        unknown = [f for f in self.families if f not in known]
        if unknown:
            raise UsageError(f"{self.id}: unknown {kind} corruption(s) {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        return {f: known[f] for f in self.families}

    def transformations(self, target, data) -> Mapping[str, Mapping[int, TransformFn]]:
        kind = self._kind(target, data)
        chosen = self._chosen(kind)
        spec = target.input_spec
        if kind == "image":
            shape = _image_shape(tuple(spec.shape))
            if shape is None:
                raise NotApplicable(f"image corruptions need inputs shaped (C, H, W) with 1 or 3 channels first, the "
                                    f"target takes {tuple(spec.shape)}")
            make = lambda c, s: _image_fn(c, s, shape, float(spec.lower), float(spec.upper))
        else:
            rows = data.x_train if data.x_train is not None else data.x_test
            table = TableReference.fit(np.asarray(rows).reshape(len(rows), -1), spec)
            make = lambda c, s: _table_fn(c, s, table)
        return {name: {int(s): self._recorded(make(c, int(s)), (name, int(s)), target)
                       for s in sorted(set(self.severities))}
                for name, c in chosen.items()}

    # -- the reference model ---------------------------------------------------------
    def _recorded(self, fn: TransformFn, key: tuple[str, int], target) -> TransformFn:
        """``fn``, also asking the reference model (when there is one) about the same inputs."""

        def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            reference, answers = self._reference_model, self._reference_answers
            if reference is not None and "clean" not in answers:
                answers["clean"] = reference.predict_labels(x)
            changed = fn(x, rng)
            if reference is not None:
                answers[key] = reference.predict_labels(self._acceptable(target, np.asarray(changed), x))
            return changed

        return corrupt

    def _load_reference(self, target, data):
        if not self.reference:
            return None
        from ...targets.resolve import load_target

        reference = load_target(str(self.reference), data=data)
        if tuple(reference.input_spec.shape) != tuple(target.input_spec.shape):
            raise UsageError(f"{self.id}: the reference {self.reference} takes inputs shaped "
                             f"{tuple(reference.input_spec.shape)}, the target {tuple(target.input_spec.shape)}")
        return reference

    def run(self, target, data, budget, rng, ctx) -> Outcome:
        self._validate(target)
        # Run state, read by the transformations and _more_metrics; cleared afterwards.
        self._reference_model = self._load_reference(target, data)
        self._reference_answers = {}
        self._kind_used = self._kind(target, data)
        try:
            outcome = super().run(target, data, budget, rng, ctx)
        finally:
            self._reference_model, self._reference_answers = None, None
        m = outcome.metrics
        if m.get("pipeline_fault_accuracy"):
            faults = ", ".join(f"{f} {a:.0%}" for f, a in m["pipeline_fault_accuracy"].items())
            outcome.summary += (f" Pipeline faults, reported and not judged (no model survives them; input validation "
                                f"must catch them): average accuracy {faults}.")
        if "mce" in m:
            outcome.summary += (f" mCE {m['mce']:.0%}, relative mCE {m['relative_mce']:.0%} of the reference "
                                f"{self.reference}." if m.get("relative_mce") is not None else
                                f" mCE {m['mce']:.0%} of the reference {self.reference}.")
        else:
            outcome.summary += (f" Mean corruption error {m['mean_corruption_error']:.0%}, not normalised: "
                                f"no reference model was named (set reference=zoo:NAME or a model file).")
        return outcome

    # -- metrics ---------------------------------------------------------------------
    def _judged(self, results: list[Measured]) -> list[int]:
        """Every result, except a table's pipeline faults when the families were not named."""
        if self._kind_used != "tabular" or self.families is not None:
            return list(range(len(results)))
        faults = _pipeline_faults()
        kept = [i for i, r in enumerate(results) if r.family not in faults]
        return kept or list(range(len(results)))

    def _more_metrics(self, y: np.ndarray, clean_ok: np.ndarray, results: list[Measured]) -> dict[str, Any]:
        judged = {results[i].family for i in self._judged(results)}
        left_out: dict[str, list[float]] = {}
        for r in results:
            if r.family not in judged:
                left_out.setdefault(r.family, []).append(r.accuracy)
        context = {"judged_families": sorted(judged),
                   "pipeline_fault_accuracy": {f: float(np.mean(a)) for f, a in left_out.items()}}
        return {**context, **self._corruption_errors(y, clean_ok, results)}

    def _corruption_errors(self, y: np.ndarray, clean_ok: np.ndarray, results: list[Measured]) -> dict[str, Any]:
        errors: dict[str, list[float]] = {}
        for r in results:
            errors.setdefault(r.family, []).append(1.0 - r.accuracy)
        ce = {f: float(sum(e)) for f, e in errors.items()}
        out: dict[str, Any] = {
            "corruption_kind": self._kind_used,
            "corruption_error": ce,
            "mean_corruption_error": float(np.mean([e for es in errors.values() for e in es])),
        }
        if self._reference_model is None:
            return out
        answers = self._reference_answers
        ref_clean_error = 1.0 - float(np.mean(answers["clean"] == y))
        clean_error = 1.0 - float(np.mean(clean_ok))
        ref_errors: dict[str, list[float]] = {}
        for r in results:
            ref_errors.setdefault(r.family, []).append(1.0 - float(np.mean(answers[(r.family, r.severity)] == y)))
        normalised, relative = {}, {}
        for f, es in errors.items():
            ref_sum = sum(ref_errors[f])
            if ref_sum > 0:
                normalised[f] = ce[f] / ref_sum
            ref_gap = ref_sum - len(es) * ref_clean_error
            if ref_gap > 0:
                relative[f] = (ce[f] - len(es) * clean_error) / ref_gap
        out.update({
            "mce_reference": str(self.reference),
            "reference_clean_accuracy": 1.0 - ref_clean_error,
            "reference_mean_corruption_error": float(np.mean([e for es in ref_errors.values() for e in es])),
            "normalised_corruption_error": normalised,
            "relative_corruption_error": relative,
            "mce": float(np.mean(list(normalised.values()))) if normalised else None,
            "relative_mce": float(np.mean(list(relative.values()))) if relative else None,
        })
        return out

    def _artifacts(self, ctx, results: list[Measured], metrics: dict[str, Any]) -> dict[str, Any]:
        """The base's table and line plot, and a heat map of accuracy per family and severity."""
        from ...util import plots

        out = super()._artifacts(ctx, results, metrics)
        families = list(metrics[self.accuracy_metric])
        severities = sorted({r.severity for r in results})
        grid = np.full((len(families), len(severities)), np.nan)
        for r in results:
            grid[families.index(r.family), severities.index(r.severity)] = r.accuracy
        rel = try_plot(ctx, f"{self.id}-heatmap.png", plots.heat_map, grid, families, severities,
                       title=f"Accuracy under corruption (clean: {metrics['clean_accuracy']:.0%})",
                       xlabel="severity", ylabel="family", colorbar_label="accuracy")
        if rel:
            out["plots"] = [*out.get("plots", []), rel]
        return out


def _pipeline_faults() -> set[str]:
    from .corruptions.tabular import PIPELINE_FAULT_GROUPS, TABULAR_FAMILIES

    return {name for name, c in TABULAR_FAMILIES.items() if c.group in PIPELINE_FAULT_GROUPS}


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(C, H, W) for an input of ``shape``: as it is, one channel for (H, W), and for a flat
    vector (only when the user asked for image corruptions) a square grey or RGB image."""
    if len(shape) == 3:  # the image corruptions draw grey or RGB images, channels first
        return shape if shape[0] in (1, 3) else None
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 1:
        for channels in (1, 3):
            side = round((shape[0] / channels) ** 0.5)
            if channels * side * side == shape[0] and side > 1:
                return (channels, side, side)
    return None


def _image_fn(corruption: Any, severity: int, shape: tuple[int, int, int], low: float, high: float) -> TransformFn:
    def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = x.reshape((len(x), *shape))
        return np.asarray(corruption.apply(images, severity, rng, low, high)).reshape(x.shape).astype(x.dtype)

    return corrupt


def _table_fn(corruption: Any, severity: int, table: TableReference) -> TransformFn:
    def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return corruption.apply(x, severity, rng, table)

    return corrupt
