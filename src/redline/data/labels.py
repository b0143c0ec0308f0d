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
