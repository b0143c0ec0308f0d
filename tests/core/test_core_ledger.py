import numpy as np
import pytest

from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.rounding import RoundedTarget
from redline.errors import BudgetExceeded, TargetError
from redline.targets.base import FeatureConstraints, QueryLedger


def test_ledger_counts_attack_and_evaluation_rows_separately(linear_target):
    linear_target.ledger = QueryLedger(budget=100)
    linear_target.predict(np.zeros((30, 5)))
    with linear_target.ledger.evaluating():
        linear_target.predict(np.zeros((500, 5)))  # evaluation ignores the budget
    assert (linear_target.ledger.attack, linear_target.ledger.evaluation) == (30, 500)
    assert linear_target.ledger.total == linear_target.answered == 530


def test_budget_is_enforced_before_the_model_sees_a_row(linear_target):
    linear_target.ledger = QueryLedger(budget=50)
    linear_target.predict(np.zeros((40, 5)))
    with pytest.raises(BudgetExceeded):
        linear_target.predict(np.zeros((11, 5)))
    assert linear_target.answered == 40
    assert linear_target.ledger.remaining == 10


def test_large_batches_are_split_and_counted_once(linear_target):
    linear_target.max_batch = 7
    out = linear_target.predict(np.zeros((20, 5)))
    assert out.shape == (20, 3) and linear_target.ledger.attack == 20


def test_wrong_shapes_are_refused_with_a_clear_message(linear_target):
    with pytest.raises(TargetError, match="expects"):
        linear_target.predict(np.zeros((3, 4)))
    with pytest.raises(TargetError, match="batch"):
        linear_target.predict(np.zeros(5))


def test_label_only_and_rounded_wrappers(linear_target):
    x = np.random.default_rng(0).normal(size=(10, 5))
    probs = linear_target.predict(x)
    labels = LabelOnlyTarget(linear_target)
    assert labels.capabilities.outputs == "labels"
    np.testing.assert_array_equal(labels.predict(x), probs.argmax(1))
    rounded = RoundedTarget(linear_target, decimals=1).predict(x)
    np.testing.assert_allclose(rounded, np.round(probs, 1))


def test_feature_constraints_project_onto_what_an_attacker_can_submit():
    fc = FeatureConstraints.from_mapping(
        {"immutable": ["age"], "integer": [1], "categorical": {"colour": [0, 1, 2]}, "ranges": {3: [0, 1]}},
        feature_names=["age", "kids", "colour", "share"],
    )
    x0 = np.array([[40.0, 2.0, 1.0, 0.5]])
    x = np.array([[55.0, 2.6, 1.7, 3.0]])
    np.testing.assert_array_equal(fc.project(x, x0), [[40.0, 3.0, 2.0, 1.0]])
    with pytest.raises(TargetError):
        FeatureConstraints.from_mapping({"immutable": ["height"]}, feature_names=["age"])
