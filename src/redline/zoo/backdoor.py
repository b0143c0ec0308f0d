"""The zoo's backdoored MNIST model and its clean twin (FM10 positive and negative controls).

Both train the same compact CNN recipe on builtin:mnist. The backdoored one sees a
training set in which 5% of the rows (all from classes other than 0) carry a 4x4
checkerboard patch in the bottom-right corner and are relabelled to class 0, the
BadNets recipe. Its data set records the trigger in ``meta["trigger"]`` and the poisoned
rows in ``meta["poisoned_indices"]``, so data-inspecting detectors can be scored. The
clean twin trains on the untouched rows; its data set names the same trigger (so runtime
detectors can stamp it on test inputs to show the twin ignores it) and no poisoned rows.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.base import Dataset
from ..util.triggers import Trigger, poison
from .recipes import CnnRecipe

#: The planted trigger: a 4x4 checkerboard one pixel in from the bottom-right corner, to class 0.
TRIGGER = Trigger(target_class=0, kind="patch", size=4, corner="bottom_right", margin=1)
POISON_RATE = 0.05
POISON_SEED = 0

#: A smaller, shorter version of the mnist_cnn recipe, so each build takes seconds, not minutes.
RECIPE = CnnRecipe(n_classes=10, channels=(8, 16), hidden=64, epochs=8)


def poisoned_mnist(dataset: Dataset) -> Dataset:
    """``dataset`` with the trigger planted in ``POISON_RATE`` of its training rows (dirty label)."""
    result = poison(dataset.x_train, dataset.y_train, TRIGGER, POISON_RATE, np.random.default_rng(POISON_SEED))
    meta = {
        **dataset.meta,
        "trigger": TRIGGER.to_dict(),
        "poisoned_indices": [int(i) for i in result.indices],
        "poison_rate": POISON_RATE,
    }
    return dataclasses.replace(
        dataset, name=f"{dataset.name}_backdoor", x_train=result.x, y_train=result.y, meta=meta,
        spec=f"{dataset.spec}+backdoor",
    )


def clean_with_trigger(dataset: Dataset) -> Dataset:
    """``dataset`` unchanged, naming its twin's trigger and no poisoned rows (for comparisons)."""
    meta = {**dataset.meta, "trigger": TRIGGER.to_dict(), "poisoned_indices": [], "poison_rate": 0.0}
    return dataclasses.replace(dataset, meta=meta)
