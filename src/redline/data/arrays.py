"""Turn arrays by role (from an npz file, a CSV file or a dict) into a checked :class:`Dataset`."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .base import ROLES, Dataset
from .split import check_role_fractions, split_indices

ROLE_KEYS = tuple(f"{axis}_{role}" for role in ROLES for axis in ("x", "y"))
TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    """Whether and how a single ``x, y`` pair is split into roles.

    ``fractions`` maps roles to their shares of the rows (summing to 1), e.g.
    ``{"train": 0.6, "test": 0.2, "pool": 0.2}``; None (the default) splits nothing and the
    pair is the ``test`` role, because rows of unknown origin are not the target's training
    data. ``seed`` fixes the split, which the data description records.
    """

    fractions: Mapping[str, float] | None = None
    seed: int = 0
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.fractions is not None:
            check_role_fractions(self.fractions)


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
    """Build a data set from arrays by role (any of ``x_train, y_train, x_test, y_test,
    x_pool, y_pool, x_deploy, y_deploy``; a role's ``y`` may be left out) or from one ``x``
    (and ``y``) pair.

    A pair is the ``test`` role unless ``options`` asks for a split. Features must be
    numeric and finite. Classification labels that are not already non-negative integers
    (strings, negative or fractional numbers) are encoded as 0..k-1 in sorted order, with
    the original values kept as ``class_names``.
    """
    keys = set(arrays)
    by_role = keys & set(ROLE_KEYS)
    pair = keys & {"x", "y"}
    split_info = None
    if by_role and pair:
        raise DataError(f"{name}: give arrays by role (x_test, ...) or a single x, y pair, not both")
    if by_role:
        if options.fractions is not None:
            raise DataError(f"{name}: a split applies to a single x, y pair; these arrays already have roles")
        for role in ROLES:
            if f"y_{role}" in keys and f"x_{role}" not in keys:
                raise DataError(f"{name}: y_{role} is given without x_{role}")
        present = [role for role in ROLES if f"x_{role}" in keys]
        xs = {role: features(arrays[f"x_{role}"], f"x_{role}", name) for role in present}
        ys = {role: labels_1d(arrays[f"y_{role}"], f"y_{role}", name) for role in present if f"y_{role}" in keys}
        for role, y in ys.items():
            if len(y) != len(xs[role]):
                raise DataError(f"{name}: x_{role} has {len(xs[role])} rows but y_{role} has {len(y)}")
    elif "x" in pair:
        x = features(arrays["x"], "x", name)
        y = labels_1d(arrays["y"], "y", name) if "y" in pair else None
        if y is not None and len(x) != len(y):
            raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}")
        if options.fractions is None:
            xs, ys = {"test": x}, ({"test": y} if y is not None else {})
        else:
            if y is None:
                raise DataError(f"{name}: splitting needs labels (y) to stratify by; give the roles instead")
            xs, ys = _split(x, y, options, name)
            split_info = {"seed": int(options.seed), "fractions": {r: float(f) for r, f in options.fractions.items()},
                          "stratified": options.task == "classification"}
    else:
        found = ", ".join(sorted(keys)) or "nothing"
        raise DataError(
            f"{name}: expected arrays by role (any of x_train, x_test, x_pool, x_deploy, each with its y_ or "
            f"without labels) or a single x, y pair; found {found}"
        )
    if not any(len(x) for x in xs.values()):
        raise DataError(f"{name}: holds no rows")
    first = next(iter(xs))
    for role, x in xs.items():
        if x.shape[1:] != xs[first].shape[1:]:
            raise DataError(f"{name}: x_{role} rows have shape {x.shape[1:]}, x_{first} rows {xs[first].shape[1:]}")
    if options.task == "classification":
        ys, encoded_names = encode_labels(ys, name) if ys else ({}, None)
        class_names = encoded_names or (list(map(str, class_names)) if class_names is not None else None)
    else:
        ys = {role: _regression_targets(y, f"y_{role}", name) for role, y in ys.items()}
        class_names = None
    width = int(np.prod(xs[first].shape[1:]))
    if feature_names is not None and len(feature_names) != width:
        raise DataError(f"{name}: {len(feature_names)} feature names for {width} features")
    roles = {}
    for role in xs:
        roles[f"x_{role}"] = xs[role]
        roles[f"y_{role}"] = ys.get(role)
    return Dataset(
        name=name,
        **roles,
        modality=modality or ("image" if xs[first].ndim >= 3 else "tabular"),
        task=options.task,
        feature_names=list(map(str, feature_names)) if feature_names is not None else None,
        class_names=class_names,
        spec=spec,
        split=split_info,
    )


def features(x: Any, label: str, name: str) -> np.ndarray:
    """``x`` as a finite float array with one row per sample (float32 stays float32)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{name}: {label} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{name}: {label} must hold one row per sample (2-D or more), got shape {x.shape}")
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    bad = ~np.isfinite(x.reshape(len(x), int(np.prod(x.shape[1:])))).all(axis=1)  # (no -1: 0 rows reshape too)
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
    roles = list(options.fractions)
    stratify = options.task == "classification"
    parts = split_indices(y, [options.fractions[r] for r in roles], options.seed, stratify=stratify)
    empty = [role for role, idx in zip(roles, parts) if not len(idx)]
    if empty:
        raise DataError(f"{name}: {len(x)} rows are too few to split; the {', '.join(empty)} share gets no rows")
    return {r: x[idx] for r, idx in zip(roles, parts)}, {r: y[idx] for r, idx in zip(roles, parts)}
