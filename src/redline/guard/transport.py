"""Kept-alive connections to the model, each request bounded by one deadline.

:func:`redline.targets.http_client.post` opens a connection and starts a timer thread per
request, which suits a scan and costs the guard about two milliseconds a request. Here
each worker thread keeps its own connection to the model open, and one watchdog thread
for the whole pool enforces every request's deadline: when a request's time is up it
shuts the socket down, which wakes the blocked read however slowly the model drips
bytes. A connection that failed or timed out is closed and the next request opens a new
one; a request that failed on a kept-alive connection before any answer came (the model
closed it while idle) is sent once more on a fresh one. Redirects are not followed: a
guard talks to the one model it was given. Answers are read up to ``max_bytes``.
"""
from __future__ import annotations

import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping

from ..targets.http_client import Answer, HttpFailure

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Watchdog:
    """One thread that shuts down the sockets of requests past their deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self.expired: set[int] = set()
        threading.Thread(target=self._run, name="guard-upstream-deadlines", daemon=True).start()

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._cond:
            ticket = next(self._ids)
            # The thread sleeps until the earliest deadline it holds (finished requests'
            # included), so it needs waking only for an earlier one; waking it for every
            # request cost a thread switch per request (the deadlines mostly come in order).
            wake = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, ticket, sock))
            self._live.add(ticket)
            if wake:
                self._cond.notify()
            return ticket

    def release(self, ticket: int) -> bool:
        """Stop watching; True if the deadline had already passed."""
        with self._cond:
            self._live.discard(ticket)
            expired = ticket in self.expired
            self.expired.discard(ticket)
            return expired

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(ticket)
                self.expired.add(ticket)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def _watchdog() -> _Watchdog:
    """The process's one watchdog (pools come and go with policy reloads; it stays)."""
    global _WATCHDOG
    with _WATCHDOG_LOCK:
        if _WATCHDOG is None:
            _WATCHDOG = _Watchdog()
        return _WATCHDOG


class KeptAlive:
    """POSTs to one URL over one kept-alive connection per thread."""

    def __init__(self, url: str, headers: Mapping[str, str], *, max_bytes: int):
        parts = urllib.parse.urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.host, self.port = parts.hostname or "", parts.port
        self.path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.headers = dict(headers)
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._watchdog = _watchdog()
        self._context = ssl.create_default_context() if self.scheme == "https" else None

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            return conn, True
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def post(self, body: bytes, deadline: float) -> Answer:
        """The model's answer to ``body`` within ``deadline`` seconds, or HttpFailure."""
        stop_at = time.monotonic() + deadline
        for attempt in (0, 1):
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                raise HttpFailure(f"no complete answer within {deadline:g} s", timed_out=True)
            try:
                conn, reused = self._connection(remaining)
            except OSError as exc:
                self._drop()
                if isinstance(exc, TimeoutError):
                    raise HttpFailure(f"no connection within {deadline:g} s", timed_out=True) from None
                raise HttpFailure(f"cannot connect: {type(exc).__name__}") from None
            ticket = self._watchdog.watch(conn.sock, stop_at)
            answered = False
            try:
                conn.sock.settimeout(remaining)
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                answered = True
                payload = self._read(response)
                if self._watchdog.release(ticket):
                    raise TimeoutError
                if response.will_close:
                    self._drop()
                return Answer(response.status, payload)
            except HttpFailure:
                self._watchdog.release(ticket)
                self._drop()
                raise
            except (OSError, http.client.HTTPException) as exc:
                expired = self._watchdog.release(ticket)
                self._drop()
                if expired or isinstance(exc, TimeoutError):
                    raise HttpFailure(f"no complete answer within {deadline:g} s", timed_out=True) from None
                if reused and not answered and attempt == 0 and isinstance(exc, _STALE):
                    continue  # the model closed the idle connection: once more on a new one
                raise HttpFailure(f"{type(exc).__name__}: {' '.join(str(exc).split())}", sent=True) from None
        raise HttpFailure("the connection was closed twice")  # unreachable: attempt 1 raises or returns

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise HttpFailure(f"answer of {int(declared):,} bytes is over the limit of {self.max_bytes:,}", sent=True)
        data = response.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise HttpFailure(f"answer longer than the limit of {self.max_bytes:,} bytes", sent=True)
        if not response.isclosed():
            response.read()  # nothing left; leaves the connection ready for the next request
        return data
