"""FM02.regression (OptP): ridge on builtin:diabetes is flagged, TRIM undoes the damage, and
a TRIM-defended pipeline resists."""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.training_time.fm02_regression import (
    OptimizedRegressionPoisoning,
    scaled_shift,
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


def test_scaled_shift():
    assert scaled_shift(np.array([100.0, 200.0]), np.array([150.0, 100.0]), 50.0) == pytest.approx(1.5)


def test_the_verdict_does_not_depend_on_where_the_targets_zero_lies(data):
    # Relative to each prediction, diabetes scores +1000 passed and centred on 0 were 'vulnerable'.
    import dataclasses

    shifts = []
    for offset in (-float(np.mean(data.y_train)), 1000.0):
        moved = dataclasses.replace(data, y_train=data.y_train + offset, y_test=data.y_test + offset,
                                    y_pool=None if data.y_pool is None else data.y_pool + offset)
        target = load_target(Ridge(alpha=1.0).fit(moved.x_train, moved.y_train), data=moved)
        finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, moved, seed=0)
        assert finding.status is Status.VULNERABLE, (offset, finding.metrics)
        shifts.append(finding.metrics["prediction_shift"])
    assert shifts[0] == pytest.approx(shifts[1], rel=1e-6)
    constant = dataclasses.replace(data, y_train=np.zeros_like(data.y_train), y_test=np.zeros_like(data.y_test),
                                   y_pool=None if data.y_pool is None else np.zeros_like(data.y_pool))
    target = load_target(Ridge(alpha=1.0).fit(constant.x_train, constant.y_train), data=constant)
    assert OptimizedRegressionPoisoning(rates=(0.08,))(target, constant).status is Status.NOT_APPLICABLE


def test_poison_rows_keep_each_feature_in_its_own_range(data, tmp_path):
    # One box for all features let a poison column reach 13.6 where the data lie within +-0.05
    # once another column was measured in other units.
    import dataclasses

    from redline.checks.training_time.poisoning import flat_rows

    units = np.r_[1000.0, np.ones(data.x_train.shape[1] - 1)]
    moved = dataclasses.replace(data, x_train=data.x_train * units, x_test=data.x_test * units,
                                x_pool=None if data.x_pool is None else data.x_pool * units)
    target = load_target(Ridge(alpha=1.0).fit(moved.x_train, moved.y_train), data=moved)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, moved, seed=0,
                                                                        ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    poisons = np.load(tmp_path / finding.evidence["examples"])["x_poison"]
    poisons = poisons.reshape(len(poisons), -1)
    x, _, x_att, _ = flat_rows(moved, np.float64)
    seen = np.concatenate([x, x_att])
    lower, upper = target.input_spec.feature_bounds()
    lower = np.where(np.isfinite(lower), lower, seen.min(axis=0))
    upper = np.where(np.isfinite(upper), upper, seen.max(axis=0))
    # Each column within its own range: the scaled column's range no longer opens the others'.
    assert (poisons >= lower - 1e-9).all() and (poisons <= upper + 1e-9).all()
    assert poisons[:, 1:].max() <= seen[:, 1:].max() + 1e-9
