"""SIGTERM (a CI time limit, kill) is handled as Ctrl-C: the partial report and the --resume
command are written instead of nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLOW_SCAN = r"""
import sys, time
from redline.checks import base as checks_base
from redline.cli import main

original = checks_base.Check.__call__
calls = []

def slow(self, *args, **kwargs):
    calls.append(self.id)
    if len(calls) == 2:  # the second check never ends: the test sends SIGTERM meanwhile
        print("second-check-started", flush=True)
        time.sleep(120)
    return original(self, *args, **kwargs)

checks_base.Check.__call__ = slow
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_writes_the_partial_report_and_the_resume_command(tmp_path: Path):
    out = tmp_path / "out"
    args = [sys.executable, "-c", SLOW_SCAN, "scan", "zoo:fair_logreg", "--select",
            "FM05.equation_solving,FM05.learning", "--budget", "200", "--out", str(out), "--format", "json",
            "--no-progress"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 240
    line = ""
    while time.monotonic() < deadline and "second-check-started" not in line:
        line = child.stdout.readline()
        if not line and child.poll() is not None:
            break
    assert "second-check-started" in line, child.stderr.read()
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert "--resume" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and len(report["findings"]) == 1
