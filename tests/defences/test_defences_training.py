"""Training-time defences: sanitisers behind one interface, and learners that use them."""
from __future__ import annotations

import numpy as np
import pytest

from redline.defences.training import Sanitiser
from redline.defences.training.sanitisers import (
    LossFilter,
    Roni,
    SphereFilter,
    Trim,
    loss_sanitize,
    reject_on_negative_impact,
    sphere_filter,
    trim,
)

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression

from redline.defences.training.learners import SanitizedClassifier, TrimmedRegressor


class LogregFitter:
    """A Fitter over logistic regression on class indices."""

    def __init__(self):
        self.fits = 0

    def fit(self, x, y):
        self.fits += 1
        return LogisticRegression(max_iter=500).fit(x, y)

    def confidences(self, model, x):
        return model.predict_proba(x)

    def labels(self, model, x):
        return model.predict(x)

    def accuracy(self, model, x, y):
        return float(np.mean(model.predict(x) == y))


@pytest.fixture
def poisoned():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    x = np.c_[y * 4.0 - 2.0, np.zeros(200)] + rng.normal(size=(200, 2))
    y_bad = y.copy()
    y_bad[:20] = 1 - y_bad[:20]  # flipped labels: each sits in the other class's cloud
    return x, y_bad


def test_the_sanitisers_bind_the_screening_functions(poisoned):
    x, y = poisoned
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    pairs = [
        (SphereFilter(0.1), sphere_filter(x, y, 0.1)),
        (LossFilter(LogregFitter(), 0.1), loss_sanitize(LogregFitter(), x, y, 0.1)),
        (Roni(LogregFitter(), x[:50], y[:50], groups=4, tolerance=0.0, rng=rng_a),
         reject_on_negative_impact(LogregFitter(), x, y, x[:50], y[:50], groups=4, tolerance=0.0, rng=rng_b)),
    ]
    for sanitiser, mask in pairs:
        assert isinstance(sanitiser, Sanitiser)
        np.testing.assert_array_equal(sanitiser.keep(x, y), mask)
    keep = LossFilter(LogregFitter(), 0.1).keep(x, y)
    assert keep.sum() == 180 and (~keep[:20]).sum() >= 15  # most flipped rows go


def test_sanitise_returns_the_kept_rows(poisoned):
    x, y = poisoned
    kept_x, kept_y = SphereFilter(0.1).sanitise(x, y)
    mask = sphere_filter(x, y, 0.1)
    np.testing.assert_array_equal(kept_x, x[mask])
    np.testing.assert_array_equal(kept_y, y[mask])


def test_trim_sanitiser_keeps_the_rows_a_line_fits_best():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 1))
    y = 3 * x[:, 0] + rng.normal(scale=0.1, size=100)
    y[:10] += 20  # poisoned targets

    def fit(xs, ys):
        return LinearRegression().fit(xs, ys).predict

    keep = Trim(fit, 0.85, rng=np.random.default_rng(0)).keep(x, y)
    np.testing.assert_array_equal(keep, trim(fit, x, y, 85, rng=np.random.default_rng(0)))
    assert not keep[:10].any()
    model = TrimmedRegressor(LinearRegression(), keep_fraction=0.85).fit(x, y)
    np.testing.assert_array_equal(model.support_, keep)


def test_loss_sanitised_classifier_drops_what_a_first_fit_finds_worst_whatever_the_labels(poisoned):
    x, y = poisoned
    names = np.array(["cat", "dog"])[y]
    learner = SanitizedClassifier(LogisticRegression(max_iter=500), drop_fraction=0.1, method="loss").fit(x, names)
    first = clone(LogisticRegression(max_iter=500)).fit(x, names)  # the screening, spelled out
    column = np.searchsorted(first.classes_, names)
    loss = -np.log(np.clip(first.predict_proba(x)[np.arange(len(y)), column], 1e-12, 1.0))
    expected = np.ones(len(y), dtype=bool)
    expected[np.argsort(-loss, kind="stable")[:20]] = False
    np.testing.assert_array_equal(learner.support_, expected)
    assert list(learner.classes_) == ["cat", "dog"]
    sphere = SanitizedClassifier(LogisticRegression(max_iter=500), drop_fraction=0.1).fit(x, names)
    np.testing.assert_array_equal(sphere.support_, sphere_filter(x, names, 0.1))
    with pytest.raises(ValueError, match="method"):
        SanitizedClassifier(method="median").fit(x, names)
