"""Running the guard: hot reload (file change, SIGHUP) without failing a request in flight,
graceful shutdown on SIGTERM, keys rotation, `redline guard --check`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from guard_testkit import HTTP, KEY_ALICE, KEY_BOB, free_port, write_keys

from redline.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
X = [[0.1, 0.2, 0.3, 0.4]]

ROUNDED = """
version: 1
limits: {upstream_timeout_s: 5}
input: {shape: [4]}
defences:
  - round: {decimals: 2}
"""
LABELS = ROUNDED + "  - labels_only\n"


def post(url, key=KEY_ALICE, timeout=10):
    return HTTP.post(url + "/predict", json={"inputs": X}, headers={"X-API-Key": key}, timeout=timeout)


def wait_for(predicate, seconds=10.0, what="condition"):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {seconds} s")
        time.sleep(0.05)


def replace_file(path: Path, text: str) -> None:
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_changed_policy_file_is_reloaded_and_a_broken_one_keeps_the_old(start_guard, model_endpoint):
    guard = start_guard(ROUNDED, model_endpoint.url, reload_interval=0.1)
    assert "probabilities" in post(guard.url).json()
    replace_file(guard.policy_path, LABELS)
    wait_for(lambda: "labels" in post(guard.url).json(), what="the labels-only policy")
    replace_file(guard.policy_path, LABELS + "  - round: {bits: 1}\n")  # invalid: kept out
    wait_for(lambda: 'redline_guard_policy_reloads_total{result="failed"} 1'
             in HTTP.get(guard.url + "/metrics", timeout=5).text, what="the failed reload")
    answer = post(guard.url)
    assert answer.status_code == 200 and "labels" in answer.json()


def test_a_request_in_flight_finishes_under_the_policy_it_started_with(start_guard, model_endpoint):
    guard = start_guard(ROUNDED, model_endpoint.url)
    model_endpoint.mode, model_endpoint.delay = "slow", 1.0
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("answer", post(guard.url)))
    thread.start()
    wait_for(lambda: model_endpoint.requests == 1, what="the request reaching the model")
    guard.policy_path.write_text(LABELS)
    assert guard.built.guard.reload("test")  # swapped while the request waits on the model
    thread.join(timeout=10)
    assert result["answer"].status_code == 200
    assert "probabilities" in result["answer"].json()  # the old policy, whole
    model_endpoint.mode = "ok"
    assert "labels" in post(guard.url).json()  # the next request meets the new one


def test_the_keys_file_is_reread_on_reload(start_guard, model_endpoint, tmp_path):
    guard = start_guard(ROUNDED, model_endpoint.url)
    assert post(guard.url, key=KEY_BOB).status_code == 200
    write_keys(tmp_path / "keys.txt", alice=KEY_ALICE)  # bob's key withdrawn
    assert guard.built.guard.reload("test")
    assert post(guard.url, key=KEY_BOB).status_code == 401
    assert post(guard.url).status_code == 200


def _start_process(tmp_path, upstream, *extra):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "redline", "guard", "--upstream", upstream, "--policy", str(tmp_path / "guard.yaml"),
         "--keys", str(tmp_path / "keys.txt"), "--listen", f"127.0.0.1:{port}", "--log-level", "warning", *extra],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"the guard exited: {proc.stderr.read()}")
        try:
            return HTTP.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 30, "the guard process")
    return proc, url


def test_sighup_reloads_and_sigterm_finishes_requests_in_flight(tmp_path, model_endpoint):
    (tmp_path / "guard.yaml").write_text(ROUNDED + f"audit_log: {tmp_path / 'audit.jsonl'}\n")
    write_keys(tmp_path / "keys.txt", alice=KEY_ALICE)
    proc, url = _start_process(tmp_path, model_endpoint.url, "--reload-interval", "0")
    try:
        assert "probabilities" in post(url).json()
        (tmp_path / "guard.yaml").write_text(LABELS + f"audit_log: {tmp_path / 'audit.jsonl'}\n")
        time.sleep(0.3)
        assert "probabilities" in post(url).json()  # no polling: nothing changes until SIGHUP
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "labels" in post(url).json(), what="the reload on SIGHUP")

        model_endpoint.mode, model_endpoint.delay = "slow", 1.5
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("answer", post(url)))
        requests_before = model_endpoint.requests
        thread.start()
        wait_for(lambda: model_endpoint.requests > requests_before, what="the request reaching the model")
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=15)
        assert result["answer"].status_code == 200 and "labels" in result["answer"].json()
        # uvicorn stops gracefully, then re-raises the signal: the exit is SIGTERM's, not a crash
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records][-1] == 200 and len(records) >= 4  # the last one, flushed at shutdown
    assert {r["client"] for r in records} == {"alice"}


@pytest.mark.slow  # four worker start-ups: about 20 s on a busy machine
def test_workers_share_the_audit_log_and_sighup_replaces_them_without_a_failed_request(tmp_path, model_endpoint):
    (tmp_path / "guard.yaml").write_text(ROUNDED + f"audit_log: {tmp_path / 'audit.jsonl'}\n"
                                         f"state: sqlite:///{tmp_path / 'state.db'}\n")
    write_keys(tmp_path / "keys.txt", alice=KEY_ALICE)
    proc, url = _start_process(tmp_path, model_endpoint.url, "--workers", "2", "--reload-interval", "0")
    outcomes, stop = [], threading.Event()

    def traffic():
        with httpx.Client(timeout=10) as client:  # a fresh connection per request reaches any worker
            while not stop.is_set():
                try:
                    answer = client.post(url + "/predict", json={"inputs": X}, headers={"X-API-Key": KEY_ALICE,
                                                                                         "Connection": "close"})
                    outcomes.append(answer.status_code)
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)

    sender = threading.Thread(target=traffic)
    try:
        sender.start()
        wait_for(lambda: len(outcomes) >= 10, 30, "traffic through two workers")
        (tmp_path / "guard.yaml").write_text(LABELS + f"audit_log: {tmp_path / 'audit.jsonl'}\n"
                                             f"state: sqlite:///{tmp_path / 'state.db'}\n")
        proc.send_signal(signal.SIGHUP)  # uvicorn starts a new worker before it retires each old one
        wait_for(lambda: "labels" in post(url).json(), 60, "the new workers")
        time.sleep(0.5)
    finally:
        stop.set()
        sender.join(timeout=30)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert outcomes and set(outcomes) == {200}, {o: outcomes.count(o) for o in set(outcomes)}
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    policies = {r["policy"] for r in records}
    assert len(policies) == 2  # both policies answered, into one log
    workers_before = {r["worker"] for r in records if r["policy"] == records[0]["policy"]}
    workers_after = {r["worker"] for r in records if r["policy"] != records[0]["policy"]}
    assert workers_before.isdisjoint(workers_after) and len(workers_before | workers_after) >= 3


def test_guard_check_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(ROUNDED)
    assert main(["guard", "--check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "no clients" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUNDED + "  - squeeze: {levels: 1}\n")
    assert main(["guard", "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redline: error: ") and "defences[1].squeeze: squeezing: levels must be" in err
    assert err.count("\n") == 1
    assert main(["guard", "--check", str(bad), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_guard_without_an_upstream_or_clients_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "guard.yaml").write_text(ROUNDED)
    assert main(["guard", "--policy", str(tmp_path / "guard.yaml"), "--listen", f"127.0.0.1:{free_port()}"]) == 2
    assert "no upstream model" in capsys.readouterr().err
    assert main(["guard", "--policy", str(tmp_path / "guard.yaml"), "--upstream", "http://127.0.0.1:9/p",
                 "--listen", f"127.0.0.1:{free_port()}"]) == 2
    assert "no clients" in capsys.readouterr().err
    keys = tmp_path / "keys.txt"
    keys.write_text("alice:short\n")
    assert main(["guard", "--keys", str(keys), "--upstream", "http://127.0.0.1:9/p"]) == 2
    err = capsys.readouterr().err
    assert "keys.txt:1: a key must be 16" in err and "short" not in err.replace("keys.txt", "")


def test_a_port_in_use_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)  # the default audit log is written in the current folder
    keys = write_keys(tmp_path / "keys.txt", alice=KEY_ALICE)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["guard", "--upstream", "http://127.0.0.1:9/p", "--keys", str(keys),
                     "--listen", f"127.0.0.1:{port}", "--log-level", "error", "--reload-interval", "0"])
    assert code == 2
    assert f"could not listen on 127.0.0.1:{port}" in capsys.readouterr().err
