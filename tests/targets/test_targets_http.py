"""HttpTarget against real local servers (127.0.0.1, port 0), one per behaviour."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from redline.errors import BudgetExceeded, TargetError, UsageError
from redline.targets import InputSpec, TargetConfig
from redline.targets.http import HttpTarget, TokenBucket

SPEC = InputSpec(shape=(3,), lower=-1.0, upper=1.0)
WEIGHTS = np.array([[1.0, -1.0], [0.5, 0.2], [-0.3, 0.8]])


def probabilities(rows):
    z = np.asarray(rows) @ WEIGHTS
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p.tolist()


def quick(**overrides) -> TargetConfig:
    """A config with tiny back-off so failure tests stay fast."""
    return TargetConfig(**{"backoff": 0.001, "timeout": 2.0, **overrides})


class Server:
    """Answers each POST with ``respond(body, headers) -> (status, bytes)``; records what it saw.

    ``rows_answered`` counts the input rows of requests answered with a 2xx status.
    """

    def __init__(self, respond: Callable[[dict, dict], tuple[int, bytes]], rows_of: Callable[[dict], int]):
        self.requests: list[dict] = []
        self.rows_answered = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"body": body, "headers": headers, "path": self.path})
                status, payload = respond(body, headers)
                if 200 <= status < 300:
                    server.rows_answered += rows_of(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output clean
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up: expected here
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve():
    servers = []

    def start(respond, rows_of=lambda body: len(body["inputs"])):
        server = Server(respond, rows_of)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def json_bytes(obj) -> bytes:
    return json.dumps(obj).encode()


def test_probabilities_endpoint(serve):
    server = serve(lambda body, h: (200, json_bytes({"probabilities": probabilities(body["inputs"])})))
    target = HttpTarget(server.url, input_spec=SPEC)
    assert target.capabilities.remote and not target.capabilities.gradients
    x = np.random.default_rng(0).uniform(-1, 1, size=(5, 3))
    p = target.predict(x)
    np.testing.assert_allclose(p, probabilities(x.astype(np.float32)), atol=1e-6)
    assert target.n_classes == 2  # learned from the first answer
    assert target.capabilities.outputs == "probabilities"
    assert server.requests[0]["headers"]["content-type"] == "application/json"


def test_labels_endpoint_is_detected(serve):
    server = serve(lambda body, h: (200, json_bytes({"labels": [int(r[0] > 0) for r in body["inputs"]]})))
    target = HttpTarget(server.url, input_spec=SPEC, n_classes=2)
    out = target.predict(np.array([[0.5, 0, 0], [-0.5, 0, 0]]))
    np.testing.assert_array_equal(out, [1, 0])
    assert target.capabilities.outputs == "labels"
    assert target.predict_labels(np.array([[0.9, 0, 0]])).tolist() == [1]


def test_batches_are_split_and_the_ledger_matches_the_server(serve):
    server = serve(lambda body, h: (200, json_bytes({"probabilities": probabilities(body["inputs"])})))
    target = HttpTarget(server.url, config=quick(max_batch=4), input_spec=SPEC)
    target.predict(np.zeros((10, 3)))
    assert [len(r["body"]["inputs"]) for r in server.requests] == [4, 4, 2]
    assert target.ledger.total == server.rows_answered == 10


def test_transient_failures_are_retried(serve):
    calls = {"n": 0}

    def flaky(body, headers):
        calls["n"] += 1
        if calls["n"] == 1:
            return 503, b'{"error": "warming up"}'
        if calls["n"] == 2:
            return 200, b"<html>not json</html>"
        return 200, json_bytes({"probabilities": probabilities(body["inputs"])})

    server = serve(flaky)
    target = HttpTarget(server.url, config=quick(retries=2), input_spec=SPEC)
    assert target.predict(np.zeros((3, 3))).shape == (3, 2)
    assert len(server.requests) == 3
    # every row the server received is charged; the two failed attempts also count as retried
    assert target.ledger.total == 9 and target.ledger.retried == 6


def test_timeouts_are_retried(serve):
    calls = {"n": 0}

    def slow_once(body, headers):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.6)
        return 200, json_bytes({"probabilities": probabilities(body["inputs"])})

    server = serve(slow_once)
    target = HttpTarget(server.url, config=quick(timeout=0.2, retries=1), input_spec=SPEC)
    assert target.predict(np.zeros((2, 3))).shape == (2, 2)
    assert calls["n"] == 2 and target.ledger.total == 4 and target.ledger.retried == 2


def test_persistent_failure_raises_one_line_error_and_charges_every_attempt(serve):
    server = serve(lambda body, h: (500, b'{"error": "model crashed"}\n'))
    target = HttpTarget(server.url, config=quick(retries=2), input_spec=SPEC)
    started = time.monotonic()
    with pytest.raises(TargetError) as err:
        target.predict(np.zeros((2, 3)))
    message = str(err.value)
    assert "\n" not in message
    assert server.url in message and "3 attempt" in message and "HTTP 500" in message and "model crashed" in message
    assert len(server.requests) == 3
    assert target.ledger.total == target.ledger.retried == 6
    assert time.monotonic() - started < 2


def test_partial_success_charges_every_chunk_sent(serve):
    def first_chunk_only(body, headers):
        if body["inputs"][0][0] > 0:
            return 500, b"{}"
        return 200, json_bytes({"probabilities": probabilities(body["inputs"])})

    server = serve(first_chunk_only)
    target = HttpTarget(server.url, config=quick(max_batch=2, retries=0), input_spec=SPEC)
    x = np.zeros((4, 3))
    x[2:, 0] = 0.5
    with pytest.raises(TargetError):
        target.predict(x)
    assert server.rows_answered == 2
    assert target.ledger.total == sum(len(r["body"]["inputs"]) for r in server.requests) == 4
    assert target.ledger.retried == 2


def test_malformed_answers_are_reported(serve):
    server = serve(lambda body, h: (200, json_bytes({"probabilities": [[0.5, 0.5]]})))  # always one row
    target = HttpTarget(server.url, config=quick(retries=1), input_spec=SPEC)
    with pytest.raises(TargetError, match=r"malformed answer: .*shaped \(3, k\)"):
        target.predict(np.zeros((3, 3)))
    assert target.ledger.total == target.ledger.retried == 6  # two attempts of three rows reached the server


def test_answer_with_neither_key_is_malformed(serve):
    server = serve(lambda body, h: (200, json_bytes({"scores": [[1, 0]]})))
    target = HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC)
    with pytest.raises(TargetError, match="neither 'probabilities' nor 'labels'"):
        target.predict(np.zeros((1, 3)))


def test_unreachable_endpoint_is_a_target_error():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = HttpTarget(f"http://127.0.0.1:{port}/", config=quick(retries=1), input_spec=SPEC)
    with pytest.raises(TargetError, match="Connection refused|ConnectionRefusedError"):
        target.predict(np.zeros((1, 3)))


def test_headers_and_bearer_auth_arrive(serve, monkeypatch):
    monkeypatch.setenv("REDLINE_TEST_KEY", "k-123")
    config = TargetConfig.from_mapping(
        {"headers": {"X-Api-Key": "${REDLINE_TEST_KEY}", "X-Team": "audit"}, "auth": {"bearer": "tok"}}
    )
    server = serve(lambda body, h: (200, json_bytes({"labels": [0] * len(body["inputs"])})))
    HttpTarget(server.url, config=config, input_spec=SPEC, n_classes=2).predict(np.zeros((1, 3)))
    headers = server.requests[0]["headers"]
    assert headers["x-api-key"] == "k-123" and headers["x-team"] == "audit"
    assert headers["authorization"] == "Bearer tok"


def test_basic_auth_arrives(serve):
    config = TargetConfig.from_mapping({"auth": {"basic": {"username": "ann", "password": "s3cret"}}})
    server = serve(lambda body, h: (200, json_bytes({"labels": [0] * len(body["inputs"])})))
    HttpTarget(server.url, config=config, input_spec=SPEC, n_classes=2).predict(np.zeros((1, 3)))
    assert server.requests[0]["headers"]["authorization"] == "Basic " + base64.b64encode(b"ann:s3cret").decode()


def test_request_and_response_mapping_with_nested_keys(serve):
    def respond(body, headers):
        rows = body["payload"]["rows"]
        assert body["model"] == "v2" and body["options"] == {"explain": False}
        return 200, json_bytes({"result": {"scores": probabilities(rows), "label": [0] * len(rows)}})

    config = TargetConfig.from_mapping(
        {
            "request": {"inputs_key": "payload.rows", "fields": {"model": "v2", "options": {"explain": False}}},
            "response": {"probabilities_key": "result.scores", "labels_key": "result.label"},
        }
    )
    server = serve(respond, rows_of=lambda body: len(body["payload"]["rows"]))
    target = HttpTarget(server.url, config=config, input_spec=SPEC)
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, 3))
    np.testing.assert_allclose(target.predict(x), probabilities(x.astype(np.float32)), atol=1e-6)
    assert target.capabilities.outputs == "probabilities"
    assert target.ledger.total == server.rows_answered == 3


def test_config_can_state_labels(serve):
    server = serve(lambda body, h: (200, json_bytes({"labels": [1] * len(body["inputs"]), "probabilities": "ignored"})))
    target = HttpTarget(server.url, config=quick(outputs="labels", n_classes=3), input_spec=SPEC)
    assert target.capabilities.outputs == "labels" and target.n_classes == 3
    np.testing.assert_array_equal(target.predict(np.zeros((2, 3))), [1, 1])


def test_labels_out_of_range_are_malformed(serve):
    server = serve(lambda body, h: (200, json_bytes({"labels": [7] * len(body["inputs"])})))
    target = HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC, n_classes=2)
    with pytest.raises(TargetError, match=r"class indices in \[0, 2\)"):
        target.predict(np.zeros((1, 3)))


def test_budget_is_enforced_before_any_request(serve):
    server = serve(lambda body, h: (200, json_bytes({"probabilities": probabilities(body["inputs"])})))
    target = HttpTarget(server.url, input_spec=SPEC)
    target.ledger.budget = 3
    with pytest.raises(BudgetExceeded):
        target.predict(np.zeros((4, 3)))
    assert server.requests == []


def test_rate_limit_spaces_requests(serve):
    server = serve(lambda body, h: (200, json_bytes({"probabilities": probabilities(body["inputs"])})))
    target = HttpTarget(server.url, config=quick(rate_limit=20.0, max_batch=1), input_spec=SPEC)
    started = time.monotonic()
    target.predict(np.zeros((5, 3)))
    assert time.monotonic() - started >= 4 / 20 - 0.01  # five requests, four gaps of 50 ms


def test_token_bucket_never_allows_bursts():
    bucket = TokenBucket(rate=50.0)
    started = time.monotonic()
    for _ in range(6):
        bucket.acquire()
    assert time.monotonic() - started >= 5 * 0.02 - 0.002  # the first is free, then one per 20 ms


def test_input_shape_is_required_and_scheme_checked():
    with pytest.raises(UsageError, match="input shape is unknown"):
        HttpTarget("http://127.0.0.1:9/")
    with pytest.raises(UsageError, match="http:// or https://"):
        HttpTarget("file:///etc/passwd", input_spec=SPEC)
    target = HttpTarget("http://127.0.0.1:9/", config=quick(input_shape=(2, 2), lower=0.0, upper=255.0))
    assert target.input_spec.shape == (2, 2) and target.input_spec.upper == 255.0


def test_a_two_class_endpoint_answering_its_class_1_probability(serve):
    def respond(body, headers):
        return 200, json_bytes({"score": [p[1] for p in probabilities(body["inputs"])]})

    server = serve(respond)
    # Without saying so, one number per row is not taken for anything, and the error says what to write.
    bare = HttpTarget(server.url, config=quick(retries=0, probabilities_key="score"), input_spec=SPEC)
    with pytest.raises(TargetError, match="positive_probability_key: score"):
        bare.predict(np.zeros((2, 3)))
    config = TargetConfig.from_mapping({"response": {"positive_probability_key": "score"}, "backoff": 0.001})
    target = HttpTarget(server.url, config=config, input_spec=SPEC)
    x = np.random.default_rng(2).uniform(-1, 1, size=(4, 3))
    np.testing.assert_allclose(target.predict(x), probabilities(x.astype(np.float32)), atol=1e-6)
    assert target.capabilities.outputs == "probabilities" and target.n_classes == 2


def test_a_class_1_probability_must_be_one_number_in_0_1_per_row(serve):
    server = serve(lambda body, h: (200, json_bytes({"score": [1.5] * len(body["inputs"])})))
    config = TargetConfig.from_mapping({"response": {"positive_probability_key": "score"}, "retries": 0})
    with pytest.raises(TargetError, match=r"in \[0, 1\]"):
        HttpTarget(server.url, config=config, input_spec=SPEC).predict(np.zeros((1, 3)))
    with pytest.raises(UsageError, match="two-class"):
        TargetConfig.from_mapping({"response": {"positive_probability_key": "score"}, "n_classes": 3})


NAMES = ["setosa", "versicolor", "virginica"]


def _named_server(serve, answer):
    """An endpoint whose answer for each row is ``answer(class number of the row)``: the class
    is the row's first feature (0, 1 or 2)."""
    return serve(lambda body, h: (200, json_bytes(answer([int(row[0]) for row in body["inputs"]]))))


def test_text_labels_are_read_through_the_data_s_class_names(serve):
    server = _named_server(serve, lambda ks: {"labels": [NAMES[k] for k in ks]})
    x = np.array([[0, 0, 0], [2, 0, 0], [1, 0, 0]], dtype=float)
    target = HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC, n_classes=3, class_names=NAMES)
    np.testing.assert_array_equal(target.predict(x), [0, 2, 1])
    assert target.capabilities.outputs == "labels"
    # Without names a text answer is an error that says what to write.
    bare = HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC, n_classes=3)
    with pytest.raises(TargetError, match=r"labels as text \(e.g. 'setosa'\).*class_names"):
        bare.predict(x)
    # A name nobody declared is named.
    odd = _named_server(serve, lambda ks: {"labels": ["setosa", "rose"][: len(ks)]})
    with pytest.raises(TargetError, match=r"\['rose'\].*not among"):
        HttpTarget(odd.url, config=quick(retries=0), input_spec=SPEC, class_names=NAMES).predict(x[:2])


def test_numbers_sent_as_text_stay_numbers_when_no_class_is_named_so(serve):
    server = _named_server(serve, lambda ks: {"labels": [str(k) for k in ks]})
    target = HttpTarget(server.url, config=quick(retries=0, outputs="labels"), input_spec=SPEC, n_classes=3,
                        class_names=NAMES)
    np.testing.assert_array_equal(target.predict(np.array([[2, 0, 0], [0, 0, 0]], dtype=float)), [2, 0])


def test_the_endpoint_s_class_order_is_moved_to_the_data_s_numbering(serve):
    # The endpoint orders its classes virginica, setosa, versicolor; the data numbers them
    # setosa=0, versicolor=1, virginica=2 (sorted text labels).
    order = ["virginica", "setosa", "versicolor"]

    def answer(ks):
        rows = []
        for k in ks:
            p = [0.1, 0.1, 0.1]
            p[order.index(NAMES[k])] = 0.8
            rows.append(p)
        return {"probabilities": rows, "labels": [order.index(NAMES[k]) for k in ks]}

    server = _named_server(serve, answer)
    config = TargetConfig.from_mapping({"class_names": order, "retries": 0, "backoff": 0.001})
    x = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    target = HttpTarget(server.url, config=config, input_spec=SPEC, n_classes=3, class_names=NAMES)
    np.testing.assert_array_equal(target.predict(x).argmax(1), [0, 1, 2])
    assert target.class_names == NAMES and target.label_mismatch is None
    labels = HttpTarget(server.url, config=dataclasses.replace(config, outputs="labels"), input_spec=SPEC,
                        class_names=NAMES)
    np.testing.assert_array_equal(labels.predict(x), [0, 1, 2])  # label numbers are the endpoint's, moved too


def test_probabilities_keyed_by_class_name(serve):
    server = _named_server(serve, lambda ks: {"probabilities": [
        {name: (0.9 if j == k else 0.05) for j, name in enumerate(NAMES)} for k in ks]})
    x = np.array([[1, 0, 0], [2, 0, 0]], dtype=float)
    target = HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC, class_names=NAMES)
    np.testing.assert_allclose(target.predict(x), [[0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    with pytest.raises(TargetError, match="keyed by class name.*class_names"):
        HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC).predict(x)


def test_class_names_the_data_lacks_are_numbered_after_the_data_s(serve):
    # The endpoint knows a fourth class the scan's data never holds: it is class 3.
    server = _named_server(serve, lambda ks: {"labels": ["rose" if k == 2 else NAMES[k] for k in ks]})
    config = TargetConfig.from_mapping({"class_names": NAMES + ["rose"], "retries": 0})
    target = HttpTarget(server.url, config=config, input_spec=SPEC, class_names=NAMES, n_classes=3)
    assert target.n_classes == 4 and target.label_mismatch is None
    np.testing.assert_array_equal(target.predict(np.array([[2, 0, 0], [1, 0, 0]], dtype=float)), [3, 1])
    # Classes spelt differently on each side: the labels cannot be read, said once for the label checks.
    other = TargetConfig.from_mapping({"class_names": ["Setosa", "Versicolor", "Virginica"]})
    mismatch = HttpTarget(server.url, config=other, input_spec=SPEC, class_names=NAMES).label_mismatch
    assert "each side has a class the other lacks" in mismatch and "'Setosa'" in mismatch


def test_class_names_in_the_config_are_checked():
    with pytest.raises(UsageError, match="class_names: names a class more than once: a"):
        TargetConfig.from_mapping({"class_names": ["a", "b", "a"]})
    with pytest.raises(UsageError, match="class_names: names 2 classes but n_classes is 3"):
        TargetConfig.from_mapping({"class_names": ["a", "b"], "n_classes": 3})
    with pytest.raises(UsageError, match="class_names: must be a list"):
        TargetConfig.from_mapping({"class_names": "a,b"})
    assert TargetConfig.from_mapping({"class_names": ["no", 1]}).class_names == ("no", "1")


def test_secrets_an_endpoint_echoes_back_are_replaced(serve):
    token, key = "tok-SUPERSECRET-123", "key/with+odd chars"
    server = serve(lambda body, h: (500, json_bytes({"error": f"denied: {h.get('authorization')} {h.get('x-api-key')} "
                                                              f"{json.dumps(key)} pw=hunter22"})))
    config = TargetConfig.from_mapping({"auth": {"bearer": token}, "headers": {"X-Api-Key": key}, "retries": 0})
    target = HttpTarget(server.url.replace("127.0.0.1", "u:hunter22@127.0.0.1") + "?api_key=q-SECRET-9", config=config,
                        input_spec=SPEC)
    with pytest.raises(TargetError) as caught:
        target.predict(np.zeros((1, 3)))
    text = str(caught.value)
    assert "REDACTED" in text and not any(s in text for s in (token, key, "hunter22", "q-SECRET-9", "odd chars"))
    raw = target.send_raw(b"{}")
    assert b"SUPERSECRET" not in raw.body and b"hunter22" not in raw.body and b"REDACTED" in raw.body


def test_a_header_value_that_cannot_be_sent_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("TOKEN_WITH_CR", "s3cr3t-value\r")
    for config in ({"auth": {"bearer": "${TOKEN_WITH_CR}"}}, {"headers": {"X-Key": "${TOKEN_WITH_CR}"}}):
        with pytest.raises(UsageError, match="control character '\\\\r'.*Windows line endings") as caught:
            TargetConfig.from_mapping(config)
        assert "s3cr3t" not in str(caught.value)
    with pytest.raises(UsageError, match="not a valid HTTP header name"):
        TargetConfig.from_mapping({"headers": {"X Key": "v"}})


def test_a_url_that_does_not_parse_is_a_usage_error_without_its_password():
    with pytest.raises(UsageError, match="not a valid URL") as caught:
        HttpTarget("http://user:pw-SECRET@[::1/ok", input_spec=SPEC)
    assert "pw-SECRET" not in str(caught.value)
    with pytest.raises(UsageError, match="Port out of range"):
        HttpTarget("http://127.0.0.1:99999/", input_spec=SPEC)


def test_an_answer_nested_too_deeply_is_a_malformed_answer(serve):
    server = serve(lambda body, h: (200, b'{"probabilities": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"))
    with pytest.raises(TargetError, match="malformed answer: JSON nested too deeply"):
        HttpTarget(server.url, config=quick(retries=0), input_spec=SPEC).predict(np.zeros((1, 3)))
