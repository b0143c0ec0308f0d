"""FM11.fuzz against deliberately fragile and robust targets: local HTTP endpoints and callables."""
from __future__ import annotations

import json
import math
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redline.checks import get_check
from redline.checks.base import CheckContext, NotApplicable
from redline.checks.supply_chain.fm11_fuzz import (
    COMMON_KINDS,
    KINDS,
    MEMORY_DEFAULT_KINDS,
    CaseCatalogue,
    InputFuzzing,
    plan_cases,
)
from redline.data.base import Dataset
from redline.findings import Status
from redline.severity import Severity
from redline.targets import InputSpec, TargetConfig
from redline.targets.base import raw_rows
from redline.targets.callable import CallableTarget
from redline.targets.http import HttpTarget

D = 4
SPEC = InputSpec(shape=(D,), lower=0.0, upper=1.0)
WEIGHTS = np.array([[1.0, -1.0], [0.5, 0.2], [-0.3, 0.8], [0.1, 0.1]])
HANG_SECONDS = 3.5  # how long the fragile targets stall; the check gives up well before
TIMEOUT = 1.5  # generous: a loaded CI machine must not turn a slow answer into a "hang"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def rows_by_rule(raw: bytes) -> int:
    """The documented counting rule, applied by the server to what it received."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return 1
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        return max(1, len(body["inputs"]))
    return 1


# -- local endpoints ----------------------------------------------------------------------


class Endpoint:
    """A local JSON endpoint answering with ``respond(body, content_type) -> (status, bytes)``.

    It counts every request and its rows (by the check's rule) as soon as the body is read,
    before ``respond`` runs, so a request that later hangs or fails is counted too.
    """

    def __init__(self, respond: Callable[[bytes, str], tuple[int, bytes]]):
        self.requests = 0
        self.rows = 0
        lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    endpoint.requests += 1
                    endpoint.rows += rows_by_rule(raw)
                status, payload = respond(raw, self.headers.get("Content-Type", ""))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output clean
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up on a hang
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve():
    endpoints: list[Endpoint] = []

    def start(respond):
        endpoints.append(Endpoint(respond))
        return endpoints[-1]

    yield start
    for endpoint in endpoints:
        endpoint.close()


def fragile_endpoint(raw: bytes, content_type: str) -> tuple[int, bytes]:
    """Trusts its input: no validation, no content-type check, tracebacks in the answer."""
    try:
        body = json.loads(raw)  # malformed JSON raises: answered 500 with the traceback
        rows = np.asarray(body["inputs"], dtype=np.float64)
        if len(rows) > 50:
            time.sleep(HANG_SECONDS)  # a big batch stalls the worker
        flat = rows.reshape(len(rows), -1)
        # The maximum over no numbers raises when a whole row is NaN; one NaN slips through.
        scale = np.array([max(1.0, np.abs(r[~np.isnan(r)]).max()) for r in flat])
        with np.errstate(all="ignore"):
            probabilities = softmax(np.nan_to_num(flat @ WEIGHTS) / scale[:, None])
        return 200, json.dumps({"probabilities": probabilities.tolist()}).encode()
    except Exception:  # what a careless handler does: show the traceback
        return 500, traceback.format_exc().encode()


def robust_endpoint(raw: bytes, content_type: str) -> tuple[int, bytes]:
    """Validates media type, size, JSON, structure, types, finiteness and range."""

    def refuse(status: int, why: str) -> tuple[int, bytes]:
        return status, json.dumps({"error": why}).encode()

    if content_type.split(";")[0].strip() != "application/json":
        return refuse(415, "send application/json")
    if len(raw) > 1_000_000:
        return refuse(413, "body too large")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return refuse(400, "not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return refuse(400, "inputs must be a list of rows")
    rows = body["inputs"]
    if len(rows) > 5000:
        return refuse(413, "too many rows")
    for row in rows:
        if not isinstance(row, list) or len(row) != D:
            return refuse(400, f"each row needs {D} numbers")
        for v in row:
            if type(v) not in (int, float) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
                return refuse(400, "values must be finite numbers in [0, 1]")
    probabilities = softmax(np.asarray(rows, dtype=np.float64).reshape(-1, D) @ WEIGHTS) if rows else np.zeros((0, 2))
    return 200, json.dumps({"probabilities": probabilities.tolist()}).encode()


def http_target(url: str) -> HttpTarget:
    return HttpTarget(url, config=TargetConfig(timeout=2.0, retries=0, backoff=0.001), input_spec=SPEC, n_classes=2)


def cases_of(tmp_path, finding) -> list[dict]:
    return json.loads((tmp_path / finding.evidence["cases"]).read_text())["cases"]


def outcomes(cases: list[dict], kind: str, prefix: str = "") -> list[str]:
    found = [c["outcome"] for c in cases if c["kind"] == kind and c["case"].startswith(prefix)]
    assert found, f"no {kind} case starting with {prefix!r}"
    return found


def fuzz(**params) -> InputFuzzing:
    return InputFuzzing(**{"timeout": TIMEOUT, "oversized_rows": 200, "oversized_body_mb": 1.5, **params})


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40, D)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    return Dataset("unit", x[:20], y[:20], x[20:], y[20:], spec="test:unit")


# -- HTTP -------------------------------------------------------------------------------------


def test_flags_every_failure_kind_of_a_fragile_endpoint(serve, tmp_path):
    endpoint = serve(fragile_endpoint)
    finding = fuzz()(http_target(endpoint.url), None, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    cases = cases_of(tmp_path, finding)

    assert outcomes(cases, "nan", "NaN in every feature") == ["server_error"]
    assert outcomes(cases, "nan", "NaN in feature") == ["accepted_invalid", "accepted_invalid"]
    assert set(outcomes(cases, "out_of_bounds")) == {"accepted_invalid"}
    assert outcomes(cases, "oversized_batch") == ["hang"]
    assert outcomes(cases, "wrong_content_type", "valid JSON sent as text/plain") == ["accepted_invalid"]
    assert set(outcomes(cases, "malformed_json")) == {"server_error"}
    cut = next(c for c in cases if c["case"] == "the request cut off halfway")
    assert cut["status"] == 500 and cut["leaks_traceback"] and "JSONDecodeError" in cut["answer"]
    deep = next(c for c in cases if "nested" in c["case"])
    assert deep["outcome"] == "server_error" and "RecursionError" in deep["answer"]

    m = finding.metrics
    assert m["hangs"] == 1 and m["server_errors"] >= 10 and m["accepted_invalid"] >= 6
    assert m["failures"] == m["crashes"] + m["server_errors"] + m["hangs"] + m["bad_answers"] + m["accepted_invalid"]
    assert m["cases"] == len(cases) == m["failures"] + m["ok"] + m["rejected"]
    # A hang denies service: the worst case, scored on CVSS for the FM11 triage rules.
    assert m["max_cvss"] == 7.5 and finding.evidence["cvss_vector"].endswith("/A:H")
    assert "hang on oversized_batch" in finding.summary
    assert {f["outcome"] for f in finding.evidence["failures"]} == {"server_error", "hang", "accepted_invalid"}
    # Every request is counted once, with the rows it carried, as the server counted them.
    assert finding.queries + finding.evaluation_queries == endpoint.rows
    assert endpoint.requests == len(cases) + 1  # the cases and the baseline
    assert finding.evaluation_queries == 1 and finding.queries <= 2000


def test_a_robust_endpoint_passes(serve, tmp_path, data):
    endpoint = serve(robust_endpoint)
    finding = fuzz()(http_target(endpoint.url), data, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    cases = cases_of(tmp_path, finding)
    assert {c["outcome"] for c in cases} == {"ok", "rejected"}
    assert set(outcomes(cases, "tiny")) == set(outcomes(cases, "empty_batch")) == {"ok"}
    assert outcomes(cases, "oversized_batch") == ["ok"]
    assert outcomes(cases, "oversized_body") == ["rejected"]
    assert next(c for c in cases if c["case"].startswith("valid JSON sent as text/plain"))["status"] == 415
    assert {c["kind"] for c in cases} == set(KINDS)
    assert finding.metrics["failures"] == 0 and "max_cvss" not in finding.metrics
    assert "every one was rejected cleanly" in finding.summary
    assert finding.queries + finding.evaluation_queries == endpoint.rows


def test_a_server_that_drops_the_connection_crashes(serve, tmp_path):
    def respond(raw, content_type):
        if b"NaN" in raw:
            raise ConnectionAbortedError("worker died")  # the handler dies without answering
        return robust_endpoint(raw, content_type)

    endpoint = serve(respond)
    finding = fuzz(include="nan,out_of_bounds")(http_target(endpoint.url), None, budget=100, ctx=CheckContext(tmp_path))
    cases = cases_of(tmp_path, finding)
    assert set(outcomes(cases, "nan")) == {"crash"}
    assert set(outcomes(cases, "out_of_bounds")) == {"rejected"}
    assert finding.metrics["max_cvss"] == 7.5  # a dropped connection counts as denial of service
    assert finding.queries + finding.evaluation_queries == endpoint.rows


def test_an_endpoint_that_cannot_answer_a_valid_row_is_an_error(serve):
    endpoint = serve(lambda raw, content_type: (503, b"down for maintenance"))
    finding = fuzz()(http_target(endpoint.url), None, budget=2000)
    assert finding.status is Status.ERROR
    assert "did not answer one valid row (server_error" in finding.reason
    assert finding.queries == 0 and finding.evaluation_queries == endpoint.rows == 1


# -- in memory -------------------------------------------------------------------------------


class CountingModel:
    """Wraps a model function and counts the calls and rows it receives (by the check's rule)."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0

    def __call__(self, x):
        self.rows += raw_rows(x)
        return self.fn(x)


def fragile_model(x):
    x = np.asarray(x)
    if x.ndim and len(x) > 50:
        time.sleep(HANG_SECONDS)  # a big batch stalls
    first = x[0]  # IndexError on an empty batch or a scalar
    per_feature = 1 / (x.shape[-1] - 3)  # ZeroDivisionError when a feature is missing
    with np.errstate(all="ignore"):  # NaN in, NaN out, no questions asked
        z = x.astype(np.float64) @ WEIGHTS[: x.shape[-1]] * per_feature + 0 * first[..., :1]
        return softmax(z)


def robust_model(x):
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu" or x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"expected a float array shaped (n, {D})")
    if not np.all(np.isfinite(x)) or x.min(initial=0.0) < 0 or x.max(initial=0.0) > 1:
        raise ValueError("values must be finite and in [0, 1]")
    return softmax(x.astype(np.float64) @ WEIGHTS) if len(x) else np.zeros((0, 2))


def callable_target(fn) -> CallableTarget:
    return CallableTarget(fn, input_spec=SPEC, n_classes=2)


def test_flags_a_fragile_model_in_memory(tmp_path, data):
    model = CountingModel(fragile_model)
    finding = fuzz(include=COMMON_KINDS)(callable_target(model), data, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    cases = cases_of(tmp_path, finding)
    missing = next(c for c in cases if c["case"] == "one row with its last feature missing")
    assert missing["outcome"] == "crash" and missing["error"].startswith("ZeroDivisionError")
    empty = next(c for c in cases if c["kind"] == "empty_batch")
    assert empty["outcome"] == "crash" and empty["error"].startswith("IndexError")
    assert set(outcomes(cases, "nan")) == {"accepted_invalid"}
    assert outcomes(cases, "oversized_batch") == ["hang"]
    assert not any(c["kind"] in ("malformed_json", "oversized_body") for c in cases)  # HTTP only
    m = finding.metrics
    assert m["crashes"] >= 3 and m["hangs"] == 1 and m["max_cvss"] == 7.5
    assert finding.queries + finding.evaluation_queries == model.rows


def test_a_robust_model_in_memory_passes(tmp_path):
    model = CountingModel(robust_model)
    finding = fuzz(include=COMMON_KINDS)(callable_target(model), None, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.NOT_VULNERABLE, finding.evidence.get("failures")
    cases = cases_of(tmp_path, finding)
    assert {c["outcome"] for c in cases} == {"ok", "rejected"}
    assert finding.metrics["ok"] == 5  # three subnormal cases, the empty and the oversized batch
    assert {c["kind"] for c in cases} == set(COMMON_KINDS)
    assert finding.queries + finding.evaluation_queries == model.rows


def test_a_scikit_learn_model_rejects_nan_but_accepts_out_of_range_values(data):
    from sklearn.linear_model import LogisticRegression

    from redline.targets.sklearn import SklearnTarget

    target = SklearnTarget(LogisticRegression().fit(data.x_train, data.y_train), input_spec=SPEC)
    finding = fuzz(include=["nan", "inf", "wrong_shape", "out_of_bounds", "tiny"])(target, data, budget=500)
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["crashes"] == m["hangs"] == m["bad_answers"] == 0
    assert m["accepted_invalid"] >= 3 and m["rejected"] >= 6 and m["ok"] == 3
    # Accepting meaningless input only matters if something trusts the answer: low.
    assert m["max_cvss"] == 3.7


def test_severity_follows_the_worst_case_through_triage(tmp_path):
    from redline.triage.engine import rate

    hanging = fuzz()(callable_target(fragile_model), None, budget=2000)
    accepting = fuzz(include="out_of_bounds")(callable_target(lambda x: softmax(np.asarray(x) @ WEIGHTS)), None)
    assert rate(hanging)[0] > rate(accepting)[0] > Severity.NONE


# -- budget, parameters, counting -------------------------------------------------------------


def test_the_budget_bounds_the_cases_sent():
    model = CountingModel(robust_model)
    full = fuzz()(callable_target(model), None, budget=2000)
    # One case of each kind costs 210 rows (200 of them the oversized batch).
    small = fuzz()(callable_target(model), None, budget=215)
    assert small.status is Status.NOT_VULNERABLE
    assert small.queries <= 215 < full.queries
    assert small.metrics["cases"] < full.metrics["cases"]


def test_a_budget_below_one_case_per_kind_is_not_applicable():
    finding = fuzz()(callable_target(robust_model), None, budget=100)
    assert finding.status is Status.NOT_APPLICABLE
    assert "budget is 100" in finding.reason and "oversized_batch, 200 rows" in finding.reason
    assert finding.queries == 0


@pytest.mark.parametrize(
    "params, message",
    [
        ({"include": "nan,bogus"}, "unknown kinds ['bogus']"),
        ({"timeout": 0}, "timeout must be"),
        ({"cases_per_kind": 0}, "cases_per_kind must be"),
        ({"oversized_rows": 1}, "oversized_rows must be"),
    ],
)
def test_bad_parameters_are_one_line_errors(params, message):
    finding = fuzz(**params)(callable_target(robust_model), None)
    assert finding.status is Status.ERROR and message in finding.reason
    assert "traceback" not in finding.evidence


def test_http_only_kinds_do_not_apply_in_memory():
    finding = fuzz(include="malformed_json")(callable_target(robust_model), None)
    assert finding.status is Status.NOT_APPLICABLE and "HTTP targets only" in finding.reason


def test_an_endpoint_behind_a_wrapper_is_not_fuzzed_through_it():
    from redline.defences.labels_only import LabelOnlyTarget

    finding = fuzz()(LabelOnlyTarget(http_target("http://127.0.0.1:9/predict")), None)
    assert finding.status is Status.NOT_APPLICABLE and "fuzz the endpoint itself" in finding.reason


def test_cases_per_kind_caps_each_kind():
    finding = fuzz(cases_per_kind=1)(callable_target(robust_model), None, budget=2000)
    assert finding.metrics["cases"] == len(MEMORY_DEFAULT_KINDS)  # shape/dtype kinds: HTTP or on request


def test_the_check_is_registered():
    assert get_check("FM11.fuzz") is InputFuzzing


def _catalogue(shape, lower, upper, seed, http):
    spec = InputSpec(shape=shape, lower=lower, upper=upper)
    target = HttpTarget("http://127.0.0.1:9/unused", input_spec=spec, n_classes=2) if http else None
    base = np.full(shape, (lower + upper) / 2)
    return CaseCatalogue(spec, base, np.random.default_rng(seed), oversized_rows=5, body_bytes=20_000, http=target)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    lower=st.floats(-100, 100),
    width=st.floats(0.5, 100),
    seed=st.integers(0, 2**16),
    http=st.booleans(),
)
def test_catalogue_properties(shape, lower, width, seed, http):
    """Same seed, same cases; each charged as the counting rule says; valid cases are valid."""
    catalogue = _catalogue(shape, lower, lower + width, seed, http)
    again = _catalogue(shape, lower, lower + width, seed, http)
    kinds = KINDS if http else COMMON_KINDS
    by_kind = {kind: catalogue.build(kind) for kind in kinds}
    assert all(by_kind.values())
    for kind in kinds:
        for case, twin in zip(by_kind[kind], again.build(kind), strict=True):
            assert case.description == twin.description
            if http:
                assert case.body == twin.body and case.rows == rows_by_rule(case.body) >= 1
            else:
                assert case.rows == raw_rows(case.array) >= 1
                if case.valid:
                    assert case.array.shape == (case.expected_rows, *shape)
                    assert np.all(np.isfinite(case.array))
    for budget in (300, 1000):
        minimum = sum(cases[0].rows for cases in by_kind.values())
        if budget < minimum:
            with pytest.raises(NotApplicable):
                plan_cases(by_kind, budget)
        else:
            plan = plan_cases(by_kind, budget)
            assert sum(c.rows for c in plan) <= budget and {c.kind for c in plan} == set(kinds)


def test_in_memory_models_are_not_blamed_for_framework_shape_errors_by_default(data):
    def strict(x):  # like a torch layer: a mis-shaped array raises deep inside the framework
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any() or np.isinf(x).any() or (x < 0).any() or (x > 1).any():
            raise ValueError("invalid input")
        return softmax(x.reshape(len(x), D) @ WEIGHTS)

    finding = fuzz()(callable_target(strict), data, budget=2000)
    assert finding.status is Status.NOT_VULNERABLE, finding.evidence.get("failures")
    assert finding.metrics["crashes"] == 0


def test_a_torch_model_refusing_an_empty_batch_is_not_a_crash():
    # x.view(x.size(0), -1) cannot reshape 0 elements: torch raises RuntimeError where
    # scikit-learn raises ValueError, and only the first was counted as a crash (CVSS 5.3).
    import torch
    import torch.nn as nn

    from redline.checks.supply_chain.fm11_fuzz import InputFuzzing
    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    class ViewCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).view(x.size(0), -1))

    torch.manual_seed(0)
    target = TorchTarget(ViewCNN(), input_spec=InputSpec(shape=(1, 8, 8), dtype="float32", lower=0.0, upper=1.0),
                         n_classes=10)
    finding = InputFuzzing(include="empty_batch,tiny")(target, None)
    assert finding.status is Status.NOT_VULNERABLE, (finding.summary, finding.evidence.get("failures"))


def test_the_oversized_batch_of_large_images_stays_within_a_size_cap():
    # 1,024 rows of 3x224x224 were 600 MB of floats (about 3 GB as JSON) built by the check itself.
    import torch
    import torch.nn as nn

    from redline.checks.supply_chain.fm11_fuzz import OVERSIZED_BATCH_VALUES, CaseCatalogue, InputFuzzing
    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    torch.manual_seed(0)
    module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))
    target = TorchTarget(module, input_spec=InputSpec(shape=(3, 224, 224), dtype="float32", lower=0.0, upper=1.0),
                         n_classes=10)
    finding = InputFuzzing(include="oversized_batch")(target, None)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    (case,) = CaseCatalogue(target.input_spec, np.zeros((3, 224, 224)), np.random.default_rng(0),
                            oversized_rows=1024, body_bytes=1024)._oversized_batch()
    assert case.expected_rows * 3 * 224 * 224 <= OVERSIZED_BATCH_VALUES and "capped" in case.description
    (small,) = CaseCatalogue(InputSpec(shape=(8,), dtype="float32", lower=0.0, upper=1.0), np.zeros(8),
                             np.random.default_rng(0), oversized_rows=1024, body_bytes=1024)._oversized_batch()
    assert small.expected_rows == 1024 and "capped" not in small.description
