"""Output hardening: answer with the predicted class only, no confidences.

Attacks that read probabilities (equation solving, model inversion, confidence-based
membership inference) lose their input; label-only attacks (decision-based evasion,
extraction by learning) still apply, with more queries.
"""
from __future__ import annotations

import numpy as np

from ..targets.base import Outputs, Target
from .base import Defence, DefendedTarget


class LabelsOnly(Defence):
    """Replace each row of scores by its argmax; answers that are labels already pass."""

    name = "labels"
    policy_key = "labels_only"

    def answers(self, outputs: Outputs) -> Outputs:
        return "labels"

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return scores.argmax(axis=1) if scores.ndim == 2 else scores


class LabelOnlyTarget(DefendedTarget):
    """``inner`` answering with labels only: ``DefendedTarget(inner, [LabelsOnly()])``."""

    def __init__(self, inner: Target):
        super().__init__(inner, [LabelsOnly()])
