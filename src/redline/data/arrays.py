"""Turn arrays by role (from an npz file, a CSV file or a dict) into a checked :class:`Dataset`."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .base import Dataset
from .split import ROLES, split_fractions, split_indices

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
POOL_KEYS = ("x_pool", "y_pool")
TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    """How a single ``x, y`` pair is split into roles (ignored when the roles are given)."""

    test: float = 0.25
    pool: float = 0.25
    seed: int = 0
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        split_fractions(self.test, self.pool)


def dataset_from_arrays(
    arrays: Mapping[str, Any],
    *,
    name: str,
    spec: str = "",
    options: SplitOptions = SplitOptions(),
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    modality: str | None = None,
) -> Dataset:
    """Build a data set from ``x_train, y_train, x_test, y_test`` (+ optional pool) or from ``x, y``.

    Features must be numeric and finite. Classification labels that are not already
    non-negative integers (strings, negative or fractional numbers) are encoded as
    0..k-1 in sorted order, with the original values kept as ``class_names``.
    """
    keys = set(arrays)
    if set(REQUIRED_KEYS) <= keys:
        raw = {role: (arrays[f"x_{role}"], arrays[f"y_{role}"]) for role in ("train", "test")}
        if any(k in keys for k in POOL_KEYS):
            if not set(POOL_KEYS) <= keys:
                raise DataError(f"{name}: x_pool and y_pool must both be given")
            raw["pool"] = (arrays["x_pool"], arrays["y_pool"])
        xs = {role: features(x, f"x_{role}", name) for role, (x, _) in raw.items()}
        ys = {role: labels_1d(y, f"y_{role}", name) for role, (_, y) in raw.items()}
    elif {"x", "y"} <= keys:
        x = features(arrays["x"], "x", name)
        y = labels_1d(arrays["y"], "y", name)
        if len(x) != len(y):
            raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}")
        xs, ys = _split(x, y, options, name)
    else:
        found = ", ".join(sorted(keys)) or "nothing"
        raise DataError(
            f"{name}: expected arrays x_train, y_train, x_test, y_test (optional x_pool, y_pool) "
            f"or a single x, y pair; found {found}"
        )
    for role, x in xs.items():
        if x.shape[1:] != xs["train"].shape[1:]:
            raise DataError(f"{name}: x_{role} rows have shape {x.shape[1:]}, x_train rows {xs['train'].shape[1:]}")
    if options.task == "classification":
        ys, encoded_names = encode_labels(ys, name)
        class_names = encoded_names or (list(map(str, class_names)) if class_names is not None else None)
    else:
        ys = {role: _regression_targets(y, f"y_{role}", name) for role, y in ys.items()}
        class_names = None
    width = int(np.prod(xs["train"].shape[1:]))
    if feature_names is not None and len(feature_names) != width:
        raise DataError(f"{name}: {len(feature_names)} feature names for {width} features")
    return Dataset(
        name=name,
        x_train=xs["train"],
        y_train=ys["train"],
        x_test=xs["test"],
        y_test=ys["test"],
        x_pool=xs.get("pool"),
        y_pool=ys.get("pool"),
        modality=modality or ("image" if xs["train"].ndim >= 3 else "tabular"),
        task=options.task,
        feature_names=list(map(str, feature_names)) if feature_names is not None else None,
        class_names=class_names,
        spec=spec,
    )


def features(x: Any, label: str, name: str) -> np.ndarray:
    """``x`` as a finite float array with one row per sample (float32 stays float32)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{name}: {label} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{name}: {label} must hold one row per sample (2-D or more), got shape {x.shape}")
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{name}: {label} has NaN or infinite values in {int(bad.sum())} rows (first at row {int(np.argmax(bad))})"
        )
    return x


def labels_1d(y: Any, label: str, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}: {label} must hold one label per row (1-D), got shape {y.shape}")
    return y


def encode_labels(ys: dict[str, np.ndarray], name: str) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Integer class labels per role, plus class names when the labels had to be encoded."""
    for role, y in ys.items():
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{name}: y_{role} has NaN or infinite labels")
        if y.dtype.kind not in "biufUS":
            raise DataError(f"{name}: y_{role} must hold numbers or strings, got dtype {y.dtype}")
    if all(_are_class_indices(y) for y in ys.values()):
        return {role: y.astype(np.int64) for role, y in ys.items()}, None
    kinds = {y.dtype.kind in "US" for y in ys.values() if len(y)}
    if len(kinds) > 1:
        raise DataError(f"{name}: some roles have text labels and others numeric labels")
    values = np.unique(np.concatenate(list(ys.values())))
    encoded = {role: np.searchsorted(values, y).astype(np.int64) for role, y in ys.items()}
    return encoded, [_class_name(v) for v in values]


def _are_class_indices(y: np.ndarray) -> bool:
    if y.dtype.kind == "b":
        return True
    if y.dtype.kind not in "iuf":
        return False
    return len(y) == 0 or bool(np.min(y) >= 0 and np.all(np.mod(y, 1) == 0))


def _class_name(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def _regression_targets(y: np.ndarray, label: str, name: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise DataError(f"{name}: {label} must be numeric for regression, got dtype {y.dtype}")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise DataError(f"{name}: {label} has NaN or infinite values")
    return y


def _split(
    x: np.ndarray, y: np.ndarray, options: SplitOptions, name: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    fractions = split_fractions(options.test, options.pool)
    stratify = options.task == "classification"
    parts = split_indices(y, fractions, options.seed, stratify=stratify)
    xs = {role: x[idx] for role, idx in zip(ROLES, parts)}
    ys = {role: y[idx] for role, idx in zip(ROLES, parts)}
    if not len(xs["train"]) or not len(xs["test"]):
        raise DataError(f"{name}: {len(x)} rows are too few to split into train and test")
    if options.pool == 0.0:
        xs.pop("pool")
        ys.pop("pool")
    return xs, ys
