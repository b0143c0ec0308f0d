"""Narrow test sets for the zoo's FM17 controls.

FM17.test_adequacy: the digits model tested only on 0s and 1s.

The model and its training rows are those of ``digits_mlp_overfit``; only the test role
changes, to the test rows of two classes out of ten. Such a test set can show a fine
accuracy (the model is good at 0s and 1s) while saying nothing about the eight classes the
model also meets: the incomplete testing FM17.test_adequacy must flag. The pool is left as
it is, so nothing else about the entry differs from its twin.

FM17.operating_conditions: the fair-survey data carrying its declared operating conditions
(``FAIR_CONDITIONS``, in ``meta["operating_conditions"]``), with its stratified test rows (the
negative control: every condition covered) or only its respondents aged 27 or less (the
positive control: two age bands and a population without test rows).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pathlib import Path

from ..data.base import Dataset

#: The fair survey's declared operating conditions (the section of examples/fair-survey.system.yaml).
FAIR_CONDITIONS = Path(__file__).with_name("fair_survey.conditions.yaml")
#: The oldest respondent the young-only test set keeps (the survey's age code).
YOUNG_AGE = 27

#: The only classes the narrow test set keeps.
KEPT_CLASSES = (0, 1)


def two_class_test_rows(dataset: Dataset) -> Dataset:
    """``dataset`` with its test rows cut down to the classes in :data:`KEPT_CLASSES`."""
    keep = np.isin(dataset.y_test, KEPT_CLASSES)
    meta = dict(dataset.meta)
    meta["test_rows"] = f"only the test rows of classes {', '.join(map(str, KEPT_CLASSES))} ({int(keep.sum())} rows)"
    return dataclasses.replace(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep], meta=meta)


def fair_with_conditions(dataset: Dataset) -> Dataset:
    """The fair survey, unchanged, declaring the operating conditions it is meant to meet."""
    meta = dict(dataset.meta)
    meta["operating_conditions"] = str(FAIR_CONDITIONS)
    return dataclasses.replace(dataset, meta=meta)


def fair_young_test_rows(dataset: Dataset) -> Dataset:
    """The fair survey declaring its conditions, with test rows of respondents aged 27 or less only."""
    keep = dataset.x_test[:, list(dataset.feature_names).index("age")] <= YOUNG_AGE
    meta = dict(fair_with_conditions(dataset).meta)
    meta["test_rows"] = f"only respondents aged {YOUNG_AGE} or less ({int(keep.sum())} rows)"
    return dataclasses.replace(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep], meta=meta)
