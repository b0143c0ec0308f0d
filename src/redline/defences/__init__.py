"""Defences that redline measures and a deployment can run.

Inference-time defences share one interface, :class:`~redline.defences.base.Defence`
(transform the input, transform the output, observe the traffic), one module each:
:mod:`~redline.defences.labels_only`, :mod:`~redline.defences.rounding`,
:mod:`~redline.defences.squeezing`. :class:`~redline.defences.base.DefendedTarget` puts
them in front of any target and is a target itself, so checks measure it like any model.

Training-time defences (screening a possibly poisoned training set, robust learners) live
in :mod:`redline.defences.training`.
"""
from __future__ import annotations

from .base import (
    DefendedTarget,
    Defence,
    InputRejected,
    LockedOut,
    QueryRefused,
    RateLimited,
    Refusal,
    collect_events,
    emit,
)
from .state import MemoryState, StateStore

__all__ = [
    "Defence", "DefendedTarget", "Refusal", "InputRejected", "RateLimited", "LockedOut", "QueryRefused",
    "emit", "collect_events", "StateStore", "MemoryState",
]
