"""Fixtures of the guard tests, each server on a free 127.0.0.1 port and always stopped:
a real Redis (skipped only when redis-server is not installed), a model endpoint, the guard.
The helpers themselves are in guard_testkit.py."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from guard_testkit import ModelEndpoint, free_port, launch


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); the Redis store is untested")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("redis-server did not start within 10 s")
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def model_endpoint():
    with ModelEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def start_guard(tmp_path):
    """start_guard(policy_text, upstream_url, **options) -> a running guard, stopped at teardown."""
    running = []

    def start(policy_text, upstream, **options):
        running.append(launch(tmp_path, policy_text, upstream, **options))
        return running[-1]

    yield start
    for guard in running:
        guard.__exit__(None, None, None)
