"""Input validation: refuse a batch that breaks the model's input contract before the model sees it.

What is checked, in this order (the first problem refuses the whole batch):

* ``max_batch``: at most this many rows per request (reason ``batch_size``);
* the batch is numeric (reason ``malformed``) and its rows have ``shape`` (default: the
  shape the fronted target states; reason ``shape``);
* every value is finite, no NaN or infinity (reason ``not_finite``; ``finite: false`` lets them pass);
* ``dtype``: every value fits the declared type: whole numbers within range for an integer
  type, within the finite range of a float type, 0 or 1 for bool (reason ``dtype``);
* ``min``/``max`` per feature (a scalar for every feature or a list with one value per
  feature), or ``bounds: from_target`` for the fronted model's own input bounds (reason ``range``);
* ``constraints: true`` (the default) enforces the integer and categorical features that the
  target's input spec declares (from ``--target-config``'s ``constraints``; reason ``constraint``).

A refusal is :class:`~redline.defences.base.InputRejected` (HTTP 422): its message says which
row and feature broke which rule but never the allowed values (a client probing the bounds
learns no more than yes or no); ``detail`` carries the numbers for the audit log.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, InputRejected

_FROM_TARGET = "from_target"


class Validation(Defence):
    """Refuse batches that break shape, type, range, finiteness, feature constraints or size."""

    name = "validate"
    policy_key = "validate"

    def __init__(
        self,
        shape: Sequence[int] | None = None,
        dtype: str | None = None,
        min: float | Sequence[float] | None = None,  # named as the policy names them
        max: float | Sequence[float] | None = None,
        bounds: str | None = None,
        finite: bool = True,
        constraints: bool = True,
        max_batch: int | None = None,
    ):
        self.shape = shape
        self.dtype = dtype
        self.min = min
        self.max = max
        self.bounds = bounds
        self.finite = finite
        self.constraints = constraints
        self.max_batch = max_batch

    # ------------------------------------------------------------------ settings
    def check(self, target: Target) -> None:
        spec = target.input_spec
        # The policy's own shape governs (a guard may front a model whose shape it is not
        # told); without one, the rows must look like the target's.
        shape = tuple(spec.shape) if self.shape is None else self._shape()
        self._shape_ = shape
        self._dtype_ = None if self.dtype is None else _dtype(self.dtype)
        for name in ("finite", "constraints"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"validate: {name} must be true or false, not {getattr(self, name)!r}")
        if self.max_batch is not None and (isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int)
                                           or self.max_batch < 1):
            raise UsageError(f"validate: max_batch must be a whole number of at least 1, not {self.max_batch!r}")
        n_features = int(np.prod(shape)) if shape else 1
        if self.bounds is not None:
            if self.bounds != _FROM_TARGET:
                raise UsageError(f"validate: bounds may only be {_FROM_TARGET!r}, not {self.bounds!r}")
            if self.min is not None or self.max is not None:
                raise UsageError("validate: give either bounds: from_target or min/max, not both")
            if spec.n_features != n_features:
                raise UsageError(f"validate: bounds: from_target, but {target.spec} states bounds for {spec.n_features} "
                                 f"features and rows have {n_features} (state the model's input: in the policy)")
            self._lower_, self._upper_ = spec.feature_bounds()
        else:
            self._lower_ = _limit(self.min, "min", n_features, -np.inf)
            self._upper_ = _limit(self.max, "max", n_features, np.inf)
        if np.any(self._lower_ > self._upper_):
            bad = int(np.argmax(self._lower_ > self._upper_))
            raise UsageError(f"validate: feature {bad} has min {self._lower_[bad]:g} above max {self._upper_[bad]:g}")
        cons = spec.constraints if self.constraints else None
        self._integer_ = list(cons.integer) if cons else []
        self._categorical_ = list(cons.categorical) if cons else []
        for index in self._integer_ + [i for i, _ in self._categorical_]:
            if not 0 <= index < n_features:
                raise UsageError(f"validate: a feature constraint names feature {index}, the input has {n_features}")

    def _shape(self) -> tuple[int, ...]:
        if isinstance(self.shape, (str, bytes)) or not isinstance(self.shape, Sequence) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in self.shape
        ):
            raise UsageError(f"validate: shape must be a list of positive whole numbers, not {self.shape!r}")
        return tuple(self.shape)

    # ------------------------------------------------------------------ requests
    def transform_input(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_shape_"):
            raise UsageError("validate: check(target) must run before the defence serves requests")
        if self.max_batch is not None and len(x) > self.max_batch:
            raise _reject("batch_size", f"a request may hold at most {self.max_batch} rows", rows=len(x))
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise _reject("malformed", "inputs must be numbers")
        if tuple(arr.shape[1:]) != self._shape_:
            raise _reject("shape", f"each input must have shape {list(self._shape_)}", got=list(arr.shape[1:]))
        flat = arr.reshape(len(arr), -1).astype(np.float64, copy=False)
        finite = np.isfinite(flat)
        if self.finite and not finite.all():
            row, feature = np.argwhere(~finite)[0]
            raise _reject("not_finite", f"row {row}, feature {feature}: values must be finite numbers")
        if self._dtype_ is not None:
            self._check_dtype(flat, finite)
        outside = (flat < self._lower_) | (flat > self._upper_)
        if outside.any():
            row, feature = np.argwhere(outside)[0]
            raise _reject("range", f"row {row}, feature {feature} is outside the allowed range",
                          value=float(flat[row, feature]), lower=float(self._lower_[feature]),
                          upper=float(self._upper_[feature]), rows_outside=int(outside.any(axis=1).sum()))
        if self._integer_:
            cols = flat[:, self._integer_]
            broken = cols != np.round(cols)
            if broken.any():
                row, j = np.argwhere(broken)[0]
                raise _reject("constraint", f"row {row}, feature {self._integer_[j]} must be a whole number",
                              value=float(cols[row, j]))
        for feature, allowed in self._categorical_:
            ok = np.isin(flat[:, feature], np.asarray(allowed, np.float64))
            if not ok.all():
                row = int(np.argmin(ok))
                raise _reject("constraint", f"row {row}, feature {feature} is not one of the allowed categories",
                              value=float(flat[row, feature]))
        return x

    def _check_dtype(self, flat: np.ndarray, finite: np.ndarray) -> None:
        kind = self._dtype_
        values = flat[finite]
        if np.issubdtype(kind, np.integer):
            info = np.iinfo(kind)
            bad = (values != np.round(values)) | (values < info.min) | (values > info.max)
        elif np.issubdtype(kind, np.floating):
            bad = np.abs(values) > np.finfo(kind).max
        else:  # bool
            bad = (values != 0) & (values != 1)
        if bad.any():
            raise _reject("dtype", f"values must be of type {kind}", first=float(values[np.argmax(bad)]))


def _reject(reason: str, message: str, **detail: Any) -> InputRejected:
    return InputRejected(f"input rejected: {message}", reason=reason, detail=detail)


def _dtype(name: Any) -> np.dtype:
    try:
        kind = np.dtype(name)
    except TypeError:
        raise UsageError(f"validate: unknown dtype {name!r} (use float32, float64, int64, uint8, bool...)") from None
    if not (np.issubdtype(kind, np.number) or kind == bool) or np.issubdtype(kind, np.complexfloating):
        raise UsageError(f"validate: dtype must be a real number type or bool, not {name!r}")
    return kind


def _limit(value: Any, what: str, n_features: int, default: float) -> np.ndarray:
    """One bound per feature from a scalar, a list of ``n_features`` numbers, or nothing."""
    if value is None:
        return np.full(n_features, default)
    if isinstance(value, bool):
        raise UsageError(f"validate: {what} must be a number or a list of numbers, not {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"validate: {what} must be a number or a list of numbers, not {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(n_features, float(arr))
    if arr.ndim != 1 or len(arr) != n_features:
        raise UsageError(f"validate: {what} has {arr.size} values for {n_features} features (give one, or one per feature)")
    if np.isnan(arr).any():
        raise UsageError(f"validate: {what} must not be NaN")
    return arr
