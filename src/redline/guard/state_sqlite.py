"""A :class:`~redline.defences.state.StateStore` in one SQLite file, shared by every worker
process of a guard on one machine.

Every operation is one transaction; the ones that read and then write (``incr``,
``push``, ``add_members``) start with ``BEGIN IMMEDIATE``, which takes the database's
write lock before reading, so two processes never add to the same stale total. The file
is in WAL mode with ``synchronous=NORMAL``: readers do not wait for the writer, and a
commit reaches the operating system at once (a crashed guard loses nothing) but is synced
to disk at checkpoints only, so a power cut may lose the last moments of counters, which
a rate limiter can afford.

A key holds one kind of value at a time, as in :class:`~redline.defences.state.MemoryState`:
bytes (``set``), a number (``incr``), a list (``push``) or a set (``add_members``); writing
one kind over another replaces it, and reading a key as another kind finds nothing.
Expiry uses the wall clock (``time.time``), which every process shares; an expired key
is removed by the next write that meets it, and keys nobody writes again (an account that
left, a detector's past history) by a sweep on the background thread every minute.

Speed (the guard asks the store several times per request): :meth:`SQLiteState.batch`
lets a caller group the operations of one step (a defence's look at one request) into one
transaction, so the step pays one commit instead of one per operation. Checkpoints, which
copy the WAL into the database file and are the only moments SQLite syncs to disk here,
run once a second on a background thread instead of inside whichever request happens to
fill the WAL (SQLite's default), so no request waits for the disk.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
     "data BLOB, number REAL, expires REAL)"),
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS items_by_key ON items (key, id)",
    "CREATE TABLE IF NOT EXISTS members (key TEXT NOT NULL, member BLOB NOT NULL, PRIMARY KEY (key, member)) WITHOUT ROWID",
)
_BUSY_TIMEOUT_MS = 10_000
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)  # UPDATE ... RETURNING
CHECKPOINT_INTERVAL_S = 1.0
SWEEP_EVERY_CHECKPOINTS = 60  # expired keys are removed once a minute
_SWEEP_KEYS = 2000  # at most this many keys per sweep, so one sweep never holds the write lock long


class SQLiteState:
    """A StateStore in the SQLite file ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL_S):
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()  # one connection per thread (sqlite3's rule)
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            for statement in _SCHEMA:
                db.execute(statement)
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(checkpoint_interval,),
                                              name="guard-state-checkpoint", daemon=True)
        self._checkpointer.start()

    # -- connections and transactions ---------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():  # never reuse one across a fork
            db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread does it, off the request path
            self._local.db, self._local.pid = db, os.getpid()
            with self._all_lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        if getattr(self._local, "batch", None) is not None:  # inside batch(): join its transaction
            if not self._local.batch:
                db.execute("BEGIN IMMEDIATE")
                self._local.batch = True
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run this thread's operations inside the block as one transaction, begun by the
        first write (a block that only reads takes no write lock). What the block wrote
        is committed even when it ends with an exception that is not the store's own (a
        defence refusing a request has already counted it); a failure of SQLite itself
        rolls the whole block back. Blocks do not nest (an inner one joins the outer)."""
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        self._local.batch = False  # False: no write yet; True: a transaction is open
        try:
            yield
        except sqlite3.Error:
            self._end_batch("ROLLBACK")
            raise
        except BaseException:
            self._end_batch("COMMIT")
            raise
        self._end_batch("COMMIT")

    def _end_batch(self, how: str) -> None:
        began, self._local.batch = self._local.batch, None
        if began:
            db = self._db()
            try:
                db.execute(how)
            except sqlite3.Error:
                if how == "COMMIT":
                    db.execute("ROLLBACK")
                raise

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (without waiting for readers or writers)."""
        self._db().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpoint_loop(self, interval: float) -> None:
        rounds = 0
        while not self._closed.wait(interval):
            rounds += 1
            try:
                if rounds % SWEEP_EVERY_CHECKPOINTS == 0:
                    self.sweep()
                self.checkpoint()
            except sqlite3.Error:  # busy or a full disk: the next round tries again
                pass

    def sweep(self, most: int = _SWEEP_KEYS) -> int:
        """Remove up to ``most`` expired keys with their list items and set members; return
        how many. Without it the file would keep every key that is never written again."""
        with self._write() as db:
            expired = [key for (key,) in db.execute(
                "SELECT key FROM entries WHERE expires IS NOT NULL AND expires <= ? LIMIT ?",
                (self.clock(), int(most))).fetchall()]
            for key in expired:
                self._drop(db, key)
        return len(expired)

    def close(self) -> None:
        closed = getattr(self, "_closed", None)
        if closed is not None:
            closed.set()
            if self._checkpointer is not threading.current_thread():
                self._checkpointer.join(timeout=5)
            with contextlib.suppress(sqlite3.Error):
                self.checkpoint()
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._all.clear()
        self._local = threading.local()

    # -- helpers ------------------------------------------------------------------------
    def _kind(self, db: sqlite3.Connection, key: str) -> str | None:
        """The kind of the live value under ``key``; an expired one is removed (inside a write)."""
        row = db.execute("SELECT kind, expires FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] is not None and self.clock() >= row[1]:
            self._drop(db, key)
            return None
        return row[0]

    @staticmethod
    def _drop(db: sqlite3.Connection, key: str) -> None:
        db.execute("DELETE FROM entries WHERE key = ?", (key,))
        db.execute("DELETE FROM items WHERE key = ?", (key,))
        db.execute("DELETE FROM members WHERE key = ?", (key,))

    def _deadline(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + float(ttl)

    def _live_row(self, key: str, kind: str, columns: str):
        return self._db().execute(
            f"SELECT {columns} FROM entries WHERE key = ? AND kind = ? AND (expires IS NULL OR expires > ?)",
            (key, kind, self.clock()),
        ).fetchone()

    # -- the StateStore protocol ----------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        row = self._live_row(key, "bytes", "data")
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._write() as db:
            self._drop(db, key)
            db.execute("INSERT INTO entries (key, kind, data, expires) VALUES (?, 'bytes', ?, ?)",
                       (key, bytes(value), self._deadline(ttl)))

    def delete(self, key: str) -> None:
        with self._write() as db:
            self._drop(db, key)

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        with self._write() as db:
            if _RETURNING:  # a live counter, the usual case, in one statement
                rows = db.execute("UPDATE entries SET number = number + ? WHERE key = ? AND kind = 'number' "
                                  "AND (expires IS NULL OR expires > ?) RETURNING number",
                                  (float(amount), key, self.clock())).fetchall()
                if rows:
                    return float(rows[0][0])
            if self._kind(db, key) == "number":
                db.execute("UPDATE entries SET number = number + ? WHERE key = ?", (float(amount), key))
            else:  # absent, expired or another kind: a new counter, whose window starts now
                self._drop(db, key)
                db.execute("INSERT INTO entries (key, kind, number, expires) VALUES (?, 'number', ?, ?)",
                           (key, float(amount), self._deadline(ttl)))
            return float(db.execute("SELECT number FROM entries WHERE key = ?", (key,)).fetchone()[0])

    def push(self, key: str, values: list[bytes], keep: int, ttl: float | None = None) -> None:
        with self._write() as db:
            if self._kind(db, key) != "list":
                self._drop(db, key)
                db.execute("INSERT INTO entries (key, kind) VALUES (?, 'list')", (key,))
            db.execute("UPDATE entries SET expires = ? WHERE key = ?", (self._deadline(ttl), key))
            db.executemany("INSERT INTO items (key, data) VALUES (?, ?)", [(key, bytes(v)) for v in values])
            # Everything at or below the newest item that falls out of the window: one seek in
            # the (key, id) index and a range delete (a NOT IN over the kept ids read them all).
            db.execute(
                "DELETE FROM items WHERE key = ? AND id <= "
                "(SELECT id FROM items WHERE key = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (key, key, max(0, int(keep))),
            )

    def recent(self, key: str, n: int | None = None) -> list[bytes]:
        if n is not None and n <= 0:
            return []
        rows = self._db().execute(  # one statement, so one consistent read
            "SELECT data FROM (SELECT i.id, i.data FROM items i JOIN entries e ON e.key = i.key "
            "WHERE i.key = ? AND e.kind = 'list' AND (e.expires IS NULL OR e.expires > ?) "
            "ORDER BY i.id DESC LIMIT ?) ORDER BY id",
            (key, self.clock(), -1 if n is None else int(n)),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def append_bytes(self, key: str, data: bytes, keep: int, ttl: float | None = None) -> bytes:
        with self._write() as db:  # the write lock is taken before the read: no append is lost
            row = db.execute("SELECT data FROM entries WHERE key = ? AND kind = 'bytes' AND "
                             "(expires IS NULL OR expires > ?)", (key, self.clock())).fetchone()
            value = ((bytes(row[0]) if row is not None else b"") + bytes(data))[-int(keep):] if keep > 0 else b""
            self._drop(db, key)
            db.execute("INSERT INTO entries (key, kind, data, expires) VALUES (?, 'bytes', ?, ?)",
                       (key, value, self._deadline(ttl)))
        return value

    def add_members(self, key: str, members: list[bytes], ttl: float | None = None) -> int:
        return self.add_member_groups(key, [members], ttl)[0]

    def add_member_groups(self, key: str, groups: list[list[bytes]], ttl: float | None = None) -> list[int]:
        known = []
        with self._write() as db:
            if self._kind(db, key) != "set":
                self._drop(db, key)
                db.execute("INSERT INTO entries (key, kind, expires) VALUES (?, 'set', ?)", (key, self._deadline(ttl)))
            for members in groups:
                unique = {bytes(m) for m in members}
                before = db.total_changes
                db.executemany("INSERT OR IGNORE INTO members (key, member) VALUES (?, ?)", [(key, m) for m in unique])
                known.append(len(unique) - (db.total_changes - before))
        return known

    def __repr__(self) -> str:
        return f"SQLiteState({str(self.path)!r})"
