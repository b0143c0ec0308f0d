"""HttpTarget against hostile endpoints (raw sockets on 127.0.0.1): each limit holds and ends as a
one-line TargetError, and every row the server received is charged."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from redline.checks.base import Check, CheckContext, Outcome
from redline.data.base import Dataset
from redline.errors import TargetError
from redline.findings import Status
from redline.targets import InputSpec, TargetConfig
from redline.targets.http import HttpTarget

SPEC = InputSpec(shape=(2,), lower=0.0, upper=1.0)


def _answer(rows: int) -> bytes:
    return json.dumps({"probabilities": [[0.5, 0.5]] * rows}).encode()


class RawServer:
    """A socket server whose handler writes whatever bytes it likes; records the headers it saw."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/predict"
        self.seen: list[str] = []
        self._stop = False
        self._handle = handle
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                part = conn.recv(65536)
                if not part:
                    return
                data += part
            head, _, rest = data.partition(b"\r\n\r\n")
            self.seen.append(head.decode("latin-1"))
            try:
                self._handle(conn)
            except OSError:  # the client hung up: that is the point of these tests
                pass

    def close(self):
        self._stop = True
        self.sock.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(handle):
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def config(**kw) -> TargetConfig:
    return TargetConfig(**{"backoff": 0.001, "retries": 0, "timeout": 2.0, **kw})


def test_slow_drip_body_ends_at_the_whole_request_deadline(raw_server):
    def drip(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b" ")
            time.sleep(0.3)  # each byte well within the per-read timeout

    server = raw_server(drip)
    target = HttpTarget(server.url, config=config(timeout=1.0), input_spec=SPEC, n_classes=2)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"no complete answer within 1 s"):
        target.predict(np.zeros((1, 2)))
    assert time.monotonic() - started < 2.5


def test_slow_drip_headers_also_end_at_the_deadline(raw_server):
    def drip_headers(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            conn.sendall(b"X: y\r\n")
            time.sleep(0.2)

    server = raw_server(drip_headers)
    target = HttpTarget(server.url, config=config(timeout=0.8), input_spec=SPEC, n_classes=2)
    started = time.monotonic()
    with pytest.raises(TargetError, match="no complete answer"):
        target.predict(np.zeros((1, 2)))
    assert time.monotonic() - started < 2.5


def test_endless_chunked_body_stops_at_the_size_limit(raw_server):
    def endless(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"A" * 65536)
        while True:
            conn.sendall(chunk)

    server = raw_server(endless)
    target = HttpTarget(server.url, config=config(max_response_bytes=1 << 20, timeout=10.0), input_spec=SPEC, n_classes=2)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"answer longer than the limit of 1,048,576 bytes"):
        target.predict(np.zeros((1, 2)))
    assert time.monotonic() - started < 5


def test_declared_huge_body_is_refused_before_reading(raw_server):
    def huge(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 400000000\r\n\r\n")
        conn.sendall(b"x" * 65536)
        time.sleep(2)

    server = raw_server(huge)
    target = HttpTarget(server.url, config=config(), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match=r"answer of 400,000,000 bytes is over the limit of 67,108,864"):
        target.predict(np.zeros((1, 2)))


def test_undeclared_long_body_is_cut_at_the_default_limit(raw_server):
    def long_body(conn):  # no length: the body runs until the connection closes
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        block = b"[" * (1 << 20)
        for _ in range(80):  # 80 MiB, above the 64 MiB default
            conn.sendall(block)

    server = raw_server(long_body)
    target = HttpTarget(server.url, config=config(timeout=20.0), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match="answer longer than the limit of 67,108,864"):
        target.predict(np.zeros((1, 2)))


class _Redirector(BaseHTTPRequestHandler):
    location = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def _answer(self):
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        length = int(self.headers.get("Content-Length", 0))
        if length:
            self.rfile.read(length)
        body = _answer(1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def _serve(handler):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return httpd


@pytest.fixture
def redirect_pair():
    recorder = type("Rec", (_Recorder,), {"seen": []})
    other = _serve(recorder)
    # "localhost" and "127.0.0.1" are different origins that reach the same loopback server
    other_url = f"http://localhost:{other.server_address[1]}/elsewhere"
    redirector = _serve(type("Redir", (_Redirector,), {"location": other_url}))
    yield f"http://127.0.0.1:{redirector.server_address[1]}/predict", recorder
    for httpd in (other, redirector):
        httpd.shutdown()
        httpd.server_close()


SECRETS = dict(headers={"X-Api-Key": "key-123", "X-Custom-Secret": "s3"}, auth=("bearer", "tok-456"))


def test_cross_origin_redirect_is_refused_by_default(redirect_pair):
    url, recorder = redirect_pair
    target = HttpTarget(url, config=config(**SECRETS), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match="redirect to another origin .* refused"):
        target.predict(np.zeros((1, 2)))
    assert recorder.seen == []


def test_cross_origin_redirect_when_allowed_carries_no_credentials(redirect_pair):
    url, recorder = redirect_pair
    target = HttpTarget(url, config=config(redirects="cross_origin", **SECRETS), input_spec=SPEC, n_classes=2)
    target.predict(np.zeros((1, 2)))
    assert len(recorder.seen) == 1
    headers = recorder.seen[0]
    assert not {"authorization", "x-api-key", "x-custom-secret"} & set(headers)


class _SameOrigin(_Recorder):
    """Redirects /predict to /final on the same server, which answers and records headers."""

    def do_POST(self):
        if self.path == "/predict":
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", "/final")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer()


def test_same_origin_redirect_keeps_credentials_and_body():
    handler = type("Same", (_SameOrigin,), {"seen": []})
    httpd = _serve(handler)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/predict"
        target = HttpTarget(url, config=config(**SECRETS), input_spec=SPEC, n_classes=2)
        assert target.predict(np.zeros((1, 2))).shape == (1, 2)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert handler.seen[0]["x-api-key"] == "key-123" and handler.seen[0]["authorization"] == "Bearer tok-456"


def test_redirects_none_follows_nothing(redirect_pair):
    url, recorder = redirect_pair
    target = HttpTarget(url, config=config(redirects="none"), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match="redirect refused"):
        target.predict(np.zeros((1, 2)))
    assert recorder.seen == []


class _Flaky(BaseHTTPRequestHandler):
    """Reads every request (counting its rows), then fails every other one with 500."""

    rows = 0
    requests = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.rows += len(body["inputs"])
        cls.requests += 1
        if cls.requests % 2 == 1:
            payload, status = b'{"error": "flaky"}', 500
        else:
            payload, status = _answer(len(body["inputs"])), 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class _QueryAll(Check):
    id = "FM00.test_query_all"
    mode = "FM01"
    title = "sends its attack rows and some evaluation rows"

    def run(self, target, data, budget, rng, ctx):
        for start in range(0, 20, 4):
            target.predict(data.x_test[start : start + 4])
        with target.ledger.evaluating():
            target.predict(data.x_test[:6])
        return Outcome(False, {})


def test_flaky_endpoint_every_row_the_server_read_is_charged():
    handler = type("Flaky", (_Flaky,), {"rows": 0, "requests": 0})
    httpd = _serve(handler)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/predict"
        target = HttpTarget(url, config=config(retries=2, outputs="probabilities"), input_spec=SPEC, n_classes=2)
        x = np.random.default_rng(0).random((20, 2)).astype(np.float32)
        y = np.zeros(20, dtype=int)
        data = Dataset(name="flaky", x_train=x, y_train=y, x_test=x, y_test=y)
        finding = _QueryAll()(target, data, budget=20, seed=0, ctx=CheckContext())
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert finding.status is Status.NOT_VULNERABLE, finding.reason
    # the budget (20) held although the server saw twice the rows: retries do not use it up
    assert handler.rows == finding.queries + finding.evaluation_queries == 52
    assert finding.queries == 40 and finding.evaluation_queries == 12
    assert finding.evidence["retried_rows"] == 26


class _Proxy(BaseHTTPRequestHandler):
    """A plain-http proxy stand-in: records the request line and answers itself."""

    lines: list[str] = []

    def do_POST(self):
        type(self).lines.append(self.requestline)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        payload = _answer(len(body["inputs"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_http_proxy_from_the_environment_is_used(monkeypatch):
    handler = type("P", (_Proxy,), {"lines": []})
    httpd = _serve(handler)
    try:
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{httpd.server_address[1]}")
        target = HttpTarget("http://model.invalid:8000/predict?k=v", config=config(), input_spec=SPEC, n_classes=2)
        assert target.predict(np.zeros((2, 2))).shape == (2, 2)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert handler.lines == ["POST http://model.invalid:8000/predict?k=v HTTP/1.1"]


def test_huge_error_body_is_an_http_error_read_only_in_part(raw_server):
    def huge_error(conn):
        conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 400000000\r\n\r\nbusy, retry later")
        conn.sendall(b" " * (1 << 20))

    server = raw_server(huge_error)
    target = HttpTarget(server.url, config=config(retries=1), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match=r"after 2 attempt\(s\); last error: HTTP 503: busy, retry later"):
        target.predict(np.zeros((3, 2)))
    assert target.ledger.total == target.ledger.retried == 6  # both attempts reached the server


def test_connection_dropped_after_reading_is_charged(raw_server):
    server = raw_server(lambda conn: None)  # reads the request, then hangs up without a word
    target = HttpTarget(server.url, config=config(retries=2), input_spec=SPEC, n_classes=2)
    # How the hang-up surfaces depends on timing: a closed connection or a reset one.
    with pytest.raises(TargetError, match="RemoteDisconnected|ConnectionResetError"):
        target.predict(np.zeros((2, 2)))
    assert len(server.seen) == 3 and target.ledger.total == target.ledger.retried == 6
