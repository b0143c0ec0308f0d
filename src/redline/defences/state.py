"""Where defences keep state between requests: one small key-value interface.

A defence that remembers clients (a query detector's history, a rate counter, a lock-out)
keeps that memory in a :class:`StateStore`, not in its own attributes, so that several
worker processes of one guard share it. :class:`MemoryState` serves one process and the
tests; the guard provides SQLite and Redis stores with the same methods. Keys are strings
chosen by the defence (prefix them with the defence's name and the client); values are
bytes. ``ttl`` is in seconds; an expired key reads as absent.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol


class StateStore(Protocol):
    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (replacing any), expiring after ``ttl`` seconds."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        """Add ``amount`` to the number under ``key`` (0 if absent) atomically; return the
        new total. ``ttl`` applies when the key is created (a fixed window)."""

    def push(self, key: str, values: list[bytes], keep: int, ttl: float | None = None) -> None:
        """Append ``values`` to the list under ``key``, keeping only the last ``keep``; with
        ``ttl`` the list expires ``ttl`` seconds after this push (an idle list goes away),
        without it, never."""

    def recent(self, key: str, n: int | None = None) -> list[bytes]:
        """The last ``n`` values of the list under ``key`` (all when ``n`` is None), oldest first."""

    def append_bytes(self, key: str, data: bytes, keep: int, ttl: float | None = None) -> bytes:
        """Append ``data`` to the bytes under ``key`` (empty if absent or of another kind),
        keeping only the last ``keep`` bytes, atomically; return the new value. ``ttl`` counts
        from this call. A window of fixed-size records read whole on every request (one read
        and one write, where ``push`` and ``recent`` move one entry per record)."""

    def add_members(self, key: str, members: list[bytes], ttl: float | None = None) -> int:
        """Add ``members`` to the set under ``key`` atomically; return how many of them
        were already in it (a hashed-fingerprint detector counts its matches this way)."""

    def add_member_groups(self, key: str, groups: list[list[bytes]], ttl: float | None = None) -> list[int]:
        """:meth:`add_members` for each group in turn, in one atomic call: for each group,
        how many of its members were already in the set, earlier groups of the call
        included (a detector scores a batch of queries against its history in one round trip)."""


class MemoryState:
    """A :class:`StateStore` in this process's memory (thread-safe)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, object] = {}
        self._expiry: dict[str, float] = {}

    def _live(self, key: str):
        deadline = self._expiry.get(key)
        if deadline is not None and self.clock() >= deadline:
            self._data.pop(key, None)
            self._expiry.pop(key, None)
        return self._data.get(key)

    def _expire(self, key: str, ttl: float | None) -> None:
        if ttl is not None:
            self._expiry[key] = self.clock() + float(ttl)
        else:
            self._expiry.pop(key, None)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key)
            return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._lock:
            self._data[key] = bytes(value)
            self._expire(key, ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
            self._expiry.pop(key, None)

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        with self._lock:
            current = self._live(key)
            if not isinstance(current, float):
                current = 0.0
                self._expire(key, ttl)
            total = current + float(amount)
            self._data[key] = total
            return total

    def push(self, key: str, values: list[bytes], keep: int, ttl: float | None = None) -> None:
        with self._lock:
            current = self._live(key)
            if not isinstance(current, deque) or current.maxlen != keep:
                current = deque(current if isinstance(current, deque) else (), maxlen=keep)
                self._data[key] = current
            current.extend(bytes(v) for v in values)
            self._expire(key, ttl)

    def recent(self, key: str, n: int | None = None) -> list[bytes]:
        with self._lock:
            current = self._live(key)
            if not isinstance(current, deque):
                return []
            items = list(current)
            return items if n is None else items[-n:] if n > 0 else []

    def append_bytes(self, key: str, data: bytes, keep: int, ttl: float | None = None) -> bytes:
        with self._lock:
            current = self._live(key)
            value = ((current if isinstance(current, bytes) else b"") + bytes(data))[-int(keep):] if keep > 0 else b""
            self._data[key] = value
            self._expire(key, ttl)
            return value

    def add_members(self, key: str, members: list[bytes], ttl: float | None = None) -> int:
        return self.add_member_groups(key, [members], ttl)[0]

    def add_member_groups(self, key: str, groups: list[list[bytes]], ttl: float | None = None) -> list[int]:
        with self._lock:
            current = self._live(key)
            if not isinstance(current, set):
                current = set()
                self._data[key] = current
                self._expire(key, ttl)
            known = []
            for members in groups:
                before = len(current)
                unique = {bytes(m) for m in members}
                current.update(unique)
                known.append(len(unique) - (len(current) - before))
            return known
