"""The state store defences share, and the events and refusals they raise."""
import threading


from redline.defences import (
    Defence, InputRejected, LockedOut, MemoryState, RateLimited, Refusal, collect_events, emit,
)
from redline.errors import TargetError


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_values_expire_after_their_ttl():
    clock = FakeClock()
    state = MemoryState(clock=clock)
    state.set("a", b"1", ttl=10)
    assert state.get("a") == b"1"
    clock.now = 10.0
    assert state.get("a") is None


def test_counter_window_starts_when_the_key_is_created():
    clock = FakeClock()
    state = MemoryState(clock=clock)
    assert state.incr("n", ttl=5) == 1.0
    clock.now = 4.0
    assert state.incr("n", 2.5, ttl=5) == 3.5  # same window: the ttl is not renewed
    clock.now = 5.0
    assert state.incr("n", ttl=5) == 1.0


def test_counter_is_atomic_across_threads():
    state = MemoryState()

    def add():
        for _ in range(500):
            state.incr("n")

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.incr("n", 0) == 2000.0


def test_push_keeps_the_last_values_oldest_first():
    state = MemoryState()
    state.push("h", [b"a", b"b"], keep=3)
    state.push("h", [b"c", b"d"], keep=3)
    assert state.recent("h") == [b"b", b"c", b"d"]
    assert state.recent("h", 2) == [b"c", b"d"]
    assert state.recent("h", 0) == []
    assert state.recent("missing") == []


def test_add_members_counts_the_ones_already_present():
    state = MemoryState()
    assert state.add_members("s", [b"x", b"y"]) == 0
    assert state.add_members("s", [b"y", b"z", b"z"]) == 1
    state.delete("s")
    assert state.add_members("s", [b"y"]) == 0


def test_events_are_collected_per_scope_and_dropped_outside():
    emit("probe", "ignored")  # no scope: nothing to collect, no error
    with collect_events() as outer:
        emit("probe", "seen", rows=2)
        with collect_events() as inner:
            emit("probe", "nested")
        emit("probe", "again")
    assert inner == [{"defence": "probe", "event": "nested"}]
    assert [e["event"] for e in outer] == ["seen", "again"]
    assert outer[0]["rows"] == 2


def test_refusals_carry_their_http_status_and_are_target_errors():
    assert issubclass(Refusal, TargetError)
    assert (InputRejected("x").status, RateLimited("x").status, LockedOut("x").status) == (422, 429, 403)
    r = LockedOut("locked until 12:00", detail={"until": 1.0})
    assert r.reason == "locked_out" and r.detail == {"until": 1.0}
    assert Refusal("x", reason="too_big").reason == "too_big"


def test_params_round_trip_and_stateless_defences_are_shared():
    class Blur(Defence):
        policy_key = "blur"

        def __init__(self, sigma=1.0, mode="same"):
            self.sigma = sigma
            self.mode = mode

    blur = Blur(sigma=0.5)
    assert blur.get_params() == {"sigma": 0.5, "mode": "same"}
    assert Blur(**blur.get_params()).get_params() == blur.get_params()
    assert blur.for_client("alice", MemoryState()) is blur
    assert blur.metrics() == {}
