"""FM17 incomplete testing (a): do the test data and the scan cover the declared operating conditions?

The conditions come from the ``operating_conditions`` section of the system description given
with ``--context`` (the scan hands them to the check through its context), or from a file
named by the ``conditions`` parameter (:mod:`.conditions` describes the YAML). Each declared
condition is covered by one of:

- the test data: a feature range when every one of its bands holds at least ``min_rows`` test
  rows, a set of categories when every value does, a population when its rows do;
- an earlier check of the same scan: a sensor condition when an FM16 check measured its
  corruption family at its severity, an expected drift when a decided FM14 check moved the
  same feature's mean at least as far the same way (a judged ``FM14.shift_sensitivity`` band
  of that feature, or ``FM14.deployment_shift``'s deployment rows; :meth:`_drift_from_scan`);
- this check: a sensor or drift condition no other check measured is run here (accuracy on
  ``n_inputs`` test rows corrupted by the family, or with the feature shifted), and counts as
  covered when it was measured on at least ``min_rows`` rows with labels.

The rest are ``untested``, each with the reason, and with what could still be measured
(accuracy and its exact interval on the few rows of a thin band or population). Verdict:
vulnerable when any condition stays untested; not vulnerable when all are covered.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...findings import Status
from ...util.stats import rate_interval
from ...util.wording import count
from ..base import Check, Needs, NotApplicable, Outcome
from .base import AccuracyUnderTransformation, paired_drop
from .conditions import (
    Drift,
    FeatureCategories,
    FeatureRange,
    OperatingConditions,
    Population,
    Sensor,
    chosen_conditions,
    load_conditions_file,
    matches_any,
    population_mask,
    resolve_feature,
)

_DECIDED = (Status.VULNERABLE, Status.NOT_VULNERABLE, Status.INCONCLUSIVE)
#: The FM14 checks whose findings record what they did to each feature (see _drift_from_scan).
_FEATURE_DRIFT_CHECKS = ("FM14.shift_sensitivity", "FM14.deployment_shift")
NO_CONDITIONS = ("no operating_conditions in the context (give --context with a system description that has an "
                 "operating_conditions section, or --set FM17.operating_conditions.conditions=FILE)")


class OperatingConditionsCoverage(Check):
    id = "FM17.operating_conditions"
    mode = "FM17"
    title = "Declared operating conditions the test data and the scan cover"
    needs = Needs(roles=("test",), labels_from_target=False)
    default_budget = 10_000
    metrics = ("conditions_total", "conditions_covered", "untested", "covered_by", "test_rows", "clean_accuracy",
               "clean_accuracy_ci", "min_rows")
    param_docs: ClassVar[dict[str, str]] = {
        "conditions": "YAML file of operating conditions (null: the operating_conditions of the --context file)",
        "n_inputs": "test inputs to corrupt or shift for each sensor or drift condition no other check measured",
    }

    def __init__(self, conditions: str | None = None, n_inputs: int = 300):
        self.conditions = conditions
        self.n_inputs = n_inputs

    def _validate(self, target=None) -> None:
        if int(self.n_inputs) < 1:
            raise ValueError("n_inputs must be at least 1")
        if self.conditions:
            load_conditions_file(self.conditions)  # a missing or malformed file fails at plan time

    def run(self, target, data, budget, rng, ctx) -> Outcome:
        self._validate(target)
        conditions = chosen_conditions(self.conditions, ctx, data)
        if conditions is None or not conditions.total:
            raise NotApplicable(NO_CONDITIONS)
        rows = np.asarray(data.x_test).reshape(len(data.x_test), -1)
        names = data.feature_names
        self._resolve_all(conditions, names, rows.shape[1])  # a bad feature fails before any query
        labels = data.y_test
        correct = None
        if labels is not None:
            with target.ledger.evaluating():
                correct = target.predict_labels(np.asarray(data.x_test, target.input_spec.dtype)) == np.asarray(labels).astype(int)
        earlier = list(getattr(ctx, "earlier", ()) or ())
        n = conditions.min_rows
        entries: list[dict[str, Any]] = []
        for c in conditions.features:
            entries.append(self._feature(c, rows, names, correct, n))
        for c in conditions.populations:
            entries.append(self._population(c, rows, names, correct, n))
        runnable = []
        for c in (*conditions.sensors, *conditions.drift):
            note = ""
            if isinstance(c, Sensor):
                entry = self._sensor_from_scan(c, earlier)
            else:
                entry, note = self._drift_from_scan(c, earlier, rows, names)
            if entry is None:
                runnable.append(c)
                entry = {"condition": c.name, "kind": "sensor" if isinstance(c, Sensor) else "drift",
                         **({"scan_note": note} if note else {})}
            entries.append(entry)
        self._run_here(runnable, entries, target, data, correct, budget, rng, n)
        for e in entries:  # an untested drift also says what the scan's FM14 evidence did test
            if not e.get("covered_by") and e.get("scan_note"):
                e["reason"] = f"{e['reason']}; {e['scan_note']}" if e.get("reason") else e["scan_note"]
        covered = [e for e in entries if e.get("covered_by")]
        untested = [e for e in entries if not e.get("covered_by")]
        by: dict[str, int] = {}
        for e in covered:
            source = e["covered_by"].split(" (")[0]
            by[source] = by.get(source, 0) + 1
        metrics: dict[str, Any] = {
            "conditions_total": len(entries),
            "conditions_covered": len(covered),
            "untested": untested,
            "covered_by": by,
            "test_rows": len(rows),
            "min_rows": n,
        }
        if correct is not None:
            metrics["clean_accuracy"] = float(correct.mean())
            metrics["clean_accuracy_ci"] = rate_interval(float(correct.mean()), len(correct))
        source = conditions.source or "the --context file"
        summary = (f"{len(covered)} of {count(len(entries), 'declared operating condition')} ({source}) covered"
                   + (f" ({', '.join(f'{k}: {v}' for k, v in by.items())})" if by else "")
                   + (f"; untested: {'; '.join(_short(e) for e in untested)}." if untested else "."))
        evidence: dict[str, Any] = {"conditions": entries}
        if conditions.path:
            evidence["conditions_file"] = conditions.path  # what `redline replay` reads them from
        return Outcome(vulnerable=bool(untested), metrics=metrics, evidence=evidence, summary=summary)

    # -- conditions the test data covers -----------------------------------------------------
    @staticmethod
    def _resolve_all(conditions: OperatingConditions, names, width: int) -> None:
        for c in (*conditions.features, *conditions.drift):
            resolve_feature(c.feature, names, width, f"condition {c.name!r}")
        for p in conditions.populations:
            for clause in p.where:
                resolve_feature(clause.feature, names, width, f"population {p.name!r}")

    def _feature(self, c: FeatureRange | FeatureCategories, rows, names, correct, n: int) -> dict[str, Any]:
        column = rows[:, resolve_feature(c.feature, names, rows.shape[1], f"condition {c.name!r}")]
        if isinstance(c, FeatureRange):
            edges = np.linspace(c.low, c.high, c.bands + 1)
            parts = []
            for i in range(c.bands):
                upper = column <= edges[i + 1] if i == c.bands - 1 else column < edges[i + 1]
                parts.append((f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == c.bands - 1 else ')'}",
                              (column >= edges[i]) & upper))
            kind, unit = "feature_range", "band"
        else:
            parts = [(f"{v:g}", matches_any(column, [v])) for v in c.values]
            kind, unit = "feature_categories", "value"
        table = [{unit: label, **_measure(mask, correct)} for label, mask in parts]
        thin = [t for t in table if t["rows"] < n]
        entry: dict[str, Any] = {"condition": c.name, "kind": kind, "parts": table}
        if thin:
            entry["reason"] = (f"{count(len(thin), unit)} of {len(table)} with fewer than {n} test rows: "
                               + ", ".join(f"{t[unit]} ({t['rows']})" for t in thin))
        else:
            entry["covered_by"] = f"test data (at least {n} rows per {unit})"
        return entry

    def _population(self, p: Population, rows, names, correct, n: int) -> dict[str, Any]:
        mask = population_mask(p, rows, names)
        entry: dict[str, Any] = {"condition": p.name, "kind": "population",
                                 "where": " and ".join(c.describe() for c in p.where), **_measure(mask, correct),
                                 "share": float(mask.mean()) if len(mask) else 0.0}
        if p.min_share is not None:
            entry["declared_min_share"] = p.min_share
        if entry["rows"] >= n:
            entry["covered_by"] = f"test data ({entry['rows']} rows)"
        else:
            entry["reason"] = f"{entry['rows']} test rows, fewer than {n}"
        return entry

    # -- conditions earlier checks of the scan covered -------------------------------------------
    @staticmethod
    def _sensor_from_scan(c: Sensor, earlier) -> dict[str, Any] | None:
        for f in earlier:
            if not f.check.startswith("FM16.") or f.status not in _DECIDED:
                continue
            accuracy = (f.metrics or {}).get("corrupted_accuracy") or {}
            severities = sorted(int(s) for s in (f.params or {}).get("severities") or ())
            if c.corruption in accuracy and c.severity in severities:
                measured = accuracy[c.corruption][severities.index(c.severity)]
                return {"condition": c.name, "kind": "sensor", "corruption": c.corruption, "severity": c.severity,
                        "covered_by": f"{f.check} (accuracy {measured:.0%})", "accuracy": measured}
        return None

    @staticmethod
    def _drift_from_scan(c: Drift, earlier, rows, names) -> tuple[dict[str, Any] | None, str]:
        """The FM14 evidence that tested drift ``c``, as an entry, or None and what FM14 did test.

        A drift counts as tested by a decided FM14 finding only where it moved the same feature's
        mean at least as far the same way: a judged ``FM14.shift_sensitivity`` band of that
        feature (its ``feature_mean_shift``), or the deployment rows of ``FM14.deployment_shift``
        (its ``feature_means``). Evidence about other features, principal directions, clusters
        or class priors, or without these records (an older report), tests no drift condition.
        """
        column = resolve_feature(c.feature, names, rows.shape[1], f"condition {c.name!r}")
        feature = f"{c.feature!r}" if isinstance(c.feature, str) else f"feature {c.feature}"
        fm14 = [f for f in earlier if f.check in _FEATURE_DRIFT_CHECKS and f.status in _DECIDED]
        if not fm14:
            return None, ""
        wanted, why = _declared_move(c, rows[:, column])
        if wanted is None:
            return None, why
        sign = 1.0 if wanted >= 0 else -1.0
        found: list[dict[str, Any]] = []
        notes: list[str] = []
        for f in fm14:
            metrics = f.metrics or {}
            if f.check == "FM14.shift_sensitivity":
                moves = []
                for r in metrics.get("shifts") or ():
                    if r.get("feature_index") != column or r.get("feature_mean_shift") is None or "accuracy" not in r:
                        continue
                    moves.append(float(r["feature_mean_shift"]))
                    if _reaches(moves[-1], wanted):
                        found.append({"check": f.check, "via": f"shift {r.get('name', '')}", "mean_shift": moves[-1],
                                      "accuracy": r["accuracy"], "accuracy_drop": r.get("drop")})
                notes.append(f"{f.check} judged no band of {feature}" if not moves else
                             f"{f.check}'s bands of {feature} moved its mean by {max(moves, key=lambda m: sign * m):+.3g} "
                             f"at most")
                continue
            # FM14.deployment_shift
            means = (f.evidence or {}).get("feature_means") or {}
            ref, dep = list(means.get("reference") or ()), list(means.get("deploy") or ())
            accuracy = metrics.get("deploy_accuracy", metrics.get("estimated_accuracy"))
            if not (column < min(len(ref), len(dep)) and ref[column] is not None and dep[column] is not None):
                notes.append(f"{f.check} recorded no mean of {feature}")
            elif accuracy is None:
                notes.append(f"{f.check} has no accuracy on its deployment rows")
            else:
                moved = float(dep[column]) - float(ref[column])
                if _reaches(moved, wanted):
                    found.append({"check": f.check, "via": "deployment rows", "mean_shift": moved,
                                  "accuracy": float(accuracy), "accuracy_drop": metrics.get("accuracy_drop")})
                notes.append(f"{f.check}'s deployment rows moved the mean of {feature} by {moved:+.3g}")
        if not found:
            return None, f"{'; '.join(notes)} (the declared drift moves its mean by {wanted:+.3g})"
        best = min(found, key=lambda e: e["accuracy"])
        entry: dict[str, Any] = {
            "condition": c.name, "kind": "drift", "feature": c.feature, "declared_mean_shift": wanted,
            "mean_shift": best["mean_shift"], "accuracy": best["accuracy"],
            "covered_by": (f"{best['check']} ({best['via']}: mean of {feature} {best['mean_shift']:+.3g}, "
                           f"declared {wanted:+.3g}; accuracy {best['accuracy']:.0%})"),
        }
        if best["accuracy_drop"] is not None:
            entry["accuracy_drop"] = best["accuracy_drop"]
        return entry, ""

    # -- what this check runs itself -------------------------------------------------------------
    def _run_here(self, runnable, entries, target, data, correct, budget, rng, n: int) -> None:
        if not runnable:
            return
        by_name = {e["condition"]: e for e in entries}
        if correct is None:
            for c in runnable:
                by_name[c.name]["reason"] = "not measured by any check, and the test rows have no labels to measure it here"
            return
        transforms = {}
        for c in runnable:
            fn, why = (self._sensor_fn(c, target, data) if isinstance(c, Sensor) else self._drift_fn(c, target, data))
            if fn is None:
                by_name[c.name]["reason"] = why
            else:
                transforms[c.name] = (c, fn)
        if not transforms:
            return
        per = min(int(self.n_inputs), len(correct), budget // len(transforms))
        if per < 1:
            for name in transforms:
                by_name[name]["reason"] = f"a budget of {budget} queries cannot measure {len(transforms)} conditions"
            return
        idx = rng.permutation(len(correct))[:per]
        x = np.asarray(data.x_test, target.input_spec.dtype)[idx]
        y = np.asarray(data.y_test).astype(int)[idx]
        seeds = rng.integers(2**31 - 1, size=len(transforms))
        for (name, (c, fn)), seed in zip(transforms.items(), seeds):
            changed = np.asarray(fn(x.copy(), np.random.default_rng(int(seed))), x.dtype)
            ok = target.predict_labels(AccuracyUnderTransformation._acceptable(target, changed, x)) == y
            drop, drop_ci = paired_drop(correct[idx], ok)
            entry = by_name[name]
            entry.update({"rows": per, "accuracy": float(ok.mean()), "accuracy_ci": rate_interval(float(ok.mean()), per),
                          "clean_accuracy": float(correct[idx].mean()), "accuracy_drop": drop,
                          "accuracy_drop_ci": drop_ci})
            if isinstance(c, Sensor):
                entry.update({"corruption": c.corruption, "severity": c.severity})
            if per >= n:
                entry["covered_by"] = f"{self.id} (run here: accuracy {ok.mean():.0%}, drop {drop:+.0%})"
            else:
                entry["reason"] = f"measured here on {per} rows only, fewer than {n}"

    @staticmethod
    def _sensor_fn(c: Sensor, target, data):
        from .corruptions import families
        from .corruptions.tabular import TableReference
        from .fm16_corruption import (
            CommonCorruption,
            _image_fn,
            _image_shape,
            _table_fn,
        )

        kind = CommonCorruption()._kind(target, data)
        known = families(kind)
        if c.corruption not in known:
            return None, (f"{c.corruption} is not a corruption of {kind} inputs (the {kind} families: "
                          f"{', '.join(known)})")
        spec = target.input_spec
        if kind == "image":
            shape = _image_shape(tuple(spec.shape))
            if shape is None:
                return None, f"image corruptions need inputs shaped (C, H, W), the target takes {tuple(spec.shape)}"
            return _image_fn(known[c.corruption], c.severity, shape, float(spec.lower), float(spec.upper)), ""
        rows = data.x_train if data.x_train is not None else data.x_test
        table = TableReference.fit(np.asarray(rows).reshape(len(rows), -1), spec)
        return _table_fn(known[c.corruption], c.severity, table), ""

    @staticmethod
    def _drift_fn(c: Drift, target, data):
        flat = np.asarray(data.x_test).reshape(len(data.x_test), -1)
        column = resolve_feature(c.feature, data.feature_names, flat.shape[1], f"condition {c.name!r}")

        def drift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            rows = x.reshape(len(x), -1)
            rows[:, column] = rows[:, column] * c.scale + c.shift
            return rows.reshape(x.shape)

        return drift, ""


def _declared_move(c: Drift, column: np.ndarray) -> tuple[float | None, str]:
    """How far drift ``c`` moves the mean of its feature on the test rows (``column``), or None
    and why no reweighting of rows can stand for it: a ``scale`` of a feature whose values take
    both signs widens or narrows it rather than moving it one way."""
    values = np.asarray(column, np.float64)
    values = values[np.isfinite(values)]
    if c.scale == 1.0:
        return float(c.shift), ""
    if not len(values):
        return None, "the feature has no finite test value to scale"
    if (values < 0).any() and (values > 0).any():
        return None, "scaling a feature whose test values take both signs changes its spread, which no FM14 shift tests"
    return float((c.scale - 1.0) * values.mean() + c.shift), ""


def _reaches(moved: float, wanted: float) -> bool:
    """Did a mean move of ``moved`` go at least as far as ``wanted``, the same way?"""
    sign = 1.0 if wanted >= 0 else -1.0
    return sign * float(moved) >= abs(wanted) - 1e-9 * max(1.0, abs(wanted))


def _measure(mask: np.ndarray, correct: np.ndarray | None) -> dict[str, Any]:
    """Rows in ``mask`` and, with labels, the accuracy on them with its exact interval."""
    rows = int(mask.sum())
    out: dict[str, Any] = {"rows": rows}
    if correct is not None and rows:
        accuracy = float(correct[mask].mean())
        out.update({"accuracy": accuracy, "accuracy_ci": rate_interval(accuracy, rows)})
    return out


def _short(entry: dict[str, Any]) -> str:
    text = f"{entry['condition']} ({entry.get('reason', 'not covered')}"
    if "accuracy" in entry and entry.get("rows"):
        low, high = entry["accuracy_ci"]
        text += f"; accuracy {entry['accuracy']:.0%} on {entry['rows']} rows, 95% CI {low:.0%}-{high:.0%}"
    return text + ")"
