"""The Ray executor, on a Ray started by the test on this machine (2 CPUs): the same findings
as the local executor for the same seeds; a worker killed mid-job is retried; Ray's own
failure types map to the driver's retry policy. Skipped when Ray is not installed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import campaign_faults  # noqa: E402
import redline  # noqa: E402
from redline.campaign import parse_campaign, run_campaign  # noqa: E402
from redline.campaign.executors import CRASHED, LOST, MEMORY, classify_ray_error  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC = Path(redline.__file__).resolve().parents[1]
RAW = {"targets": ["zoo:fair_logreg", "zoo:fair_tree"], "select": "FM05.equation_solving,FM05.path_finding",
       "budget": 300, "seeds": [0, 1]}


def _comparable(result):
    return {spec: [{k: v for k, v in f.to_dict().items() if k != "seconds"} for f in report.findings]
            for spec, report in result.reports.items()}


@pytest.fixture(scope="module")
def local_ray():
    # Ray's workers start from this environment: they import redline and the fault functions by name.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), str(HERE), saved) if p)
    # A shared, busy machine can take longer than Ray's default minute to start its raylet.
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "300")
    # On loopback only: the test's Ray serves this process and nothing else.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_ray_failures_map_to_the_retry_policy():
    from ray import exceptions as rex

    assert classify_ray_error(rex.OutOfMemoryError("task used 9 GiB"))[0] == MEMORY
    assert classify_ray_error(rex.WorkerCrashedError())[0] == LOST
    assert classify_ray_error(ValueError("bug"))[0] == CRASHED


@pytest.mark.slow
def test_ray_gives_the_findings_local_processes_give_and_retries_a_killed_worker(tmp_path, local_ray):
    local = run_campaign(parse_campaign(RAW), tmp_path / "local", executor="local", workers=2, progress=False)
    on_ray = run_campaign(parse_campaign(RAW), tmp_path / "ray", executor="ray", progress=False,
                          job_fn=campaign_faults.killed_once)
    assert _comparable(on_ray) == _comparable(local)
    index = json.loads((tmp_path / "ray" / "index.json").read_text())
    assert index["executor"] == "ray" and index["jobs"]["total"] == 8
    # The two seed-1 jobs of each target killed their worker once: lost, retried, then as everywhere else.
    assert index["jobs"]["retried"] == 4
    assert all(n["attempts"] == 2 and "retried" in n["notes"][0] for n in index["notes"])
