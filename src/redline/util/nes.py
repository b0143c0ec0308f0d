"""Gradient estimation from loss values alone (NES, Wierstra et al. 2014; Ilyas et al. 2018).

For a black-box target the loss of a parameter vector is known only by querying. NES
probes ``samples`` antithetic Gaussian directions around the current parameters and
averages the finite differences, which estimates the gradient of the Gaussian-smoothed
loss. Several independent problems (e.g. one trigger per class) are estimated together so
their queries go out in one batch.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nes_gradient(
    loss: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    samples: int,
    sigma: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Estimated gradient of ``loss`` at ``theta`` (k, d): k problems of d parameters each.

    ``loss`` maps a stack of parameter vectors (k, m, d) to losses (k, m); it is called
    once with m = 2 * ``samples`` probes per problem.
    """
    k, d = theta.shape
    u = rng.standard_normal((k, samples, d))
    probes = np.concatenate([theta[:, None, :] + sigma * u, theta[:, None, :] - sigma * u], axis=1)
    values = np.asarray(loss(probes), dtype=np.float64)
    diff = values[:, :samples] - values[:, samples:]
    return np.einsum("km,kmd->kd", diff, u) / (2.0 * sigma * samples)


class Adam:
    """Adam ascent/descent on numpy arrays (for estimated gradients)."""

    def __init__(self, shape: tuple[int, ...], lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Parameters after one descent step along ``grad``."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
