"""The small PyTorch architectures redline trains itself (zoo models, surrogates).

Each maps a batch of inputs to logits."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def small_cnn(input_shape: Sequence[int], n_classes: int, channels: Sequence[int] = (16, 32), hidden: int = 128) -> nn.Module:
    """Two 3x3 conv + 2x2 max-pool blocks, then one hidden dense layer: (n, c, h, w) -> (n, k) logits."""
    in_channels, height, width = (int(s) for s in input_shape)
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels, height, width = out_channels, height // 2, width // 2
    layers += [nn.Flatten(), nn.Linear(in_channels * height * width, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)]
    return nn.Sequential(*layers)


def mlp(input_shape: Sequence[int], n_classes: int, hidden: Sequence[int], activation: str = "relu") -> nn.Module:
    """Fully connected layers on the flattened input: (n, ...) -> (n, k) logits."""
    width = 1
    for s in input_shape:
        width *= int(s)
    layers: list[nn.Module] = [nn.Flatten()]
    for size in hidden:
        layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)

