"""Differentiable PyTorch mirrors of fitted scikit-learn classifiers.

Only models whose prediction is a short, exact formula get a mirror: logistic regression
(binary, multinomial, one-vs-rest) and multi-layer perceptrons, optionally behind affine
scalers in a Pipeline (:func:`redline.targets.sklearn.mirror_support` decides). The mirror
maps flat inputs to log-probabilities, so ``exp(mirror(x))`` equals ``predict_proba(x)``
up to rounding. Parameters are kept in float64 and cast to the input's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def build_mirror(estimator: Any) -> torch.nn.Module:
    """A torch module: flat inputs (n, d) -> log-probabilities (n, k).

    The caller must have checked the estimator with ``mirror_support`` first.
    """
    steps = pipeline_steps(estimator)
    *pre, final = steps
    layers: list[torch.nn.Module] = [_scaler_layer(step) for step in pre]
    if type(final).__name__ == "LogisticRegression":
        layers.append(_logistic_layer(final))
    else:
        layers.append(_MLP(final.coefs_, final.intercepts_, final.activation))
    return torch.nn.Sequential(*layers).eval()


def pipeline_steps(estimator: Any) -> list[Any]:
    """The estimator itself, or the non-empty steps of a Pipeline."""
    if type(estimator).__name__ != "Pipeline":
        return [estimator]
    return [step for _, step in estimator.steps if step is not None and step != "passthrough"]


def _tensor(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _scaler_layer(step: Any) -> torch.nn.Module:
    """Both supported scalers are an affine map x * scale + shift."""
    d = int(step.n_features_in_)
    if type(step).__name__ == "StandardScaler":
        mean = np.zeros(d) if step.mean_ is None else np.asarray(step.mean_)
        scale = np.ones(d) if step.scale_ is None else np.asarray(step.scale_)
        return _Affine(1.0 / scale, -mean / scale)
    return _Affine(step.scale_, step.min_)  # MinMaxScaler without clipping


def _logistic_layer(lr: Any) -> torch.nn.Module:
    # scikit-learn < 1.8 still had one-vs-rest logistic regression (multi_class="ovr",
    # or "auto" with liblinear): per-class sigmoids normalised to sum to one.
    multi_class = getattr(lr, "multi_class", "auto")
    ovr = multi_class == "ovr" or (multi_class == "auto" and lr.solver == "liblinear")
    return _Linear(lr.coef_, lr.intercept_, head="ovr" if ovr else "softmax")


def log_probabilities(z: torch.Tensor, head: str = "softmax") -> torch.Tensor:
    """Turn scores into log-probabilities the way scikit-learn turns them into probabilities."""
    if z.shape[1] == 1:  # binary: p(class 1) = sigmoid(z), i.e. softmax over [0, z]
        return torch.log_softmax(torch.cat([torch.zeros_like(z), z], dim=1), dim=1)
    if head == "ovr":
        s = torch.nn.functional.logsigmoid(z)
        return s - torch.logsumexp(s, dim=1, keepdim=True)
    return torch.log_softmax(z, dim=1)


class _Affine(torch.nn.Module):
    def __init__(self, scale: Any, shift: Any):
        super().__init__()
        self.register_buffer("scale", _tensor(scale))
        self.register_buffer("shift", _tensor(shift))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class _Linear(torch.nn.Module):
    def __init__(self, coef: Any, intercept: Any, head: str):
        super().__init__()
        self.head = head
        self.register_buffer("weight", _tensor(coef))
        self.register_buffer("bias", _tensor(intercept))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.weight.to(x.dtype).T + self.bias.to(x.dtype)
        return log_probabilities(z, self.head)


_ACTIVATIONS = {
    "identity": lambda h: h,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "logistic": torch.sigmoid,
}


class _MLP(torch.nn.Module):
    def __init__(self, coefs: list[Any], intercepts: list[Any], activation: str):
        super().__init__()
        for i, (w, b) in enumerate(zip(coefs, intercepts)):
            self.register_buffer(f"w{i}", _tensor(w))
            self.register_buffer(f"b{i}", _tensor(b))
        self.layers = len(coefs)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        act = _ACTIVATIONS[self.activation]
        for i in range(self.layers):
            h = h @ getattr(self, f"w{i}").to(x.dtype) + getattr(self, f"b{i}").to(x.dtype)
            if i < self.layers - 1:
                h = act(h)
        # The output activation is softmax for multi-class and a sigmoid on one unit for binary.
        return log_probabilities(h, "softmax")
