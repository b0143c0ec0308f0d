"""Honestly trained models of architectures the backdoor detectors were not tuned on.

The FM10 detectors were developed on the zoo's MNIST CNN pair (mnist_cnn_backdoor and
mnist_cnn_clean). A detector whose threshold only holds for that one architecture raises
false alarms on a user's own clean model, so each is calibrated against these: an MLP, a
CNN of another shape (one wide conv block, a small dense layer), and a CNN trained with
augmentation (random shifts of up to ``shift`` pixels each batch), which learns smoother,
more shift-tolerant features. None is poisoned. Used by the tests (on the 8x8 digits) and
by benchmarks/bench_fm10_calibration.py (also on MNIST).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .recipes import CnnRecipe, MlpRecipe, TorchRecipe


@dataclasses.dataclass(frozen=True)
class AugmentedCnnRecipe(CnnRecipe):
    """:class:`CnnRecipe` whose every mini-batch is shifted by a random (dy, dx) of at most
    ``shift`` pixels (edges filled with zeros, the background of digit images)."""

    shift: int = 1

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        import torch
        import torch.nn.functional as F

        from ..nn.training import train_classifier

        s = int(self.shift)

        def shifted(xb: Any, _yb: Any, _epoch: int) -> Any:
            dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=generator))
            h, w = xb.shape[-2:]
            return F.pad(xb, (s, s, s, s))[..., s + dy : s + dy + h, s + dx : s + dx + w]

        train_classifier(module, x, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         generator=generator, one_cycle=True, augment=shifted)


def honest_recipes(n_classes: int = 10, quick: bool = False) -> dict[str, TorchRecipe]:
    """Name -> recipe of the three honest architectures; ``quick`` trains fewer epochs (tests)."""
    scale = 0.5 if quick else 1.0
    return {
        "mlp": MlpRecipe(n_classes=n_classes, hidden=(128,), epochs=int(300 * scale), lr=3e-3),
        "wide_cnn": CnnRecipe(n_classes=n_classes, channels=(24,), hidden=48, epochs=max(4, int(20 * scale)),
                              batch_size=64, lr=5e-3),
        # Fewer epochs hurt a shifted-data model most (under 70% test accuracy on digits at 12).
        "augmented_cnn": AugmentedCnnRecipe(n_classes=n_classes, channels=(16,), hidden=64, epochs=20,
                                            batch_size=64, lr=5e-3, shift=1),
    }


def honest_target(name: str, data: Any, seed: int, quick: bool = False):
    """The honest model ``name`` trained on ``data.x_train`` with ``seed``, as a target."""
    from .build import input_spec_for

    recipe = honest_recipes(int(max(data.y_train.max(), data.y_test.max())) + 1, quick)[name]
    module = recipe.train(data.x_train, data.y_train, seed)
    return recipe.as_target(module, input_spec=input_spec_for(data), n_classes=recipe.n_classes,
                            spec=f"honest:{name}:{seed}", trainer=None)
