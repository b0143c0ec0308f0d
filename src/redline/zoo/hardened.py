"""Recipes of hardened twins for the evasion checks (FM01, FM07): the negative controls.

``AdversarialCnnRecipe`` trains the zoo's small CNN with PGD adversarial training (Madry
et al. 2018): every mini-batch is replaced by its worst case within an L-inf ball before
the weight update, so the model learns to ignore small perturbations.

``SqueezedCnnRecipe`` puts the input-squeezing defence (:mod:`redline.defences.squeezing`:
bit-depth reduction, optionally a median filter) as a torch layer before a CNN trained
exactly like ``mnist_cnn`` (same hyperparameters and seed, so the same weights), so
white-box checks meet the defence's zero gradient as a deployment would.

Both are ordinary torch recipes: cached as safetensors, and usable as a target's trainer.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..defences.squeezing import Squeezing
from .recipes import CnnRecipe


@dataclasses.dataclass(frozen=True)
class AdversarialCnnRecipe(CnnRecipe):
    """The small CNN trained on PGD adversarial examples (L-inf ``epsilon``).

    ``epsilon`` ramps up linearly over the first ``warmup_epochs`` (training at full
    strength from random weights tends to stall); ``attack_steps`` PGD steps of size
    ``2.5 * epsilon / attack_steps`` from a random start craft each batch.
    """

    epsilon: float = 0.2
    attack_steps: int = 5
    warmup_epochs: int = 3
    epochs: int = 10

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        from ..nn.training import train_classifier

        def worst_case(xb: Any, yb: Any, epoch: int) -> Any:
            eps = self.epsilon * min(1.0, (epoch + 1) / max(1, self.warmup_epochs))
            return pgd_linf(module, xb, yb, eps, self.attack_steps, generator)

        train_classifier(module, x, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         generator=generator, one_cycle=True, augment=worst_case)


def pgd_linf(module: Any, x: Any, y: Any, epsilon: float, steps: int, generator: Any) -> Any:
    """Untargeted L-inf PGD with a random start, inputs in [0, 1] (the training-time attack)."""
    import torch
    import torch.nn.functional as F

    alpha = 2.5 * epsilon / steps
    x_adv = (x + (torch.rand(x.shape, generator=generator) * 2 - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(module(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return x_adv.detach()


@dataclasses.dataclass(frozen=True)
class SqueezedCnnRecipe(CnnRecipe):
    """The zoo's small CNN behind input squeezing (``levels`` grey levels, optional median)."""

    levels: int = 2
    median: int = 1

    def build(self, input_shape: Sequence[int]) -> Any:
        from torch import nn

        # The squeezer has no parameters and draws no random numbers, so the CNN after it
        # initialises (and, trained below on raw inputs, ends up) exactly like mnist_cnn's.
        return nn.Sequential(Squeezing(self.levels, self.median).torch_layer(), super().build(input_shape))

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        super().fit(module[1], x, y, generator)
        module.eval()

    def base_recipe(self) -> CnnRecipe:
        # The plain recipe with these hyperparameters: mnist_cnn's, so its trained model is reused.
        return CnnRecipe(n_classes=self.n_classes, channels=self.channels, hidden=self.hidden, epochs=self.epochs,
                         batch_size=self.batch_size, lr=self.lr)

    def derive(self, base_model: Any, x: Any, y: Any, seed: int) -> Any:
        import copy

        from torch import nn

        return nn.Sequential(Squeezing(self.levels, self.median).torch_layer(), copy.deepcopy(base_model)).eval()


MNIST_CNN_ROBUST = AdversarialCnnRecipe(n_classes=10)
MNIST_CNN_SQUEEZED = SqueezedCnnRecipe(n_classes=10)
