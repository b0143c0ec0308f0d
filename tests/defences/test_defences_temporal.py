"""temporal: a label flip on a nearly unchanged input is smoothed or flagged, per client, via the state store."""
from __future__ import annotations

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget, MemoryState, collect_events
from redline.defences.temporal import Temporal
from redline.errors import UsageError


def threshold_model():
    """Two classes split at feature 0 = 0 (inputs in [-10, 10], so a range of 20)."""
    return ArrayTarget(np.array([[5.0, -5.0], [0.0, 0.0]]), np.zeros(2))


def stream(*firsts):
    return np.array([[f, 0.0] for f in firsts])


def test_a_flip_on_a_tiny_step_is_smoothed_until_the_window_agrees():
    model = threshold_model()
    defended = DefendedTarget(model, [Temporal(window=5, max_input_change=0.05, action="smooth")])
    # 0.3 -> -0.3 moves feature 0 by 3% of its range (RMS over 2 features: 2.1%): suspect.
    with collect_events() as events:
        labels = [int(defended.predict(stream(v)).argmax(1)[0]) for v in (0.3, 0.3, 0.3, -0.3, -0.3, -0.3, -0.3)]
    assert labels == [0, 0, 0, 0, 0, 1, 1]  # held while most of the window said 0, then let through
    assert [e["event"] for e in events] == ["smoothed", "smoothed"]
    settled = defended.predict(stream(-0.3))  # once let through, the model's own answer again
    np.testing.assert_allclose(settled, model._predict(stream(-0.3)), rtol=1e-6)


def test_a_big_change_of_input_changes_the_label_at_once():
    defended = DefendedTarget(threshold_model(), [Temporal(max_input_change=0.05)])
    with collect_events() as events:
        labels = [int(defended.predict(stream(v)).argmax(1)[0]) for v in (3.0, -3.0)]
    assert labels == [0, 1] and events == []


def test_flag_answers_as_the_model_and_records_the_flip():
    defended = DefendedTarget(threshold_model(), [Temporal(action="flag")])
    with collect_events() as events:
        out = defended.predict(stream(0.3, -0.3, -0.3))  # rows of a batch are the stream in order
    assert list(out.argmax(1)) == [0, 1, 1]
    assert len(events) == 1 and events[0]["event"] == "flip" and events[0]["from"] == 0


def test_linf_and_l2_measure_the_step_differently():
    wide = np.array([[0.0] * 8])
    model8 = ArrayTarget(np.vstack([[5.0, -5.0], np.zeros((7, 2))]), np.zeros(2))
    for norm, expected in (("l2", 0.03 / np.sqrt(8)), ("linf", 0.03)):
        t = Temporal(norm=norm)
        t.check(model8)
        step = wide.copy()
        step[0, 0] = 0.6
        assert t.change(step, wide) == pytest.approx(expected)


def test_clients_have_separate_streams_kept_in_the_shared_store():
    store = MemoryState()
    policy = Temporal(window=3, action="smooth")
    policy.check(threshold_model())
    alice = DefendedTarget(threshold_model(), [policy.for_client("alice", store)])
    bob = DefendedTarget(threshold_model(), [policy.for_client("bob", store)])
    alice.predict(stream(0.3))
    assert int(bob.predict(stream(-0.3)).argmax(1)[0]) == 1  # bob's first input: nothing to compare with
    # A second worker bound to alice with the same store continues her stream.
    alice_again = DefendedTarget(threshold_model(), [policy.for_client("alice", store)])
    assert int(alice_again.predict(stream(-0.3)).argmax(1)[0]) == 0
    assert store.get("temporal:alice:input") is not None and store.get("temporal:bob:input") is not None


def test_a_stream_expires_after_the_session_ttl():
    clock = [0.0]
    store = MemoryState(clock=lambda: clock[0])
    policy = Temporal(session_ttl=60)
    policy.check(threshold_model())
    defended = DefendedTarget(threshold_model(), [policy.for_client("c", store)])
    defended.predict(stream(0.3))
    clock[0] = 61.0
    assert int(defended.predict(stream(-0.3)).argmax(1)[0]) == 1


def test_labels_only_models_are_smoothed_as_labels():
    model = threshold_model()
    model.capabilities = model.capabilities.__class__(outputs="labels")
    defended = DefendedTarget(model, [Temporal(window=3)])
    assert [int(defended.predict(stream(v))[0]) for v in (0.3, 0.3, -0.3)] == [0, 0, 0]


@pytest.mark.parametrize("params, match", [
    ({"window": 1}, "window"), ({"max_input_change": 0}, "max_input_change"), ({"norm": "l1"}, "norm"),
    ({"action": "drop"}, "action"), ({"session_ttl": -1}, "session_ttl"),
])
def test_bad_settings(params, match):
    with pytest.raises(UsageError, match=match):
        Temporal(**params).check(threshold_model())
