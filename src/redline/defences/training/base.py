"""The interface of training-time defences: screen a training set before a model is fitted.

A :class:`Sanitiser` looks at a training set that may hold poisoned rows and returns the
rows it keeps (a boolean mask), so the same object serves a check that measures how much
of a poisoning it undoes (retrain on the kept rows) and a robust learner that screens its
data on every fit (:mod:`redline.defences.training.learners`). A sanitiser that trains
models to decide gets them from a :class:`Fitter`: the target's own recipe in a check,
an estimator in a learner.
"""
from __future__ import annotations

import abc
from typing import Any, Protocol

import numpy as np


class Fitter(Protocol):
    """How a sanitiser trains and consults models (the FM02 checks' ``TrainingPipeline``
    is one; any object with these methods will do)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        """A model trained on (x, y)."""

    def confidences(self, model: Any, x: np.ndarray) -> np.ndarray | None:
        """Class probabilities of ``model`` on ``x`` (columns are class indices), or None."""

    def labels(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The classes ``model`` predicts for ``x``."""

    def accuracy(self, model: Any, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of ``model`` on (x, y)."""


class Sanitiser(abc.ABC):
    """A training-time defence: decides which training rows to trust."""

    @abc.abstractmethod
    def keep(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A boolean mask over the rows of (x, y): True for the rows to train on."""

    def sanitise(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of (x, y) this defence keeps."""
        keep = self.keep(x, y)
        return x[keep], y[keep]
