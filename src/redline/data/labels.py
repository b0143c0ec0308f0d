"""Labels from the target for rows the user gave without labels.

A black-box auditor often holds inputs but not their true labels. The target's own answer
is then the label: evasion measures flips of the target's decision, stealing its
agreement. Every row asked about is an evaluation query of the check that needed it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import DataError
from .base import Dataset


def label_with_target(data: Dataset, target: Any, roles: Iterable[str] | None = None) -> tuple[Dataset, dict[str, int]]:
    """``data`` with the unlabelled roles among ``roles`` (default: all but the deployment
    sample, which is never labelled so) labelled by ``target``.

    Returns the labelled copy (the original is unchanged; ``meta["labels_from_target"]``
    lists the roles labelled so) and the rows asked per role. The queries are charged to
    the target's ledger as evaluation queries, outside the attack budget.
    """
    wanted = data.roles if roles is None else tuple(roles)
    if not wanted:  # nothing to label (an environment, a check that reads no labels)
        return data, {}
    # Never the deployment sample: the target's answers as its labels would make the model
    # look perfect exactly where the question is how well it does.
    missing = [role for role in data.unlabelled_roles if role in wanted]
    if not missing:
        return data, {}
    labels: dict[str, np.ndarray] = {}
    with target.ledger.evaluating():
        for role in missing:
            x = data.x(role)
            if data.task == "regression":
                answer = np.asarray(target.predict(x), dtype=np.float64)
                if answer.size != len(x):
                    raise DataError(f"the target answered shape {answer.shape} for {len(x)} {role} rows, "
                                    "not one value per row")
                labels[f"y_{role}"] = answer.reshape(len(x))
            else:
                labels[f"y_{role}"] = np.asarray(target.predict_labels(x)).astype(np.int64)
    meta = dict(data.meta)
    meta["labels_from_target"] = sorted(set(meta.get("labels_from_target", [])) | set(missing))
    return dataclasses.replace(data, **labels, meta=meta), {role: len(data.x(role)) for role in missing}


def whole_numbers(y: np.ndarray) -> bool:
    """Whether the labels ``y`` are whole numbers: an integer dtype, or finite floats without
    a fraction (what a CSV's numeric label column loads as)."""
    y = np.asarray(y)
    return y.dtype.kind in "iu" or (y.dtype.kind == "f" and bool(np.all(np.isfinite(y)))
                                    and bool(np.all(np.mod(y, 1) == 0)))


def require_class_indices(data: Dataset, n_classes: int | None, roles: Iterable[str]) -> None:
    """DataError unless the labels of ``roles`` are the target's class indices: whole numbers
    from 0 to ``n_classes`` - 1, the column of each class in the target's answers. Labels
    such as -1/+1 or 1..k, given through the Python API (file loaders re-encode text labels
    only), would otherwise be read as the wrong columns: -1 as the last class, k past the
    end. The deployment sample is not checked: it may hold a class the model never saw."""
    for role in roles:
        y = data.y(role)
        if role == "deploy" or y is None or not len(y):
            continue
        y = np.asarray(y)
        if y.dtype.kind == "b":
            continue
        if not whole_numbers(y):
            raise DataError(f"the {role} labels of {data.name!r} are not whole-number class indices "
                            f"(dtype {y.dtype}); give each row's class as its column in the target's answers")
        low, high = float(np.min(y)), float(np.max(y))
        if low < 0 or (n_classes is not None and n_classes > 1 and high >= n_classes):
            classes = f"0 to {n_classes - 1}" if n_classes else "0 and up"
            raise DataError(f"the {role} labels of {data.name!r} run from {low:g} to {high:g}, but the target's "
                            f"classes are numbered {classes} (their columns in its answers): re-encode the labels "
                            "in the model's class order (e.g. -1/+1 as 0/1)")
