"""FM17.operating_conditions: a drift condition is covered by an earlier FM14 finding only when
that finding tested it (moved the same feature's mean at least as far the same way), not as
soon as any FM14 check decided."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.checks import CheckContext
from redline.checks.robustness.conditions import parse_operating_conditions
from redline.checks.robustness.fm14_deployment_shift import DeploymentShift
from redline.checks.robustness.fm14_shift_sensitivity import ShiftSensitivity
from redline.checks.robustness.fm17_operating_conditions import (
    OperatingConditionsCoverage,
)
from redline.data.base import Dataset
from redline.findings import Finding, Status


@pytest.fixture(scope="module")
def table():
    """x0 uniform in [0, 1], x1 in {0, 1, 2}, x2 uniform; the class is x2 > 0.5. The deployment
    rows are drawn like the test rows: no feature drifts there."""
    rng = np.random.default_rng(3)
    n = 600
    x = np.stack([rng.uniform(0, 1, n), rng.choice([0, 1, 2], size=n, p=[0.48, 0.48, 0.04]),
                  rng.uniform(0, 1, n)], axis=1).astype(np.float32)
    y = (x[:, 2] > 0.5).astype(int)
    data = Dataset("table", x_train=x[:200], y_train=y[:200], x_test=x[200:400], y_test=y[200:400],
                   x_deploy=x[400:], y_deploy=y[400:], feature_names=["x0", "x1", "x2"], spec="test:table")
    target = ArrayTarget(np.array([[0.0, 0.0], [0.0, 0.0], [-10.0, 10.0]]), np.array([5.0, -5.0]))
    return target, data


def _fm17(target, data, drift, earlier, n_inputs=20):
    """FM17 with ``n_inputs`` below min_rows: what it runs itself cannot cover a condition, so a
    covered drift condition is one the earlier findings covered."""
    conditions = parse_operating_conditions({"min_rows": 30, "drift": drift}, "test")
    f = OperatingConditionsCoverage(n_inputs=n_inputs)(
        target, data, seed=0, ctx=CheckContext(operating_conditions=conditions, earlier=tuple(earlier)))
    return f, {e["condition"]: e for e in f.evidence["conditions"]}


def test_fm14_findings_that_tested_other_things_cover_no_drift_condition(table):
    """The red-team's false pass: a decided FM14 finding used to cover every drift condition."""
    target, data = table
    directions = ShiftSensitivity(max_features=1)(target, data, seed=0)  # principal directions, no feature band
    steady = DeploymentShift()(target, data, seed=0)  # deployment rows like the test rows
    legacy = Finding(id="3" * 16, mode="FM14", check="FM14.shift_sensitivity", title="",
                     status=Status.NOT_VULNERABLE)  # an older report: nothing recorded per feature
    assert directions.status is steady.status is Status.NOT_VULNERABLE
    drift = [{"feature": "x2", "shift": 3.0, "name": "x2 far up"}, {"feature": "x0", "shift": -0.4, "name": "x0 down"}]
    f, entries = _fm17(target, data, drift, (directions, steady, legacy))
    assert f.status is Status.VULNERABLE, f.summary
    assert f.metrics["conditions_covered"] == 0 and "FM14.shift_sensitivity" not in f.metrics["covered_by"]
    assert "untested: x2 far up" in f.summary and "x0 down (" in f.summary
    reason = entries["x2 far up"]["reason"]
    assert reason.startswith("measured here on 20 rows only, fewer than 30")
    assert "FM14.shift_sensitivity judged no band of 'x2'" in reason
    assert "FM14.deployment_shift's deployment rows moved the mean of 'x2' by" in reason
    assert "(the declared drift moves its mean by +3)" in reason
    # Nothing covered it, so the check measured the drifts itself (20 rows each).
    assert f.queries == 40 and entries["x0 down"]["rows"] == 20


def test_a_band_of_the_same_feature_covers_a_drift_only_as_far_as_it_moved_it(table):
    target, data = table
    bands = ShiftSensitivity()(target, data, seed=0)
    moved = {r["name"]: r["feature_mean_shift"] for r in bands.metrics["shifts"] if "feature_index" in r}
    high = moved["band:'x0':high"]
    assert 0.3 < high < 0.5 and moved["band:'x0':low"] < -0.3
    drift = [{"feature": "x0", "shift": round(high - 0.05, 3), "name": "x0 up a little"},
             {"feature": "x0", "shift": round(high + 0.05, 3), "name": "x0 up further than tested"},
             {"feature": 0, "shift": -0.3, "name": "x0 down"},
             {"feature": "x2", "shift": 3.0, "name": "x2 far up"}]
    f, entries = _fm17(target, data, drift, (bands,))
    assert f.status is Status.VULNERABLE
    assert entries["x0 up a little"]["covered_by"].startswith(
        f"FM14.shift_sensitivity (shift band:'x0':high: mean of 'x0' {high:+.3g}, declared")
    assert entries["x0 up a little"]["mean_shift"] == high and "accuracy" in entries["x0 up a little"]
    assert entries["x0 down"]["covered_by"].startswith("FM14.shift_sensitivity (shift band:'x0':low")
    assert f.metrics["covered_by"] == {"FM14.shift_sensitivity": 2}
    assert {e["condition"] for e in f.metrics["untested"]} == {"x0 up further than tested", "x2 far up"}
    assert f"bands of 'x0' moved its mean by {high:+.3g} at most" in entries["x0 up further than tested"]["reason"]


def test_shift_sensitivity_records_the_feature_each_band_moves(table):
    target, data = table
    f = ShiftSensitivity()(target, data, seed=0)
    x = data.x_test.astype(np.float64)
    for r in f.metrics["shifts"]:
        if r["kind"] != "feature band":
            assert "feature_index" not in r and "feature_mean_shift" not in r
            continue
        j = ["'x0'", "'x1'", "'x2'"].index(r["name"].split(":")[1])
        column = x[:, j]
        inside = column <= np.quantile(column, 0.2) if r["name"].endswith(":low") else column >= np.quantile(column, 0.8)
        assert r["feature_index"] == j
        assert r["feature_mean_shift"] == pytest.approx(column[inside].mean() - column.mean())


def test_a_deployment_sample_covers_the_drift_it_shows(table):
    target, data = table
    x_deploy = data.x_deploy.copy()
    x_deploy[:, 0] += 0.3  # deployment rows drawn with x0 moved up (x0 does not matter to the model)
    drifted = dataclasses.replace(data, x_deploy=x_deploy)
    dep = DeploymentShift()(target, drifted, seed=0)
    means = dep.evidence["feature_means"]
    assert means["deploy"][0] - means["reference"][0] == pytest.approx(0.3 + float(data.x_deploy[:, 0].mean()
                                                                                  - data.x_test[:, 0].mean()), abs=1e-5)
    drift = [{"feature": "x0", "shift": 0.25, "name": "x0 up"}, {"feature": "x0", "shift": -0.25, "name": "x0 down"},
             {"feature": "x2", "shift": 0.25, "name": "x2 up"}]
    f, entries = _fm17(target, drifted, drift, (dep,))
    assert entries["x0 up"]["covered_by"].startswith("FM14.deployment_shift (deployment rows: mean of 'x0' +0.")
    assert entries["x0 up"]["accuracy"] == dep.metrics["deploy_accuracy"]
    assert {e["condition"] for e in f.metrics["untested"]} == {"x0 down", "x2 up"}


def test_a_scale_drift_counts_as_a_move_only_for_a_feature_of_one_sign(table):
    target, data = table
    mean = float(data.x_test[:, 0].mean())
    band = {"name": "band:'x0':high", "kind": "feature band", "accuracy": 0.9, "drop": 0.05, "feature_index": 0,
            "feature_mean_shift": 0.2}
    fm14 = Finding(id="4" * 16, mode="FM14", check="FM14.shift_sensitivity", title="", status=Status.NOT_VULNERABLE,
                   metrics={"shifts": [band]})
    # x0 >= 0: scaling by 1.3 moves its mean by 0.3 * mean (about 0.15), within the band's 0.2;
    # by 1.6 about 0.3, beyond it.
    drift = [{"feature": "x0", "scale": 1.3, "name": "small"}, {"feature": "x0", "scale": 1.6, "name": "large"}]
    f, entries = _fm17(target, data, drift, (fm14,))
    assert entries["small"]["covered_by"].startswith("FM14.shift_sensitivity")
    assert entries["small"]["declared_mean_shift"] == pytest.approx(0.3 * mean, rel=1e-6)
    assert "large" in {e["condition"] for e in f.metrics["untested"]}
    # Centred, x0 takes both signs: a scale widens it, which no reweighting of rows tests.
    centred = dataclasses.replace(data, x_test=data.x_test - np.array([0.5, 0, 0], np.float32))
    f, entries = _fm17(target, centred, [{"feature": "x0", "scale": 1.3, "name": "wider"}],
                       (dataclasses.replace(fm14, metrics={"shifts": [{**band, "feature_mean_shift": 5.0}]}),))
    assert "changes its spread, which no FM14 shift tests" in entries["wider"]["reason"]
