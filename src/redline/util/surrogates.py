"""Surrogate models a stealing attack trains on the target's answers, and their ONNX export.

A small CNN for images, an MLP for tables (with the attacker's standardisation built in as
its first layer, so the exported copy takes raw inputs). Training matches the target's
probabilities when it gives them (soft cross-entropy, i.e. KL to the target up to a
constant) and its labels otherwise. torch is imported inside the functions.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def build_surrogate(input_shape: Sequence[int], n_classes: int, modality: str, x_reference: np.ndarray, seed: int = 0):
    """An untrained surrogate for inputs of ``input_shape``: CNN for images, MLP for tables."""
    import torch
    from torch import nn

    from ..nn.nets import mlp, small_cnn
    from .reference_models import cnn_fits

    torch.manual_seed(seed)
    if modality == "image" and cnn_fits(input_shape):  # images too small for two poolings take the MLP
        return small_cnn(input_shape, n_classes, channels=(16, 32), hidden=128)
    flat = np.asarray(x_reference, dtype=np.float64).reshape(len(x_reference), -1)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-8] = 1.0
    return nn.Sequential(_standardize_layer(mean, std), mlp((flat.shape[1],), n_classes, hidden=(64, 64)))


def fit_surrogate(
    module,
    x: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> None:
    """Train ``module`` in place: ``targets`` are probability rows (n, k) or class labels (n,).

    ``weights`` scales each row's loss (e.g. to trust pseudo-labels less than answers).
    """
    import torch
    from torch.nn import functional as F

    from ..nn.training import Shuffled, fit

    x_t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    targets = np.asarray(targets)
    soft = targets.ndim == 2
    if soft:
        targets = _as_distributions(targets)
    y_t = torch.as_tensor(targets.astype(np.float32 if soft else np.int64))
    w_t = torch.ones(len(x_t)) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(rows, _epoch: int):
        log_p = torch.log_softmax(module(x_t[rows]), dim=1)
        if soft:
            loss_rows = -(y_t[rows] * log_p).sum(dim=1)
        else:
            loss_rows = F.nll_loss(log_p, y_t[rows], reduction="none")
        return (loss_rows * w_t[rows]).sum() / w_t[rows].sum()

    module.train()
    fit(module.parameters(), batch_loss, Shuffled(len(x_t), batch_size, generator), epochs=int(epochs), lr=lr)
    module.eval()


def _as_distributions(answers: np.ndarray) -> np.ndarray:
    """Soft targets the copy can learn from: rows that are probabilities (finite, >= 0, within
    float32) as given; other rows (scores such as logits, or values beyond float32, which
    overflow to inf and make the loss NaN) through a softmax in float64, which keeps each
    row's order and so its answer."""
    rows = np.asarray(answers, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        fine = np.all(np.isfinite(rows) & (rows >= 0) & (rows <= np.finfo(np.float32).max), axis=1)
        if fine.all():
            return rows
        scores = rows[~fine]
        shifted = scores - np.max(scores, axis=1, keepdims=True)  # -inf where a score is ~1e308 below the top
        weights = np.exp(shifted)
        rows[~fine] = weights / weights.sum(axis=1, keepdims=True)
    return rows


def surrogate_proba(module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Probabilities (n, k) of ``module`` on ``x``, batched, without autograd."""
    import torch

    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            chunk = torch.as_tensor(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
            parts.append(torch.softmax(module(chunk), dim=1).double().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def save_torch_onnx(path: str | Path, module, input_shape: Sequence[int]) -> None:
    """Write ``softmax(module(x))`` as ONNX: input ``input`` (n, *shape), output ``probabilities``."""
    import torch

    wrapped = torch.nn.Sequential(module, torch.nn.Softmax(dim=1)).eval()
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped, (example,), str(path), input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "n"}, "probabilities": {0: "n"}}, opset_version=17, dynamo=False,
        )


def _standardize_layer(mean: np.ndarray, std: np.ndarray):
    """A layer computing (flatten(x) - mean) / std, statistics stored as buffers (exported with the model)."""
    import torch
    from torch import nn

    class Standardize(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

        def forward(self, x):
            return (x.reshape(x.shape[0], -1) - self.mean) / self.std

    return Standardize()
