"""Helpers of the guard tests (a module name no other test folder uses, so that tests
import it, never a conftest, whichever conftest a whole-suite run loaded first): free
ports, a model endpoint that can fail on purpose, the guard served in a thread."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np


def read_http_message(sock) -> tuple[bytes, bytes] | None:
    """One HTTP message from ``sock``: its head and as many body bytes as its Content-Length
    declares (the two may arrive in separate reads), or None when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a model endpoint ---------------------------------------------------------------------


UPSTREAM_SECRET = "upstream-secret-detail-7f3a"  # what a failing model says; must never reach a client


class ModelEndpoint:
    """A linear softmax model on 127.0.0.1 speaking redline's HTTP protocol. ``mode``
    switches it to failing on purpose: ``error`` (HTTP 500 with a secret in the body),
    ``slow`` (answers after ``delay`` s), ``malformed`` (200 with a body out of protocol),
    ``labels`` (answers labels only), ``short``/``nan`` (answers out of protocol). ``rows`` counts the rows it answered."""

    def __init__(self, n_features: int = 4, n_classes: int = 3):
        rng = np.random.default_rng(0)
        self.weights = rng.normal(size=(n_features, n_classes))
        self.mode, self.delay, self.rows, self.requests = "ok", 0.0, 0, 0
        self.token, self.seen_headers = None, {}  # a token the model itself asks for (Bearer)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as real servers send them

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests += 1
                endpoint.seen_headers = dict(self.headers)
                status, answer = endpoint.answer(body)
                if endpoint.token is not None and self.headers.get("Authorization") != f"Bearer {endpoint.token}":
                    status, answer = 401, {"error": UPSTREAM_SECRET}
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def probabilities(self, x):
        z = np.asarray(x, np.float64).reshape(len(x), -1) @ self.weights
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def answer(self, body: bytes):
        if self.mode == "error":
            return 500, {"error": UPSTREAM_SECRET, "trace": "Traceback (most recent call last) " + UPSTREAM_SECRET}
        if self.mode == "malformed":
            return 200, {"result": UPSTREAM_SECRET}
        if self.mode == "slow":
            time.sleep(self.delay)
        x = json.loads(body)["inputs"]
        self.rows += len(x)
        p = self.probabilities(x)
        if self.mode == "labels":
            return 200, {"labels": p.argmax(axis=1).tolist()}
        if self.mode == "short":  # one row fewer than asked
            return 200, {"probabilities": p[1:].tolist()}
        if self.mode == "nan":
            p[0, 0] = np.nan
        return 200, {"probabilities": p.tolist()}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the guard in a thread ------------------------------------------------------------------
# One HTTP client for every test: httpx builds an SSL context per client, which costs more
# than a request to the guard.

HTTP = httpx.Client(timeout=10)

KEY_ALICE = "alice-key-0123456789abcdef"
KEY_BOB = "bob-key-0123456789abcdef00"


class GuardInThread:
    """`redline guard` served by uvicorn in a thread of the test process."""

    def __init__(self, options, *, audit_path, limit_concurrency=64):
        import uvicorn

        from redline.guard.server import build, uvicorn_config

        self.built = build(options, audit_path=audit_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(self.built.app, "127.0.0.1", self.port,
                                                    limit_concurrency=limit_concurrency, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the guard did not start within 15 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def write_keys(path, **keys):
    path.write_text("".join(f"{name}:{key}\n" for name, key in keys.items()))
    return path


def launch(folder, policy_text, upstream, *, keys=True, reload_interval=0.0, limit_concurrency=64,
           target_config=None):
    """A running GuardInThread serving ``policy_text`` from files in ``folder`` (stop it with __exit__)."""
    from redline.guard.runtime import GuardOptions

    policy_path = None
    if policy_text is not None:
        policy_path = folder / "guard.yaml"
        policy_path.write_text(policy_text)
    keys_path = write_keys(folder / "keys.txt", alice=KEY_ALICE, bob=KEY_BOB) if keys else None
    config_path = None
    if target_config is not None:
        config_path = folder / "upstream.yaml"
        config_path.write_text(target_config)
    options = GuardOptions(policy_path=policy_path, keys_path=keys_path, upstream=upstream,
                           reload_interval=reload_interval, target_config=config_path)
    guard = GuardInThread(options, audit_path=folder / "audit.jsonl", limit_concurrency=limit_concurrency)
    guard.policy_path, guard.audit_path = policy_path, folder / "audit.jsonl"
    return guard.__enter__()
