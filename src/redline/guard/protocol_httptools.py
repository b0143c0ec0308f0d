"""uvicorn's httptools protocol with a deadline and a size cap on every request's head.

httptools (llhttp, in C) parses a request in a fraction of the time h11 (pure Python)
takes, which is most of what the guard spends on HTTP; but it accepts a head of any size
(hundreds of kilobytes), so this class caps it at :data:`protocol.MAX_HEADER_BYTES`
(answered 431, then closed), and gives it the header deadline of :mod:`.protocol`.

The cap is kept two ways. Each completed piece of the head is counted as the parser hands
it over (``on_url``, ``on_header``), so a head over the cap is refused exactly, before
the app sees it. But the parser holds a header that is still arriving without telling
anyone, so the bytes read while a head is incomplete are counted too, and once earlier
reads alone are over the cap the connection is refused: a client makes the guard hold at
most the cap plus one read. (Earlier reads only: the read that completes a head may
carry the start of a large body, which is the body limit's business.)
"""
from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import protocol
from .protocol import _HeaderDeadline

_REFUSAL_TEXT = b"request headers too large"
_REFUSAL = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: " + str(len(_REFUSAL_TEXT)).encode() + b"\r\n\r\n" + _REFUSAL_TEXT)


class _HeadTooLarge(Exception):
    pass


class HeaderLimitsHttpTools(_HeaderDeadline, HttpToolsProtocol):
    _in_head = True  # from a connection's start or a request's end until the next head is whole
    _received = 0  # bytes read while the head was incomplete
    _head_bytes = 0  # size of the head so far, from the parser's callbacks

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with the byte count and the refusal of a large head
        if self._in_head:
            if self._received > protocol.MAX_HEADER_BYTES:
                self._refuse_head()
                return
            self._received += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadTooLarge):
                raise
            self._refuse_head()
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:  # the guard serves no WebSocket; uvicorn says so
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _refuse_head(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_REFUSAL)
            self.transport.close()

    # -- the parser's callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > protocol.MAX_HEADER_BYTES:
            raise _HeadTooLarge  # feed_data stops and raises HttpParserCallbackError

    def on_headers_complete(self) -> None:
        self._in_head, self._received = False, 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._received = True, 0

    def on_response_complete(self) -> None:
        self._arm()  # before uvicorn starts a pipelined request (whose head is already here)
        super().on_response_complete()
