"""A plain Python function as a target: a batch of inputs in, probabilities or labels out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from ._common import check_outputs, check_outputs_kind, first_line, random_inputs, require_input_spec
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


def open_callable(fn: Callable[..., Any], request: Any) -> CallableTarget:
    """The adapter table's loader for a Python function: it answers one row first, which
    tells whether it gives probabilities or labels."""
    spec = request.spec
    input_spec = require_input_spec(request.input_spec, spec, "a Python callable")
    data = request.data
    row = np.asarray(data.any_x()[:1], dtype=input_spec.dtype) if data is not None else random_inputs(input_spec, 1)
    try:
        answer = np.asarray(fn(row))
    except Exception as exc:  # the user's function may raise anything on a sample row
        raise TargetError(
            f"{spec}: the function fails on a sample input ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    answers = "probabilities" if answer.ndim == 2 and answer.shape[1] > 1 else "labels"
    if request.outputs == "probabilities" and answers == "labels":
        raise UsageError(f"{spec}: the config says outputs: probabilities, but the function answers labels")
    n = request.n_classes or (answer.shape[1] if answers == "probabilities" else None) or request.n_classes_hint
    if n is None:
        raise UsageError(f"{spec}: the function answers labels; give data or n_classes in the target config")
    return CallableTarget(fn, input_spec=input_spec, n_classes=n, outputs=answers, spec=spec)
