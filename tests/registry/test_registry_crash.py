"""Nothing is half-written: a writer killed (SIGKILL) inside an import leaves the registry as it
was, and the import run again records every case exactly once. Several writers at once lose
nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from registry_testkit import make_finding, make_report

from redline.registry import Registry

WRITER = Path(__file__).with_name("registry_writer.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _writer(*args):
    return subprocess.Popen([sys.executable, str(WRITER), *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state(url):
    """What a consistent registry holds: cases, their finding ids, observations, bands."""
    from sqlalchemy import func, select

    from redline.registry import schema

    with Registry(url) as registry, registry._engine.connect() as conn:
        count = lambda table: conn.execute(select(func.count()).select_from(table)).scalar_one()  # noqa: E731
        findings = [r[0] for r in conn.execute(select(schema.cases.c.finding_id))]
        state = {"cases": count(schema.cases), "observations": count(schema.observations),
                 "bands": count(schema.case_bands), "history": count(schema.history), "findings": findings}
        if registry.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            assert conn.exec_driver_sql("SELECT count(*) FROM cases_fts").scalar_one() == state["cases"]
    return state


def test_a_writer_killed_mid_import_leaves_nothing_half_written(registry_url, tmp_path):
    with Registry(registry_url) as registry:
        registry.add_report(make_report([make_finding(n) for n in range(5)]))
    before = _state(registry_url)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(make_report([make_finding(n) for n in range(3, 43)])))  # 3, 4 known; 38 new
    signal_file = tmp_path / "stalled"
    proc = _writer(registry_url, "report", report, "--stall-after", 20, signal_file)
    deadline = time.monotonic() + 60
    while not signal_file.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer never got inside its transaction"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _state(registry_url) == before  # the 20 cases the writer had added are gone with it

    again = _writer(registry_url, "report", report)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    after = _state(registry_url)
    assert after["cases"] == 43 and len(set(after["findings"])) == 43
    assert after["observations"] == before["observations"] + 40 and after["bands"] == 43 * 16
    # And once more: seen again, nothing new.
    with Registry(registry_url) as registry:
        assert not any(r.new for r in registry.add_report_results(report))
    assert _state(registry_url)["cases"] == 43


def test_concurrent_writers_lose_nothing(registry_url):
    # Three processes open the registry at once (the first opens of a new SQLite file race to
    # create its schema) and each records its own findings and six shared ones, one transaction each.
    writers = [_writer(registry_url, "findings", 1000 * (w + 1), 12, 50_000, 6) for w in range(3)]
    for proc in writers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    state = _state(registry_url)
    assert state["cases"] == 3 * 12 + 6 and len(set(state["findings"])) == state["cases"]
    assert state["observations"] == 3 * 12 + 3 * 6  # each shared finding: one case, seen by all three
