"""Rate and budget limits per client, in wall-clock windows kept in the shared state store."""
from __future__ import annotations

import numpy as np
import pytest

from redline.defences import DefendedTarget, MemoryState, RateLimited, collect_events
from redline.defences.limits import RateLimit
from redline.errors import UsageError


class FakeClock:
    def __init__(self, now: float = 86400.0 * 100):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock, state, client="alice", **params):
    base = RateLimit(**params)
    base.check(None)
    base.clock = clock
    return base.for_client(client, state)


def test_requests_per_minute_refuse_until_the_minute_turns():
    clock = FakeClock()
    state = MemoryState(clock=clock)
    alice = limiter(clock, state, requests_per_minute=3)
    clock.now += 15  # 15 s into a minute
    for _ in range(3):
        alice.transform_input(np.zeros((5, 2)))
    with collect_events() as events, pytest.raises(RateLimited) as refused:
        alice.transform_input(np.zeros((1, 2)))
    assert refused.value.status == 429 and refused.value.detail["retry_after_s"] == 45
    assert events and events[0]["event"] == "refused" and events[0]["limit"] == "requests_per_minute"
    clock.now += 44
    with pytest.raises(RateLimited):
        alice.transform_input(np.zeros((1, 2)))  # refused requests are not charged, still 3 in this minute
    clock.now += 1  # the next minute
    alice.transform_input(np.zeros((1, 2)))


def test_row_budgets_per_minute_and_per_day():
    clock = FakeClock()
    state = MemoryState(clock=clock)
    alice = limiter(clock, state, rows_per_minute=100, rows_per_day=250)
    alice.transform_input(np.zeros((90, 2)))
    with pytest.raises(RateLimited) as refused:
        alice.transform_input(np.zeros((20, 2)))
    assert refused.value.detail["limit"] == "rows_per_minute"
    alice.transform_input(np.zeros((10, 2)))  # the refused 20 rows were given back: 100 exactly
    clock.now += 60
    alice.transform_input(np.zeros((100, 2)))
    clock.now += 60
    with pytest.raises(RateLimited) as refused:
        alice.transform_input(np.zeros((51, 2)))  # 251 today
    assert refused.value.detail["limit"] == "rows_per_day"
    assert refused.value.detail["retry_after_s"] == 86400 - 120
    alice.transform_input(np.zeros((50, 2)))
    with pytest.raises(RateLimited) as too_big:
        alice.transform_input(np.zeros((101, 2)))  # larger than any window allows
    assert too_big.value.detail["retry_after_s"] is None and "rows per request" in str(too_big.value)
    clock.now += 86400
    alice.transform_input(np.zeros((100, 2)))


def test_clients_have_their_own_counters_and_workers_share_them():
    clock = FakeClock()
    state = MemoryState(clock=clock)
    limiter(clock, state, "alice", requests_per_minute=2).transform_input(np.zeros((1, 2)))
    limiter(clock, state, "alice", requests_per_minute=2).transform_input(np.zeros((1, 2)))  # another worker
    with pytest.raises(RateLimited):
        limiter(clock, state, "alice", requests_per_minute=2).transform_input(np.zeros((1, 2)))
    limiter(clock, state, "bob", requests_per_minute=2).transform_input(np.zeros((1, 2)))
    assert all(k.startswith("rate_limit:") for k in state._data)


def test_a_defended_target_is_rate_limited(linear_target):
    limit = RateLimit(rows_per_minute=10)
    defended = DefendedTarget(linear_target, [limit])
    defended.predict(np.zeros((10, 5)))
    with pytest.raises(RateLimited):
        defended.predict(np.zeros((1, 5)))
    assert defended.ledger.attack == 10  # the refused row was not charged


@pytest.mark.parametrize("params", [
    {}, {"requests_per_minute": 0}, {"rows_per_minute": 2.5}, {"rows_per_day": True}, {"rows_per_day": "10"},
])
def test_bad_limits_are_a_usage_error(params):
    with pytest.raises(UsageError, match="rate_limit"):
        RateLimit(**params).check(None)


def test_params_round_trip():
    limit = RateLimit(requests_per_minute=600, rows_per_day=100000)
    assert RateLimit(**limit.get_params()).get_params() == limit.get_params()
    assert RateLimit.policy_key == "rate_limit"
