"""What keeps the guard's request path short: one SQLite transaction per side of a request,
checkpoints off the request path, a deadline thread woken only when it must be, and
POST /predict served outside FastAPI's routing (other methods still get 405)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time

import numpy as np
import pytest
from guard_testkit import HTTP, KEY_ALICE, ModelEndpoint, launch

from redline.defences.base import Defence, LockedOut
from redline.guard.runtime import GuardedModel
from redline.guard.state_sqlite import SQLiteState
from redline.guard.transport import _Watchdog
from redline.targets.base import InputSpec, Target


def _peek(path, key):
    """``key``'s number as another connection (another worker) sees it now."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        row = other.execute("SELECT number FROM entries WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def test_a_batch_is_one_transaction_kept_when_a_refusal_ends_it(tmp_path):
    store = SQLiteState(tmp_path / "s.db")
    try:
        with store.batch():
            store.incr("a", 2)
            store.add_members("set", [b"x", b"y"])
            assert _peek(tmp_path / "s.db", "a") is None  # not committed yet: one transaction
            assert store.incr("a", 1) == 3  # the block sees its own writes
        assert _peek(tmp_path / "s.db", "a") == 3
        with pytest.raises(LockedOut), store.batch():
            store.incr("a", 1)
            raise LockedOut("refused after counting")
        assert _peek(tmp_path / "s.db", "a") == 4  # a refusal keeps what was counted
        with pytest.raises(sqlite3.OperationalError), store.batch():
            store.incr("a", 1)
            raise sqlite3.OperationalError("disk I/O error")
        assert _peek(tmp_path / "s.db", "a") == 4  # the store's own failure rolls the block back
        assert store.incr("a", 0) == 4  # and the connection is usable after it
    finally:
        store.close()


def test_checkpoints_run_on_their_own_thread(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteState(path, checkpoint_interval=0.05)
    try:
        before = path.stat().st_size
        with store.batch():
            for i in range(300):
                store.set(f"k{i}", bytes(2000))
        deadline = time.monotonic() + 10
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > before  # the WAL reached the database file without a request doing it
    finally:
        store.close()


class _Model(Target):
    spec = "fake"
    input_spec = InputSpec(shape=(2,))
    n_classes = 2

    def __init__(self, store):
        super().__init__()
        self.store, self.in_batch = store, []

    def _predict(self, x):
        self.in_batch.append(self.store.depth)
        return np.tile([0.25, 0.75], (len(x), 1))


class _Watcher(Defence):
    name = "watcher"

    def __init__(self, store):
        self.store, self.seen = store, []

    def transform_input(self, x):
        self.seen.append(("in", self.store.depth))
        return x

    def transform_output(self, x, scores):
        self.seen.append(("out", self.store.depth))
        return scores


class _CountingStore:
    def __init__(self):
        self.depth = 0

    @contextlib.contextmanager
    def batch(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def test_defences_run_in_batches_but_the_model_outside_them():
    store = _CountingStore()
    model, watchers = _Model(store), [_Watcher(store), _Watcher(store)]
    out = GuardedModel(model, watchers, store).predict(np.zeros((3, 2)))
    assert out.shape == (3, 2)
    assert model.in_batch == [0]  # no write lock held while the model answers
    for watcher in watchers:
        assert watcher.seen == [("in", 1), ("out", 1)]
    # a store without batches (memory, Redis) works as before
    assert GuardedModel(_Model(store), [], None).predict(np.zeros((1, 2))).shape == (1, 2)


class _SlowCommitStore:
    """A store whose batches take 0.3 s to commit, noting how many requests the model had
    received by then; ``fail`` makes the commit fail instead."""

    def __init__(self, endpoint):
        self.endpoint, self.seen_at_commit, self.fail = endpoint, [], False

    @contextlib.contextmanager
    def batch(self):
        yield
        time.sleep(0.3)
        self.seen_at_commit.append(self.endpoint.requests)
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")


def test_the_request_to_the_model_overlaps_the_commit_and_a_failed_commit_drops_its_answer():
    from redline.guard.upstream import Upstream

    with ModelEndpoint() as endpoint:
        upstream = Upstream(endpoint.url, timeout=5, input_spec=InputSpec(shape=(4,)))
        store = _SlowCommitStore(endpoint)
        model = GuardedModel(upstream, [], store)
        out = model.predict(np.full((2, 4), 0.5))
        assert out.shape == (2, 3) and np.allclose(out, endpoint.probabilities(np.full((2, 4), 0.5)))
        # the model had the request while the defences' writes were being committed
        assert store.seen_at_commit[0] == 1
        store.fail = True
        with pytest.raises(sqlite3.OperationalError):
            model.predict(np.full((1, 4), 0.5))
        assert endpoint.requests == 2  # sent, then given up with its connection
        assert upstream._pool._local.conn is None
        store.fail = False
        assert model.predict(np.full((1, 4), 0.25)).shape == (1, 3)  # a fresh connection serves the next


def test_an_earlier_deadline_still_wakes_the_watchdog():
    watchdog = _Watchdog()
    late_a, late_b = socket.socketpair()
    soon_a, soon_b = socket.socketpair()
    try:
        late = watchdog.watch(late_a, time.monotonic() + 60)
        soon = watchdog.watch(soon_a, time.monotonic() + 0.2)  # earlier than the one it sleeps for
        soon_b.settimeout(5)
        started = time.monotonic()
        assert soon_a.recv(1) == b""  # shut down at its deadline
        assert time.monotonic() - started < 4
        assert watchdog.release(soon) is True and watchdog.release(late) is False
    finally:
        for s in (late_a, late_b, soon_a, soon_b):
            s.close()


def test_post_predict_skips_fastapi_but_other_methods_still_get_405(tmp_path):
    with ModelEndpoint() as model:
        guard = launch(tmp_path, "version: 1\n", model.url)
        try:
            ok = HTTP.post(guard.url + "/predict", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]},
                           headers={"X-API-Key": KEY_ALICE})
            assert ok.status_code == 200 and "probabilities" in ok.json()
            assert ok.headers["content-type"] == "application/json" and len(ok.headers["x-request-id"]) == 32
            assert HTTP.get(guard.url + "/predict").status_code == 405
            assert HTTP.get(guard.url + "/healthz").json()["status"] == "ok"
            refused = HTTP.post(guard.url + "/predict", content=b"{}", headers={"X-API-Key": "wrong-key-0123456789"})
            assert refused.status_code == 401 and refused.json()["reason"] == "unauthorized"
        finally:
            guard.__exit__(None, None, None)


def test_the_server_freezes_its_start_up_objects_before_serving(monkeypatch, tmp_path):
    import gc

    import uvicorn

    from redline.guard import server
    from redline.guard.runtime import GuardOptions

    frozen_when_served = []

    class _Server:
        def __init__(self, config):
            self.started = True

        def run(self):
            frozen_when_served.append(gc.get_freeze_count())

    monkeypatch.setattr(server, "build", lambda options: server.Built(app=None, guard=None, audit=None,
                                                                       state=None, state_url="memory"))
    monkeypatch.setattr(server, "uvicorn_config", lambda *args, **kwargs: None)
    monkeypatch.setattr(uvicorn, "Server", _Server)
    gc.unfreeze()
    try:
        server.serve(GuardOptions(), "127.0.0.1:8100")
    finally:
        gc.unfreeze()
    assert frozen_when_served and frozen_when_served[0] > 1000


def test_audit_appends_do_not_wait_for_a_sync(tmp_path, monkeypatch):
    import threading

    from redline.guard import audit as audit_module

    log = audit_module.AuditLog(tmp_path / "audit.jsonl", fsync_interval=3600)
    real_fsync, syncing = os.fsync, threading.Event()

    def slow_fsync(fd):
        syncing.set()
        time.sleep(0.5)  # a slow disk
        real_fsync(fd)

    monkeypatch.setattr(audit_module.os, "fsync", slow_fsync)
    try:
        log.record(status=200)
        flusher = threading.Thread(target=log.flush)
        flusher.start()
        assert syncing.wait(5)
        started = time.monotonic()
        log.record(status=201)  # during the sync
        assert time.monotonic() - started < 0.25
        flusher.join()
        log.flush()  # the record written during the sync is synced by the next one
        assert not log._dirty
    finally:
        log.close()
    statuses = [json.loads(line)["status"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert statuses == [200, 201]
