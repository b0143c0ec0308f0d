"""scikit-learn regressors as targets: one real value per row instead of class scores.

The target protocol is built around classifiers; a regressor fits it with one reading of
the terms: ``predict`` returns the predicted values (shape (n,), float64) and
``capabilities.outputs`` says ``"labels"`` (one answer per row, no probabilities), which
keeps every probability- or gradient-based check away from it. Checks that handle
regression declare ``Needs(task="regression")`` and read the values as they are.
Like the classifier adapter, the target is trainable by cloning the estimator.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import TargetError
from .base import Capabilities, InputSpec, Target

Trainer = Callable[[np.ndarray, np.ndarray, int], Target]


def is_regressor(obj: Any) -> bool:
    """True for a scikit-learn style regressor (without importing scikit-learn)."""
    tags = getattr(obj, "__sklearn_tags__", None)
    estimator_type = getattr(tags(), "estimator_type", None) if callable(tags) else None
    return (estimator_type or getattr(obj, "_estimator_type", None)) == "regressor"


class SklearnRegressorTarget(Target):
    """A fitted scikit-learn regressor; ``predict`` answers its predicted values."""

    def __init__(self, estimator: Any, *, input_spec: InputSpec, spec: str = "sklearn", trainer: Trainer | None = None):
        super().__init__()
        if not callable(getattr(estimator, "predict", None)):
            raise TargetError(f"{spec}: {type(estimator).__name__} has no predict method")
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None and int(n_features) != input_spec.n_features:
            raise TargetError(
                f"{spec}: the estimator takes {n_features} features, but inputs are shaped {input_spec.shape}"
            )
        self.estimator = estimator
        self.spec = spec
        self.input_spec = input_spec
        self.n_classes = 1  # one output per row
        self._custom_trainer = trainer
        self.trainer = trainer if trainer is not None else self._refit
        self.capabilities = Capabilities(outputs="labels", gradients=False, trainable=True, remote=False)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        values = np.asarray(self.estimator.predict(x.reshape(len(x), -1)), dtype=np.float64).reshape(-1)
        if len(values) != len(x) or not np.all(np.isfinite(values)):
            raise TargetError(f"{self.spec}: the regressor did not answer one finite value per row")
        return values

    def sklearn_estimator(self) -> Any:
        return self.estimator

    def parameter_arrays(self) -> list[np.ndarray]:
        from .parameters import sklearn_parameter_arrays

        return sklearn_parameter_arrays(self.estimator)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        raise TargetError(f"{self.spec} is a regressor: it predicts values, not class labels")

    def _refit(self, x: np.ndarray, y: np.ndarray, seed: int) -> SklearnRegressorTarget:
        """Clone the estimator (same hyperparameters), seed it, fit it on (x, y)."""
        from sklearn.base import clone

        estimator = clone(self.estimator)
        seeds = {k: seed for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")}
        estimator.set_params(**seeds)
        estimator.fit(np.asarray(x).reshape(len(x), -1), np.asarray(y, dtype=np.float64))
        return SklearnRegressorTarget(estimator, input_spec=self.input_spec, spec=self.spec, trainer=self._custom_trainer)
