"""scikit-learn estimators that defend themselves against poisoned training data.

They wrap an ordinary estimator and clean its training set with a :class:`~.base.Sanitiser`
before the final fit, so a pipeline built on them resists poisoning whatever trains it
(``clone`` keeps the defence): the hardened negative controls of the FM02 checks, and
usable in real pipelines.
This module imports scikit-learn at the top: load it explicitly, never from ``import redline``.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.linear_model import LogisticRegression, Ridge

from .sanitisers import LossFilter, SphereFilter, Trim


class TrimmedRegressor(RegressorMixin, BaseEstimator):
    """TRIM (Jagielski et al. 2018): fit ``estimator`` on the ``keep_fraction`` of rows it
    fits best, found by alternating fits and residual ranking."""

    def __init__(self, estimator=None, keep_fraction: float = 0.8, max_iter: int = 20, random_state: int = 0):
        self.estimator = estimator
        self.keep_fraction = keep_fraction
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, x, y):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not 0 < self.keep_fraction <= 1:
            raise ValueError("keep_fraction must lie in (0, 1]")
        base = self.estimator if self.estimator is not None else Ridge()

        def fit_subset(xs, ys):
            return clone(base).fit(xs, ys).predict

        self.support_ = Trim(fit_subset, self.keep_fraction, max_iter=self.max_iter,
                             rng=np.random.default_rng(self.random_state)).keep(x, y)
        self.estimator_ = clone(base).fit(x[self.support_], y[self.support_])
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x):
        return self.estimator_.predict(np.asarray(x, dtype=np.float64))


class SanitizedClassifier(ClassifierMixin, BaseEstimator):
    """Clean the training rows, then fit ``estimator`` on the rest.

    ``method="sphere"`` drops, per class, the ``drop_fraction`` of rows farthest from the
    class median (flipped labels and injected points claim a class they sit far from);
    ``method="loss"`` fits once and drops the ``drop_fraction`` of rows with the highest loss.
    """

    def __init__(self, estimator=None, drop_fraction: float = 0.15, method: str = "sphere"):
        self.estimator = estimator
        self.drop_fraction = drop_fraction
        self.method = method

    def fit(self, x, y):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
        if not 0 <= self.drop_fraction < 1:
            raise ValueError("drop_fraction must lie in [0, 1)")
        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=1000)
        if self.method == "sphere":
            keep = SphereFilter(self.drop_fraction).keep(x, y)
        elif self.method == "loss":
            # Screened on class indices, as the loss filter reads probability columns by them.
            classes, codes = np.unique(y, return_inverse=True)
            keep = LossFilter(_EstimatorFitter(base, classes), self.drop_fraction).keep(x, codes)
        else:
            raise ValueError(f"method must be 'sphere' or 'loss', not {self.method!r}")
        self.support_ = keep
        self.estimator_ = clone(base).fit(x[keep], y[keep])
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x):
        return self.estimator_.predict(np.asarray(x, dtype=np.float64))

    def predict_proba(self, x):
        return self.estimator_.predict_proba(np.asarray(x, dtype=np.float64))


class _EstimatorFitter:
    """A :class:`~.base.Fitter` training clones of a scikit-learn classifier on class
    indices (``classes[y]`` are the labels it is fitted on)."""

    def __init__(self, estimator, classes: np.ndarray):
        self.estimator = estimator
        self.classes = classes

    def fit(self, x, y):
        return clone(self.estimator).fit(x, self.classes[y])

    def confidences(self, model, x):
        return model.predict_proba(x)

    def labels(self, model, x):
        return np.searchsorted(self.classes, model.predict(x))

    def accuracy(self, model, x, y) -> float:
        return float(np.mean(self.labels(model, x) == y))
