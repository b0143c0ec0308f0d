"""The guard's parts on their own: keys, the kept-alive transport, the audit log, the metrics text."""
from __future__ import annotations

import json
import math
import os
import socket
import threading
import time

import numpy as np
import pytest
from guard_testkit import read_http_message

from redline.defences.policy import Client, hash_key
from redline.errors import UsageError
from redline.guard.audit import AuditLog
from redline.guard.keys import KeyRing, presented_key, read_keys_file
from redline.guard.metrics import GuardMetrics
from redline.guard.transport import KeptAlive
from redline.targets.http_client import HttpFailure


def test_keys_file_is_hashed_and_errors_never_quote_a_key(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("# clients\n\nalice: alice-secret-0123456789\nbob:bob-secret-0123456789:with-colon\n")
    clients = read_keys_file(path)
    assert clients == [Client("alice", hash_key("alice-secret-0123456789")),
                       Client("bob", hash_key("bob-secret-0123456789:with-colon"))]
    assert "alice-secret" not in repr(clients)
    for text, problem in (("alice\n", ":1: expected name:key"), ("al ice:k0123456789abcdef\n", ":1: client names"),
                          ("a:k0123456789abcdef\na:other0123456789abc\n", ":2: client 'a' is declared twice"),
                          ("a:k0123456789abcdef\nb:k0123456789abcdef\n", ":2: clients 'a' and 'b' have the same key")):
        path.write_text(text)
        with pytest.raises(UsageError) as err:
            read_keys_file(path)
        assert problem in str(err.value) and "0123456789" not in str(err.value)


def test_presented_key_and_constant_time_lookup():
    assert presented_key({"x-api-key": " k1 "}) == "k1"
    assert presented_key({"authorization": "Bearer k2"}) == "k2"
    assert presented_key({"authorization": "bearer   k3"}) == "k3"
    assert presented_key({"authorization": "Basic k4"}) is None
    assert presented_key({"x-api-key": ""}) is None
    ring = KeyRing([Client("a", hash_key("key-a")), Client("b", hash_key("key-b"))])
    assert ring.identify("key-b").name == "b"
    assert ring.identify("key-c") is None and ring.identify(None) is None
    assert ring.identify("x" * 5000) is None  # not even hashed


class _RawServer:
    """A TCP server whose handler is ``respond(conn, request_bytes)``; counts connections."""

    def __init__(self, respond):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/predict"
        self.connections = 0
        self.respond = respond
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            while read_http_message(conn) is not None:
                if self.respond(conn) == "close":
                    return

    def close(self):
        self.sock.close()


def _ok(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


# The transport parses answers with httptools where installed, else with http.client; the
# tests of its behaviour hold both to it.
PARSERS = ["httptools", "http.client"]


def _pool(parser, url, headers, max_bytes):
    pool = KeptAlive(url, headers, max_bytes=max_bytes)
    if parser == "httptools" and not pool._raw:
        pytest.skip("httptools is not installed")
    pool._raw = parser == "httptools"
    return pool


@pytest.mark.parametrize("parser", PARSERS)
def test_connections_are_kept_alive_and_a_closed_idle_one_is_replaced(parser):
    keep = _RawServer(_ok)
    pool = _pool(parser, keep.url, {"Content-Type": "application/json"}, max_bytes=1000)
    for _ in range(5):
        assert pool.post(b"{}", 5).body == b"{}"
    assert keep.connections == 1
    keep.close()

    def answer_then_hang_up(conn):  # keep-alive by HTTP/1.1 rules, but the server closes anyway
        _ok(conn)
        return "close"

    rude = _RawServer(answer_then_hang_up)
    pool = _pool(parser, rude.url, {}, max_bytes=1000)
    for _ in range(3):
        assert pool.post(b"{}", 5).status == 200
        time.sleep(0.05)
    assert rude.connections == 3
    rude.close()


@pytest.mark.parametrize("parser", PARSERS)
def test_a_dripping_answer_is_cut_at_the_deadline(parser):
    def drip(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            try:
                conn.sendall(b" ")
            except OSError:
                return "close"
            time.sleep(0.1)
        return "close"

    server = _RawServer(drip)
    pool = _pool(parser, server.url, {}, max_bytes=5000)
    started = time.monotonic()
    with pytest.raises(HttpFailure) as err:
        pool.post(b"{}", 0.5)
    assert err.value.timed_out and time.monotonic() - started < 3
    server.close()


@pytest.mark.parametrize("parser", PARSERS)
def test_an_answer_over_the_size_limit_is_refused(parser):
    big = _RawServer(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000))
    with pytest.raises(HttpFailure, match="over the limit"):
        _pool(parser, big.url, {}, max_bytes=1000).post(b"{}", 5)
    big.close()
    chunked = _RawServer(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                   + b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n"))
    with pytest.raises(HttpFailure, match="limit"):  # no length declared: cut as it arrives
        _pool(parser, chunked.url, {}, max_bytes=1000).post(b"{}", 5)
    chunked.close()


@pytest.mark.parametrize("parser", PARSERS)
def test_answers_chunked_ended_by_close_or_after_100_continue_are_read_whole(parser):
    answers = {
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n",
        "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\": 1}",
        "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{\"a\": 1}",
    }
    for kind, raw in answers.items():
        def respond(conn, raw=raw, kind=kind):
            conn.sendall(raw)
            return "close" if kind == "close" else None

        server = _RawServer(respond)
        pool = _pool(parser, server.url, {}, max_bytes=1000)
        for _ in range(2):  # the second on a kept-alive connection, or a new one after "close"
            answer = pool.post(b"{}", 5)
            assert (answer.status, answer.body) == (201 if kind == "continue" else 200, b'{"a": 1}'), kind
        assert server.connections == (2 if kind == "close" else 1), kind
        server.close()


@pytest.mark.parametrize("parser", PARSERS)
def test_a_malformed_answer_fails_without_a_timeout(parser):
    server = _RawServer(lambda conn: conn.sendall(b"NOT HTTP AT ALL\r\n\r\n") or "close")
    with pytest.raises(HttpFailure) as err:
        _pool(parser, server.url, {}, max_bytes=1000).post(b"{}", 5)
    assert not err.value.timed_out
    server.close()


def test_the_request_carries_the_configured_headers_and_a_header_with_a_line_break_is_refused():
    seen = []

    class Recording(_RawServer):
        def _handle(self, conn):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data)
            _ok(conn)
            conn.close()

    server = Recording(None)
    for parser in PARSERS:
        _pool(parser, server.url + "?v=2", {"Content-Type": "application/json", "Authorization": "Bearer t0k"},
              max_bytes=1000).post(b'{"inputs": []}', 5)
    for request in seen:
        head = request.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"POST /predict?v=2 HTTP/1.1"
        fields = {line.split(b":")[0].lower(): line.split(b":", 1)[1].strip() for line in head[1:]}
        assert fields[b"host"] == f"127.0.0.1:{server.sock.getsockname()[1]}".encode()
        assert fields[b"authorization"] == b"Bearer t0k" and fields[b"content-length"] == b"14"
    server.close()
    with pytest.raises(UsageError, match="X-Note"):
        KeptAlive("http://127.0.0.1:1/predict", {"X-Note": "a\r\nX-Injected: 1"}, max_bytes=10)


def test_audit_records_are_json_lines_even_with_numpy_and_nan(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, fsync_interval=0.05)
    audit.record(client="alice", status=200, events=[{"score": np.float32(0.5), "rows": np.arange(2)}])
    audit.record(client="bob", status=422, events=[{"score": math.nan, "big": np.array([np.inf])}])
    time.sleep(0.15)  # the syncer runs
    audit.close()
    audit.record(client="late", status=200)  # after close: dropped, no error
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["events"] == [{"score": 0.5, "rows": [0, 1]}] and first["time"].endswith("Z")
    assert second["events"] == [{"score": "nan", "big": ["inf"]}]


def test_audit_log_refuses_a_link(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    os.symlink(target, tmp_path / "audit.jsonl")
    with pytest.raises(UsageError, match="cannot open"):
        AuditLog(tmp_path / "audit.jsonl")


def test_metrics_text_is_valid_prometheus_exposition():
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client parses the exposition format")
    metrics = GuardMetrics()
    for status, reason, seconds in ((200, "ok", 0.002), (429, "rate_limited", 0.0004), (502, "upstream_error", 0.3)):
        metrics.started()
        metrics.finished(status, reason, seconds, [{"defence": 'odd"name', "event": "flag"}],
                         upstream_error="status" if status == 502 else None)
    metrics.reloaded(True)
    text = metrics.render(policy_digest="abc", clients=2, defence_values=[("drift", "*", "p value", 0.25)])
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    requests = {(s.labels["status"], s.labels["reason"]): s.value for s in families["redline_guard_requests"].samples}
    assert requests == {("200", "ok"): 1, ("429", "rate_limited"): 1, ("502", "upstream_error"): 1}
    buckets = {s.labels["le"]: s.value for s in families["redline_guard_request_duration_seconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 1 and buckets["0.0025"] == 2 and buckets["+Inf"] == 3
    events = families["redline_guard_defence_events"].samples[0]
    assert events.labels == {"defence": 'odd"name', "event": "flag"} and events.value == 3
    gauge = families["redline_guard_defence_metric"].samples[0]
    assert gauge.labels["metric"] == "p_value" and gauge.value == 0.25
