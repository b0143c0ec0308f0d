"""One HTTP POST with limits, for endpoints redline does not trust.

``urllib.request`` trusts the server too much for a security tool: its timeout applies to
each socket operation (a server that sends one byte per second never times out), it reads
whatever body comes (an endless chunked answer fills memory), and it follows redirects to
any host with every header, credentials included. :func:`post` bounds all three:

- **deadline**: the whole request, from connecting to the last body byte, ends within
  ``deadline`` seconds. A timer shuts the socket down when the time is up, which wakes any
  blocked read, so no pattern of slow bytes can stretch it.
- **size**: at most ``max_bytes`` of body are read; a larger declared ``Content-Length`` is
  refused before reading, a longer stream (chunked or not) is cut at the limit.
- **redirects**: with ``redirects="same_origin"`` (the default) followed only within the
  first origin (scheme, host and port); ``"none"`` follows none; ``"cross_origin"`` follows
  others too, but the request goes on without ``Authorization``, API keys and every header
  the target config added, since those belong to the first origin. Only http and https are
  followed, at most ``MAX_REDIRECTS`` hops.

Proxies come from the environment as for urllib (``http_proxy``, ``https_proxy``,
``no_proxy``): plain http goes to the proxy with the full URL, https through a CONNECT
tunnel; user info in the proxy URL becomes ``Proxy-Authorization``.

Every failure raises :class:`HttpFailure` with a one-line reason; ``retryable`` says
whether trying again could help (a timeout may pass, a refused redirect will not).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping

__all__ = ["HttpFailure", "Answer", "post", "origin_of", "MAX_REDIRECTS"]

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024
ERROR_BODY_BYTES = 64 * 1024  # of a non-2xx answer only the start is read: it is a message, not data
# Headers that carry credentials whatever the config calls them; never sent to another origin.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}


class HttpFailure(Exception):
    """A request that got no usable answer.

    ``sent``: the whole request was written (the server may have acted on it);
    ``timed_out``: the deadline passed; ``refused_upload``: the server closed the connection
    while the request was still being written; ``status``: the HTTP status, when one came.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = True,
        sent: bool = False,
        status: int | None = None,
        timed_out: bool = False,
        refused_upload: bool = False,
    ):
        super().__init__(reason)
        self.retryable = retryable
        self.sent = sent
        self.status = status
        self.timed_out = timed_out
        self.refused_upload = refused_upload


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class _Watchdog:
    """Shuts the connection's socket down at the deadline, waking any blocked operation."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float):
        self.conn = conn
        self.expired = False
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float,
    max_bytes: int,
    redirects: str = "same_origin",
    secret_headers: frozenset[str] = frozenset(),
    truncate: bool = False,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """POST ``body`` to ``url`` within the limits in the module docstring.

    Returns the final answer whatever its status (the caller judges 4xx/5xx); its body is
    complete, or with ``truncate`` its first ``max_bytes`` bytes (a longer answer is then
    not an error). ``secret_headers`` (lower-case names) are, with the usual credential
    headers, dropped when a redirect leaves the first origin.
    """
    if redirects not in ("none", "same_origin", "cross_origin"):
        raise ValueError(f"unknown redirect policy {redirects!r}")
    stop_at = time.monotonic() + deadline
    first = origin_of(url)
    method, data, sent_headers = "POST", body, dict(headers)
    sent = False
    for hop in range(MAX_REDIRECTS + 1):
        remaining = stop_at - time.monotonic()
        if remaining <= 0:
            raise HttpFailure(f"no complete answer within {deadline:g} s", sent=sent, timed_out=True)
        status, location, payload, sent_now = _exchange(
            url, method, data, sent_headers, remaining, deadline, max_bytes, truncate, context
        )
        sent = sent or sent_now
        if status not in _REDIRECTS or location is None:
            return Answer(status, payload)
        target = urllib.parse.urljoin(url, location)
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if redirects == "none":
            raise HttpFailure(
                f"HTTP {status} redirect refused (redirects: none in the target config)",
                retryable=False, sent=sent, status=status,
            )
        if scheme not in ("http", "https"):
            raise HttpFailure(
                f"HTTP {status} redirect to a {scheme or 'relative'}: URL refused", retryable=False, sent=sent, status=status
            )
        if origin_of(target) != first:
            if redirects != "cross_origin":
                raise HttpFailure(
                    f"HTTP {status} redirect to another origin ({_origin_text(target)}) refused; "
                    "set redirects: cross_origin in the target config to follow it (credentials are never sent there)",
                    retryable=False,
                    sent=sent,
                    status=status,
                )
            drop = _SECRET_HEADERS | {h.lower() for h in secret_headers}
            sent_headers = {k: v for k, v in sent_headers.items() if k.lower() not in drop}
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, data = "GET", None  # what browsers and urllib do; 307/308 keep the body
            sent_headers = {k: v for k, v in sent_headers.items() if k.lower() not in ("content-type", "content-length")}
        url = target
    raise HttpFailure(f"more than {MAX_REDIRECTS} redirects", retryable=False, sent=sent)


def _exchange(
    url: str,
    method: str,
    data: bytes | None,
    headers: Mapping[str, str],
    remaining: float,
    deadline: float,
    max_bytes: int,
    truncate: bool,
    context: ssl.SSLContext | None,
) -> tuple[int, str | None, bytes, bool]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    headers = dict(headers)
    proxy = _proxy_for(scheme, host)
    if proxy is None:
        connect_host, connect_port = host, parts.port
    else:
        connect_host, connect_port = proxy.hostname or "", proxy.port or (443 if proxy.scheme == "https" else 8080)
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            connect_host, connect_port, timeout=remaining, context=context
        )
        if proxy is not None:
            conn.set_tunnel(host, parts.port or 443, headers=_proxy_auth(proxy))
    else:
        conn = http.client.HTTPConnection(connect_host, connect_port, timeout=remaining)
        if proxy is not None:  # a plain-http proxy takes the whole URL on the request line
            path = urllib.parse.urlunsplit((scheme, parts.netloc.rsplit("@", 1)[-1], parts.path or "/", parts.query, ""))
            headers.update(_proxy_auth(proxy))
    sent = False
    try:
        with _Watchdog(conn, remaining) as watchdog:
            try:
                conn.request(method, path, body=data, headers=dict(headers))
                sent = True
                response = conn.getresponse()
                if not truncate and not 200 <= response.status < 300:  # (truncating callers chose their size)
                    max_bytes, truncate = min(max_bytes, ERROR_BODY_BYTES), True
                declared = response.getheader("Content-Length")
                too_long = declared is not None and declared.strip().isdigit() and int(declared) > max_bytes
                if too_long and not truncate:
                    raise HttpFailure(
                        f"answer of {int(declared):,} bytes is over the limit of {max_bytes:,} "
                        "(max_response_bytes in the target config)",
                        retryable=False,
                        sent=True,
                        status=response.status,
                    )
                payload = _read_limited(response, max_bytes, truncate)
                if watchdog.expired:  # the shut-down socket can look like a clean end of the answer
                    raise HttpFailure(f"no complete answer within {deadline:g} s", sent=sent, timed_out=True)
                return response.status, response.getheader("Location"), payload, sent
            except HttpFailure:
                raise
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if watchdog.expired or isinstance(exc, TimeoutError):
                    raise HttpFailure(f"no complete answer within {deadline:g} s", sent=sent, timed_out=True) from None
                refused = not sent and isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError))
                raise HttpFailure(_describe(exc), sent=sent, refused_upload=refused) from None
    finally:
        conn.close()


def _read_limited(response: http.client.HTTPResponse, max_bytes: int, truncate: bool) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = response.read1(min(_CHUNK, max_bytes - total + 1))
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > max_bytes:
            if truncate:
                parts.append(chunk[: len(chunk) - (total - max_bytes)])
                return b"".join(parts)
            raise HttpFailure(
                f"answer longer than the limit of {max_bytes:,} bytes (max_response_bytes in the target config)",
                retryable=False,
                sent=True,
                status=response.status,
            )
        parts.append(chunk)


def _proxy_for(scheme: str, host: str) -> urllib.parse.SplitResult | None:
    """The proxy the environment names for ``scheme``, unless ``no_proxy`` covers ``host``."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return urllib.parse.urlsplit(proxy)


def _proxy_auth(proxy: urllib.parse.SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}


def _origin_text(url: str) -> str:
    scheme, host, port = origin_of(url)
    return f"{scheme}://{host}:{port}"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
