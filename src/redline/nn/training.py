"""The one training loop for redline's small torch models, and seeded deterministic runs.

:func:`fit` is the loop itself: for every epoch, for every batch, compute the loss,
clear the gradients, back-propagate, take an Adam(W) step and, with ``one_cycle``, advance
a one-cycle learning-rate schedule. What differs between its users is passed in, not
copied: which rows make the batches (:class:`FullBatch`, :class:`Shuffled`, or the
caller's own plan) and how a batch's loss is computed. :func:`train_classifier` is the
common case on top of it: a module, inputs, class labels and cross-entropy.

Every random draw comes from the generator the caller passes (the shuffles, and an
``augment`` hook that uses it), in a fixed order, so the same seed gives the same weights.
:func:`deterministic` additionally pins torch's global state for a reproducible run.
"""
from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

OPTIMISERS = ("adam", "adamw")

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


class Batches(Protocol):
    """Which rows each step of an epoch trains on."""

    steps_per_epoch: int

    def epoch(self) -> Iterable[Any]:
        """The row selectors of one epoch, in order (drawn lazily, when the epoch starts)."""


class FullBatch:
    """One step per epoch on all rows: ``selector`` (default: every row, as a view)."""

    steps_per_epoch = 1

    def __init__(self, selector: Any = slice(None)):
        self.selector = selector

    def epoch(self) -> Iterator[Any]:
        yield self.selector


class Shuffled:
    """Mini-batches of ``batch_size`` rows from a fresh permutation of ``n_rows`` every epoch
    (the last batch takes the remainder)."""

    def __init__(self, n_rows: int, batch_size: int, generator: torch.Generator):
        self.n_rows, self.batch_size, self.generator = int(n_rows), int(batch_size), generator
        self.steps_per_epoch = math.ceil(self.n_rows / self.batch_size)

    def epoch(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.n_rows, generator=self.generator)
        for start in range(0, self.n_rows, self.batch_size):
            yield order[start : start + self.batch_size]


def fit(
    parameters: Iterable[torch.Tensor],
    batch_loss: Callable[[Any, int], torch.Tensor],
    batches: Batches,
    *,
    epochs: int,
    lr: float,
    optimiser: str = "adam",
    weight_decay: float = 0.0,
    one_cycle: bool = False,
) -> None:
    """Minimise ``batch_loss(selector, epoch)`` over ``parameters`` for ``epochs`` passes over ``batches``.

    ``optimiser`` is 'adam' or 'adamw' (decoupled ``weight_decay``); ``one_cycle`` ramps the
    learning rate up to ``lr`` and back down over the whole run (fast convergence).
    Train/eval mode is the caller's business: this loop only sees parameters.
    """
    if optimiser not in OPTIMISERS:
        raise ValueError(f"optimiser must be one of {', '.join(OPTIMISERS)}, not {optimiser!r}")
    make = torch.optim.AdamW if optimiser == "adamw" else torch.optim.Adam
    optimizer = make(parameters, lr=lr, weight_decay=weight_decay)
    schedule = None
    if one_cycle:
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=int(epochs) * batches.steps_per_epoch
        )
    for epoch in range(int(epochs)):
        for selector in batches.epoch():
            loss = batch_loss(selector, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()


def train_classifier(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    optimiser: str = "adam",
    weight_decay: float = 0.0,
    one_cycle: bool = False,
    augment: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
) -> nn.Module:
    """Train ``module`` (inputs -> logits) in place with cross-entropy on labels ``y``; returns it in eval mode.

    ``batch_size`` None trains on the whole set at every step; otherwise mini-batches are
    shuffled with ``generator`` (required then). ``augment(xb, yb, epoch)`` replaces a
    batch's inputs before the forward pass (random shifts, adversarial examples) and draws
    its randomness from the same generator; ``penalty(module)`` is added to every loss.
    """
    if batch_size is None:
        batches: Batches = FullBatch()
    elif generator is None:
        raise ValueError("shuffled mini-batches need a torch.Generator")
    else:
        batches = Shuffled(len(x), batch_size, generator)

    def batch_loss(rows: Any, epoch: int) -> torch.Tensor:
        xb, yb = x[rows], y[rows]
        if augment is not None:
            xb = augment(xb, yb, epoch)
        loss = F.cross_entropy(module(xb), yb)
        if penalty is not None:
            loss = loss + penalty(module)
        return loss

    module.train()
    fit(module.parameters(), batch_loss, batches, epochs=epochs, lr=lr, optimiser=optimiser,
        weight_decay=weight_decay, one_cycle=one_cycle)
    return module.eval()
