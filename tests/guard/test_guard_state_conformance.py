"""One conformance suite for every StateStore: MemoryState (the reference), SQLite and Redis.

Each test runs against the three stores and states one rule of the protocol in
redline.defences.state; the cross-process tests run against the two shared stores.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from redline.defences.state import MemoryState
from redline.guard.state_redis import RedisState
from redline.guard.state_sqlite import SQLiteState

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(params=["memory", "sqlite", "sqlite-before-3.35", "redis"])
def store(request, tmp_path, monkeypatch):
    if request.param == "memory":
        yield MemoryState()
        return
    if request.param.startswith("sqlite"):
        if request.param == "sqlite-before-3.35":  # the statements for a SQLite without RETURNING
            monkeypatch.setattr("redline.guard.state_sqlite._RETURNING", False)
        made = SQLiteState(tmp_path / "state.db")
    else:
        made = RedisState(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex}:")
    yield made
    made.close()


def test_set_get_delete(store):
    assert store.get("k") is None
    store.set("k", b"v1")
    assert store.get("k") == b"v1"
    store.set("k", b"\x00\xffbinary")
    assert store.get("k") == b"\x00\xffbinary"
    store.delete("k")
    assert store.get("k") is None
    store.delete("never-there")  # no error


def test_values_expire_after_their_ttl_and_set_without_ttl_keeps_forever(store):
    store.set("short", b"x", ttl=0.25)
    store.set("long", b"y", ttl=0.25)
    store.set("long", b"z")  # replaced without a ttl: no longer expires
    assert store.get("short") == b"x"
    time.sleep(0.4)
    assert store.get("short") is None
    assert store.get("long") == b"z"


def test_incr_adds_floats_and_starts_at_zero(store):
    assert store.incr("n") == 1.0
    assert store.incr("n", 2.5) == 3.5
    assert store.incr("n", -0.5) == 3.0
    assert store.incr("n", 0.1) + 0.0 == 3.0 + 0.1  # exact float arithmetic survives storage
    assert isinstance(store.incr("n", 0), float)


def test_counter_window_is_fixed_when_the_key_is_created(store):
    assert store.incr("w", ttl=0.4) == 1.0
    time.sleep(0.2)
    assert store.incr("w", ttl=0.4) == 2.0  # the ttl is not renewed by later additions
    time.sleep(0.3)
    assert store.incr("w", ttl=0.4) == 1.0  # a new window


def test_push_keeps_the_last_values_oldest_first(store):
    store.push("h", [b"a", b"b"], keep=3)
    store.push("h", [b"c", b"d"], keep=3)
    assert store.recent("h") == [b"b", b"c", b"d"]
    assert store.recent("h", 2) == [b"c", b"d"]
    assert store.recent("h", 10) == [b"b", b"c", b"d"]
    assert store.recent("h", 0) == []
    assert store.recent("missing") == []
    store.push("h", [b"e"], keep=2)  # a smaller keep trims what is there
    assert store.recent("h") == [b"d", b"e"]
    store.delete("h")
    assert store.recent("h") == []


def test_a_list_with_a_ttl_expires_that_long_after_its_last_push(store):
    store.push("idle", [b"a"], keep=5, ttl=0.3)
    store.push("kept", [b"k"], keep=5, ttl=0.3)
    time.sleep(0.2)
    store.push("kept", [b"l"], keep=5, ttl=0.3)  # a push renews it
    assert store.recent("idle") == [b"a"]
    time.sleep(0.2)
    assert store.recent("idle") == []
    assert store.recent("kept") == [b"k", b"l"]
    store.push("kept", [b"m"], keep=5)  # pushed without a ttl: kept for good
    time.sleep(0.4)
    assert store.recent("kept") == [b"k", b"l", b"m"]


def test_append_bytes_keeps_the_last_bytes_and_returns_them(store):
    assert store.append_bytes("w", b"abc", keep=5) == b"abc"
    assert store.append_bytes("w", b"defg", keep=5) == b"cdefg"
    assert store.get("w") == b"cdefg"  # plain bytes: get reads them
    assert store.append_bytes("w", b"", keep=3) == b"efg"  # a smaller keep trims what is there
    assert store.append_bytes("w", b"xy", keep=0) == b""
    store.set("b", b"12")
    assert store.append_bytes("b", b"3", keep=10) == b"123"
    store.incr("n")  # another kind is replaced, as by set
    assert store.append_bytes("n", b"\x00\xff", keep=10) == b"\x00\xff"
    store.push("l", [b"a"], keep=3)
    assert store.append_bytes("l", b"z", keep=10) == b"z" and store.recent("l") == []


def test_append_bytes_expires_that_long_after_the_last_append(store):
    store.append_bytes("idle", b"a", keep=8, ttl=0.3)
    store.append_bytes("kept", b"k", keep=8, ttl=0.3)
    time.sleep(0.2)
    assert store.append_bytes("kept", b"l", keep=8, ttl=0.3) == b"kl"  # renewed
    time.sleep(0.2)
    assert store.get("idle") is None and store.append_bytes("idle", b"b", keep=8) == b"b"  # expired: a new one
    assert store.get("kept") == b"kl"


def test_add_members_counts_the_ones_already_present(store):
    assert store.add_members("s", [b"x", b"y"]) == 0
    assert store.add_members("s", [b"y", b"z", b"z"]) == 1  # duplicates in one call count once
    assert store.add_members("s", [b"x", b"y", b"z"]) == 3
    store.delete("s")
    assert store.add_members("s", [b"y"]) == 0


def test_member_groups_count_each_group_against_the_set_and_the_groups_before_it(store):
    assert store.add_member_groups("g", [[b"x", b"y"], [b"y", b"z", b"z"], [], [b"x", b"q"]]) == [0, 1, 0, 1]
    assert store.add_member_groups("g", [[b"q", b"z"]]) == [2]
    assert store.add_members("g", [b"x", b"new"]) == 1  # one set, whichever call wrote it
    assert store.add_member_groups("g", []) == []
    store.set("g", b"bytes")
    assert store.add_member_groups("g", [[b"x"]]) == [0]  # bytes are not a set: a new set
    assert store.add_member_groups("h", [[b"a"]], ttl=0.3) == [0]
    time.sleep(0.4)
    assert store.add_member_groups("h", [[b"a"]]) == [0]


def test_a_set_expires_with_the_ttl_given_when_it_was_created(store):
    assert store.add_members("s", [b"a"], ttl=0.3) == 0
    time.sleep(0.15)
    assert store.add_members("s", [b"a"], ttl=10) == 1  # the later ttl does not renew it
    time.sleep(0.25)
    assert store.add_members("s", [b"a"]) == 0


def test_one_kind_written_over_another_replaces_it(store):
    store.set("k", b"bytes")
    assert store.incr("k") == 1.0  # bytes are not a number: a new counter
    assert store.get("k") is None  # and the key no longer holds bytes
    store.push("k", [b"a"], keep=5)
    assert store.recent("k") == [b"a"]
    assert store.incr("k", 2) == 2.0
    assert store.recent("k") == []
    assert store.add_members("k", [b"m"]) == 0
    store.set("k", b"again")
    assert store.get("k") == b"again"
    assert store.add_members("k", [b"m"]) == 0  # the old set is gone


def test_keys_are_independent(store):
    store.set("a", b"1")
    store.incr("b", 5)
    store.push("c", [b"x"], keep=1)
    store.add_members("d", [b"y"])
    store.delete("a")
    assert store.incr("b", 0) == 5.0
    assert store.recent("c") == [b"x"]
    assert store.add_members("d", [b"y"]) == 1


def test_incr_and_add_members_are_atomic_across_threads(store):
    def work(i):
        for j in range(200):
            store.incr("n")
            store.add_members("s", [b"%d" % j])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert store.incr("n", 0) == 800.0
    assert store.add_members("s", [b"%d" % j for j in range(200)]) == 200


def test_append_bytes_loses_no_append_across_threads(store):
    def work(i):
        for j in range(100):
            store.append_bytes("window", bytes([i]) * 4, keep=10_000)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    value = store.get("window")
    assert len(value) == 1600 and all(value.count(bytes([i]) * 4) >= 100 for i in range(4))


_WORKER = textwrap.dedent("""
    import sys
    kind, where, prefix = sys.argv[1:4]
    if kind == "sqlite":
        from redline.guard.state_sqlite import SQLiteState
        store = SQLiteState(where)
    else:
        from redline.guard.state_redis import RedisState
        store = RedisState(where, prefix=prefix)
    already = 0
    for i in range(150):
        store.incr("shared")
        already += store.add_members("members", [b"m%d" % i])
        store.push("log", [b"x"], keep=1000)
        store.append_bytes("window", b"abcd", keep=100_000)
    print(already)
""")


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_shared_stores_are_atomic_across_processes(kind, tmp_path, request):
    if kind == "sqlite":
        where, prefix = str(tmp_path / "shared.db"), ""
        store = SQLiteState(where)
    else:
        where, prefix = request.getfixturevalue("redis_url"), f"p{uuid.uuid4().hex}:"
        store = RedisState(where, prefix=prefix)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, kind, where, prefix], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert store.incr("shared", 0) == 450.0  # no lost update among 3 processes
    # each member m0..m149 was added 3 times: every add but the first found it present
    assert sum(int(o) for o in outputs) == 300
    assert len(store.recent("log")) == 450
    assert store.get("window") == b"abcd" * 450  # no append lost among 3 processes
    store.close()


def test_sqlite_store_is_shared_by_two_handles_on_one_file(tmp_path):
    first, second = SQLiteState(tmp_path / "s.db"), SQLiteState(tmp_path / "s.db")
    first.set("k", b"v", ttl=30)
    assert second.get("k") == b"v"
    second.incr("n", 2)
    assert first.incr("n", 1) == 3.0
    first.close()
    second.close()


def test_sqlite_store_expires_by_its_clock(tmp_path):
    now = [1000.0]
    store = SQLiteState(tmp_path / "c.db", clock=lambda: now[0])
    store.set("k", b"v", ttl=10)
    now[0] = 1009.99
    assert store.get("k") == b"v"
    now[0] = 1010.0  # as MemoryState: expired once the clock reaches the deadline
    assert store.get("k") is None
    store.close()


def test_sqlite_sweep_removes_expired_keys_nobody_writes_again(tmp_path):
    import sqlite3

    now = [1000.0]
    store = SQLiteState(tmp_path / "w.db", clock=lambda: now[0])
    for i in range(30):
        store.add_members(f"history:{i}", [b"a", b"b"], ttl=10)
        store.push(f"list:{i}", [b"x"], keep=5)  # no ttl: kept
        store.incr(f"count:{i}", 1, ttl=100)
    now[0] = 1050.0
    assert store.sweep(most=20) == 20 and store.sweep() == 10 and store.sweep() == 0
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("SELECT COUNT(*) FROM members").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM entries WHERE key LIKE 'history:%'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 30
    assert store.incr("count:3", 0) == 1.0 and store.recent("list:3") == [b"x"]  # live keys untouched
    store.close()
