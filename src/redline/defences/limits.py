"""Rate and budget limits per client: requests per minute, rows per minute and per day.

Query attacks need many queries, so capping how fast and how much one account may ask
raises their cost, whatever the queries look like (a model-stealing attack that sends
honest-looking inputs passes a similarity detector but not a budget). Each limit is a
fixed window aligned to the wall clock (the minute, the UTC day): a counter in the
:class:`~redline.defences.state.StateStore` under ``rate_limit:<client>:<limit>:<window>``,
raised with ``incr`` and expiring with its window, so every worker of a guard counts
against the same numbers. A request that would pass a limit is refused with
:class:`~redline.defences.base.RateLimited`, whose detail says after how many seconds the
window turns (``retry_after_s``); its rows are taken off the counters again, since the
model does not answer them.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, RateLimited, emit
from .state import MemoryState, StateStore

# limit parameter -> (what it counts, window in seconds, words for a refusal)
_LIMITS = {
    "requests_per_minute": ("requests", 60.0, "requests per minute"),
    "rows_per_minute": ("rows", 60.0, "rows per minute"),
    "rows_per_day": ("rows", 86400.0, "rows per day"),
}


class RateLimit(Defence):
    """Refuse a client's request once it would pass any of the limits given (None: no limit)."""

    name = "rate_limit"
    policy_key = "rate_limit"
    #: Wall clock that places the windows (tests replace it).
    clock = staticmethod(time.time)

    def __init__(self, requests_per_minute: int | None = None, rows_per_minute: int | None = None,
                 rows_per_day: int | None = None):
        self.requests_per_minute = requests_per_minute
        self.rows_per_minute = rows_per_minute
        self.rows_per_day = rows_per_day
        self._client = "-"
        self._state: StateStore | None = None

    def check(self, target: Target) -> None:
        given = {name: getattr(self, name) for name in _LIMITS}
        for name, value in given.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise UsageError(f"rate_limit: {name} must be a whole number of at least 1, not {value!r}")
        if all(value is None for value in given.values()):
            raise UsageError("rate_limit: give at least one of " + ", ".join(_LIMITS))

    def for_client(self, client: str, state: StateStore) -> RateLimit:
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._client, twin._state = str(client), state
        return twin

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        if self._state is None:
            self._state = MemoryState()
        now = float(self.clock())
        rows = len(x)
        charged: list[tuple[str, float]] = []
        for name, (counts, window, words) in _LIMITS.items():
            limit = getattr(self, name)
            if limit is None:
                continue
            amount = 1.0 if counts == "requests" else float(rows)
            start = math.floor(now / window) * window
            key = f"rate_limit:{self._client}:{name}:{int(start)}"
            total = self._state.incr(key, amount, ttl=window)
            charged.append((key, amount))
            if total > limit:
                for done, back in charged:  # the model will not answer: give the rows back
                    self._state.incr(done, -back, ttl=window)
                retry_after = max(1, math.ceil(start + window - now))
                if counts == "rows" and amount > limit:
                    retry_after = None  # no window is long enough for this request
                detail: dict[str, Any] = {"limit": name, "allowed": int(limit), "retry_after_s": retry_after}
                emit(self.name, "refused", client=self._client, **detail)
                advice = (f"retry in {retry_after} s" if retry_after is not None
                          else f"send at most {limit} rows per request")
                raise RateLimited(f"rate limit: at most {limit} {words}; {advice}", detail=detail)
        return x
