"""Labels that name other classes than the model's (text labels numbered in sorted order
against a model trained on the other numbering) give accuracies far below a random guess;
the accuracy-based checks say so and stay inconclusive instead of judging noise."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.robustness.base import require_labels_above_chance
from redline.checks.robustness.fm14_deployment_shift import DeploymentShift
from redline.checks.robustness.fm15_natural import NaturalAdversarial
from redline.checks.robustness.fm14_shift_sensitivity import ShiftSensitivity
from redline.checks.robustness.fm16_corruption import CommonCorruption
from redline.checks.robustness.fm17_test_adequacy import TestAdequacy
from redline.checks.base import Inconclusive
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def swapped():
    """Breast cancer with a logistic regression trained on the true labels, and the data's
    labels swapped (what sorted text labels give when the model's class 0 is the other name)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[:300], y[:300])
    flipped = 1 - y
    data = Dataset("swapped", x[:300], flipped[:300], x[300:470], flipped[300:470], None, None,
                   x_deploy=x[470:], y_deploy=flipped[470:], spec="test:swapped")
    honest = Dataset("honest", x[:300], y[:300], x[300:470], y[300:470], None, None, x_deploy=x[470:],
                     y_deploy=y[470:], spec="test:honest")
    return model, data, honest


def test_the_guard_reads_a_binomial_tail_against_guessing():
    require_labels_above_chance(np.r_[np.ones(60, bool), np.zeros(40, bool)], 2)  # fine
    require_labels_above_chance(np.r_[np.ones(40, bool), np.zeros(60, bool)], 2)  # poor, not improbable
    with pytest.raises(Inconclusive, match="below the 50% a random guess gets"):
        require_labels_above_chance(np.r_[np.ones(3, bool), np.zeros(97, bool)], 2)
    with pytest.raises(Inconclusive, match="0 of 200 test rows"):
        require_labels_above_chance(np.zeros(200, bool), 10)
    require_labels_above_chance(np.zeros(3, bool), 2)  # three rows prove nothing


@pytest.mark.parametrize("check", [CommonCorruption(n_inputs=100), NaturalAdversarial(families=("logreg",)),
                                   DeploymentShift(), ShiftSensitivity(), TestAdequacy()], ids=lambda c: c.id)
def test_accuracy_checks_are_inconclusive_on_labels_that_name_other_classes(swapped, check):
    model, data, honest = swapped
    finding = check(load_target(model, data=data), data, seed=0)
    # Before: verdicts on about 3% accuracy (FM14, FM17 and FM15 said not_vulnerable).
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert "labels most likely name other classes" in finding.reason
    assert "labels most likely" not in (check(load_target(model, data=honest), honest, seed=0).reason or "")


def test_fm15_does_not_read_a_hard_pool_as_mis_numbered_labels(swapped):
    """A pool may be hard examples on purpose (what natural adversarial sets are): FM15 reads
    its accuracy there as a result, not as labels that name other classes."""
    model, data, honest = swapped
    hard = Dataset("hard pool", honest.x_train, honest.y_train, honest.x_test, honest.y_test, data.x_test,
                   data.y_test, spec="test:hard")
    finding = NaturalAdversarial(families=("logreg",))(load_target(model, data=hard), hard, seed=0)
    assert finding.metrics.get("rows_role") == "pool" or "labels most likely" not in (finding.reason or "")
    assert "labels most likely" not in (finding.reason or ""), finding.reason
