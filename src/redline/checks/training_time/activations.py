"""Penultimate-layer activations of a white-box target, for data-inspecting backdoor detectors.

Which layer: the *input* of the last ``torch.nn.Linear`` in the module (in registration
order), i.e. the representation the classifier head reads. A forward pre-hook captures it
while the batch runs through :meth:`Target.logits`, so every row is counted by the ledger.
Targets without such a layer (TorchScript, ONNX graphs, whose torch conversion has no
layers, or no torch at all) fall back to the logits themselves, and the caller is told which representation it got.
"""
from __future__ import annotations

import numpy as np


def last_linear(module):
    """The last ``nn.Linear`` of ``module`` in registration order, or None (no module,
    TorchScript)."""
    import torch

    if module is None:
        return None
    found = None
    try:
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear):
                found = sub
    except (AttributeError, RuntimeError, TypeError):  # scripted modules may not iterate their children as nn.Modules
        return None
    return found


def penultimate_activations(target, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, str]:
    """(activations (n, d), representation name): ``'penultimate'`` or ``'logits'`` (fallback).

    Queries go through ``target.logits`` and are charged to the ledger's current phase.
    """
    import torch

    layer = last_linear(target.torch_module()) if target.capabilities.gradients else None
    captured: list = []
    handle = None
    if layer is not None:
        handle = layer.register_forward_pre_hook(lambda _mod, inputs: captured.append(inputs[0].detach().flatten(1)))
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
                if target.capabilities.gradients:
                    logits = target.logits(chunk)
                else:
                    logits = torch.from_numpy(np.log(np.clip(target.predict(chunk.numpy()), 1e-12, 1.0)))
                parts.append(captured.pop() if layer is not None and captured else logits.detach().flatten(1))
    finally:
        if handle is not None:
            handle.remove()
    representation = "penultimate" if layer is not None else ("logits" if target.capabilities.gradients else "log_probabilities")
    if not parts:
        return np.zeros((0, 0), dtype=np.float64), representation
    return torch.cat(parts).numpy().astype(np.float64), representation
