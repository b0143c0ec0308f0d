"""The README's guard example: examples/serve_model.py serves a zoo model and
examples/guard.yaml guards it."""
from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from guard_testkit import KEY_ALICE, free_port, launch
from redline.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example_module():
    spec = importlib.util.spec_from_file_location("serve_model_example", EXAMPLES / "serve_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_policy_is_valid(capsys):
    assert main(["guard", "--check", str(EXAMPLES / "guard.yaml")]) == 0
    assert "validate, rate_limit, query_detector, round, extraction_monitor" in capsys.readouterr().out


def test_the_example_policy_uses_the_detector_defaults_and_a_row_budget():
    from redline.defences.policy import load_policy

    defences = {d.policy_key: d for d in load_policy(EXAMPLES / "guard.yaml").defences}
    detector = defences["query_detector"]
    assert detector.lockout_after == 2 and detector.chained is True  # spares honest re-takes
    assert defences["extraction_monitor"].max_rows == 1000


@pytest.fixture
def example_model():
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_example_module().create_app("zoo:digits_mlp_regularized"),
                                           host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the example model did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/predict"
    server.should_exit = True
    thread.join(timeout=15)


def test_the_example_model_behind_the_example_policy(tmp_path, example_model):
    rng = np.random.default_rng(0)
    rows = rng.uniform(0, 1, size=(3, 1, 8, 8)).round(3).tolist()
    direct = httpx.post(example_model, json={"inputs": rows}, timeout=30)
    assert direct.status_code == 200 and np.asarray(direct.json()["probabilities"]).shape == (3, 10)
    assert httpx.post(example_model, json={"inputs": [[1, 2]]}, timeout=30).status_code == 422

    guard = launch(tmp_path, (EXAMPLES / "guard.yaml").read_text(), example_model)
    try:
        headers = {"X-API-Key": KEY_ALICE}
        answer = httpx.post(guard.url + "/predict", json={"inputs": rows}, headers=headers, timeout=30)
        assert answer.status_code == 200
        guarded = np.asarray(answer.json()["probabilities"])
        assert np.allclose(guarded, np.round(direct.json()["probabilities"], 2))
        out_of_range = httpx.post(guard.url + "/predict", json={"inputs": [[[[2.0] * 8] * 8]]}, headers=headers, timeout=30)
        assert out_of_range.status_code == 422
        assert httpx.post(guard.url + "/predict", json={"inputs": rows}, timeout=30).status_code == 401
    finally:
        guard.__exit__(None, None, None)
