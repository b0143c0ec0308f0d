"""Other model families an auditor trains locally, for the natural-adversarial check: do the
inputs that fool the target fool them too (transfer, the ImageNet-A effect), and, for a
target that answers labels only, how sure a stand-in trained on its labels is of them.

``logreg`` (standardised logistic regression) and ``forest`` (a random forest) come from
scikit-learn; ``mlp`` and ``cnn`` are the torch surrogates of :mod:`redline.util.surrogates`.
They are trained on rows the auditor holds and cost the target no queries. Heavy libraries
are imported inside the functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

FAMILIES = ("logreg", "forest", "mlp", "cnn")
# Optimiser steps for the torch families: enough for a few thousand small rows, seconds on a CPU.
_STEPS = {"mlp": 300, "cnn": 200}
_BATCH = 64

#: A trained model: inputs (n, ...) -> probabilities (n, n_classes).
Model = Callable[[np.ndarray], np.ndarray]


def default_families(kind: str) -> tuple[str, ...]:
    """Two families unlike each other: a CNN and a linear model for images, a forest and a
    linear model for tables (both scikit-learn, so a table scan need not load torch)."""
    return ("cnn", "logreg") if kind == "image" else ("forest", "logreg")


def check_families(names: Sequence[str], input_shape: Sequence[int]) -> None:
    for name in names:
        if name not in FAMILIES:
            raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
        if name == "cnn" and len(tuple(input_shape)) != 3:
            raise ValueError(f"the cnn family needs inputs shaped (C, H, W), not {tuple(input_shape)}")


def train(name: str, x: np.ndarray, y: np.ndarray, *, n_classes: int, seed: int) -> Model:
    """Family ``name`` trained on ``x`` with labels ``y``; the returned model answers a
    probability for every one of ``n_classes`` classes (0 for classes it never saw)."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if name in ("logreg", "forest"):
        return _sklearn(name, x, y, n_classes, seed)
    return _torch(name, x, y, n_classes, seed)


def _sklearn(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> Model:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat = x.reshape(len(x), -1)
    if len(np.unique(y)) < 2:  # nothing to learn: always the one class seen
        only = int(y[0])
        return lambda rows: np.eye(n_classes)[np.full(len(rows), only)]
    if name == "logreg":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    else:
        model = RandomForestClassifier(n_estimators=150, random_state=seed, n_jobs=1)
    model.fit(flat, y)
    seen = np.asarray(model.classes_, dtype=int)

    def predict(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), n_classes))
        out[:, seen] = model.predict_proba(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))
        return out

    return predict


def _torch(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> Model:
    import torch

    from ...util.surrogates import build_surrogate, fit_surrogate, surrogate_proba

    shape = tuple(x.shape[1:])
    modality = "image" if name == "cnn" else "tabular"
    threads = torch.get_num_threads()
    # Small batches: waking worker threads costs more than the arithmetic, far more on a busy machine.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            module = build_surrogate(shape, n_classes, modality, x, seed=seed)
            epochs = max(3, math.ceil(_STEPS[name] / max(1, math.ceil(len(x) / _BATCH))))
            fit_surrogate(module, x, y, epochs=epochs, batch_size=_BATCH, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return lambda rows: surrogate_proba(module, np.asarray(rows, dtype=np.float32))
