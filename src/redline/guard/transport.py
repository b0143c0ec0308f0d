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

The guard asks one URL with the same headers every time, so a request is one prepared
head plus the body, written with one ``sendall``, and the answer is parsed by httptools
(llhttp, the C parser the guard's server side uses too) when it is installed: about half
the CPU time of :mod:`http.client`, whose answers go through the ``email`` package's header
parser. Without httptools, :mod:`http.client` does the same work.
"""
from __future__ import annotations

import heapq
import http.client
import itertools
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping

from ..errors import UsageError
from ..targets.http_client import Answer, HttpFailure

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_READ_SIZE = 65536
# What http.client refuses in a header too (RFC 9110 field names; no CR, LF or NUL in values).
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")


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


class _Stale(Exception):
    """A kept-alive connection the model had closed: nothing of an answer came."""


class _AnswerTooLong(Exception):
    pass


class _Reader:
    """httptools' callbacks for one answer: status, body up to ``max_bytes``, completeness."""

    __slots__ = (
        "complete",
        "delimited",
        "got_any",
        "headers_done",
        "keep_alive",
        "max_bytes",
        "parser",
        "parts",
        "size",
    )

    def __init__(self, max_bytes: int):
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.complete = False
        self.got_any = False
        self.delimited = False  # the answer states its length (Content-Length or chunked)
        self.headers_done = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length":
            self.delimited = True
            declared = value.strip()
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise _AnswerTooLong(f"answer of {int(declared):,} bytes is over the limit of {self.max_bytes:,}")
        elif lowered == b"transfer-encoding":
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # (llhttp forgets it once the message ends)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_bytes:
            raise _AnswerTooLong(f"answer longer than the limit of {self.max_bytes:,} bytes")
        self.parts.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:  # an interim answer (100 Continue): the real one follows
            self.parts, self.size, self.delimited, self.headers_done = [], 0, False, False
            return
        self.complete = True


def _httptools_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("httptools") is not None


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
        self._raw = _httptools_installed()
        self._head = self._prepared_head()

    def _prepared_head(self) -> bytes:
        """Every request's head up to its Content-Length value (what http.client would send)."""
        default_port = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None and self.port != default_port:
            host = f"{host}:{self.port}"
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
        for name, value in self.headers.items():
            value = str(value)
            if not _FIELD_NAME.fullmatch(name) or _BAD_VALUE.search(value):
                raise UsageError(f"the upstream's header {name[:40]!r} is not a valid HTTP header")
            lines.append(f"{name}: {value}")
        lines.append("Content-Length: ")
        return "\r\n".join(lines).encode("latin-1")

    # -- connections ------------------------------------------------------------------
    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            return conn, True
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()  # (an HTTPS connection does its handshake here)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    # -- one request ------------------------------------------------------------------
    def post(self, body: bytes, deadline: float) -> Answer:
        """The model's answer to ``body`` within ``deadline`` seconds, or HttpFailure."""
        return self.send(body, deadline).answer()

    def send(self, body: bytes, deadline: float) -> Exchange:
        """Write the request for ``body`` now; its :meth:`Exchange.answer` reads the answer
        (on this thread), so the caller can do other work while the model thinks."""
        return Exchange(self, body, deadline)

    def _write(self, conn: http.client.HTTPConnection, body: bytes) -> None:
        """Send one request; _Stale when the kept-alive connection turns out to be closed."""
        try:
            if self._raw:
                conn.sock.sendall(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                conn.request("POST", self.path, body=body, headers=self.headers)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            raise _Stale from None

    def _receive(self, conn: http.client.HTTPConnection) -> tuple[int, bytes, bool]:
        """Read the answer: (status, body, whether the connection stays open). Raises
        _Stale when the connection ended before any byte of an answer."""
        if not self._raw:
            return self._receive_http_client(conn)
        import httptools

        sock = conn.sock
        reader = _Reader(self.max_bytes)
        while True:
            try:
                data = sock.recv(_READ_SIZE)
            except (ConnectionResetError, ConnectionAbortedError):
                if not reader.got_any:
                    raise _Stale from None
                raise
            if not data:
                if not reader.got_any:
                    raise _Stale
                if reader.headers_done and not reader.delimited:
                    # an answer whose end is the end of the connection (no length stated)
                    return reader.parser.get_status_code(), b"".join(reader.parts), False
                raise http.client.IncompleteRead(b"".join(reader.parts))
            reader.got_any = True
            try:
                reader.parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                if isinstance(exc.__context__, _AnswerTooLong):
                    raise HttpFailure(str(exc.__context__), sent=True) from None
                raise
            except httptools.HttpParserError as exc:
                raise http.client.HTTPException(f"malformed answer: {exc}") from None
            if reader.complete:
                return reader.parser.get_status_code(), b"".join(reader.parts), reader.keep_alive

    def _receive_http_client(self, conn: http.client.HTTPConnection) -> tuple[int, bytes, bool]:
        try:
            response = conn.getresponse()
        except _STALE:
            raise _Stale from None
        return response.status, self._read(response), not response.will_close

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


# What a request may fail with that _failed turns into an HttpFailure (or a second try).
_EXPECTED = (HttpFailure, _Stale, OSError, http.client.HTTPException)


class Exchange:
    """One request to the model on the calling thread's kept-alive connection: written when
    made, its answer read by :meth:`answer` (or the connection given up by :meth:`abandon`).
    One deadline covers both. A kept-alive connection found closed before any answer came
    (the model closed it while idle) is replaced once and the request written again."""

    def __init__(self, pool: KeptAlive, body: bytes, deadline: float):
        self.pool, self.body, self.deadline = pool, body, deadline
        self.stop_at = time.monotonic() + deadline
        self.ticket: int | None = None
        self._begin(attempt=0)

    def _begin(self, attempt: int) -> None:
        pool = self.pool
        self.attempt = attempt
        remaining = self.stop_at - time.monotonic()
        if remaining <= 0:
            raise self._timeout()
        try:
            self.conn, self.reused = pool._connection(remaining)
        except OSError as exc:
            pool._drop()
            if isinstance(exc, TimeoutError):
                raise HttpFailure(f"no connection within {self.deadline:g} s", timed_out=True) from None
            raise HttpFailure(f"cannot connect: {type(exc).__name__}") from None
        self.ticket = pool._watchdog.watch(self.conn.sock, self.stop_at)
        try:
            self.conn.sock.settimeout(remaining)
            pool._write(self.conn, self.body)
        except _EXPECTED as exc:
            self._failed(exc)  # raises, or returns when the request is to be written once more
            self._begin(attempt=1)
        except BaseException:
            self.abandon()
            raise

    def answer(self) -> Answer:
        """The model's answer, or HttpFailure."""
        pool = self.pool
        try:
            status, payload, keep = pool._receive(self.conn)
            if pool._watchdog.release(self.ticket):
                raise TimeoutError
        except _EXPECTED as exc:
            self._failed(exc)
            self._begin(attempt=1)
            return self.answer()
        except BaseException:
            self.abandon()
            raise
        self.ticket = None
        if not keep:
            pool._drop()
        return Answer(status, payload)

    def abandon(self) -> None:
        """Give the request up (its answer is not wanted): close the connection."""
        if self.ticket is not None:
            self.pool._watchdog.release(self.ticket)
            self.ticket = None
            self.pool._drop()

    def _timeout(self) -> HttpFailure:
        return HttpFailure(f"no complete answer within {self.deadline:g} s", timed_out=True)

    def _failed(self, exc: Exception) -> None:
        """Close the connection after ``exc``; return if the request should be written
        once more on a new connection, else raise it as an HttpFailure."""
        expired = self.pool._watchdog.release(self.ticket) if self.ticket is not None else False
        self.ticket = None
        self.pool._drop()
        if isinstance(exc, HttpFailure):
            raise exc
        if isinstance(exc, _Stale):
            if expired:
                raise self._timeout() from None
            if self.reused and self.attempt == 0:
                return
            raise HttpFailure("RemoteDisconnected: the model closed the connection without an answer",
                              sent=True) from None
        if expired or isinstance(exc, TimeoutError):
            raise self._timeout() from None
        raise HttpFailure(f"{type(exc).__name__}: {' '.join(str(exc).split())}", sent=True) from None
