"""Account lock-outs kept in a :class:`~redline.defences.state.StateStore`, shared by the
stateful defences that lock an account out (``query_detector``, ``extraction_monitor``).

A lock-out is the wall-clock moment it ends, stored under the defence's own ``locked`` key
with a ttl of its length, so every worker of a guard sees it and it lifts by itself.
"""
from __future__ import annotations

from .base import LockedOut
from .state import StateStore


def lock_out(state: StateStore, key: str, now: float, seconds: float) -> float:
    """Lock the account under ``key`` out for ``seconds`` from ``now``; return when it ends."""
    until = float(now) + float(seconds)
    state.set(key, repr(until).encode(), ttl=seconds)
    return until


def refuse_if_locked_out(state: StateStore, key: str, now: float, seconds: float, why: str) -> None:
    """Raise :class:`LockedOut` (HTTP 403, with ``retry_after_s``) while the account under
    ``key`` is locked out; ``why`` is the refusal's message."""
    held = state.get(key)
    if held is None:
        return
    try:
        retry_after = max(0.0, float(held.decode()) - float(now))
    except ValueError:  # not written by lock_out: the lock-out's full length
        retry_after = float(seconds)
    raise LockedOut(why, detail={"retry_after_s": round(retry_after, 1)})
