"""Pieces of clean-label targeted poisoning: a network's feature map, feature collision and
the Deep k-NN defence.

Feature collision (Shafahi et al. 2018, "Poison Frogs!"): rows of the class the attacker
wants the target input to receive, keeping their correct label, are nudged within an
L-inf box until the network's penultimate representation of each one lies on the target's.
A victim that retrains its last layer on those features sees correctly labelled rows of
the adversarial class sitting where the target is, and moves its boundary past it.

Deep k-NN (Peri et al. 2020): in the feature space of a model trained on the (possibly
poisoned) rows, a row whose label disagrees with the plurality label of its k nearest
neighbours is dropped; a colliding poison sits among rows of the target's class.

Functions take numpy arrays and import torch inside, so importing this module is cheap.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .activations import last_linear


@contextlib.contextmanager
def capture_head_input(module: Any) -> Iterator[list]:
    """While active, every forward pass of ``module`` appends the (differentiable) input of
    its head layer to the yielded list."""
    layer = last_linear(module)
    if layer is None:
        raise ValueError("the network has no linear last layer to read features from")
    captured: list = []
    handle = layer.register_forward_pre_hook(lambda _mod, inputs: captured.append(inputs[0].flatten(1)))
    try:
        yield captured
    finally:
        handle.remove()


def features(module: Any, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Penultimate features (input of the head layer) of ``module`` for ``x``, as float64."""
    import torch

    parts = []
    with capture_head_input(module) as captured, torch.no_grad():
        for start in range(0, len(x), batch_size):
            module(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)))
            parts.append(captured.pop().double().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def collide(
    module: Any,
    x_base: np.ndarray,
    x_target: np.ndarray,
    *,
    epsilon: float,
    lower: float,
    upper: float,
    steps: int,
) -> tuple[np.ndarray, float]:
    """Poison rows within ``epsilon`` (L-inf) of ``x_base`` and inside [lower, upper] whose
    features lie as close as possible to those of the single row ``x_target``.

    Adam on the perturbation with projection after every step. The distance is scaled by
    the target's feature norm, so one step size suits any network. Returns the rows and
    their mean relative feature distance (0: a perfect collision, 1: as far as the origin).
    """
    import torch

    base = torch.from_numpy(np.ascontiguousarray(x_base, dtype=np.float32))
    goal = torch.from_numpy(features(module, x_target[None]).astype(np.float32))
    scale = goal.norm().clamp_min(1e-12) ** 2
    delta = torch.zeros_like(base, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=epsilon / 10)
    with capture_head_input(module) as captured:
        for _ in range(int(steps)):
            module((base + delta).clamp(lower, upper))
            loss = ((captured.pop() - goal) ** 2).sum(dim=1).mean() / scale
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                delta.clamp_(-epsilon, epsilon)
                delta.copy_((base + delta).clamp(lower, upper) - base)
        with torch.no_grad():
            poisons = (base + delta).clamp(lower, upper)
            module(poisons)
            distance = float((((captured.pop() - goal) ** 2).sum(dim=1) / scale).sqrt().mean())
    return poisons.numpy().astype(x_base.dtype, copy=False), distance


def deep_knn_keep(feature_rows: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Keep-mask of Deep k-NN: a row stays when its label is the plurality label of its ``k``
    nearest other rows (Euclidean, in the given feature space); ties keep the row."""
    feature_rows = np.asarray(feature_rows, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n < 2:
        return np.ones(n, dtype=bool)
    k = int(min(max(1, k), n - 1))
    squared = (feature_rows**2).sum(axis=1)
    distance = squared[:, None] + squared[None, :] - 2.0 * feature_rows @ feature_rows.T
    np.fill_diagonal(distance, np.inf)
    neighbours = np.argpartition(distance, k - 1, axis=1)[:, :k]
    votes = np.zeros((n, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(n), k), labels[neighbours].reshape(-1)), 1)
    return votes[np.arange(n), labels] >= votes.max(axis=1)
