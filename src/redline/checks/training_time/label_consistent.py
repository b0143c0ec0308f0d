"""Label-consistent poisons (Turner et al. 2019): target-class images made hard to learn.

Stamping a trigger on images that already carry the target label rarely plants a
backdoor: the model fits those images by their own, natural features and never needs
the trigger. Turner et al. first push each poisoned image away from its class with a
bounded adversarial perturbation (PGD against a model the attacker trains itself), so
that its natural features no longer explain its (still correct) label, and then stamp
the trigger; the victim's cheapest way to fit those rows is the trigger.

The perturbation is confined to the image's own support (pixels above the lower bound,
grown by one pixel). Where the background sits at a bound, as in handwritten digits, an
L-inf perturbation can only add marks to it, and those marks, shared by every poisoned
row and absent from clean ones, become a second shortcut that competes with the trigger
(measured on MNIST: attack success fell below plain stamping). On natural photographs the
support is nearly the whole image and this is ordinary PGD. torch is imported inside.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...util.momentum import momentum_linf_attack

#: Pixels closer than this share of the value range to the lower bound count as background.
BACKGROUND_TOLERANCE = 0.01


def support_mask(x: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """1 where a perturbation may go: pixels above the background and their neighbours.

    ``x`` is (n, c, h, w); the mask has the same shape (every channel of a pixel alike).
    """
    import torch

    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    ink = (xt > lower + BACKGROUND_TOLERANCE * (upper - lower)).any(dim=1, keepdim=True).float()
    grown = torch.nn.functional.max_pool2d(ink, kernel_size=3, stride=1, padding=1)
    return grown.expand_as(xt).numpy()


def hard_to_learn(
    logits: Callable[[Any], Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epsilon: float,
    steps: int,
    lower: float,
    upper: float,
) -> np.ndarray:
    """``x`` (n, c, h, w) perturbed within ``epsilon`` (L-inf) on its support to raise the
    cross-entropy of its own label ``y`` under ``logits`` (the attacker's model)."""
    import torch
    import torch.nn.functional as F

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"label-consistent poisons need images shaped (n, c, h, w), not {x.shape}")
    support = torch.from_numpy(support_mask(x, lower, upper))
    labels = torch.as_tensor(np.asarray(y, dtype=np.int64))

    def loss(z):
        return F.cross_entropy(logits(z), labels, reduction="none")

    def on_support(z, z0):
        return z0 + (z - z0) * support

    # decay 0: plain PGD sign steps; a step of 2.5 * epsilon / steps as in Madry et al.
    out = momentum_linf_attack(loss, torch.from_numpy(x), epsilon=float(epsilon), steps=int(steps), lower=lower,
                               upper=upper, step_size=2.5 * float(epsilon) / int(steps), decay=0.0,
                               project=on_support)
    return out.numpy()
