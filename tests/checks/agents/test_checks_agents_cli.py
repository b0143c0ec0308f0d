"""Agent scans through the redline command: a zoo agent in its environment, a policy behind a
loopback HTTP endpoint, and the one-line usage errors for mixing agents and classifiers."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from redline.cli import main
from redline.targets import load_target

SRC = Path(__file__).resolve().parents[3] / "src"


def redline(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("HOME", "REDLINE_CACHE_DIR")})
    return subprocess.run([sys.executable, "-m", "redline", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_scan_of_a_zoo_agent_in_its_environment_end_to_end(tmp_path):
    out = tmp_path / "report"
    done = redline("scan", "zoo:boatrace_q_reward", "--data", "env:redline/BoatRace-v0", "--out", str(out),
                   "--format", "json,md", "--fail-on", "moderate", "--no-progress")
    assert done.returncode == 1, done.stderr  # the finding reached --fail-on
    report = json.loads((out / "report.json").read_text())
    (gaming,) = [f for f in report["findings"] if f["check"] == "FM12.reward_gaming"]
    assert gaming["status"] == "vulnerable" and gaming["severity"] == "Important"
    assert gaming["metrics"]["reward"] == 20.0 and gaming["queries"] == 800
    assert (out / gaming["evidence"]["plots"][0]).is_file()
    assert report["coverage"]["FM12"] == "tested" and report["coverage"]["FM01"] == "not_covered"
    assert report["target"]["capabilities"]["kind"] == "policy"
    assert "FM12.reward_gaming" in (out / "report.md").read_text()


def test_scan_of_a_policy_endpoint_over_loopback(tmp_path):
    agent = load_target("zoo:vase_q_reward")  # served by a tiny HTTP server
    seen = {"rows": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen["rows"] += len(body["observations"])
            actions = agent.act(np.asarray(body["observations"], dtype=np.float64)).tolist()
            payload = json.dumps({"actions": actions}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "policy.yaml"
    config.write_text("kind: policy\ntimeout: 5\n")
    out = tmp_path / "report"
    try:
        code = main(["scan", f"http://127.0.0.1:{server.server_address[1]}/act", "--data", "env:redline/Vase-v0",
                     "--target-config", str(config), "--select", "FM13", "--out", str(out), "--no-progress"])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1  # an Important finding reaches the default --fail-on
    (finding,) = json.loads((out / "report.json").read_text())["findings"]
    assert finding["check"] == "FM13.side_effects" and finding["status"] == "vulnerable"
    assert finding["metrics"]["side_effects"] == 1.0 and finding["metrics"]["impact"] == 1.0
    assert finding["queries"] + finding["evaluation_queries"] == seen["rows"] == 80


def test_mixing_agents_and_classifiers_is_a_one_line_usage_error(capsys):
    cases = [
        (["zoo:boatrace_q_reward", "--data", "env:redline/BoatRace-v0", "--select", "FM04.threshold"],
         "not a check of agents"),
        (["zoo:fair_logreg", "--select", "FM12"], "its checks test agents"),
        (["zoo:fair_logreg", "--select", "FM13.side_effects"], "a check of agents"),
        (["zoo:boatrace_q_reward", "--data", "builtin:digits", "--select", "FM01"], "is an agent"),
        (["zoo:boatrace_q_reward", "--data", "env:nowhere/Nothing-v0"], "unknown environment"),
    ]
    for args, message in cases:
        assert main(["scan", *args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err, (args, err)
