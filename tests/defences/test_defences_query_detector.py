"""The stateful query-attack detector: flags probing, locks out, spares honest clients and retries."""
from __future__ import annotations

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import (
    Defence,
    DefendedTarget,
    LockedOut,
    MemoryState,
    QueryRefused,
    collect_events,
)
from redline.defences.query_detector import QueryDetector
from redline.errors import UsageError
from redline.targets.base import InputSpec


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1]: 1,797 distinct honest inputs of 64 features."""
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    return x.astype(np.float32)


def digits_target():
    rng = np.random.default_rng(0)
    target = ArrayTarget(rng.normal(size=(64, 10)), rng.normal(size=10), spec="test:digits")
    target.input_spec = InputSpec(shape=(64,), lower=0.0, upper=1.0)
    return target


def detector(target=None, **params) -> QueryDetector:
    d = QueryDetector(**params)
    d.check(target or digits_target())
    return d


def hopskipjump_like(x0: np.ndarray, x_other: np.ndarray, rng, probes: int = 60) -> np.ndarray:
    """The queries of one HopSkipJump round: a bisection between an input and a point of
    another class, then random probes of a small radius around the boundary point found."""
    ts = np.cumsum(0.5 ** np.arange(1, 11))  # bisection steps converging on t = 1
    line = (1 - ts[:, None]) * x_other + ts[:, None] * x0
    boundary = line[-1]
    directions = rng.normal(size=(probes, x0.size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    around = np.clip(boundary + 0.05 * directions, 0, 1)
    return np.concatenate([line, around]).astype(np.float32)


def test_a_hopskipjump_like_probe_sequence_is_flagged_and_locked_out_after_n(digits):
    rng = np.random.default_rng(1)
    probes = hopskipjump_like(digits[0], digits[10], rng)
    scores = detector().score(probes)
    assert np.mean(scores[10:] >= 0.25) > 0.6  # the probes around one point look alike

    defended = DefendedTarget(digits_target(), [detector(lockout_after=3, chained=False)])
    sent = 0
    with collect_events() as events, pytest.raises(LockedOut) as refused:
        for row in probes:
            defended.predict(row[None])
            sent += 1
    flagged = [e for e in events if e["event"] == "flagged"]
    assert len(flagged) == 3 and [e["flags"] for e in flagged] == [1, 2, 3]  # every flag counts
    assert [e["event"] for e in events][-1] == "locked_out"
    assert sent < 30  # detected within the first probes
    assert refused.value.status == 403 and refused.value.detail["retry_after_s"] > 3500
    with pytest.raises(LockedOut):  # everything is refused from now on, even honest inputs
        defended.predict(digits[500:501])


def test_by_default_the_first_chained_flag_locks_the_account_out(digits):
    probes = hopskipjump_like(digits[5], digits[15], np.random.default_rng(3))
    assert QueryDetector().chained is True and QueryDetector().lockout_after == 2
    defended = DefendedTarget(digits_target(), [detector()])
    with collect_events() as events, pytest.raises(LockedOut):
        for row in probes:
            defended.predict(row[None])
    flagged = [e for e in events if e["event"] == "flagged"]
    # the first flagged probe is a lone near-copy (it does not count); the next one is like
    # it, so it chains, and both count: the second flag of the account locks it out
    assert [e.get("chained") for e in flagged] == [False, True]
    assert "flags" not in flagged[0] and flagged[1]["flags"] == 2 and events[-1]["event"] == "locked_out"


def test_unchained_the_second_flag_locks_the_account_out(digits):
    probes = hopskipjump_like(digits[5], digits[15], np.random.default_rng(3))
    defended = DefendedTarget(digits_target(), [detector(chained=False)])
    with collect_events() as events, pytest.raises(LockedOut):
        for row in probes:
            defended.predict(row[None])
    flagged = [e for e in events if e["event"] == "flagged"]
    assert [e["flags"] for e in flagged] == [1, 2] and events[-1]["event"] == "locked_out"
    assert not any("chained" in e for e in flagged)


def test_an_honest_replay_of_test_data_with_repeats_passes(digits):
    rng = np.random.default_rng(2)
    honest = digits[rng.permutation(len(digits))[:600]]
    repeats = honest[rng.integers(0, 600, size=150)]  # retries of inputs already sent
    traffic = np.concatenate([honest, repeats])[rng.permutation(750)]
    d = detector()
    defended = DefendedTarget(digits_target(), [d])
    for start in range(0, len(traffic), 25):
        defended.predict(traffic[start:start + 25])
    m = d.metrics()
    assert m["query_detector_queries"] == 750 and m["query_detector_flagged"] == 0
    assert m["query_detector_lockouts"] == 0
    assert m["query_detector_repeats"] >= 100  # repeats were recognised (some sent before their original)


def test_exact_repeats_are_not_counted_but_near_repeats_are(digits):
    d = detector(lockout_after=2)
    row = digits[3:4]
    scores = np.concatenate([d.score(row) for _ in range(20)])
    assert scores[0] == 0.0 and np.isnan(scores[1:]).all()
    defended = DefendedTarget(digits_target(), [detector(lockout_after=2)])
    for _ in range(20):
        defended.predict(row)  # retries never lock out
    near = row.copy()
    near[0, 20] = 1 - near[0, 20]  # one feature changed, as a patch-wise attack does
    defended.predict(near)  # first flag
    nearer = near.copy()
    nearer[0, 44] = 1 - nearer[0, 44]
    with pytest.raises(LockedOut):
        defended.predict(nearer)


def test_the_lock_out_expires_and_is_audited(digits):
    clock = FakeClock()
    state = MemoryState(clock=clock)
    base = detector(lockout_after=2, lockout_s=600, flag_window_s=60)
    base.clock = clock
    alice = base.for_client("alice", state)
    probes = hopskipjump_like(digits[5], digits[50], np.random.default_rng(4))
    with collect_events() as events, pytest.raises(LockedOut) as refused:
        for row in probes:
            alice.transform_input(row[None])
    assert refused.value.detail["retry_after_s"] == 600
    locked = [e for e in events if e["event"] == "locked_out"]
    assert locked and locked[0]["client"] == "alice" and locked[0]["lockout_s"] == 600
    clock.now += 599
    with pytest.raises(LockedOut) as again:
        alice.transform_input(digits[900:901])
    assert again.value.detail["retry_after_s"] == 1
    clock.now += 2
    alice.transform_input(digits[900:901])  # the lock has expired
    assert base.metrics()["query_detector_lockouts"] == 1
    assert base.metrics()["query_detector_refused"] == 2  # the batch that locked, and the retry


def test_flags_outside_the_window_do_not_add_up(digits):
    clock = FakeClock()
    state = MemoryState(clock=clock)
    d = detector(lockout_after=2, flag_window_s=60).for_client("carol", state)
    probes = hopskipjump_like(digits[7], digits[70], np.random.default_rng(5))[10:]
    flagged = 0
    for row in probes[:30]:
        clock.now += 120  # a slow prober: each flag expires before the next
        d.transform_input(row[None])
    assert state.get("query_detector:carol:locked") is None
    with collect_events() as events:
        for row in probes[30:]:
            clock.now += 120
            d.transform_input(row[None])
        flagged = sum(e["event"] == "flagged" for e in events)
    assert flagged > 10  # flagged all along, never locked out


def test_state_lives_in_the_store_and_survives_a_new_instance(digits):
    state = MemoryState()
    probes = hopskipjump_like(digits[8], digits[80], np.random.default_rng(6))
    first = detector(lockout_after=50).for_client("dave", state)
    first.score(probes[:30])
    # a second worker (a new detector on the same store) sees dave's history...
    second = detector(lockout_after=50).for_client("dave", state)
    assert np.mean(second.score(probes[30:]) >= 0.25) > 0.8
    assert np.isnan(second.score(probes[:1])).all()  # ...including what counts as a repeat
    # ...while another client's history is its own
    erin = detector().for_client("erin", state)
    assert np.nanmax(erin.score(probes[30:31])) == 0.0
    # a lock-out set by one worker holds in the other
    locker = detector(lockout_after=1, chained=False).for_client("dave", state)  # its first flag locks
    with pytest.raises(LockedOut):
        locker.transform_input(np.clip(probes[40:41] + 0.01, 0, 1))
    with pytest.raises(LockedOut):
        detector().for_client("dave", state).transform_input(digits[1000:1001])
    assert all(k.startswith("query_detector:") for k in state._data)


def test_image_inputs_and_params_round_trip(digits):
    target = digits_target()
    target.input_spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
    d = QueryDetector(**detector(target).get_params())
    d.check(target)
    images = digits[:40].reshape(40, 1, 8, 8)
    assert np.nanmax(d.score(images)) < 0.25
    assert d.score(np.clip(images[:1] + 0.01, 0, 1))[0] >= 0.25
    assert QueryDetector.policy_key == "query_detector"


@pytest.mark.parametrize("params", [
    {"threshold": 0}, {"threshold": 1.5}, {"history": 1}, {"lockout_after": 0}, {"lockout_s": -1},
    {"levels": 1}, {"window": 65}, {"window": 0}, {"hashes": 0}, {"band": 2.5}, {"memory_s": "1d"},
])
def test_bad_parameters_are_a_usage_error(params):
    with pytest.raises(UsageError, match="query_detector"):
        detector(**params)


def test_a_model_of_unknown_input_shape_is_refused():
    target = digits_target()
    target.input_spec = InputSpec(shape=(1,))  # what a guard assumes when no input: is stated
    with pytest.raises(UsageError, match="input shape"):
        QueryDetector().check(target)


def test_a_detector_not_checked_against_a_target_says_so():
    with pytest.raises(UsageError, match="check"):
        QueryDetector().score(np.zeros((1, 64)))


def test_two_guard_workers_share_history_and_lock_out_through_sqlite(digits, tmp_path):
    from redline.guard.state_sqlite import SQLiteState

    path = tmp_path / "state.db"
    worker_a, worker_b = SQLiteState(str(path)), SQLiteState(str(path))
    try:
        probes = hopskipjump_like(digits[9], digits[90], np.random.default_rng(7))
        first = detector(lockout_after=3).for_client("frank", worker_a)
        first.score(probes[:40])
        second = detector(lockout_after=3).for_client("frank", worker_b)
        assert np.mean(second.score(probes[40:]) >= 0.25) > 0.8  # worker b sees what a recorded
        with pytest.raises(LockedOut):
            for row in probes[10:]:
                second.transform_input(np.clip(row[None] + 0.004, 0, 1))
        with pytest.raises(LockedOut):  # and worker a sees the lock-out b set
            first.transform_input(digits[1200:1201])
    finally:
        worker_a.close()
        worker_b.close()


def retakes(digits, n: int, rng) -> np.ndarray:
    """An honest stream: ``n`` distinct inputs, each followed by a re-take of itself (the same
    picture again, slightly brighter): one near-copy per input, never a chain of them."""
    rows = []
    for x in digits[:n]:
        rows += [x, np.clip(x + 0.02, 0, 1)]
    return np.asarray(rows, np.float32)


def test_by_default_single_retakes_are_spared_but_probe_chains_locked_out(digits):
    stream = retakes(digits, 20, np.random.default_rng(0))
    spared = DefendedTarget(digits_target(), [detector()])
    with collect_events() as events:
        for row in stream:
            spared.predict(row[None])
    flagged = [e for e in events if e["event"] == "flagged"]
    assert len(flagged) >= 2 and not any(e["chained"] for e in flagged)  # flagged, never chained
    assert not [e for e in events if e["event"] == "locked_out"]

    probes = hopskipjump_like(digits[5], digits[15], np.random.default_rng(3))
    defended = DefendedTarget(digits_target(), [detector()])
    sent = 0
    with collect_events() as events, pytest.raises(LockedOut):
        for row in probes:
            defended.predict(row[None])
            sent += 1
    assert sent < 30 and [e for e in events if e["event"] == "flagged"][-1]["chained"] is True
    with pytest.raises(UsageError):
        detector(chained="yes")


def test_chained_false_restores_the_old_lock_out_of_retaking_clients(digits):
    stream = retakes(digits, 20, np.random.default_rng(0))
    plain = DefendedTarget(digits_target(), [detector(chained=False)])
    sent = 0
    with collect_events() as events, pytest.raises(LockedOut):  # two re-takes are two flags: a lock-out
        for row in stream:
            plain.predict(row[None])
            sent += 1
    assert [e["flags"] for e in events if e["event"] == "flagged"] == [1, 2] and sent < len(stream)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_only_two_history_generations_are_kept_however_long_the_account_asks(digits, batch):
    # history 40: generations of 20 queries; the store must not keep the older ones
    state = MemoryState()
    d = detector(history=40, lockout_after=10_000).for_client("busy", state)
    sent = 0
    for start in range(0, 600, batch):
        sent += len(d.score(digits[start:start + batch]))
    generations = sorted(int(k.rsplit(":", 1)[1]) for k in state._data if k.startswith("query_detector:busy:h:"))
    assert generations == [(sent - 1) // 20 - 1, (sent - 1) // 20]
    # the scoring is unchanged: a repeat of one of the last 20 queries is still known
    assert np.isnan(d.score(digits[sent - 3:sent - 2])).all()


# -- refuse_flagged: a flagged query is not answered -------------------------------------------------
class ModelSide(Defence):
    """Next to the model: counts the rows that reach it."""

    def __init__(self):
        self.rows = 0

    def transform_input(self, x):
        self.rows += len(x)
        return x


def near_copy(row: np.ndarray, feature: int) -> np.ndarray:
    """``row`` with one feature flipped across the range, as a patch-wise attack changes it."""
    out = row.copy()
    out[0, feature] = 1 - out[0, feature]
    return out


def test_refuse_flagged_refuses_a_near_copy_without_telling_the_score(digits):
    assert QueryDetector().refuse_flagged is False
    model = ModelSide()
    defended = DefendedTarget(digits_target(), [model, detector(refuse_flagged=True)])
    row = digits[3:4]
    defended.predict(row)
    with collect_events() as events, pytest.raises(QueryRefused) as refused:
        defended.predict(near_copy(row, 20))
    assert refused.value.status == 403 and refused.value.reason == "similar_query"
    message = str(refused.value)
    assert "too like a recent query" in message and "0.25" not in message and "score" not in message
    assert [e["event"] for e in events] == ["flagged", "refused"]
    assert model.rows == 1 and defended.ledger.total == 1  # neither answered nor charged
    defended.predict(digits[500:501])  # an unrelated honest query is answered
    for _ in range(5):
        defended.predict(row)  # exact repeats of an answered query are never refused
    assert model.rows == 7


def test_without_refuse_flagged_the_same_near_copy_is_answered(digits):
    defended = DefendedTarget(digits_target(), [detector()])
    row = digits[3:4]
    defended.predict(row)
    with collect_events() as events:
        defended.predict(near_copy(row, 20))
    assert [e["event"] for e in events] == ["flagged"]


def test_a_refused_query_is_remembered_and_its_exact_resend_is_refused_too(digits):
    state = MemoryState()
    d = detector(refuse_flagged=True, lockout_after=50)
    alice = d.for_client("alice", state)
    row = digits[3:4]
    alice.transform_input(row)
    probe = near_copy(row, 20)
    with pytest.raises(QueryRefused):
        alice.transform_input(probe)
    # its fingerprint is in the history: a near-copy of the *refused* probe (one more feature
    # changed, far from the original in that feature) scores high against it
    shadow_state = MemoryState()
    shadow = detector().for_client("alice", shadow_state)
    shadow.score(row)
    further = near_copy(probe, 44)
    without_probe = shadow.score(further)[0]
    assert alice.score(further)[0] > without_probe
    # the same bytes again are not a harmless retry: refused again, and not a new flag
    with collect_events() as events, pytest.raises(QueryRefused):
        alice.transform_input(probe)
    assert [e["event"] for e in events] == ["refused"]
    assert d.metrics()["query_detector_withheld"] == 2 and d.metrics()["query_detector_flagged"] == 1


def test_one_flagged_row_refuses_the_whole_batch_naming_it_only_in_the_audit(digits):
    model = ModelSide()
    defended = DefendedTarget(digits_target(), [model, detector(refuse_flagged=True)])
    defended.predict(digits[3:4])
    batch = np.concatenate([digits[600:603], near_copy(digits[3:4], 20), digits[700:702]])
    with collect_events() as events, pytest.raises(QueryRefused) as refused:
        defended.predict(batch)
    # the client learns nothing of which variant crossed the threshold; the operator does
    assert not refused.value.detail and "row" not in str(refused.value) and "3" not in str(refused.value)
    assert [e["rows"] for e in events if e["event"] == "refused"] == [[3]]
    assert model.rows == 1  # no row of the refused batch reached the model
    # the client sends the other rows again: exact repeats of unflagged rows, answered
    assert len(defended.predict(np.delete(batch, 3, axis=0))) == 5


def test_a_refused_query_stays_refused_after_the_history_has_moved_on(digits):
    # The history keeps the last `history` queries; the refusal is kept for memory_s.
    d = detector(refuse_flagged=True, history=8)
    alice = d.for_client("alice", MemoryState())
    alice.transform_input(digits[3:4])
    probe = near_copy(digits[3:4], 20)
    with pytest.raises(QueryRefused):
        alice.transform_input(probe)
    for k in range(40):  # unrelated honest queries push the probe out of the history
        alice.transform_input(digits[100 + k:101 + k])
    with pytest.raises(QueryRefused):
        alice.transform_input(probe)


def test_refusing_flagged_queries_leaves_flag_counting_and_lock_out_as_they_were(digits):
    probes = hopskipjump_like(digits[5], digits[15], np.random.default_rng(3))

    def run(refuse):
        defended = DefendedTarget(digits_target(), [detector(refuse_flagged=refuse)])
        sent = refusals = 0
        with collect_events() as events, pytest.raises(LockedOut):
            for row in probes:
                sent += 1
                try:
                    defended.predict(row[None])
                except QueryRefused:
                    refusals += 1
        return sent, [(e["event"], e.get("flags")) for e in events if e["event"] != "refused"], refusals

    plain, refusing = run(False), run(True)
    assert plain[:2] == refusing[:2]  # locked out at the same query, after the same flags
    assert plain[2] == 0 and refusing[2] == 1  # the first (unchained) flag was refused, not answered


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_refuse_flagged_must_be_a_bool(value):
    with pytest.raises(UsageError, match="refuse_flagged must be true or false"):
        detector(refuse_flagged=value)
