"""FM02.regression (OptP): ridge on builtin:diabetes is flagged, TRIM undoes the damage, and
a TRIM-defended pipeline resists."""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.training_time.fm02_regression import (
    OptimizedRegressionPoisoning,
    relative_shift,
)
from redline.data import load_data
from redline.defences.training.learners import TrimmedRegressor
from redline.findings import Status
from redline.targets import load_target
from redline.targets.regression import SklearnRegressorTarget

pytest.importorskip("sklearn")
pytest.importorskip("torch")
from sklearn.linear_model import LogisticRegression, Ridge



@pytest.fixture(scope="module")
def data():
    return load_data("builtin:diabetes")


def test_diabetes_is_a_bundled_regression_set(data):
    assert data.task == "regression" and data.x_train.shape[1:] == (10,)
    assert data.y_train.dtype == np.float64 and data.y_train.min() >= 25


def test_flags_ridge_and_trim_undoes_the_shift(data, tmp_path):
    target = load_target(Ridge(alpha=1.0).fit(data.x_train, data.y_train), data=data)
    assert isinstance(target, SklearnRegressorTarget) and target.capabilities.trainable
    check = OptimizedRegressionPoisoning(rates=(0.04, 0.08))
    finding = check(target, data, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["poison_rate"] == 0.08 and m["poison_rows"] == 16  # 16 / (177 + 16) is about 8%
    assert m["prediction_shift"] >= 0.2
    assert m["prediction_shift_with_trim"] < 0.05 and m["damage_undone_trim"] > 0.8
    assert finding.queries == 0 and finding.evaluation_queries > 0
    assert finding.evidence["curve"]["poison_rate"] == [0.04, 0.08]


def test_a_trim_defended_pipeline_resists(data):
    target = load_target(TrimmedRegressor(Ridge(alpha=1.0), keep_fraction=0.85).fit(data.x_train, data.y_train),
                         data=data)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, data, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["prediction_shift"] < 0.1


def test_classification_data_is_not_applicable():
    cancer = load_data("builtin:breast_cancer")
    target = load_target(LogisticRegression(max_iter=1000).fit(cancer.x_train, cancer.y_train), data=cancer)
    finding = OptimizedRegressionPoisoning()(target, cancer)
    assert finding.status is Status.NOT_APPLICABLE and "regression" in finding.reason


def test_relative_shift():
    assert relative_shift(np.array([100.0, 200.0]), np.array([150.0, 100.0])) == pytest.approx(0.5)
