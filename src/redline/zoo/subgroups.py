"""Models with a planted failing subgroup (the FM15 positive controls) and the data they learn from.

A subgroup that a model gets confidently wrong, while it does well elsewhere, is what the
natural-adversarial check looks for. Each variant here mislabels one describable
subgroup of the training rows only (a systematic annotation error), so the model learns
the wrong answer for it; the test and pool rows keep their true labels, which is where
the check finds the subgroup again.

- ``fair_flipped``: the fair survey's labels flipped for every respondent with 17 or more
  years of education (``educ >= 17``, about 13% of the rows).
- ``mnist_relabelled``: on MNIST, the 4s of one look (one of two k-means clusters of the
  training 4s' pixels, fixed seed) labelled 9; about 135 of the 2,500 training images.

The check discovers slices on its own terms (feature bins of the pool, k-means in a PCA
of the pool), never from what is recorded here; ``meta["planted_slice"]`` says what was
planted so tests and the benchmark can score what it found.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.base import Dataset
from .recipes import DecisionTreeRecipe

#: Deep enough to learn a subgroup of 13% of the rows as a region of its own.
FAIR_TREE = DecisionTreeRecipe(max_depth=8)

FAIR_FEATURE, FAIR_FROM = "educ", 17.0
MNIST_CLASS, MNIST_AS, MNIST_CLUSTER_SEED = 4, 9, 0


def fair_subgroup(x: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Rows of the fair survey in the planted subgroup."""
    return np.asarray(x)[:, feature_names.index(FAIR_FEATURE)] >= FAIR_FROM


def fair_flipped(dataset: Dataset) -> Dataset:
    """``dataset`` with the training labels of ``educ >= 17`` flipped."""
    rows = fair_subgroup(dataset.x_train, dataset.feature_names)
    y = dataset.y_train.copy()
    y[rows] = 1 - y[rows]
    meta = {**dataset.meta, "planted_slice": {"description": f"{FAIR_FEATURE} >= {FAIR_FROM:g}",
                                              "training_rows": int(rows.sum())}}
    return dataclasses.replace(dataset, name=f"{dataset.name}_flipped", y_train=y, meta=meta,
                               spec=f"{dataset.spec}+flipped")


def mnist_look(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centroids of the two looks of the training 4s, the look of each training 4)."""
    from sklearn.cluster import KMeans

    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    km = KMeans(n_clusters=2, n_init=4, random_state=MNIST_CLUSTER_SEED).fit(flat)
    return km.cluster_centers_, km.labels_


def mnist_subgroup(x: np.ndarray, y: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Rows that are 4s of the planted look (nearest to its centroid)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    nearest = ((flat[:, None, :] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    return (np.asarray(y) == MNIST_CLASS) & (nearest == 0)


def mnist_relabelled(dataset: Dataset) -> Dataset:
    """``dataset`` with the training 4s of one look labelled 9."""
    fours = np.flatnonzero(dataset.y_train == MNIST_CLASS)
    _, look = mnist_look(dataset.x_train[fours])
    y = dataset.y_train.copy()
    y[fours[look == 0]] = MNIST_AS
    meta = {**dataset.meta, "planted_slice": {
        "description": f"true class {MNIST_CLASS}, one look, trained as {MNIST_AS}",
        "training_rows": int((look == 0).sum())}}
    return dataclasses.replace(dataset, name=f"{dataset.name}_relabelled", y_train=y, meta=meta,
                               spec=f"{dataset.spec}+relabelled")
