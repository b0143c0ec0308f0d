"""A digits model trained on a set that barely contains one class: FM14's positive control.

``digits_mlp_rare_class`` trains the digits_mlp_overfit recipe on the training rows of
builtin:digits with all but ``KEPT_ROWS`` of the 35 eights removed (327 rows): the other nine
classes keep all theirs (35 to 37 each). The test rows are untouched, so the model meets eights in their normal
share there and gets most of them wrong (about 25% right against 97% for the other classes).
A deployment where eights are common, or a cluster of them, then loses much of its accuracy:
the subpopulation and label-prior shifts of FM14.shift_sensitivity find exactly that.
digits_mlp_overfit (the same recipe and seed on every training row) is the counterpart that
sees each class in proportion.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.base import Dataset

RARE_CLASS = 8
KEPT_ROWS = 3


def rare_class_digits(dataset: Dataset) -> Dataset:
    """``dataset`` with only the first ``KEPT_ROWS`` training rows of ``RARE_CLASS`` kept."""
    rare = np.flatnonzero(dataset.y_train == RARE_CLASS)
    keep = np.ones(len(dataset.y_train), bool)
    keep[rare[KEPT_ROWS:]] = False
    meta = {**dataset.meta, "rare_class": RARE_CLASS, "rare_class_train_rows": int(min(len(rare), KEPT_ROWS)),
            "removed_train_rows": int((~keep).sum())}
    return dataclasses.replace(dataset, name=f"{dataset.name}_rare{RARE_CLASS}", x_train=dataset.x_train[keep],
                               y_train=dataset.y_train[keep], meta=meta, spec=f"{dataset.spec}+rare{RARE_CLASS}")
