"""The guard's audit log: one JSON line per decision, appended, never rewritten.

A record says when (``time``, UTC), who (``client``: the client's name, never its key;
``null`` when no key matched), what was decided (``status``, ``reason``), how much
(``rows``), what the defences recorded (``events``, from
:func:`~redline.defences.base.collect_events`), how long it took (``latency_ms``), under
which policy (``policy``: the start of its file's SHA-256) and the ``request_id`` the
client got in its ``X-Request-Id`` header.

Durability: each record is one ``write`` to a file opened with ``O_APPEND``, made as the
decision is answered, so records of several worker processes never interleave and a
crash of the guard loses none that were answered. The file is ``fsync``-ed at most once a
second by a background thread (``fsync_interval``), without holding up appends, and once
more when the guard stops, so a power cut may lose up to the last second of records. A link at the log's place is
refused (``O_NOFOLLOW``).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import UsageError


def _plain(value: Any) -> Any:
    """JSON for what defences put in events (numpy numbers and arrays included)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class AuditLog:
    """Appends decisions to ``path`` (JSON lines)."""

    def __init__(self, path: str | Path, fsync_interval: float = 1.0):
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, 0o640)
        except OSError as exc:
            raise UsageError(f"audit_log: cannot open {self.path} to append: {exc.strerror or exc}") from None
        self._lock = threading.Lock()  # appends and closing
        self._sync_lock = threading.Lock()  # syncs and closing: the file stays open during a sync
        self._dirty = False
        self._closed = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, args=(fsync_interval,), name="guard-audit-fsync", daemon=True)
        self._syncer.start()

    def record(self, **fields: Any) -> None:
        """Append one record; ``time`` is added. Never raises on a value JSON cannot hold."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            line = json.dumps({"time": now, **fields}, default=_plain, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN or an infinity in an event: written as text, the line stays JSON
            line = json.dumps({"time": now, **_nan_free(fields)}, default=_plain, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._closed.is_set():
                return
            written = 0
            while written < len(data):  # a regular file takes it in one write; loop for safety
                written += os.write(self._fd, data[written:])
            self._dirty = True

    def flush(self) -> None:
        """Sync what was written to disk now. Appends go on meanwhile: the guard appends
        on its event loop, which must not wait for the disk (a sync of the file took
        milliseconds, for every request in flight)."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:  # holding _sync_lock
        with self._lock:
            if not self._dirty or self._closed.is_set():
                return
            self._dirty = False
        try:
            os.fsync(self._fd)
        except OSError:
            with self._lock:
                self._dirty = True  # the next round tries again
            raise

    def _sync_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.flush()
            except OSError:  # a full disk must not kill the syncer; the next round tries again
                pass

    def close(self) -> None:
        """Sync and close (the guard's shutdown); later records are dropped."""
        with self._sync_lock:
            try:
                self._sync()
            finally:
                with self._lock:
                    if not self._closed.is_set():
                        self._closed.set()
                        os.close(self._fd)
        self._syncer.join(timeout=5)


def _nan_free(value: Any) -> Any:
    """``value`` with NaN and infinities written as strings (a record must stay valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_free(v) for v in value]
    if hasattr(value, "tolist"):
        return _nan_free(value.tolist())
    return value
