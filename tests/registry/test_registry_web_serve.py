"""``redline registry serve`` as a user runs it: a process listening on loopback, tokens from
a file, pages and writes over HTTP; and the one-line refusals."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the registry extra is not installed (pip install 'redline[registry]')")
pytest.importorskip("sqlalchemy", reason="the registry extra is not installed (pip install 'redline[registry]')")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from redline.registry.store import Registry  # noqa: E402
from redline.registry.web.server import READ_TOKEN_ENV, WRITE_TOKEN_ENV  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (WRITE_TOKEN_ENV, READ_TOKEN_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(90)
def test_serve_command_serves_pages_and_takes_writes_with_a_token_from_the_file(tmp_path):
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("# writers\nalice-token\n\nbob-token\n", encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "redline", "registry", "serve", "--db", db, "--listen",
                             f"127.0.0.1:{port}", "--token-file", str(token_file)], env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "redline registry serve did not answer"
            time.sleep(0.2)
        incident = {"title": "Copied model", "what_happened": "They trained a copy of the model from our API answers."}
        assert httpx.post(base + "/api/incidents", json=incident, timeout=30).status_code == 401
        made = httpx.post(base + "/api/incidents", json=incident, headers={"Authorization": "Bearer bob-token"},
                          timeout=30)
        assert made.status_code == 201 and made.json()["primary"] == "FM05"
        assert httpx.get(base + "/api/cases", timeout=30).json()["total"] == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in err and "reads open" in err
    with Registry(db) as registry:  # the write is in the database the command named
        assert registry.search(mode="FM05").total == 1


def test_serve_without_a_write_token_or_with_a_bad_listen_is_a_one_line_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    for extra, words in ((["--listen", "127.0.0.1:8080"], WRITE_TOKEN_ENV), (["--listen", "nowhere"], "HOST:PORT")):
        done = subprocess.run([sys.executable, "-m", "redline", "registry", "serve", "--db", db, *extra],
                              env=run_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
