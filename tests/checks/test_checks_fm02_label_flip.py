"""FM02.label_flip: confident one-sided flips hurt a plain logistic regression; the sphere
defence undoes most of it, and a sphere-sanitised pipeline resists."""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.training_time.fm02_label_flip import LabelFlip, flip
from redline.data import load_data
from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.training.learners import SanitizedClassifier
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression



@pytest.fixture(scope="module")
def data():
    return load_data("builtin:breast_cancer")


def _target(estimator, data):
    return load_target(estimator.fit(data.x_train, data.y_train), data=data)


def test_flags_a_plain_logistic_regression_and_defences_reduce_the_damage(data, tmp_path):
    target = _target(LogisticRegression(max_iter=1000), data)
    check = LabelFlip(rates=(0.05, 0.1), defences=("sphere", "sanitize"))
    finding = check(target, data, budget=5000, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["poison_rate"] == 0.1 and m["strategy"] == "confident"
    assert m["accuracy_drop"] >= 0.08 > m["accuracy_drop_random"]
    assert m["accuracy_drop_with_sphere"] < m["accuracy_drop"] and m["damage_undone_sphere"] >= 0.5
    assert m["accuracy_drop_with_sanitize"] < m["accuracy_drop"]
    assert finding.evidence["curve"]["poison_rate"] == [0.05, 0.1]
    assert (tmp_path / finding.evidence["plots"][0]).is_file()
    # Confidences on the training rows plus the attacker's comparison of source classes.
    assert len(data.x_train) <= finding.queries <= 5000
    assert finding.evaluation_queries > 0


def test_a_sphere_sanitised_pipeline_resists(data):
    target = _target(SanitizedClassifier(LogisticRegression(max_iter=1000), drop_fraction=0.1), data)
    finding = LabelFlip(rates=(0.1,), defences=())(target, data, budget=5000, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["accuracy_drop"] < 0.05


def test_labels_only_targets_fall_back_to_random_flips(data):
    target = LabelOnlyTarget(_target(LogisticRegression(max_iter=1000), data))
    finding = LabelFlip(rates=(0.1,), defences=())(target, data, seed=0)
    assert finding.status in (Status.VULNERABLE, Status.NOT_VULNERABLE), finding.reason
    assert finding.metrics["strategy"] == "random" and finding.queries == 0
    assert "confident" in finding.evidence["skipped_strategies"]


def test_bad_parameters_and_untrainable_targets(data):
    target = _target(LogisticRegression(max_iter=1000), data)
    bad = LabelFlip(rates=(0.6,))(target, data)
    assert bad.status is Status.ERROR and "rates" in bad.reason
    assert LabelFlip(strategies=("nope",))(target, data).status is Status.ERROR
    target.capabilities = target.capabilities.__class__(**{**target.capabilities.to_dict(), "trainable": False})
    assert LabelFlip()(target, data).status is Status.NOT_APPLICABLE


def test_flip_relabels_the_first_rows_of_the_order():
    y = np.array([0, 1, 0, 1])
    out = flip(y, np.array([2, 0, 1, 3]), np.array([1, 0, 1, 0]), 2)
    assert out.tolist() == [1, 1, 1, 1] and y.tolist() == [0, 1, 0, 1]
