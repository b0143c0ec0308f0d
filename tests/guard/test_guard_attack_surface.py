"""The guard as an attack surface (FM11 for the guard itself): slow clients, fuzzed bodies,
answers of the model that break the protocol. The guard answers 200 with a valid
prediction or a JSON refusal, never a 500 and never anything the defences did not see."""
from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from guard_testkit import (
    HTTP,
    KEY_ALICE,
    UPSTREAM_SECRET,
    ModelEndpoint,
    launch,
    read_http_message,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

POLICY = """
version: 1
limits: {max_body_bytes: 4096, max_batch: 4, upstream_timeout_s: 2, body_timeout_s: 3}
input: {shape: [4]}
defences:
  - round: {decimals: 3}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with ModelEndpoint() as endpoint:
        guard = launch(tmp_path_factory.mktemp("guard"), POLICY, endpoint.url)
        try:
            yield guard, endpoint
        finally:
            guard.__exit__(None, None, None)


def post(guard, content, key=KEY_ALICE):
    return HTTP.post(guard.url + "/predict", content=content, headers={"X-API-Key": key}, timeout=10)


def assert_well_formed(answer, rows=None):
    """200 with a prediction of the right size, or a JSON refusal; never a 5xx of the guard's own."""
    assert answer.status_code in (200, 413, 422), (answer.status_code, answer.text)
    body = answer.json()
    if answer.status_code == 200:
        assert set(body) == {"probabilities"}
        assert all(len(row) == 3 and all(isinstance(v, float) for v in row) for row in body["probabilities"])
        if rows is not None:
            assert len(body["probabilities"]) == rows
    else:
        assert set(body) == {"error", "reason"} and all(isinstance(v, str) for v in body.values())


def _open_slow(guard, declared=2000):
    sock = socket.create_connection(("127.0.0.1", guard.port), timeout=10)
    sock.sendall((f"POST /predict HTTP/1.1\r\nHost: guard\r\nX-API-Key: {KEY_ALICE}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode() + b'{"inputs": [[')
    return sock


def test_slow_bodies_do_not_hold_up_other_clients_and_are_cut_off(served):
    guard, _ = served
    slow = [_open_slow(guard) for _ in range(20)]
    try:
        started = time.monotonic()
        for _ in range(5):
            assert post(guard, json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4]]})).status_code == 200
        # served while twenty bodies were still trickling in (none has been cut off yet)
        assert time.monotonic() - started < 3
        slow[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            slow[0].recv(1)
        slow[0].setblocking(True)
        slow[0].settimeout(10)
        head, body = read_http_message(slow[0])  # the body timeout (3 s) ends the slow request
        answer = (head + b"\r\n\r\n" + body).decode("latin-1")
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"reason":"body_timeout"' in answer
        assert time.monotonic() - started >= 2.9
    finally:
        for sock in slow:
            sock.close()


def test_a_client_leaving_mid_body_is_audited_as_499_not_a_failure(served):
    guard, endpoint = served
    requests_before = endpoint.requests
    _open_slow(guard).close()
    deadline = time.monotonic() + 10
    while True:
        guard.built.audit.flush()
        records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
        if records and records[-1]["reason"] == "client_disconnected":
            break
        assert time.monotonic() < deadline, records[-1:]
        time.sleep(0.05)
    assert records[-1]["status"] == 499 and records[-1]["client"] == "alice"
    assert endpoint.requests == requests_before
    assert "internal_error" not in HTTP.get(guard.url + "/metrics").text


def test_half_sent_headers_do_not_hold_up_other_clients(served):
    guard, _ = served
    stuck = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", guard.port), timeout=10)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: guard\r\nX-API-")
            stuck.append(sock)
        started = time.monotonic()
        assert post(guard, json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4]]})).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in stuck:
            sock.close()


def test_a_connection_whose_headers_trickle_is_closed(served, monkeypatch):
    from redline.guard import protocol

    guard, _ = served
    monkeypatch.setattr(protocol, "HEADER_TIMEOUT_S", 0.5)
    sock = socket.create_connection(("127.0.0.1", guard.port), timeout=10)
    try:
        started = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: guard\r\n")
        time.sleep(0.2)
        sock.sendall(b"X-API-")  # bytes keep coming, but the head is not complete in time
        assert sock.recv(4096) == b""  # closed by the guard
        assert 0.4 < time.monotonic() - started < 5
    finally:
        sock.close()
    # a kept-alive connection gets the same deadline for its next request
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as sock:
        body = json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4]]}).encode()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: guard\r\nX-API-Key: " + KEY_ALICE.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):  # the whole first answer
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST /predict HTTP/1.1\r\n")
        assert sock.recv(4096) == b""


def test_oversized_headers_are_refused(served):
    guard, _ = served
    try:  # uvicorn answers 400 or, if it is still reading, closes the connection
        answer = HTTP.post(guard.url + "/predict", content=b"{}", timeout=10,
                            headers={"X-API-Key": KEY_ALICE, "X-Padding": "a" * 400_000})
    except httpx.TransportError:
        return
    assert answer.status_code in (400, 431)


def _raw_exchange(guard, request: bytes, pieces: int = 1) -> bytes:
    """Send ``request`` in ``pieces`` writes; everything the guard answers until it closes
    (or goes quiet for a second)."""
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as sock:
        step = -(-len(request) // pieces)
        try:
            for start in range(0, len(request), step):
                sock.sendall(request[start:start + step])
                if pieces > 1:
                    time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while still sending: what it answered is read below
        sock.settimeout(1)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if answer.startswith(b"HTTP/1.1 200") and answer.rstrip().endswith(b"}"):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def _request(padding: int, body: bytes = b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}') -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: guard\r\nX-API-Key: " + KEY_ALICE.encode()
            + b"\r\nX-Padding: " + b"a" * padding + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


def test_the_guard_parses_with_httptools_and_caps_the_head_itself(served):
    from redline.guard import protocol
    from redline.guard.server import uvicorn_settings

    pytest.importorskip("httptools")
    assert uvicorn_settings("127.0.0.1", 1)["http"].endswith(":HeaderLimitsHttpTools")
    guard, endpoint = served
    cap = protocol.MAX_HEADER_BYTES
    assert _raw_exchange(guard, _request(cap - 300)).startswith(b"HTTP/1.1 200")  # just under the cap
    requests_before = endpoint.requests
    for padding, pieces in ((cap + 10, 1), (cap + 10, 40), (200_000, 1), (200_000, 400)):
        answer = _raw_exchange(guard, _request(padding), pieces)
        # refused with 431, or (a client still writing a long head) cut off
        assert answer.startswith(b"HTTP/1.1 431") or answer == b"", (padding, pieces, answer[:80])
        if padding == cap + 10:
            assert answer.startswith(b"HTTP/1.1 431"), pieces
    assert endpoint.requests == requests_before
    # a small head whose body arrives in the same read is no large head: the body limit answers
    answer = _raw_exchange(guard, _request(10, b"[" + b"0," * 20_000 + b"0]"))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def test_without_httptools_the_h11_protocol_keeps_the_deadline_and_the_cap(tmp_path, monkeypatch):
    from redline.guard import protocol, server

    monkeypatch.setattr(server, "http_protocol", lambda: "redline.guard.protocol:HeaderDeadlineH11")
    monkeypatch.setattr(protocol, "HEADER_TIMEOUT_S", 0.5)
    with ModelEndpoint() as endpoint:
        guard = launch(tmp_path, POLICY, endpoint.url)
        try:
            assert _raw_exchange(guard, _request(100)).startswith(b"HTTP/1.1 200")
            # h11 caps what it holds of a head still arriving (a whole head in one read passes)
            answer = _raw_exchange(guard, _request(200_000), pieces=100)
            assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:80]
            with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: guard\r\nX-API-")
                assert sock.recv(4096) == b"" and 0.4 < time.monotonic() - started < 5
            assert endpoint.requests == 1
        finally:
            guard.__exit__(None, None, None)


@pytest.mark.parametrize("mode", ["short", "nan", "error", "malformed"])
def test_answers_of_the_model_out_of_protocol_never_reach_the_client(served, mode):
    guard, endpoint = served
    endpoint.mode = mode
    try:
        answer = post(guard, json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]]}))
    finally:
        endpoint.mode = "ok"
    assert answer.status_code == 502
    assert answer.json() == {"error": "the model behind the guard failed", "reason": "upstream_error"}
    assert UPSTREAM_SECRET not in answer.text and "NaN" not in answer.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=40,
)
rows = st.integers(1, 6).flatmap(lambda n: st.lists(
    st.lists(st.floats(-1e6, 1e6) | st.integers(-10, 10), min_size=3, max_size=5), min_size=n, max_size=n))
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps({"inputs": v}).encode()),
    rows.map(lambda r: json.dumps({"inputs": r}).encode()),
    st.binary(max_size=300),
    rows.map(lambda r: json.dumps({"inputs": r}).encode()[: len(json.dumps({"inputs": r})) // 2]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_fuzzed_bodies_get_a_prediction_or_a_json_refusal(served, body):
    guard, _ = served
    assert_well_formed(post(guard, body))
