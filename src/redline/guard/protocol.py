"""uvicorn's HTTP protocols with a deadline on each request's head, and a size limit on it.

uvicorn times out an idle kept-alive connection, but once a client has sent one byte of a
request it waits for the rest of the headers for ever, so a client that trickles header
bytes (slowloris) keeps a connection, and a place under ``limit_concurrency``, as long
as it likes. Here a connection that is waiting for a request (just opened, or its last
response sent) must deliver the whole head of the next one within
``HEADER_TIMEOUT_S`` or it is closed. The body has its own deadline (the policy's
``body_timeout_s``, enforced by the app).

:class:`HeaderDeadlineH11` puts the deadline on uvicorn's pure-Python h11 protocol, whose
own ``h11_max_incomplete_event_size`` caps what it holds of a head still arriving at
``MAX_HEADER_BYTES`` (a larger head that arrives in one read passes). The guard
prefers :class:`~redline.guard.protocol_httptools.HeaderLimitsHttpTools`, the same
deadline and cap on uvicorn's httptools protocol, and uses this one when httptools is not
installed. Both build on uvicorn's protocol classes (``cycle``, ``on_response_complete``);
the guard's tests hold them to the behaviour.
"""
from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 16 * 1024  # a request's head (request line and headers), both parsers


class _HeaderDeadline:
    """The deadline on a request's head, for a uvicorn protocol (mixed in before it)."""

    _header_timer: asyncio.TimerHandle | None = None
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._waiting_for_request() and not self.transport.is_closing():
            self.transport.close()

    # the clock starts when a connection opens and stops when it closes (uvicorn's own methods first)
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class HeaderDeadlineH11(_HeaderDeadline, H11Protocol):

    def handle_events(self) -> None:
        super().handle_events()
        if not self._waiting_for_request():  # a request's head has arrived
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # before uvicorn looks at pipelined data, which may start the next request
        super().on_response_complete()
