"""FM15.natural_adversarial does not pass on nothing examined: a constant (majority-class)
model, a rare class the model always gets wrong but too small to be a slice, and rows whose
features give no slice to screen are inconclusive, each saying why; a constant model whose
failing class is large enough is still flagged by its slices."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.robustness.fm15_natural import NaturalAdversarial
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")

NAMES = ["income", "age", "tenure", "score", "visits", "region"]
FAST = {"families": ("logreg",)}


def _rare(n: int, share: float, seed: int = 1) -> Dataset:
    """Six features in [0, 1]; class 1 is the rows with income above 1 - share."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 6)).astype(np.float32)
    y = (x[:, 0] > 1 - share).astype(np.int64)
    third = n // 3
    return Dataset("rare", x[:third], y[:third], x[third:2 * third], y[third:2 * third], x[2 * third:],
                   y[2 * third:], feature_names=NAMES, spec="test:rare")


@pytest.fixture(scope="module")
def rare():
    return _rare(3000, 0.01)


def test_a_constant_majority_model_on_99_1_data_is_inconclusive_not_a_pass(rare):
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy="prior").fit(rare.x_train, rare.y_train)
    finding = NaturalAdversarial(**FAST)(load_target(model, data=rare), rare, seed=0)
    # Before: not_vulnerable with 0 candidates tested, the minority rows being too few to form a slice.
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.reason.startswith("a constant model: it answered class 0 to every one of the 1000 rows")
    assert "none right outside class 0" in finding.reason
    m = finding.metrics
    assert m["candidate_slices"] == 0 and m["screened_slices"] > 1000 and m["filtered_rows"] > 0
    assert "slices screened on the discovery half, 0 candidates tested" in finding.summary


def test_a_rare_class_the_model_always_misses_is_inconclusive_not_a_pass(rare):
    from sklearn.tree import DecisionTreeClassifier

    # Not constant: it answers class 1 on a few rows (tenure > 0.995), never on a row of class 1.
    model = DecisionTreeClassifier(random_state=0).fit(rare.x_train, (rare.x_train[:, 2] > 0.995).astype(int))
    target = load_target(model, data=rare)
    assert len(np.unique(target.predict_labels(rare.x_pool))) == 2
    finding = NaturalAdversarial(**FAST)(target, rare, seed=0)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.reason.startswith("class 1 fails as a whole: ")
    assert "fewer than the 20 a slice needs" in finding.reason and "(40 in all) would decide" in finding.reason
    assert finding.metrics["candidate_slices"] == 0


def test_with_enough_rows_of_the_failing_class_a_constant_model_is_flagged(tmp_path):
    from sklearn.dummy import DummyClassifier

    data = _rare(3000, 0.1)
    model = DummyClassifier(strategy="prior").fit(data.x_train, data.y_train)
    finding = NaturalAdversarial(**FAST)(load_target(model, data=data), data, seed=0)
    assert finding.status is Status.VULNERABLE, finding.reason or finding.summary
    assert all("income" in s["description"] for s in finding.metrics["slices"])


def test_rows_that_give_no_slice_to_screen_are_inconclusive():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, 6)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = LogisticRegression().fit(x, y)
    # 200 copies of one row of class 1: every feature has a single value, so no rule exists.
    same = np.repeat(x[y == 1][:1], 200, axis=0)
    data = Dataset("same", x_test=same, y_test=np.ones(200, dtype=np.int64), feature_names=NAMES, spec="t")
    finding = NaturalAdversarial(families=())(load_target(model, data=data), data, seed=0)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.reason.startswith("no slice could be screened") and finding.metrics["screened_slices"] == 0
