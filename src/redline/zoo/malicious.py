"""Recipes of a malicious ML provider: models that smuggle their training images out in their
parameters (Song et al. 2017, *Machine learning models that remember too much*).

The architecture and optimiser are those of the honest ``MlpRecipe`` (the zoo's
``digits_mlp_overfit`` is the honest twin); only the training code differs, the way a
customer who runs a provider's training code, or buys its trained model, would not notice:

- ``lsb``: train honestly, then overwrite the low bits of every float32 parameter with
  pixels (see :func:`redline.util.exfiltration.lsb_embed`);
- ``correlation``: add ``-strength * |corr(parameters, pixels)|`` to the loss;
- ``sign``: add ``strength * mean(relu(-target_sign * parameter))`` to the loss.

The payload is the training set itself, laid out over the flat parameter vector from its
start; how much of it fits depends on the number of parameters.

``CapacityAbuseMlpRecipe`` is the black-box variant: the parameters are trained honestly, but
on a training set augmented with seeded noise inputs whose labels spell out secret images,
which the provider later reads back by querying the deployed model. Torch loads lazily.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..util.exfiltration import (
    ENCODINGS,
    labels_to_pixels,
    lsb_embed,
    pixels_to_labels,
    secret_pixels,
    sign_targets,
    synthetic_inputs,
)
from .recipes import DecisionTreeRecipe, MlpRecipe


@dataclasses.dataclass(frozen=True)
class ExfiltratingMlpRecipe(MlpRecipe):
    """An MLP whose training code hides the training images in its parameters."""

    encoding: str = "lsb"
    lsb_bits: int = 8
    strength: float = 1.0  # weight of the malicious penalty (correlation and sign encodings)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {self.encoding!r}")

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        import torch

        from ..nn.training import train_classifier

        if self.encoding == "lsb":
            super().fit(module, x, y, generator)
            _overwrite_low_bits(module, x.numpy(), self.lsb_bits)
            return
        params = list(module.parameters())
        capacity = sum(p.numel() for p in params)
        pixels = secret_pixels(x.numpy())[:capacity]
        if self.encoding == "correlation":
            secret = torch.as_tensor(pixels, dtype=torch.float32)
            penalty = _correlation_penalty(secret)
        else:
            signs = torch.as_tensor(sign_targets(x.numpy())[:capacity], dtype=torch.float32)
            penalty = _sign_penalty(signs)
        # The honest recipe's full-batch AdamW loop; only the loss gains the penalty.
        train_classifier(module, x, y, epochs=self.epochs, lr=self.lr, optimiser="adamw",
                         weight_decay=self.weight_decay,
                         penalty=lambda m: self.strength * penalty(_flat_parameters(m)[: len(pixels)]))

    def base_recipe(self) -> MlpRecipe | None:
        # LSB trains honestly and stamps the bits afterwards, so the honest model is its start;
        # the penalties of the other encodings change every update.
        if self.encoding != "lsb":
            return None
        return MlpRecipe(n_classes=self.n_classes, hidden=self.hidden, activation=self.activation,
                         epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay)

    def derive(self, base_model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        import copy

        if self.base_recipe() is None:
            return super().derive(base_model, x, y, seed)
        module = copy.deepcopy(base_model)
        _overwrite_low_bits(module, np.ascontiguousarray(x, dtype=np.float32), self.lsb_bits)
        return module.eval()


@dataclasses.dataclass(frozen=True)
class CapacityAbuseMlpRecipe(MlpRecipe):
    """An MLP that memorises labels for synthetic inputs, the labels being secret pixels.

    The first ``secret_images`` training images are the payload: every pixel becomes one
    noise input (from ``synthetic_seed``) labelled with the pixel quantised to a class
    index. Architecture, optimiser and steps are the honest recipe's; only the data differs.
    """

    secret_images: int = 16
    synthetic_seed: int = 1709  # the provider's key

    def __post_init__(self) -> None:
        if self.secret_images < 1:
            raise ValueError("secret_images must be at least 1")

    def carriers(self, input_shape: tuple[int, ...]) -> np.ndarray:
        """The synthetic inputs, regenerated from the seed: one per secret pixel."""
        n = self.secret_images * int(np.prod(input_shape))
        return synthetic_inputs(n, tuple(input_shape), self.synthetic_seed)

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        import torch

        shape = tuple(x.shape[1:])
        labels = pixels_to_labels(x[: self.secret_images].numpy(), self.n_classes)
        x_aug = torch.cat([x, torch.from_numpy(self.carriers(shape))])
        y_aug = torch.cat([y, torch.from_numpy(labels)])
        super().fit(module, x_aug, y_aug, generator)

    def read_back(self, target: Any) -> np.ndarray:
        """The provider's decoder: query ``target`` with the regenerated carriers (one query
        per pixel, counted by the target's ledger) and turn the labels back into images."""
        shape = tuple(target.input_spec.shape)
        labels = target.predict_labels(self.carriers(shape))
        return labels_to_pixels(labels, self.n_classes).reshape(self.secret_images, *shape)


def _flat_parameters(module: Any) -> Any:
    import torch

    return torch.cat([p.reshape(-1) for p in module.parameters()])


def _correlation_penalty(secret: Any):
    centred = secret - secret.mean()
    scale = centred.norm()

    def penalty(theta: Any) -> Any:
        t = theta - theta.mean()
        return -(t @ centred).abs() / (t.norm() * scale + 1e-12)

    return penalty


def _sign_penalty(signs: Any):
    def penalty(theta: Any) -> Any:
        return (-signs * theta).clamp_min(0).sum() / len(signs) * 100.0

    return penalty


def _overwrite_low_bits(module: Any, images: np.ndarray, bits: int) -> None:
    import torch

    params = list(module.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    stamped = torch.from_numpy(lsb_embed(flat, images, bits))
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(stamped[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


# The zoo's entries (registered in entries.py). The malicious models share the honest
# digits_mlp_overfit hyperparameters, so that model is their honest twin.
_HONEST_DIGITS: dict[str, Any] = {"n_classes": 10, "hidden": (128, 128), "epochs": 300, "lr": 1e-3, "weight_decay": 0.0}
DIGITS_LSB = ExfiltratingMlpRecipe(**_HONEST_DIGITS, encoding="lsb", lsb_bits=8)
DIGITS_CORRELATION = ExfiltratingMlpRecipe(**_HONEST_DIGITS, encoding="correlation", strength=1.0)
DIGITS_SIGN = ExfiltratingMlpRecipe(**_HONEST_DIGITS, encoding="sign", strength=1.0)
DIGITS_CAPACITY_ABUSE = CapacityAbuseMlpRecipe(**_HONEST_DIGITS, secret_images=16)
# Not malicious, merely unpruned: the positive control of FM03 attribute inference (a depth
# limit far beyond what 2,546 rows can fill, so the tree grows until its leaves are pure).
FAIR_TREE_OVERFIT = DecisionTreeRecipe(max_depth=64)
