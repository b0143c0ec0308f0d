"""Momentum iterative sign-gradient ascent in an L-inf ball (MI-FGSM, Dong et al. 2018).

The loss is whatever the caller passes in: cross-entropy on a surrogate (transfer attacks)
or its average over random transformations (Expectation over Transformation). Momentum
accumulates L1-normalised gradients, which stabilises the direction across steps and makes
the result transfer better to models the attack never saw.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def momentum_linf_attack(
    loss: Callable[[Any], Any],
    x0: Any,
    *,
    epsilon: float,
    steps: int,
    lower: float,
    upper: float,
    step_size: float | None = None,
    decay: float = 1.0,
    project: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """Maximise ``loss(x)`` (one value per row) over ``|x - x0|_inf <= epsilon`` within bounds.

    ``project(x, x0)`` may add constraints after each step (e.g. tabular feature rules).
    Returns the final iterate (detached).
    """
    import torch

    alpha = step_size if step_size is not None else epsilon / max(1, steps) * 1.25
    x0 = x0.detach()
    x = x0.clone()
    velocity = torch.zeros_like(x0)
    dims = tuple(range(1, x0.dim()))
    for _ in range(int(steps)):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x).sum(), x)
        grad = grad / grad.abs().mean(dim=dims, keepdim=True).clamp_min(1e-12)
        velocity = decay * velocity + grad
        x = x.detach() + alpha * velocity.sign()
        x = torch.min(torch.max(x, x0 - epsilon), x0 + epsilon).clamp(lower, upper)
        if project is not None:
            x = project(x, x0)
    return x.detach()
