"""Small models and data for tests: quick, deterministic, no framework needed."""
from __future__ import annotations

import numpy as np

from redline.targets.base import Capabilities, InputSpec, Target


class ArrayTarget(Target):
    """A numpy linear-softmax model: quick, deterministic, no framework needed."""

    def __init__(self, weights, bias, outputs="probabilities", spec="test:linear"):
        super().__init__()
        self.weights, self.bias = np.asarray(weights, float), np.asarray(bias, float)
        self.spec = spec
        self.input_spec = InputSpec(shape=(self.weights.shape[0],), lower=-10.0, upper=10.0)
        self.n_classes = self.weights.shape[1]
        self.capabilities = Capabilities(outputs=outputs)
        self.answered = 0

    def _predict(self, x):
        self.answered += len(x)
        z = x.reshape(len(x), -1) @ self.weights + self.bias
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return p if self.capabilities.outputs == "probabilities" else p.argmax(1)


def counting_torch_target_class():
    """A TorchTarget subclass whose class attribute ``answered`` counts every row the model
    answers, through predict or logits, so tests can check the ledger against it."""
    from redline.targets.torch import TorchTarget

    class CountingTorchTarget(TorchTarget):
        answered = 0

        def _predict(self, x):
            CountingTorchTarget.answered += len(x)
            return super()._predict(x)

        def _torch_logits(self, x):
            CountingTorchTarget.answered += int(x.shape[0])
            return super()._torch_logits(x)

    return CountingTorchTarget
