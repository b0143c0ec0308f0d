"""Deterministic, vectorised training loops for the zoo's PyTorch models."""
from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

# Seeding and the deterministic-algorithms switch are process-wide in torch, so two
# trainings in different threads must not interleave.
_TRAINING = threading.RLock()  # re-entrant: a recipe may train a helper model inside its own run


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[torch.Generator]:
    """Seeded, deterministic, single-threaded torch for one training run.

    One thread fixes the floating-point reduction order, so the trained weights do not
    depend on the caller's thread setting; these models are small enough that more threads
    gain little, and on a busy machine extra threads spin-wait and slow training many-fold.
    The caller's RNG state, thread count and determinism flags are restored afterwards.
    """
    with _TRAINING, torch.random.fork_rng(devices=[]):
        previous = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        threads = torch.get_num_threads()
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        torch.manual_seed(seed)  # weight initialisation draws from the global generator
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def fit_minibatch(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> None:
    """Adam over shuffled mini-batches with a one-cycle learning-rate schedule (fast convergence)."""
    module.train()
    steps_per_epoch = math.ceil(len(x) / batch_size)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(module(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    module.eval()


def fit_full_batch(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, weight_decay: float = 0.0
) -> None:
    """Adam (AdamW when ``weight_decay`` > 0) on the whole training set at every step."""
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = F.cross_entropy(module(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    module.eval()


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

