"""The journal of a campaign: finished jobs by key, in SQLite (WAL mode).

Each finished job is one committed row, so a driver killed at any moment (SIGKILL
included) leaves every job either recorded whole or not at all; ``--resume`` runs the
ones that are not. Only the driver writes; workers return their results to it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError

JOURNAL_FILE = "campaign.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    check_id TEXT NOT NULL,
    seed INTEGER NOT NULL,
    result TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    notes TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished_at TEXT NOT NULL
);
"""


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def open(self, fingerprint: str, *, resume: bool) -> Journal:
        """Open (creating) the journal of the campaign ``fingerprint``.

        Without ``resume`` a journal holding finished jobs is refused (its work would be
        lost); with it, a journal of another campaign is refused (two would be mixed)."""
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a committed job survives a power cut too
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if _storage_error(exc) is not None:  # a full disk at the start, before any job: as an unwritable --out
                raise UsageError(f"cannot write {self.path}: {exc}") from None
            raise UsageError(f"{self.path} is not a campaign journal ({exc})") from None
        self._db = db
        done = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        row = db.execute("SELECT value FROM meta WHERE name = 'fingerprint'").fetchone()
        if done and not resume:
            self.close()
            raise UsageError(f"{self.path.parent} already holds a campaign with {done} finished job(s); "
                             "pass --resume to continue it, or choose another --out")
        if row is not None and row[0] != fingerprint and (resume or done):
            self.close()
            raise UsageError(f"{self.path.parent} holds another campaign (the campaign file changed); "
                             "resume with the same file, or choose another --out")
        with db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
        return self

    def meta(self, name: str, default: str) -> str:
        """A campaign-wide value, set to ``default`` the first time it is asked for."""
        db = self._conn()
        with db:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (name, default))
        return db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._writing(), self._conn() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def finished(self) -> dict[str, dict[str, Any]]:
        """Finished jobs by key: their result, attempts and notes."""
        rows = self._conn().execute("SELECT key, result, attempts, notes, seconds FROM jobs").fetchall()
        return {key: {"result": json.loads(result), "attempts": attempts, "notes": json.loads(notes), "seconds": seconds}
                for key, result, attempts, notes, seconds in rows}

    def record(self, job: Any, result: dict[str, Any], *, attempts: int, notes: list[str], seconds: float,
               finished_at: str) -> None:
        """Record a finished job in one transaction; a job already recorded keeps its first row.
        A full disk raises OutputError (the job stays unrecorded, for --resume to run)."""
        with self._writing(), self._conn() as db:
            db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job.key, job.target, job.check, job.seed, json.dumps(result, sort_keys=True), attempts,
                        json.dumps(notes), float(seconds), finished_at))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            code = _storage_error(exc)
            if code is None:
                raise
            raise OutputError(code, str(exc), str(self.path)) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is not open")
        return self._db


# SQLite's result codes (the low byte of the extended code) that say the storage failed, as OS errors.
_STORAGE_CODES = {13: errno.ENOSPC, 10: errno.EIO, 8: errno.EROFS}  # SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY


def _storage_error(exc: sqlite3.Error) -> int | None:
    """The OS error number for an SQLite error that says the disk is full or failing, else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else _STORAGE_CODES.get(code & 0xFF)
