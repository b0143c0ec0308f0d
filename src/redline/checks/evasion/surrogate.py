"""A surrogate model for black-box attacks: the attacker's own data, labelled by the target.

The attacker sends rows it owns (``data.attacker_data()``) to the target, keeps the labels
it answers (labels alone suffice, so a label-only API does not stop this), and trains a
local torch model on them. Attacks crafted with the surrogate's gradients are then
replayed against the target (transfer; Papernot et al. 2017). Several surrogates of
different architectures make an ensemble, whose adversarial examples transfer better
(Liu et al. 2017).

Every labelling query goes through ``target.predict_labels`` and counts as attack
queries. Torch is imported inside the functions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

ARCHITECTURES = ("cnn", "mlp")


@dataclasses.dataclass
class Surrogate:
    """Trained local stand-ins for the target and what training them cost.

    ``models`` map a float32 batch to logits; ``labelling_queries`` is the number of rows
    the target answered to label the training set.
    """

    models: list[Any]
    architectures: list[str]
    labelling_queries: int
    x_labelled: np.ndarray
    y_labelled: np.ndarray

    def logits(self, x: Any) -> Any:
        """Mean logits of the ensemble (differentiable)."""
        out = self.models[0](x)
        for model in self.models[1:]:
            out = out + model(x)
        return out / len(self.models)

    def predict_labels(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        import torch

        parts = []
        with torch.no_grad():
            for start in range(0, len(x), batch):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch], dtype=np.float32))
                parts.append(self.logits(chunk).argmax(dim=1).numpy())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=int)


def build_network(architecture: str, input_shape: Sequence[int], n_classes: int) -> Any:
    """An untrained surrogate network. Deliberately not the zoo's architecture: an attacker
    rarely knows the target's, and transfer across architectures is the realistic case."""
    from torch import nn

    shape = tuple(int(s) for s in input_shape)
    if architecture == "cnn":
        if len(shape) != 3:
            raise ValueError(f"a cnn surrogate needs (channels, height, width) inputs, not {shape}")
        c, h, w = shape
        return nn.Sequential(
            # Strided 5x5 convolutions instead of pooling: cheap on a CPU, unlike the zoo's nets.
            nn.Conv2d(c, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * ((h + 3) // 4) * ((w + 3) // 4), 128), nn.ReLU(), nn.Linear(128, n_classes),
        )
    if architecture == "mlp":
        width = int(np.prod(shape))
        return nn.Sequential(nn.Flatten(), nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, n_classes))
    raise ValueError(f"unknown surrogate architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")


def default_architectures(input_shape: Sequence[int]) -> tuple[str, ...]:
    """A convolutional and a dense surrogate for images, a dense one otherwise."""
    return ("cnn", "mlp") if len(tuple(input_shape)) == 3 else ("mlp",)


def label_with_target(target: Any, x: np.ndarray, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``max_rows`` rows of ``x`` and the labels the target gives them (attack queries)."""
    rows = np.ascontiguousarray(x[: max(0, int(max_rows))], dtype=np.float32)
    if not len(rows):
        return rows, np.zeros(0, dtype=np.int64)
    return rows, target.predict_labels(rows).astype(np.int64)


def train_surrogate(
    target: Any,
    x_attacker: np.ndarray,
    *,
    max_queries: int,
    seed: int,
    architectures: Sequence[str] | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    augment: bool = False,
) -> Surrogate:
    """Label up to ``max_queries`` attacker rows with the target, then train the surrogates.

    ``augment`` adds small random shifts to image batches while training, which makes
    the surrogate's gradients smoother and its adversarial examples transfer better.
    """
    import torch

    from ...nn.training import train_classifier

    shape = tuple(target.input_spec.shape)
    architectures = tuple(architectures or default_architectures(shape))
    for name in architectures:
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown surrogate architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    x, y = label_with_target(target, x_attacker, max_queries)
    if len(x) < 2 or len(np.unique(y)) < 2:
        raise ValueError("the surrogate needs at least two labelled rows of two different classes")
    n_classes = int(target.n_classes)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    images = x_t.dim() == 4 and augment
    models = []
    with torch.random.fork_rng(devices=[]):
        for offset, name in enumerate(architectures):
            torch.manual_seed(seed + offset)
            gen = torch.Generator().manual_seed(seed + offset)
            model = build_network(name, shape, n_classes)
            shift = (lambda xb, _yb, _epoch, gen=gen: _random_shift(xb, gen)) if images else None
            models.append(train_classifier(model, x_t, y_t, epochs=epochs, lr=lr, batch_size=batch_size,
                                           generator=gen, one_cycle=True, augment=shift))
    for model in models:
        for p in model.parameters():
            p.requires_grad_(False)
    return Surrogate(models=models, architectures=list(architectures), labelling_queries=len(x),
                     x_labelled=x, y_labelled=y)


def _random_shift(x: Any, gen: Any, max_shift: int = 2) -> Any:
    """Roll the whole batch by up to ``max_shift`` pixels each way (cheap augmentation)."""
    import torch

    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def agreement(surrogate: Surrogate, target: Any, x: np.ndarray) -> float:
    """Share of rows where surrogate and target give the same label. Queries the target:
    call it inside ``target.ledger.evaluating()`` when it measures, not attacks."""
    if not len(x):
        return 0.0
    return float(np.mean(surrogate.predict_labels(x) == target.predict_labels(x)))
