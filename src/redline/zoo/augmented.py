"""The corruption-augmented twin of the zoo's CNN: the negative control of FM16.

``CorruptionAugmentedCnnRecipe`` trains the zoo's small CNN exactly like ``mnist_cnn``
except that every mini-batch goes through :func:`everyday_corruptions` first: each image
meets one everyday degradation at a random strength (noise, blur, low contrast or
brightness, pixelation, dropped and stuck pixels, a small rotation, zoom, shear or shift)
or is left as it is. Augmentation with a broad mix of corruptions is the standard remedy
(Hendrycks & Dietterich 2019; AugMix); the twin should score a clearly lower mCE than
``mnist_cnn`` on the FM16 check.

The corruptions are written here in torch, drawing from the training generator, and not
imported from the check's library (a check sits above the zoo; see the architecture's
layers). They are generic image degradations at training strength, not copies of the
check's families, so the check still measures generalisation to its own versions.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from .recipes import CnnRecipe

_KINDS = 8  # noise, blur, contrast, brightness, pixelate, impulse, affine, none


def everyday_corruptions(x: Any, generator: Any) -> Any:
    """A batch (n, C, H, W) in [0, 1], each image degraded by one randomly chosen kind."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def uniform(low: float, high: float) -> Any:
        return (low + (high - low) * torch.rand(n, generator=generator)).view(n, 1, 1, 1)

    kind = torch.randint(0, _KINDS, (n,), generator=generator).view(n, 1, 1, 1)
    noise = x + torch.randn(x.shape, generator=generator) * uniform(0.05, 0.6)
    blur_width = torch.randint(1, 4, (n,), generator=generator).view(n, 1, 1, 1)
    blurred, blur = x, torch.zeros_like(x)
    for width in (1, 2, 3):  # 1..3 passes of a 3x3 box filter
        blurred = F.avg_pool2d(blurred, 3, stride=1, padding=1, count_include_pad=False)
        blur = torch.where(blur_width == width, blurred, blur)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = mean + (x - mean) * uniform(0.1, 0.9)
    brightness = x + uniform(-0.5, 0.5)
    h, w = x.shape[-2:]
    coarse = F.interpolate(F.avg_pool2d(x, 4, ceil_mode=True), size=(h, w), mode="nearest")
    fine = F.interpolate(F.avg_pool2d(x, 2, ceil_mode=True), size=(h, w), mode="nearest")
    pixelate = torch.where(torch.rand(n, generator=generator).view(n, 1, 1, 1) < 0.5, coarse, fine)
    hit = torch.rand(x.shape, generator=generator) < uniform(0.02, 0.3)
    impulse = torch.where(hit, (torch.rand(x.shape, generator=generator) < 0.5).to(x.dtype), x)
    angle = uniform(-40, 40).view(n) * math.pi / 180
    zoom = uniform(0.7, 1.3).view(n)
    shear = uniform(-0.4, 0.4).view(n)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.5
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin + shear, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    affine = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    out = x
    for k, version in enumerate((noise, blur, contrast, brightness, pixelate, impulse, affine)):
        out = torch.where(kind == k, version, out)
    return out.clamp(0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class CorruptionAugmentedCnnRecipe(CnnRecipe):
    """The zoo's small CNN trained on batches passed through :func:`everyday_corruptions`."""

    epochs: int = 15

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        from ..nn.training import train_classifier

        train_classifier(module, x, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         generator=generator, one_cycle=True,
                         augment=lambda xb, yb, epoch: everyday_corruptions(xb, generator))


MNIST_CNN_AUGMENTED = CorruptionAugmentedCnnRecipe(n_classes=10)
