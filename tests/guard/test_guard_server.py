"""The guard in front of a model endpoint on 127.0.0.1: protocol, keys, refusals, audit, metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest
from guard_testkit import HTTP, KEY_ALICE, KEY_BOB, UPSTREAM_SECRET

from redline.defences import Defence, LockedOut, RateLimited, emit

X = [[0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.1, 0.0]]

POLICY = """
version: 1
limits: {max_body_bytes: 20000, max_batch: 8, upstream_timeout_s: 1, body_timeout_s: 1}
input: {shape: [4], lower: 0, upper: 1}
defences:
  - round: {decimals: 2}
"""


class CountingGate(Defence):
    """A per-client request budget kept in the state store (a test-local defence)."""

    policy_key = "test_counting_gate"

    def __init__(self, limit: int = 2, client: str = ""):
        self.limit = limit
        self.client = client
        self.state = None

    def for_client(self, client, state):
        clone = CountingGate(self.limit, client)
        clone.state = state
        return clone

    def transform_input(self, x):
        used = self.state.incr(f"gate:{self.client}")
        emit("test_counting_gate", "counted", used=used)
        if used > self.limit:
            raise RateLimited(f"{self.client} used its {self.limit} requests")
        if self.client == "bob" and used == self.limit:
            raise LockedOut("bob is locked out")
        return x

    def metrics(self):
        return {"limit": self.limit}


def post(guard, body, key=KEY_ALICE, **kw):
    headers = kw.pop("headers", {})
    if key is not None:
        headers.setdefault("X-API-Key", key)
    content = json.dumps(body) if isinstance(body, (dict, list)) else body
    return HTTP.post(guard.url + "/predict", content=content, headers=headers, timeout=10, **kw)


def audit_records(guard):
    guard.built.audit.flush()
    return [json.loads(line) for line in guard.audit_path.read_text().splitlines()]


def test_answers_the_model_protocol_through_the_defences(start_guard, model_endpoint):
    guard = start_guard(POLICY, model_endpoint.url)
    answer = post(guard, {"inputs": X})
    assert answer.status_code == 200, answer.text
    probs = np.array(answer.json()["probabilities"])
    expected = np.round(model_endpoint.probabilities(np.float32(X)), 2)
    assert np.allclose(probs, expected) and np.all(probs == np.round(probs, 2))
    assert answer.headers["x-request-id"]
    by_bearer = post(guard, {"inputs": X}, key=None, headers={"Authorization": f"Bearer {KEY_BOB}"})
    assert by_bearer.status_code == 200
    assert HTTP.get(guard.url + "/healthz", timeout=5).json()["status"] == "ok"


def test_labels_only_policy_answers_labels(start_guard, model_endpoint):
    guard = start_guard(POLICY + "  - labels_only\n", model_endpoint.url)
    answer = post(guard, {"inputs": X})
    assert answer.json() == {"labels": model_endpoint.probabilities(np.float32(X)).argmax(axis=1).tolist()}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "not-a-known-key-123456"}, {"Authorization": "Bearer nope"},
                                     {"Authorization": f"Basic {KEY_ALICE}"}])
def test_unknown_or_missing_key_is_401_and_never_reaches_the_model(start_guard, model_endpoint, headers):
    guard = start_guard(POLICY, model_endpoint.url)
    answer = post(guard, {"inputs": X}, key=None, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "unknown or missing API key", "reason": "unauthorized"}
    assert model_endpoint.requests == 0
    record = audit_records(guard)[-1]
    assert record["client"] is None and record["status"] == 401
    assert KEY_ALICE not in guard.audit_path.read_text()


@pytest.mark.parametrize("mode, status, reason", [("error", 502, "upstream_error"), ("malformed", 502, "upstream_error"),
                                                   ("slow", 504, "upstream_timeout")])
def test_upstream_failures_fail_closed_without_details(start_guard, model_endpoint, mode, status, reason):
    guard = start_guard(POLICY, model_endpoint.url)
    model_endpoint.mode, model_endpoint.delay = mode, 2.0
    answer = post(guard, {"inputs": X})
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"error", "reason"} and body["reason"] == reason
    for leak in (UPSTREAM_SECRET, model_endpoint.url, "127.0.0.1", "Traceback", "HTTP 500"):
        assert leak not in answer.text
    assert "probabilities" not in body and "labels" not in body
    metrics = HTTP.get(guard.url + "/metrics", timeout=5).text
    assert f'redline_guard_requests_total{{status="{status}",reason="{reason}"}} 1' in metrics


def test_unreachable_upstream_is_502(start_guard):
    from guard_testkit import free_port

    guard = start_guard(POLICY, f"http://127.0.0.1:{free_port()}/predict")
    answer = post(guard, {"inputs": X})
    assert answer.status_code == 502 and answer.json()["reason"] == "upstream_error"
    assert "127.0.0.1" not in answer.text


def test_refusals_of_defences_keep_their_status_and_are_audited(start_guard, model_endpoint):
    guard = start_guard(POLICY + "  - test_counting_gate: {limit: 2}\n", model_endpoint.url)
    assert [post(guard, {"inputs": X}).status_code for _ in range(3)] == [200, 200, 429]
    refused = post(guard, {"inputs": X})
    assert refused.json() == {"error": "alice used its 2 requests", "reason": "rate_limited"}
    assert post(guard, {"inputs": X}, key=KEY_BOB).status_code == 200  # per-client state
    locked = post(guard, {"inputs": X}, key=KEY_BOB)
    assert locked.status_code == 403 and locked.json()["reason"] == "locked_out"
    assert model_endpoint.requests == 3
    records = audit_records(guard)
    assert [r["status"] for r in records] == [200, 200, 429, 429, 200, 403]
    assert [r["client"] for r in records] == ["alice"] * 4 + ["bob"] * 2
    assert records[2]["events"] == [{"defence": "test_counting_gate", "event": "counted", "used": 3.0}]
    assert all(r["rows"] == 2 and r["latency_ms"] > 0 and r["time"].endswith("Z") for r in records)
    metrics = HTTP.get(guard.url + "/metrics", timeout=5).text
    assert 'redline_guard_requests_total{status="429",reason="rate_limited"} 2' in metrics
    assert "redline_guard_locked_out_requests_total 1" in metrics
    assert 'redline_guard_defence_events_total{defence="test_counting_gate",event="counted"} 6' in metrics
    assert 'redline_guard_defence_metric{defence="test_counting_gate",client="alice",metric="limit"} 2.0' in metrics
    assert "redline_guard_request_duration_seconds_count 6" in metrics


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "bad_request"),
    (b'{"inputs": [[NaN, 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[Infinity, 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[1e999, 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[true, 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [["1", 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[null, 1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[1, 2, 3, 4], [1, 2]]}', "bad_request"),
    (b'{"inputs": [1, 2, 3, 4]}', "bad_request"),
    (b'{"inputs": []}', "bad_request"),
    (b'{"inputs": [[1, 2, 3]]}', "bad_request"),
    (b'{"inputs": [[1, 2, 3, 4]], "extra": 1}', "bad_request"),
    (b'[[1, 2, 3, 4]]', "bad_request"),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "bad_request"),
    (b'{"inputs": [[[[[[[[[[1]]]]]]]]]]}', "bad_request"),
    (json.dumps({"inputs": [[0.5] * 4] * 9}).encode(), "batch_too_large"),
    ("\ud800".encode("utf-8", "surrogatepass"), "bad_request"),
])
def test_malformed_requests_are_422_and_never_reach_the_model(start_guard, model_endpoint, body, reason):
    guard = start_guard(POLICY, model_endpoint.url)
    answer = post(guard, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == reason and set(answer.json()) == {"error", "reason"}
    assert model_endpoint.requests == 0


def test_bodies_over_the_limit_are_413_before_parsing(start_guard, model_endpoint):
    guard = start_guard(POLICY, model_endpoint.url)
    declared = post(guard, b"{" + b" " * 30000 + b"}")
    assert declared.status_code == 413 and declared.json()["reason"] == "body_too_large"

    def chunks():  # no Content-Length: the limit holds on what arrives
        for _ in range(30):
            yield b" " * 1000

    streamed = post(guard, chunks())
    assert streamed.status_code == 413
    assert model_endpoint.requests == 0
    assert post(guard, {"inputs": X}).status_code == 200  # the guard is still fine


def test_the_default_state_store_is_temporary_and_removed_at_shutdown(start_guard, model_endpoint):
    from pathlib import Path

    guard = start_guard(POLICY, model_endpoint.url)
    folder = Path(guard.built.state_url[len("sqlite:///"):]).parent
    assert folder.is_dir() and folder.name.startswith("redline-guard-")
    assert post(guard, {"inputs": X}).status_code == 200
    guard.__exit__(None, None, None)
    assert not folder.exists()


def test_the_model_is_reached_with_the_target_config_and_never_with_the_client_key(start_guard, model_endpoint,
                                                                                 monkeypatch):
    model_endpoint.token = "model-token-0001"
    monkeypatch.setenv("MODEL_TOKEN", "model-token-0001")
    guard = start_guard(POLICY, model_endpoint.url, target_config="auth: {bearer: '${MODEL_TOKEN}'}\n")
    assert post(guard, {"inputs": X}).status_code == 200
    assert KEY_ALICE not in str(model_endpoint.seen_headers)  # the client's key stays at the guard
    model_endpoint.token = "rotated"
    refused = post(guard, {"inputs": X})
    assert refused.status_code == 502 and UPSTREAM_SECRET not in refused.text


def test_the_policy_may_name_the_upstream(start_guard, model_endpoint):
    guard = start_guard(POLICY + f"upstream: {model_endpoint.url}\n", None)
    assert post(guard, {"inputs": X}).status_code == 200


def test_metrics_need_the_metrics_token_when_the_policy_sets_one(start_guard, model_endpoint):
    import hashlib

    token = "scraper-token-0123456789"
    policy = POLICY.replace("defences:", f"metrics: {{token_sha256: {hashlib.sha256(token.encode()).hexdigest()}}}\n"
                                         "defences:")
    guard = start_guard(policy, model_endpoint.url)
    assert post(guard, {"inputs": X}).status_code == 200
    for headers in ({}, {"X-API-Key": KEY_ALICE}, {"Authorization": "Bearer wrong-token-0123456789"}):
        refused = HTTP.get(guard.url + "/metrics", headers=headers, timeout=5)
        assert refused.status_code == 401 and "metrics token" in refused.json()["reason"]
        assert "alice" not in refused.text
    served = HTTP.get(guard.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert served.status_code == 200 and "redline_guard_requests_total" in served.text


@pytest.mark.parametrize("peer, token, presented, expected", [
    ("127.0.0.1", None, None, None),
    ("::1", None, None, None),
    ("10.1.2.3", None, None, 403),
    ("scraper.example", None, None, 403),
    (None, None, None, 403),
    ("10.1.2.3", "t" * 20, "t" * 20, None),
    ("127.0.0.1", "t" * 20, None, 401),  # with a token, loopback must present it too
    ("::ffff:127.0.0.1", None, None, None),  # IPv4-mapped loopback (a dual-stack listener)
    ("::ffff:10.0.0.1", None, None, 403),
])
def test_who_may_read_the_metrics(peer, token, presented, expected):
    import hashlib

    from redline.guard.keys import metrics_refusal

    digest = hashlib.sha256(token.encode()).hexdigest() if token else None
    headers = {"x-api-key": presented} if presented else {}
    refused = metrics_refusal(digest, headers, peer)
    assert (refused and refused[0]) == expected


def test_a_metrics_token_in_clear_is_refused_by_the_policy_loader():
    from redline.defences.policy import parse_policy
    from redline.errors import UsageError

    with pytest.raises(UsageError, match="metrics.token_sha256"):
        parse_policy({"version": 1, "metrics": {"token_sha256": "my-secret-token"}})


def test_metrics_forwarded_by_a_proxy_on_this_host_need_the_token():
    import hashlib

    from redline.guard.keys import metrics_refusal

    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        from starlette.datastructures import Headers

        headers = Headers({header: "203.0.113.9"})
        refused = metrics_refusal(None, headers, "127.0.0.1")
        assert refused is not None and refused[0] == 403 and "proxy" in refused[1]
        token = "t" * 20
        assert metrics_refusal(hashlib.sha256(token.encode()).hexdigest(),
                               Headers({header: "203.0.113.9", "authorization": f"Bearer {token}"}), "127.0.0.1") is None


def test_an_empty_api_key_header_does_not_hide_a_bearer_token():
    from redline.guard.keys import presented_key

    assert presented_key({"x-api-key": "", "authorization": "Bearer tok-123"}) == "tok-123"
    assert presented_key({"x-api-key": "  ", "authorization": "Bearer tok-123"}) == "tok-123"
    assert presented_key({"x-api-key": "key-1", "authorization": "Bearer tok-123"}) == "key-1"
    assert presented_key({"x-api-key": ""}) is None
