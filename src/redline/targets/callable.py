"""A plain Python function as a target: a batch of inputs in, probabilities or labels out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import check_outputs, check_outputs_kind
from .base import Capabilities, InputSpec, Target


class CallableTarget(Target):
    """Wraps ``fn(x: ndarray (n, *shape)) -> ndarray``: probabilities (n, k) or labels (n,)."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        input_spec: InputSpec,
        n_classes: int,
        outputs: str = "probabilities",
        spec: str = "python:callable",
        trainer: Callable[[np.ndarray, np.ndarray, int], Target] | None = None,
    ):
        super().__init__()
        self.fn = fn
        self.spec = spec
        self.input_spec = input_spec
        self.n_classes = int(n_classes)
        self.trainer = trainer
        self.capabilities = Capabilities(
            outputs=check_outputs_kind(outputs), gradients=False, trainable=trainer is not None, remote=False
        )

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return check_outputs(np.asarray(self.fn(x)), len(x), self.capabilities.outputs, self.n_classes, self.spec)

    def _predict_raw(self, x: Any) -> Any:
        return self.fn(x)
