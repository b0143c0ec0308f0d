"""drift_monitor: every window of live rows is tested against the reference; a shift is an event, never a refusal."""
from __future__ import annotations

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget, MemoryState, collect_events
from redline.defences.drift_monitor import DriftMonitor
from redline.errors import DataError, UsageError


@pytest.fixture()
def reference(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ref.npz"
    np.savez(path, x_test=rng.normal(size=(400, 5)).astype(np.float32))
    return path


def model():
    return ArrayTarget(np.random.default_rng(1).normal(size=(5, 3)), np.zeros(3))


def test_clean_windows_pass_and_a_shifted_window_is_reported(reference):
    monitor = DriftMonitor(reference=f"npz:{reference}", window=100)
    defended = DefendedTarget(model(), [monitor])
    rng = np.random.default_rng(5)
    with collect_events() as events:
        for _ in range(3):
            defended.predict(rng.normal(size=(50, 5)))  # 150 rows: one window tested
    assert events == [] and monitor.metrics()["drift_shift_detected"] == 0.0
    assert monitor.metrics()["drift_rows_seen"] == 150 and monitor.metrics()["drift_windows_tested"] == 1
    with collect_events() as events:
        out = defended.predict(rng.normal(loc=1.0, size=(60, 5)))  # crosses 200: tests the last 100 rows
    assert out.shape == (60, 3)  # answered as usual
    assert [e["event"] for e in events] == ["shift_detected"]
    metrics = monitor.metrics()
    assert metrics["drift_shift_detected"] == 1.0 and metrics["drift_p_value"] <= 0.05
    assert metrics["drift_rows_seen"] == 210


def test_workers_share_one_buffer_through_the_state_store(reference):
    store = MemoryState()
    first, second = (DriftMonitor(reference=str(reference), window=40) for _ in range(2))
    workers = [DefendedTarget(model(), [m.for_client(c, store)]) for m, c in ((first, "alice"), (second, "bob"))]
    rng = np.random.default_rng(2)
    with collect_events() as events:
        workers[0].predict(rng.normal(loc=2.0, size=(20, 5)))
        workers[1].predict(rng.normal(loc=2.0, size=(20, 5)))  # the 40th row arrives at the other worker
    assert len(events) == 1 and events[0]["rows_seen"] == 40
    assert first.metrics() == second.metrics() and first.metrics()["drift_shift_detected"] == 1.0


@pytest.mark.parametrize("params, match", [
    ({}, "reference"), ({"reference": "npz:/nonexistent/ref.npz"}, "ref.npz"),
    ({"window": 2}, "window"), ({"alpha": 2.0}, "alpha"),
])
def test_bad_settings(reference, params, match):
    if params:
        params.setdefault("reference", f"npz:{reference}")
    with pytest.raises((UsageError, DataError), match=match):
        DriftMonitor(**params).check(model())


def test_a_reference_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "wide.npz"
    np.savez(path, x_test=np.zeros((50, 7), np.float32))
    with pytest.raises(UsageError, match="shape"):
        DriftMonitor(reference=f"npz:{path}").check(model())
