"""No work lost: a campaign whose driver is killed with SIGKILL after its first job, then
resumed, runs every job exactly once and writes the reports an uninterrupted run writes."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import redline

HERE = Path(__file__).resolve().parent
SRC = Path(redline.__file__).resolve().parents[1]
RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 300, "seeds": [0, 1, 2, 3]}
DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[3])
import campaign_faults
from redline.campaign import parse_campaign, run_campaign
run_campaign(parse_campaign(json.loads(sys.argv[1])), sys.argv[2], executor="local", workers=1, progress=False,
             job_fn=campaign_faults.slow, resume="--resume" in sys.argv)
"""


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}


def _recorded(out: Path) -> int:
    try:
        with sqlite3.connect(out / "campaign.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


def _findings(out: Path) -> list[dict]:
    report = json.loads((out / "zoo_fair_logreg" / "report.json").read_text())
    return [{k: v for k, v in f.items() if k != "seconds"} for f in report["findings"]]


@pytest.mark.slow
def test_resume_after_kill_9_of_the_driver_runs_each_job_exactly_once(tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-c", DRIVER, json.dumps(RAW), str(out), str(HERE)]
    driver = subprocess.Popen(args, env=_env())
    deadline = time.monotonic() + 400
    while _recorded(out) < 1:
        assert driver.poll() is None, "the campaign ended before it could be killed"
        assert time.monotonic() < deadline, "no job finished in time"
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    before = _recorded(out)
    assert 1 <= before < 4, before
    time.sleep(1.0)  # the orphaned worker notices its driver is gone and stops

    resumed = subprocess.run([*args, "--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert _recorded(out) == 4
    index = json.loads((out / "index.json").read_text())
    assert index["jobs"]["resumed"] == before and index["jobs"]["run"] == 4 - before

    finishes = []
    for events in sorted((out / "zoo_fair_logreg" / "jobs").glob("*/events.jsonl")):
        finishes.append(sum(json.loads(line)["event"] == "check_finished" for line in events.read_text().splitlines()))
    assert finishes == [1, 1, 1, 1]  # every job ran to its end exactly once

    # The same campaign uninterrupted, through the command line: the same findings, exit 1 (Important).
    campaign_file = tmp_path / "c.campaign.yaml"
    campaign_file.write_text(json.dumps(RAW))  # JSON is YAML
    reference = subprocess.run([sys.executable, "-m", "redline", "campaign", str(campaign_file), "--out",
                                str(tmp_path / "reference"), "--workers", "1"],
                               env=_env(), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 1, reference.stderr
    assert "zoo:fair_logreg: worst severity Important; 4 vulnerable" in reference.stdout
    assert _findings(out) == _findings(tmp_path / "reference")
