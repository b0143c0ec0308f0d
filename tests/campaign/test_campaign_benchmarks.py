"""The campaign benchmarks run and print what they promise (tiny settings)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import redline

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SRC = Path(redline.__file__).resolve().parents[1]


def test_cost_curves_print_queries_and_seconds_per_axis(tmp_path):
    pytest.importorskip("torch")
    png = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, str(BENCH / "bench_cost_curves.py"), "--quick", "--families",
                           "privacy", "--png", str(png)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| privacy | FM04.threshold |")]
    assert [r.split("|")[3].strip() for r in rows] == ["budget"] * 2 + ["model width"] * 2 + ["data rows"] * 2
    budget_queries = [int(r.split("|")[5]) for r in rows[:2]]
    assert 0 < budget_queries[0] < budget_queries[1] <= 300  # more budget, more queries, never over it
    assert any(line.startswith("| privacy | budget | 3.0x | ") for line in lines)
    assert png.stat().st_size > 1000


def test_no_growth_is_claimed_from_a_setting_where_the_check_did_not_run(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_cost_curves as bench

    def point(value, status, queries, seconds):
        return {"family": "supply_chain", "axis": "budget", "value": value, "status": status, "queries": queries,
                "evaluation_queries": 0, "seconds": seconds}

    bench.growth([point(500, "not_applicable", 0, 0.01), point(1500, "vulnerable", 1048, 1.0)])
    bench.growth([point(500, "vulnerable", 400, 0.5), point(1500, "vulnerable", 1048, 1.0)])
    out = capsys.readouterr().out
    assert "| supply_chain | budget | 3.0x | - | - |" in out and "| supply_chain | budget | 3.0x | 2.6x | 2.0x |" in out


def test_the_throughput_benchmark_measures_overhead_per_job(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_campaign_throughput as bench
    from redline.campaign.executors import LocalExecutor

    bench.overhead("local", lambda: LocalExecutor(2, bench.empty_job), 20)
    row = capsys.readouterr().out.strip().split("|")
    assert row[1].strip() == "local" and row[5].strip() == "2"
    assert float(row[3]) < 1000  # milliseconds per near-empty job: a pipe round trip, far below a second
