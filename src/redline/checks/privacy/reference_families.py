"""Families of reference models for membership inference, and how each one is named and trained.

A membership attack calibrated with reference models is only as strong as the references
resemble the target: a CNN reference says little about how an over-trained MLP treats its
members, and a neural net says little about a boosted tree's tied leaf scores. A *family*
is an architecture plus how long it trains:

=====================  ==========================================================
name                   what trains
=====================  ==========================================================
``mlp-256x256@40``     ReLU MLP with those hidden widths, epochs of one-cycle mini-batches
``cnn-16x32@12``       small CNN with those channels, epochs of one-cycle mini-batches
``logreg``             multinomial logistic regression (scikit-learn)
``gbt@200``            histogram gradient-boosted trees, boosting rounds (tables only)
``forest@100``         random forest of fully grown trees, trees (tables only)
=====================  ==========================================================

The width part and the length part may be left out (``mlp``, ``cnn``, ``gbt``); each
kind's defaults then apply. Neural families train all their models at once
(:mod:`redline.util.reference_models`); the scikit-learn ones one at a time on one thread.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ...errors import UsageError

#: Kinds of reference family, and their (widths, length) when a name leaves them out.
KINDS = {
    "mlp": ((128, 128), 30),
    "cnn": ((16, 32), 12),
    "logreg": ((), 500),
    "gbt": ((), 200),
    "forest": ((), 100),
}
# Neural families train with one-cycle mini-batches: far more updates per pass over the
# data than full-batch steps, so a reference can be trained as long as an over-trained
# target at a fraction of the cost.
_BATCH = 128
_LR = {"mlp": 3e-3, "cnn": 5e-3}
#: Bounds on what a family name may ask for: widths, how many, and length per kind
#: (epochs, iterations, boosting rounds, trees).
MAX_WIDTH, MAX_LAYERS = 4096, 6
MAX_LENGTH = {"mlp": 2000, "cnn": 2000, "logreg": 100_000, "gbt": 5000, "forest": 5000}
_LENGTH_UNIT = {"mlp": "epochs", "cnn": "epochs", "logreg": "iterations", "gbt": "boosting rounds", "forest": "trees"}
#: Kinds that train on flat rows of features only (not images).
TABULAR_ONLY = ("gbt", "forest")
_NAME = re.compile(r"^(?P<kind>[a-z]+)(?:-(?P<widths>\d+(?:x\d+)*))?(?:@(?P<length>\d+))?$")


@dataclasses.dataclass(frozen=True)
class Family:
    """An architecture and a training length for reference models."""

    kind: str
    widths: tuple[int, ...] = ()
    length: int = 0

    @property
    def name(self) -> str:
        widths = "-" + "x".join(map(str, self.widths)) if self.widths else ""
        if self.kind == "logreg" and self.length == KINDS["logreg"][1]:
            return "logreg"  # its length is an iteration cap, named only when not the default
        return f"{self.kind}{widths}@{self.length}"

    def fits(self, input_shape: Sequence[int], modality: str) -> str:
        """Why this family cannot model such inputs, or '' when it can."""
        from ...util.reference_models import cnn_fits

        if self.kind == "cnn":
            side = max(4, 2 ** len(self.widths))  # each width is a conv block that halves the image
            if modality != "image" or not cnn_fits(input_shape) or min(int(s) for s in input_shape[1:]) < side:
                return (f"a CNN of {len(self.widths)} conv blocks needs images shaped (channels, height, width) of at "
                        f"least {side}x{side}")
        if self.kind in TABULAR_ONLY and modality == "image":
            return f"{self.kind} reference models are for tables, not images"
        return ""

    def train(self, x: np.ndarray, y: np.ndarray, in_mask: np.ndarray, *, n_classes: int, modality: str,
              seed: int) -> Any:
        """One model per row of ``in_mask`` (a :class:`~redline.util.reference_models.ReferenceModels`)."""
        from ...util.reference_models import ReferenceModels, train_reference_models

        if self.kind in ("mlp", "cnn"):
            stand_in = _untrainable(n_classes)
            models = train_reference_models(stand_in, x, y, in_mask, modality=modality, seed=seed, source="surrogate",
                                            architecture=self.kind, hidden=self.widths, length=self.length,
                                            batch_size=_BATCH, lr=_LR[self.kind])
            return dataclasses.replace(models, source=f"family:{self.name}")
        fitted = [_fit_sklearn(self, x[rows], y[rows], modality, seed + k) for k, rows in enumerate(in_mask)]

        def predict(rows: np.ndarray) -> np.ndarray:
            flat = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
            return np.stack([_aligned_proba(model, flat, n_classes) for model in fitted])

        return ReferenceModels(f"family:{self.name}", len(fitted), predict)


def parse_family(text: str) -> Family:
    """The family a name such as ``mlp-512x256@60`` or ``gbt@300`` describes (module docstring)."""
    match = _NAME.match(str(text).strip())
    if not match or match["kind"] not in KINDS:
        raise UsageError(
            f"unknown reference family {text!r}: use auto, recipe, surrogate or a family such as mlp-256x256@40, "
            f"cnn-16x32@12, logreg, gbt@200 or forest@100 (kinds: {', '.join(KINDS)})"
        )
    kind = match["kind"]
    widths, length = KINDS[kind]
    if match["widths"]:
        if kind not in ("mlp", "cnn"):
            raise UsageError(f"reference family {text!r}: only mlp and cnn take widths")
        widths = tuple(int(w) for w in match["widths"].split("x"))
    if match["length"]:
        length = int(match["length"])
    if length < 1 or any(w < 1 for w in widths):
        raise UsageError(f"reference family {text!r}: widths and training length must be at least 1")
    # Reference families train 8 to 40 models: bounds that keep a typo from asking for days.
    if any(w > MAX_WIDTH for w in widths) or len(widths) > MAX_LAYERS or length > MAX_LENGTH[kind]:
        raise UsageError(f"reference family {text!r}: at most {MAX_LAYERS} widths of at most {MAX_WIDTH} each and "
                         f"at most {MAX_LENGTH[kind]:,} {_LENGTH_UNIT[kind]}")
    return Family(kind, tuple(widths), int(length))


def candidate_families(input_shape: Sequence[int], modality: str) -> list[Family]:
    """The families tried first when the auditor names none: for images, a linear model, a
    narrow and a wide MLP and a small CNN; for tables, a linear model, two MLPs, boosted trees
    and a random forest. Each trains for a middling length; :func:`length_variants` then
    tries the best one shorter and longer."""
    if modality == "image":
        names = ["logreg", "mlp-128x128@60", "mlp-512x256@60", "cnn-16x32@20"]
    else:
        names = ["logreg", "mlp-64x64@60", "mlp-256x256@60", "gbt@150", "forest@100"]
    families = [parse_family(name) for name in names]
    return [f for f in families if not f.fits(input_shape, modality)]


def length_variants(family: Family) -> list[Family]:
    """The same architecture trained a third as long and three times as long (how long a
    target trained shows in how confident it is on its members); none for kinds whose
    length is not a training length (logistic regression, forests)."""
    if family.kind not in ("mlp", "cnn", "gbt"):
        return []
    return [dataclasses.replace(family, length=max(1, family.length // 3)), dataclasses.replace(family, length=family.length * 3)]


def _untrainable(n_classes: int) -> Any:
    """What :func:`train_reference_models` needs to know of a target to train surrogates: its
    classes, and that it has no recipe of its own."""
    return SimpleNamespace(n_classes=n_classes, trainer=None, capabilities=SimpleNamespace(trainable=False))


def _fit_sklearn(family: Family, x: np.ndarray, y: np.ndarray, modality: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if family.kind == "logreg":
        steps = [] if modality == "image" else [StandardScaler()]
        model = make_pipeline(*steps, LogisticRegression(max_iter=family.length))
    elif family.kind == "gbt":
        # Small leaves, as boosted trees that are left to overfit grow them (the default of
        # 20 rows a leaf cannot memorise a few hundred rows).
        model = HistGradientBoostingClassifier(max_iter=family.length, min_samples_leaf=2, early_stopping=False,
                                               random_state=seed)
    else:
        model = RandomForestClassifier(n_estimators=family.length, random_state=seed, n_jobs=1)
    with threadpool_limits(1):  # small fits: worker threads cost more than they save on a busy machine
        return model.fit(flat, y)


def _aligned_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba over all ``n_classes`` (a training set may lack a class: it gets 0)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        proba = model.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return out
