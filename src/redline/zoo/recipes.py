"""Training recipes: how each zoo model is trained, saved, loaded and served as a Target.

A recipe is a frozen dataclass of hyperparameters, so its fields (with the class name and
``version``) identify the model it makes; the cache key is built from them. ``train(x, y,
seed)`` is deterministic and doubles as the target's ``trainer`` for reference-model attacks.
Importing this module is cheap: torch, scikit-learn and skops load inside the methods.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from ..targets.base import InputSpec, Target

Trainer = Callable[[np.ndarray, np.ndarray, int], Target]


class InvalidModelFile(Exception):
    """Stored model bytes that cannot be turned back into the model (the cache rebuilds it)."""


class TrainingRefused(Exception):
    """Training data a recipe cannot train on (e.g. a single class); the message says why."""


class Recipe(abc.ABC):
    """How to train, serialise and serve one kind of model."""

    #: Bump when the training code changes in a way the fields do not show.
    version: ClassVar[str] = "1"
    #: File suffix of the serialised model.
    suffix: ClassVar[str]

    @abc.abstractmethod
    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """A freshly trained model; the same inputs and seed give the same model."""

    def retrain(self, deployed: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """What the model's owner gets when ``deployed`` is retrained on (x, y): by default a
        model trained from scratch; a transfer-learning recipe keeps part of ``deployed``."""
        return self.train(x, y, seed)

    def base_recipe(self) -> "Recipe | None":
        """The recipe whose trained model this one's training starts with, step for step (same
        initial weights and updates), or None. The zoo then builds this model from that one
        (:meth:`derive`) when another entry trains it on the same data and seed: one training
        instead of two, and the same model bit for bit."""
        return None

    def derive(self, base_model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """The model :meth:`train` would give, made from ``base_model`` (trained by
        :meth:`base_recipe` on the same x, y and seed). Only recipes with a base recipe have one."""
        raise NotImplementedError(f"{type(self).__name__} is not built from another recipe's model")

    @abc.abstractmethod
    def dumps(self, model: Any) -> bytes:
        """The model as bytes, in a format that cannot run code when loaded."""

    @abc.abstractmethod
    def loads(self, data: bytes, input_shape: Sequence[int]) -> Any:
        """The model back from :meth:`dumps` bytes; InvalidModelFile if they do not fit."""

    @abc.abstractmethod
    def as_target(self, model: Any, *, input_spec: InputSpec, n_classes: int, spec: str, trainer: Trainer) -> Target:
        """The model behind the matching Target adapter."""

    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the trained model, for the cache key."""
        return {"recipe": type(self).__name__, "version": self.version, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def framework(self) -> str:
        """The library version whose serialisation format the cache file depends on."""
        return ""


# -- PyTorch --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TorchRecipe(Recipe):
    """A torch module returning logits, stored as safetensors (plain tensors, no pickle)."""

    n_classes: int
    suffix: ClassVar[str] = "safetensors"

    @abc.abstractmethod
    def build(self, input_shape: Sequence[int]) -> Any:
        """An untrained module for inputs of ``input_shape``."""

    @abc.abstractmethod
    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        """Train ``module`` in place on tensors ``x`` (float32) and ``y`` (int64)."""

    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        import torch

        from ..nn.training import deterministic

        x_t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
        with deterministic(seed) as generator:
            module = self.build(x.shape[1:])
            self.fit(module, x_t, y_t, generator)
        return module.eval()

    def dumps(self, module: Any) -> bytes:
        from safetensors.torch import save

        return save({k: v.detach().contiguous() for k, v in module.state_dict().items()})

    def loads(self, data: bytes, input_shape: Sequence[int]) -> Any:
        import torch
        from safetensors.torch import load

        with torch.random.fork_rng(devices=[]):  # the throw-away initial weights must not use up the caller's RNG
            module = self.build(input_shape)
        try:
            module.load_state_dict(load(data), strict=True)
        except Exception as exc:  # noqa: BLE001 - safetensors and torch raise many types for bad files
            raise InvalidModelFile(f"{type(exc).__name__}: {exc}") from None
        return module.eval()

    def as_target(self, model: Any, *, input_spec: InputSpec, n_classes: int, spec: str, trainer: Trainer) -> Target:
        from ..targets.torch import TorchTarget

        # The zoo's modules are plain layers without side effects, so queries may run compiled.
        return TorchTarget(model, input_spec=input_spec, n_classes=n_classes, spec=spec, output_kind="logits",
                           trainer=trainer, compile_inference=True)


@dataclasses.dataclass(frozen=True)
class CnnRecipe(TorchRecipe):
    """Small CNN (two conv blocks, one hidden dense layer), Adam on mini-batches."""

    channels: tuple[int, ...] = (16, 32)
    hidden: int = 128
    epochs: int = 12
    batch_size: int = 128
    lr: float = 5e-3

    def build(self, input_shape: Sequence[int]) -> Any:
        from ..nn.nets import small_cnn

        return small_cnn(input_shape, self.n_classes, self.channels, self.hidden)

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        from ..nn.training import train_classifier

        train_classifier(module, x, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         generator=generator, one_cycle=True)


@dataclasses.dataclass(frozen=True)
class MlpRecipe(TorchRecipe):
    """Multi-layer perceptron, full-batch Adam(W)."""

    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.0

    def build(self, input_shape: Sequence[int]) -> Any:
        from ..nn.nets import mlp

        return mlp(input_shape, self.n_classes, self.hidden, self.activation)

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        from ..nn.training import train_classifier

        train_classifier(module, x, y, epochs=self.epochs, lr=self.lr, optimiser="adamw",
                         weight_decay=self.weight_decay)


@dataclasses.dataclass(frozen=True)
class TransferHeadRecipe(MlpRecipe):
    """Transfer learning: an MLP pretrained as :class:`MlpRecipe` trains it, whose hidden
    layers then stay fixed; its last layer is a multinomial logistic regression (inverse
    regularisation ``head_c``) fitted on their features, and every retraining refits only
    that layer, as teams do who adapt a pretrained network to new labelled data."""

    head_c: float = 1.0

    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        return self._refit_head(super().train(x, y, seed), x, y, seed)

    def retrain(self, deployed: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        import copy

        return self._refit_head(copy.deepcopy(deployed), x, y, seed)

    def base_recipe(self) -> MlpRecipe:
        return MlpRecipe(n_classes=self.n_classes, hidden=self.hidden, activation=self.activation,
                         epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay)

    def derive(self, base_model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        import copy

        return self._refit_head(copy.deepcopy(base_model), x, y, seed)

    def _refit_head(self, module: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        import torch
        from sklearn.linear_model import LogisticRegression

        *extractor, head = module.children()
        with torch.no_grad():
            features = torch.nn.Sequential(*extractor)(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()
        if len(np.unique(y)) < 2:
            raise TrainingRefused("a logistic-regression head needs rows of at least two classes")
        fitted = LogisticRegression(C=self.head_c, max_iter=2000, random_state=seed).fit(features, np.asarray(y))
        # sklearn fits only the classes present in y (a two-class fit is one logit against the
        # other); a class with no rows gets a bias that never wins.
        weight = np.zeros((self.n_classes, features.shape[1]), dtype=np.float32)
        bias = np.full(self.n_classes, -1e4, dtype=np.float32)
        classes = fitted.classes_.astype(int)
        if len(classes) == 2:
            bias[classes[0]] = 0.0
            weight[classes[1]], bias[classes[1]] = fitted.coef_[0], fitted.intercept_[0]
        else:
            weight[classes], bias[classes] = fitted.coef_, fitted.intercept_
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))
        return module.eval()


@dataclasses.dataclass(frozen=True)
class DpMlpRecipe(TorchRecipe):
    """Multi-layer perceptron trained with differentially private full-batch gradient descent."""

    hidden: tuple[int, ...] = (64,)
    activation: str = "tanh"
    steps: int = 60
    lr: float = 0.02
    clip: float = 1.0
    noise_multiplier: float = 8.0

    def build(self, input_shape: Sequence[int]) -> Any:
        from ..nn.nets import mlp

        return mlp(input_shape, self.n_classes, self.hidden, self.activation)

    def fit(self, module: Any, x: Any, y: Any, generator: Any) -> None:
        from ..nn.dp import fit_dp_full_batch

        fit_dp_full_batch(
            module, x, y, steps=self.steps, lr=self.lr, clip=self.clip,
            noise_multiplier=self.noise_multiplier, generator=generator,
        )

    def epsilon(self, delta: float = 1e-5) -> float:
        """The (epsilon, delta)-DP guarantee of the training run, for one added or removed example.

        Each step is a Gaussian mechanism with sensitivity ``clip`` and noise
        ``noise_multiplier * clip``, i.e. rho = 1 / (2 sigma^2) zero-concentrated DP; steps
        add up, and rho-zCDP implies (rho + 2 sqrt(rho log(1/delta)), delta)-DP. The
        training-set size is treated as public, as usual for full-batch DP training.
        """
        rho = self.steps / (2.0 * self.noise_multiplier**2)
        return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


# -- scikit-learn ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SklearnRecipe(Recipe):
    """A scikit-learn classifier, stored with skops (no pickle)."""

    suffix: ClassVar[str] = "skops"
    #: Types skops does not trust by default that this model legitimately contains.
    trusted_types: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def estimator(self, seed: int) -> Any:
        """An unfitted estimator."""

    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        flat = np.asarray(x).reshape(len(x), -1)
        # One BLAS thread: these fits take milliseconds, and on a busy machine extra BLAS
        # threads spin-wait and make them take seconds.
        with threadpool_limits(limits=1):
            return self.estimator(seed).fit(flat, np.asarray(y))

    def dumps(self, model: Any) -> bytes:
        import skops.io

        return skops.io.dumps(model)

    def loads(self, data: bytes, input_shape: Sequence[int]) -> Any:
        import skops.io

        try:
            untrusted = set(skops.io.get_untrusted_types(data=data))
            unexpected = untrusted - set(self.trusted_types)
            if unexpected:
                raise InvalidModelFile(f"unexpected types in the model file: {', '.join(sorted(unexpected))}")
            return skops.io.loads(data, trusted=sorted(untrusted))
        except InvalidModelFile:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged zip or schema surfaces as many types
            raise InvalidModelFile(f"{type(exc).__name__}: {exc}") from None

    def as_target(self, model: Any, *, input_spec: InputSpec, n_classes: int, spec: str, trainer: Trainer) -> Target:
        from ..targets.sklearn import SklearnTarget

        return SklearnTarget(model, input_spec=input_spec, n_classes=n_classes, spec=spec, trainer=trainer)

    def framework(self) -> str:
        import sklearn

        # skops files are tied to the scikit-learn release that wrote them.
        return f"scikit-learn {sklearn.__version__}"


@dataclasses.dataclass(frozen=True)
class LogisticRegressionRecipe(SklearnRecipe):
    """L2-regularised logistic regression on the raw features (lbfgs, deterministic)."""

    C: float = 1.0
    max_iter: int = 1000

    def estimator(self, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)


@dataclasses.dataclass(frozen=True)
class DecisionTreeRecipe(SklearnRecipe):
    """A depth-limited CART decision tree."""

    max_depth: int = 5
    trusted_types: ClassVar[tuple[str, ...]] = ("sklearn.tree._tree.Tree",)

    def estimator(self, seed: int) -> Any:
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=self.max_depth, random_state=seed)
