"""FM14.deployment_shift: flags the zoo's noisy deployment, passes its iid one, and says why when it cannot tell."""
import dataclasses

import numpy as np
import pytest

from redline import zoo
from redline.checks.robustness.fm14_deployment_shift import (
    DeploymentShift,
    newcombe_difference,
)
from redline.data import as_dataset
from redline.findings import Status


@pytest.fixture(scope="module")
def noisy():
    return zoo.load_target("digits_mlp_deployed_noisy"), zoo.load_data_for("digits_mlp_deployed_noisy")


@pytest.fixture(scope="module")
def steady():
    return zoo.load_target("digits_mlp_deployed_steady"), zoo.load_data_for("digits_mlp_deployed_steady")


def test_positive_control_a_noisy_deployment_sample_is_flagged(noisy):
    target, data = noisy
    finding = DeploymentShift()(target, data, seed=0)
    assert finding.status is Status.VULNERABLE, finding.summary
    m = finding.metrics
    assert m["deploy_labelled"] and m["deploy_rows"] == len(data.x_deploy)
    assert m["accuracy_drop_ci"][0] > 0.05  # measured: about 18 points
    assert m["accuracy_drop"] == pytest.approx(m["reference_accuracy"] - m["deploy_accuracy"])
    assert m["estimated_accuracy_drop"] > 0.1 and m["estimation_error"] < 0.06
    # Every row the check sent: the deployment rows within the budget, the test rows for evaluation.
    assert finding.queries == len(data.x_deploy) and finding.evaluation_queries == len(data.x_test)


def test_without_deployment_labels_the_estimate_alone_flags_it(noisy):
    target, data = noisy
    finding = DeploymentShift()(target, dataclasses.replace(data, y_deploy=None), seed=0)
    assert finding.status is Status.VULNERABLE, finding.summary
    m = finding.metrics
    assert not m["deploy_labelled"] and "deploy_accuracy" not in m and "estimation_error" not in m
    assert m["accuracy_drop"] == m["estimated_accuracy_drop"] and m["accuracy_drop_ci"][0] > 0.05


def test_negative_control_an_iid_deployment_sample_passes(steady):
    target, data = steady
    for method in ("atc", "doc", "iw"):
        finding = DeploymentShift(method=method)(target, data, seed=0)
        assert finding.status is Status.NOT_VULNERABLE, (method, finding.summary)
        assert finding.metrics["accuracy_drop_ci"][1] < 0.05


def test_importance_weighting_on_a_noisy_sample_gives_no_number_and_says_why(noisy):
    target, data = noisy
    finding = DeploymentShift(method="iw")(target, dataclasses.replace(data, y_deploy=None), seed=0)
    assert finding.status is Status.INCONCLUSIVE
    assert "estimated_accuracy" not in finding.metrics and "y_deploy" in finding.reason


def test_small_budget_samples_the_deployment_rows(steady):
    target, data = steady
    finding = DeploymentShift()(target, data, budget=100, seed=0)
    assert finding.queries == 100 and finding.metrics["deploy_rows"] == 100
    assert "budget covers 100" in finding.evidence["note"]


def test_not_applicable_without_a_deployment_sample_or_test_labels(steady, linear_target):
    target, data = steady
    plain = zoo.load_data_for("digits_mlp_overfit")
    finding = DeploymentShift()(target, plain, seed=0)
    assert finding.status is Status.NOT_APPLICABLE and "deploy" in finding.reason
    unlabelled = dataclasses.replace(data, y_test=None)
    finding = DeploymentShift()(target, unlabelled, seed=0)
    assert finding.status is Status.NOT_APPLICABLE and "labels" in finding.reason
    assert finding.queries + finding.evaluation_queries == 0  # the target is never asked to label them


def test_too_few_rows_is_inconclusive(linear_target):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(60, 2))
    data = as_dataset({"x_test": x[:40], "y_test": (x[:40, 0] > 0.5).astype(int), "x_deploy": x[40:]})
    finding = DeploymentShift()(linear_target, data, seed=0)
    assert finding.status is Status.INCONCLUSIVE and "at least 30" in finding.reason


def test_newcombe_interval_holds_the_difference():
    low, high = newcombe_difference(90, 100, 70, 100)
    assert low < 0.2 < high and 0.05 < low and high < 0.35
    assert newcombe_difference(50, 100, 50, 100)[0] < 0 < newcombe_difference(50, 100, 50, 100)[1]


def test_triage_rates_a_measured_drop_above_an_estimated_one(noisy):
    from redline.severity import Severity
    from redline.triage.engine import rate

    target, data = noisy
    measured = DeploymentShift()(target, data, seed=0)
    severity, rationale = rate(measured)
    assert severity == Severity.MODERATE and "labelled deployment rows" in rationale  # about 18 points
    estimated = DeploymentShift(method="doc")(target, dataclasses.replace(data, y_deploy=None), seed=0)
    assert estimated.status is Status.VULNERABLE, estimated.summary
    severity, rationale = rate(estimated)
    assert severity == Severity.LOW and "Estimated without labels" in rationale  # DoC sees about 8 points


def test_python_api_takes_the_deployment_sample_as_arrays_by_role():
    from sklearn.linear_model import LogisticRegression

    import redline
    from redline.data import load_data

    data = load_data("builtin:breast_cancer")
    model = LogisticRegression(max_iter=1000).fit(data.x_train, data.y_train)
    report = redline.scan(model, {"x_test": data.x_test, "y_test": data.y_test, "x_deploy": data.x_pool,
                                  "y_deploy": data.y_pool}, select="FM14.deployment_shift",
                           params={"FM14.deployment_shift": {"tolerated_drop": 0.1}})
    (finding,) = report.findings
    # The pool is the test rows' own population; 113 test rows bound the drop to about +-5 points,
    # so the default 5-point tolerance could not be cleared (inconclusive), 10 points can.
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["deploy_rows"] == len(data.x_pool) and finding.metrics["deploy_labelled"]


def test_the_shift_test_sees_the_noisy_sample_and_not_the_steady_one(noisy, steady):
    shifted = DeploymentShift()(*noisy, seed=0)
    assert shifted.metrics["shift_detected"] and shifted.metrics["p_value"] < 1e-6
    assert shifted.evidence["shift_test"]["most_shifted_features"], shifted.evidence["shift_test"]
    same = DeploymentShift()(*steady, seed=0)
    assert not same.metrics["shift_detected"] and same.metrics["p_value"] > 0.05
    assert "do not differ detectably" in same.summary


def _ignored_feature_shift(labelled: bool):
    """A model that reads feature 0 only, deployed where feature 1 moved: a real shift that
    leaves accuracy (and confidence) exactly where it was."""
    from redline_testkit import ArrayTarget

    target = ArrayTarget(np.array([[-8.0, 8.0], [0.0, 0.0]]), np.array([4.0, -4.0]))
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=(1600, 2))
    y = (x[:, 0] > 0.5).astype(int)
    flip = rng.random(len(y)) < 0.05  # a little label noise, the same in both samples
    y[flip] = 1 - y[flip]
    x_deploy = x[800:].copy()
    x_deploy[:, 1] += 0.6
    roles = {"x_test": x[:800], "y_test": y[:800], "x_deploy": x_deploy}
    if labelled:
        roles["y_deploy"] = y[800:]
    return target, as_dataset(roles)


def test_a_detected_shift_keeps_a_label_free_all_clear_from_passing_the_model():
    target, data = _ignored_feature_shift(labelled=False)
    finding = DeploymentShift()(target, data, seed=0)
    m = finding.metrics
    assert m["shift_detected"] and m["accuracy_drop_ci"][1] < 0.05, m  # the estimate sees no drop
    assert finding.status is Status.INCONCLUSIVE and "y_deploy" in finding.reason
    # With labels the drop is measured, and the shift alone is no vulnerability.
    target, data = _ignored_feature_shift(labelled=True)
    finding = DeploymentShift()(target, data, seed=0)
    assert finding.metrics["shift_detected"] and finding.status is Status.NOT_VULNERABLE, finding.summary


def test_shift_test_parameters_are_checked():
    for params in ({"shift_test": "ks"}, {"shift_test": "bbsd+nope"}, {"alpha": 0.0}, {"alpha": 1.5}):
        with pytest.raises(ValueError):
            DeploymentShift(**params)._validate()
    DeploymentShift(shift_test="univariate+mmd")._validate()
