"""FM02.regression judges its verdict on intervals: the victims' mean prediction shift with a
95% Student-t interval over the evaluation rows (``prediction_shift_ci``), beside the shift
that as many honest rows cause at the same seed (``baseline_shift``)."""
import dataclasses

import numpy as np
import pytest

from redline.checks.training_time.fm02_regression import OptimizedRegressionPoisoning, judge_shift
from redline.data import load_data
from redline.findings import Status
from redline.targets import load_target
from redline.util.stats import mean_t_interval

pytest.importorskip("sklearn")
pytest.importorskip("torch")
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge


@pytest.fixture(scope="module")
def data():
    return load_data("builtin:diabetes")


class JitteredRidge(RegressorMixin, BaseEstimator):
    """A ridge whose retraining draws a random direction and adds ``jitter`` target standard
    deviations along it: a recipe whose own randomness moves predictions. The direction comes
    from the seed alone, or (``chaotic``) from the seed and the training data, as SGD's order
    or a forest's bootstraps change with every row added."""

    def __init__(self, alpha=1.0, jitter=0.4, chaotic=True, random_state=None):
        self.alpha = alpha
        self.jitter = jitter
        self.chaotic = chaotic
        self.random_state = random_state

    def fit(self, x, y):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.ridge_ = Ridge(alpha=self.alpha).fit(x, y)
        seed = [self.random_state or 0] + ([int(np.round(np.abs(y).sum() * 1e3)) % 2**32] if self.chaotic else [])
        direction = np.random.default_rng(seed).normal(size=x.shape[1])
        along = (x - x.mean(axis=0)) @ direction
        self.centre_ = x.mean(axis=0)
        self.direction_ = direction * self.jitter * float(np.std(y)) / (float(np.std(along)) or 1.0)
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.ridge_.predict(x) + (x - self.centre_) @ self.direction_


def test_mean_t_interval():
    mean, (low, high) = mean_t_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - 4.302653 / np.sqrt(3), 2.0 + 4.302653 / np.sqrt(3)), rel=1e-5)
    assert mean_t_interval([0.0, 0.0, 0.0]) == (0.0, [0.0, 0.0])
    assert mean_t_interval([0.7]) == (0.7, [0.7, 0.7])
    with pytest.raises(ValueError):
        mean_t_interval([])


def test_judge_shift_follows_the_interval():
    assert judge_shift(0.5, [0.45, 0.55], 0.0, [0.0, 0.0], 0.25, 88) == (True, "")
    assert judge_shift(0.2, [0.0, 0.4], 0.0, [0.0, 0.0], 0.25, 6) == (False, "")
    vulnerable, why = judge_shift(0.29, [0.09, 0.49], 0.0, [0.0, 0.0], 0.25, 6)
    assert not vulnerable and "6 evaluation rows" in why and "more evaluation (test) rows would decide" in why
    # A shift that honest rows make about as large is not laid to the poison.
    vulnerable, why = judge_shift(0.6, [0.55, 0.65], 0.4, [0.35, 0.45], 0.25, 88)
    assert not vulnerable and "honest rows, retrained at the same seed, move them by 0.40" in why
    assert "at least 0.10 that the poison surely caused" in why
    assert judge_shift(0.6, [0.55, 0.65], 0.05, [0.04, 0.06], 0.25, 88) == (True, "")
    # One victim has no spread: its zero-width interval decides nothing.
    vulnerable, why = judge_shift(0.9, [0.9, 0.9], 0.0, [0.0, 0.0], 0.25, 1)
    assert not vulnerable and "single evaluation row" in why


def test_a_shift_just_over_the_threshold_on_six_rows_is_inconclusive(data):
    # Six victims whose mean shift is 0.29 with a spread of 0.19: the point estimate alone had
    # called the pipeline vulnerable, its 95% interval reaches down to about 0.09.
    few = dataclasses.replace(data, x_test=data.x_test[10:16], y_test=data.y_test[10:16])
    target = load_target(Ridge(alpha=1.0).fit(few.x_train, few.y_train), data=few)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, few, seed=0)
    m = finding.metrics
    assert m["evaluation_rows"] == 6
    assert 0.25 <= m["prediction_shift"] < 0.35, m
    low, high = m["prediction_shift_ci"]
    assert low < 0.25 <= m["prediction_shift"] <= high
    assert finding.status is Status.INCONCLUSIVE, (finding.status, m)
    assert "more evaluation (test) rows would decide" in finding.reason


def test_a_clear_shift_on_all_rows_stays_vulnerable(data):
    target = load_target(Ridge(alpha=1.0).fit(data.x_train, data.y_train), data=data)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, data, seed=0)
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["evaluation_rows"] == len(data.x_test)
    low, high = m["prediction_shift_ci"]
    assert 0.25 <= low <= m["prediction_shift"] <= high
    # Ridge draws nothing when it retrains: 16 honest rows barely move it.
    assert m["baseline_shift"] < 0.1 and m["baseline_shift_ci"][0] <= m["baseline_shift"] <= m["baseline_shift_ci"][1]
    assert low - m["baseline_shift_ci"][1] >= 0.25
    assert "95% CI" in finding.summary and f"on {len(data.x_test)} rows" in finding.summary


def test_a_recipe_whose_retraining_moves_predictions_is_not_flagged_on_that_alone(data):
    target = load_target(JitteredRidge(jitter=0.4, random_state=0).fit(data.x_train, data.y_train), data=data)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, data, seed=0)
    m = finding.metrics
    assert m["prediction_shift_ci"][0] >= 0.25, m  # the point estimate and its interval alone clear it
    assert m["baseline_shift_ci"][0] > 0.2, m  # honest rows move predictions too
    assert finding.status is Status.INCONCLUSIVE, (finding.status, m)
    assert "honest rows" in finding.reason


def test_randomness_the_shared_seed_cancels_does_not_count(data):
    # The clean, poisoned and honest models share the seed: randomness drawn from it alone
    # moves them all alike and leaves the poison's shift as clear as for plain ridge.
    target = load_target(JitteredRidge(jitter=0.4, chaotic=False, random_state=0).fit(data.x_train, data.y_train),
                         data=data)
    finding = OptimizedRegressionPoisoning(rates=(0.08,), defences=())(target, data, seed=0)
    assert finding.status is Status.VULNERABLE, (finding.reason, finding.metrics)
    assert finding.metrics["baseline_shift"] < 0.1
