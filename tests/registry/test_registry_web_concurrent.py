"""Concurrent writers lose nothing: command-line style writers (separate processes, each
with its own connection to the registry) add cases while web clients submit incidents
over HTTP to a live server on the same database."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the registry extra is not installed (pip install 'redline[registry]')")
pytest.importorskip("sqlalchemy", reason="the registry extra is not installed (pip install 'redline[registry]')")
uvicorn = pytest.importorskip("uvicorn", reason="the registry extra is not installed (pip install 'redline[registry]')")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from redline.registry.store import Registry  # noqa: E402
from redline.registry.web import create_app  # noqa: E402

TOKEN = "concurrent-write-token"
PROCESSES, CASES_PER_PROCESS = 2, 12
CLIENTS, INCIDENTS_PER_CLIENT = 3, 6
SRC = Path(__file__).resolve().parents[2] / "src"

# What one command-line writer does: open the registry itself and add its cases one
# transaction at a time, as `redline registry add` would.
WRITER = """
import random, sys
from redline.registry.case import FailureCase
from redline.registry.store import Registry
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(who)
letters = "abcdefghijklmnopqrstuvwxyz"
reg = Registry(url)
for i in range(n):
    words = " ".join("".join(rng.choice(letters) for _ in range(7)) for _ in range(12))
    reg.add_case(FailureCase(title=f"cli {who} {i} {words}", mode="FM01", severity="Low", check="FM01.pgd",
                             target=f"zoo:{who}_{i}", summary=words, added_by=who))
reg.close()
"""


def unique_words(seed: str, n: int = 14) -> str:
    import random

    rng = random.Random(seed)
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) for _ in range(n))


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(registry, write_token=TOKEN), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the registry server did not start"
        time.sleep(0.05)
    yield url, f"http://127.0.0.1:{port}", registry
    srv.should_exit = True
    thread.join(timeout=10)
    registry.close()


@pytest.mark.timeout(120)
def test_cli_writers_and_web_submits_at_once_lose_nothing(server):
    url, base, registry = server
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"writer{k}", str(CASES_PER_PROCESS)], env=env,
                                stderr=subprocess.PIPE, text=True) for k in range(PROCESSES)]

    def submit(client_no: int) -> list[dict]:
        answers = []
        with httpx.Client(base_url=base, timeout=60) as http:
            for i in range(INCIDENTS_PER_CLIENT):
                tag = f"c{client_no}i{i}"
                form = {
                    "token": TOKEN,
                    "title": f"Web incident {tag}: {unique_words(tag, 4)}",
                    "what_happened": f"They trained a copy of the model from our API answers. {unique_words(tag)}",
                    "facts.vector": "queries",
                    "facts_list.effects": ["model_copied"],
                }
                page = http.post("/submit", data=form)
                assert page.status_code == 201, page.text[:500]
                answers.append({"title": form["title"], "html": page.text})
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        submitted = [a for answers in pool.map(submit, range(CLIENTS)) for a in answers]
    for proc in writers:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]

    # Every write is there: each writer's cases, each incident and the case it became.
    assert len(submitted) == CLIENTS * INCIDENTS_PER_CLIENT
    for k in range(PROCESSES):
        assert registry.search(f"writer{k}", limit=200).total == CASES_PER_PROCESS
    assert len(registry.incidents(limit=200)) == CLIENTS * INCIDENTS_PER_CLIENT
    web_cases = registry.search(mode="FM05", limit=200).cases
    assert sorted(c.title for c in web_cases) == sorted(a["title"] for a in submitted)
    total = PROCESSES * CASES_PER_PROCESS + CLIENTS * INCIDENTS_PER_CLIENT
    with httpx.Client(base_url=base) as http:
        assert http.get("/api/cases").json()["total"] == total
        assert json.loads(http.get("/api/cases", params={"mode": "FM01"}).text)["total"] == PROCESSES * CASES_PER_PROCESS


@pytest.mark.timeout(120)
def test_server_keeps_answering_while_a_submit_waits_for_another_writer(server):
    import sqlite3

    url, base, registry = server
    warm = {"token": TOKEN, "title": "Warm-up " + unique_words("warm", 3),
            "what_happened": "A researcher showed membership inference on patient records. " + unique_words("w1")}
    assert httpx.post(base + "/submit", data=warm, timeout=90).status_code == 201  # triage's tables now loaded
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer's transaction: the submit must wait for it
    try:
        form = {"token": TOKEN, "title": "Copied model " + unique_words("wait", 3),
                "what_happened": "They trained a copy of the model from our API answers. " + unique_words("w2")}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, base + "/submit", data=form, timeout=90)
            time.sleep(2)
            assert not pending.done()  # waiting for the lock
            # The server is not stalled by the waiting write. (A page that reads the database
            # would wait too: the store's SQLite reads take the write lock as well.)
            started = time.monotonic()
            assert httpx.get(base + "/submit", timeout=30).status_code == 200
            assert time.monotonic() - started < 5
            holder.execute("COMMIT")
            assert pending.result(timeout=90).status_code == 201
    finally:
        holder.close()
    assert registry.search(mode="FM05").total == 1
