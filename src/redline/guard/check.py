"""``redline guard --check``: is a policy file one the guard would serve?

The policy is loaded and every defence checked as at start-up, against a stand-in for
the model that has the policy's input shape and answers no query (the check sends
nothing over the network). What only serving can show (that the model answers, that a
Redis store is up) is left to start-up.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..defences.policy import load_policy
from ..errors import TargetError
from ..targets.base import Capabilities, InputSpec, Target
from .upstream import UNSTATED_INPUT


class _StandIn(Target):
    """The model a policy would front, known only by its input spec."""

    def __init__(self, input_spec: InputSpec | None):
        super().__init__()
        self.spec = "guarded model"
        self.input_spec = input_spec or UNSTATED_INPUT
        self.n_classes = None  # type: ignore[assignment]  # unknown until the model answers
        self.capabilities = Capabilities(outputs="probabilities", remote=True)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise TargetError("a policy check queries no model")


def check_policy(path: str | Path) -> dict[str, Any]:
    """A summary of a valid policy; UsageError naming the problem otherwise."""
    policy = load_policy(path)
    policy.check(_StandIn(policy.input_spec))
    notes = []
    if not policy.clients:
        notes.append("no clients: the guard needs --keys FILE to serve this policy")
    if policy.upstream is None:
        notes.append("no upstream: the guard needs --upstream URL to serve this policy")
    if policy.input_spec is None:
        notes.append("no input shape: the guard will pass rows of any shape to the defences and the model")
    return {
        "clients": len(policy.clients),
        "defences": [key for key, _ in policy.entries],
        "state": policy.state or "sqlite (temporary)",
        "digest": policy.digest,
        "notes": notes,
    }
