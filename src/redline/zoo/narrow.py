"""A narrow test set for the zoo's FM17 control: the digits model tested only on 0s and 1s.

The model and its training rows are those of ``digits_mlp_overfit``; only the test role
changes, to the test rows of two classes out of ten. Such a test set can show a fine
accuracy (the model is good at 0s and 1s) while saying nothing about the eight classes the
model also meets: the incomplete testing FM17.test_adequacy must flag. The pool is left as
it is, so nothing else about the entry differs from its twin.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.base import Dataset

#: The only classes the narrow test set keeps.
KEPT_CLASSES = (0, 1)


def two_class_test_rows(dataset: Dataset) -> Dataset:
    """``dataset`` with its test rows cut down to the classes in :data:`KEPT_CLASSES`."""
    keep = np.isin(dataset.y_test, KEPT_CLASSES)
    meta = dict(dataset.meta)
    meta["test_rows"] = f"only the test rows of classes {', '.join(map(str, KEPT_CLASSES))} ({int(keep.sum())} rows)"
    return dataclasses.replace(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep], meta=meta)
