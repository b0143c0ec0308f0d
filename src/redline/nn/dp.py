"""Differentially private training: full-batch DP-SGD with per-example clipping.

Not a case of :func:`redline.nn.training.fit`: the update is not the gradient of one loss
but a sum of clipped per-example gradients plus noise, set on the parameters by hand.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def fit_dp_full_batch(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    clip: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> None:
    """Differentially private full-batch gradient descent (DP-SGD without sampling).

    Every step clips each example's gradient to L2 norm ``clip``, sums them and adds
    Gaussian noise of standard deviation ``noise_multiplier * clip``, so no single example
    moves the model by much; Adam then only post-processes the noisy gradient. The
    per-example gradients come from one vectorised ``vmap(grad(...))`` call.
    """
    from torch.func import functional_call, grad, vmap

    names = [name for name, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)

    def example_loss(weights: tuple[torch.Tensor, ...], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(module, dict(zip(names, weights)), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    module.train()
    for _ in range(steps):
        grads = per_example(tuple(p.detach() for p in params), x, y)
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(dim=1) for g in grads))
        factor = (clip / (norms + 1e-12)).clamp(max=1.0)
        for p, g in zip(params, grads):
            clipped_sum = torch.einsum("n,n...->...", factor, g)
            noise = torch.randn(clipped_sum.shape, generator=generator) * (noise_multiplier * clip)
            p.grad = (clipped_sum + noise) / len(x)
        optimizer.step()
    module.eval()
