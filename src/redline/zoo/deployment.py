"""Deployment samples for the zoo's FM14 controls: the same digits model, met by a sample
from its own population (the negative control) or by noisier inputs (the positive control).

A deployment sample must come from rows the model never trained on and the test rows never
held, so the variants cut it from the pool: a fixed half of the pool rows becomes the
``deploy`` role (with its labels, so the check can score its own estimate) and the other
half stays the attacker's pool. The training and test rows are those of ``builtin:digits``,
so a model trained on a variant is the model trained on the plain digits.

The shifted sample adds Gaussian noise (sigma ``NOISE_SIGMA`` on pixels in [0, 1], clipped),
the everyday degradation of a worse camera or scanner: the zoo's digits MLP loses more than
ten points on it, which is a drop any owner would want to hear of.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.base import Dataset

#: Fixed seeds: every build and every scan sees the same rows and the same noise.
SPLIT_SEED = 14
NOISE_SEED = 1414
NOISE_SIGMA = 0.3


def _with_deploy(dataset: Dataset, noise: float) -> Dataset:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(dataset.x_pool))
    keep, sample = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    x_deploy = dataset.x_pool[sample].copy()
    if noise > 0:
        rng = np.random.default_rng(NOISE_SEED)
        x_deploy = np.clip(x_deploy + rng.normal(0.0, noise, size=x_deploy.shape), 0.0, 1.0).astype(x_deploy.dtype)
    meta = dict(dataset.meta)
    meta["deploy_sample"] = (f"half the digits pool (seed {SPLIT_SEED})"
                             + (f" with Gaussian noise, sigma {noise:g}" if noise > 0 else ", unchanged"))
    return dataclasses.replace(
        dataset, x_pool=dataset.x_pool[keep], y_pool=dataset.y_pool[keep],
        x_deploy=x_deploy, y_deploy=dataset.y_pool[sample].copy(), meta=meta,
    )


def iid_deployment(dataset: Dataset) -> Dataset:
    """Deployment rows drawn from the same population as the test rows."""
    return _with_deploy(dataset, 0.0)


def noisy_deployment(dataset: Dataset) -> Dataset:
    """Deployment rows from the same population seen through Gaussian noise."""
    return _with_deploy(dataset, NOISE_SIGMA)
