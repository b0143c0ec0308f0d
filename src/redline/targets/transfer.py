"""A transfer-learning pipeline as a trainable target: a frozen feature extractor whose last
layer is refitted (multinomial logistic regression) on every retraining.

This is how many teams adapt a pretrained network to their own labels, and it is the
setting in which clean-label feature-collision poisoning is most reliable, so it serves as
that check's victim.
"""
from __future__ import annotations

import numpy as np

from .base import InputSpec
from .torch import TorchTarget


def frozen_features_target(extractor, input_spec: InputSpec, n_classes: int, x: np.ndarray, y: np.ndarray,
                           spec: str = "transfer", seed: int = 0) -> TorchTarget:
    """A TorchTarget ``extractor`` -> linear head fitted on (x, y); ``retrain`` refits only the head."""
    import torch
    from sklearn.linear_model import LogisticRegression

    extractor = extractor.eval()

    def train(x, y, seed):
        with torch.no_grad():
            features = extractor(torch.from_numpy(np.asarray(x, np.float32))).numpy()
        fitted = LogisticRegression(max_iter=2000, random_state=seed).fit(features, y)
        head = torch.nn.Linear(features.shape[1], n_classes)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(fitted.coef_))
            head.bias.copy_(torch.from_numpy(fitted.intercept_))
        return TorchTarget(torch.nn.Sequential(extractor, head), input_spec=input_spec, n_classes=n_classes,
                           spec=spec, trainer=train)

    return train(x, y, seed)
