"""Small helpers the adapters share: checking what a model answered, softmax, input specs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from .base import InputSpec


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum so large logits do not overflow."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def is_probability_rows(p: np.ndarray, tol: float = 1e-4) -> bool:
    """True if every row is non-negative and sums to one within ``tol``."""
    p = np.asarray(p, dtype=np.float64)
    return bool(p.ndim == 2 and np.all(p >= -tol) and np.all(np.abs(p.sum(axis=1) - 1.0) <= tol))


def check_probabilities(out: np.ndarray, rows: int, n_classes: int | None, spec: str) -> np.ndarray:
    """Return ``out`` as float64 (rows, n_classes) or raise TargetError saying what is wrong."""
    out = np.asarray(out)
    if out.ndim != 2 or out.shape[0] != rows:
        raise TargetError(f"{spec}: expected probabilities shaped ({rows}, k), got {out.shape}")
    if n_classes is not None and out.shape[1] != n_classes:
        raise TargetError(f"{spec}: expected {n_classes} probabilities per row, got {out.shape[1]}")
    try:
        out = out.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{spec}: probabilities are not numbers ({exc})") from None
    if not np.all(np.isfinite(out)):
        raise TargetError(f"{spec}: probabilities contain NaN or infinite values")
    return out


def positive_class_columns(value: Any, rows: int, spec: str) -> np.ndarray:
    """A two-class model's answer of one class-1 probability per row (``[p, ...]`` or
    ``[[p], ...]``) as the (rows, 2) probabilities [1 - p, p]; TargetError when it is not."""
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{spec}: the class-1 probabilities are not numbers ({exc})") from None
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1 or p.shape[0] != rows:
        raise TargetError(f"{spec}: expected one class-1 probability per row ({rows}), got an array shaped {p.shape}")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0 or p.max(initial=0.0) > 1:
        raise TargetError(f"{spec}: class-1 probabilities must be finite numbers in [0, 1]")
    return np.stack([1.0 - p, p], axis=1)


def check_labels(out: np.ndarray, rows: int, n_classes: int | None, spec: str) -> np.ndarray:
    """Return ``out`` as int64 (rows,) class indices or raise TargetError saying what is wrong."""
    out = np.asarray(out)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 1 or out.shape[0] != rows:
        raise TargetError(f"{spec}: expected {rows} labels, got an array shaped {out.shape}")
    try:
        labels = out.astype(np.int64)
    except (TypeError, ValueError):
        raise TargetError(f"{spec}: labels are not integers (got {out.dtype})") from None
    if out.dtype.kind == "f" and not np.array_equal(labels, out):
        raise TargetError(f"{spec}: labels are not integers")
    if len(labels) and (labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes)):
        raise TargetError(
            f"{spec}: labels must be class indices in [0, {n_classes}), got {labels.min()}..{labels.max()}"
        )
    return labels


def check_outputs(out: np.ndarray, rows: int, outputs: str, n_classes: int | None, spec: str) -> np.ndarray:
    if outputs == "probabilities":
        return check_probabilities(out, rows, n_classes, spec)
    return check_labels(out, rows, n_classes, spec)


def check_outputs_kind(outputs: str) -> str:
    if outputs not in ("probabilities", "labels"):
        raise TargetError(f"outputs must be 'probabilities' or 'labels', not {outputs!r}")
    return outputs


def random_inputs(spec: InputSpec, rows: int, seed: int = 0) -> np.ndarray:
    """Uniform inputs within the spec's bounds, used to compare two implementations of one model."""
    rng = np.random.default_rng(seed)
    lo, hi = spec.lower, spec.upper
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        lo, hi = -1.0, 1.0
    return rng.uniform(lo, hi, size=(rows, *spec.shape)).astype(spec.dtype)


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, so errors stay one line long."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require_input_spec(spec: InputSpec | None, name: str, what: str) -> InputSpec:
    """``spec``, or a usage error saying that ``what`` (named ``name``) needs one."""
    if spec is None:
        raise UsageError(
            f"{name}: {what} does not state its input shape; give data or input.shape in the target config"
        )
    return spec
