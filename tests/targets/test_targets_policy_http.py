"""A policy behind a loopback HTTP endpoint: the observations/actions protocol, the config's
key paths, and retries charged to the ledger like a classifier endpoint's."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from redline.data import load_data
from redline.errors import TargetError
from redline.targets import TargetConfig, load_target
from redline.targets.policy import is_policy


class PolicyServer:
    """Answers ``{key: [...]}`` with one action per observation; ``fail_first`` requests get a 503."""

    def __init__(self, *, obs_key="observations", answer=lambda rows: {"actions": [1] * len(rows)}, fail_first=0):
        self.rows_received = 0
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rows = body[obs_key]
                owner.requests += 1
                owner.rows_received += len(rows)
                if owner.requests <= fail_first:
                    status, payload = 503, b'{"error": "busy"}'
                else:
                    status, payload = 200, json.dumps(answer(rows)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/act"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def boat():
    return load_data("env:redline/BoatRace-v0")


def test_the_endpoint_is_a_policy_and_every_observation_sent_is_charged(boat):
    server = PolicyServer(fail_first=1)
    try:
        policy = load_target(server.url, data=boat, config=TargetConfig(backoff=0.001, max_batch=4))
        assert is_policy(policy) and policy.capabilities.remote
        actions = policy.act(np.zeros((6, 2)))
        assert actions.tolist() == [1] * 6
        assert server.rows_received == policy.ledger.total == 10  # 4 rows refused once, then 4 + 2
        assert policy.ledger.retried == 4
    finally:
        server.close()


def test_key_paths_come_from_the_config_and_bad_answers_are_errors(boat):
    server = PolicyServer(obs_key="obs", answer=lambda rows: {"result": {"moves": [0] * len(rows)}})
    broken = PolicyServer(answer=lambda rows: {"actions": [7] * len(rows)})
    try:
        cfg = TargetConfig.from_mapping({"kind": "policy", "request": {"inputs_key": "obs"},
                                         "response": {"actions_key": "result.moves"}})
        assert load_target(server.url, data=boat, config=cfg).act(np.zeros((2, 2))).tolist() == [0, 0]
        bad = load_target(broken.url, data=boat, config=TargetConfig(retries=1, backoff=0.001))
        with pytest.raises(TargetError, match="no valid answer after 2 attempt"):
            bad.act(np.zeros((1, 2)))
    finally:
        server.close()
        broken.close()
