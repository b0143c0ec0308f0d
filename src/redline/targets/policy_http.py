"""A policy behind an HTTP endpoint: ``POST {"observations": [...]}`` -> ``{"actions": [...]}``.

The transport is the classifier endpoint's (:class:`~redline.targets.http.HttpTarget`):
the same target config (headers, auth, timeout, retries with back-off, rate limit,
``max_batch``, key paths), answers read as labels, one per observation. Every observation
the endpoint received is charged to the policy's ledger, retries included.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .base import InputSpec
from .config import TargetConfig
from .http import HttpTarget
from .policy import PolicyTarget


class HttpPolicy(PolicyTarget):
    def __init__(self, url: str, *, config: TargetConfig | None, input_spec: InputSpec, n_actions: int):
        cfg = config or TargetConfig()
        transport_config = dataclasses.replace(
            cfg, inputs_key=cfg.observations_key, labels_key=cfg.actions_key, outputs="labels",
            n_classes=n_actions, input_shape=None, lower=None, upper=None,
        )
        self.transport = HttpTarget(url, config=transport_config, input_spec=input_spec, n_classes=n_actions)
        super().__init__(input_spec=input_spec, n_actions=n_actions, spec=self.transport.spec,
                         deterministic=False, remote=True)
        self.max_batch = self.transport.max_batch

    def _act(self, observations: np.ndarray) -> Any:
        self.transport.ledger = self.ledger  # retried rows are charged where the check counts
        return self.transport._predict(observations)

    def close(self) -> None:
        self.transport.close()
