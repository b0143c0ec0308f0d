"""The local executor: spawned worker processes; a worker killed mid-job costs that job one
retry (with a note), a job that kills its worker every time becomes an error finding, and
results equal the in-process executor's."""
from __future__ import annotations

import json

import pytest

import campaign_faults
from redline.campaign import parse_campaign, run_campaign

RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 300, "seeds": [0, 1, 2]}


def _comparable(result):
    return {spec: [{k: v for k, v in f.to_dict().items() if k != "seconds"} for f in report.findings]
            for spec, report in result.reports.items()}


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_replaced_and_the_job_retried(tmp_path):
    reference = run_campaign(parse_campaign(RAW), tmp_path / "inline", executor="inline", progress=False)
    result = run_campaign(parse_campaign(RAW), tmp_path / "local", executor="local", workers=2, progress=False,
                          job_fn=campaign_faults.killed_once)
    assert _comparable(result) == _comparable(reference)  # same findings as in process, the killed job included
    index = json.loads((tmp_path / "local" / "index.json").read_text())
    assert index["jobs"]["retried"] == 1 and index["executor"] == "local"
    (noted,) = index["notes"]
    assert noted["seed"] == 1 and noted["attempts"] == 2
    assert "SIGKILL" in noted["notes"][0] and "retried" in noted["notes"][0]


@pytest.mark.slow
def test_a_job_that_kills_its_worker_twice_is_an_error_and_an_exited_worker_is_retried(tmp_path):
    raw = {**RAW, "seeds": [0, 1]}
    killed = run_campaign(parse_campaign(raw), tmp_path / "killed", executor="local", workers=1, progress=False,
                          job_fn=campaign_faults.killed_always)
    by_seed = {f.seed: f for f in killed.reports["zoo:fair_logreg"].findings}
    assert by_seed[0].status.value == "vulnerable"
    assert by_seed[1].status.value == "error" and "failed 2 times" in by_seed[1].reason and "SIGKILL" in by_seed[1].reason
    assert killed.exit_code("never") == 3
    exited = run_campaign(parse_campaign(raw), tmp_path / "exited", executor="local", workers=1, progress=False,
                          job_fn=campaign_faults.exits_once)
    assert [f.status.value for f in exited.reports["zoo:fair_logreg"].findings] == ["vulnerable", "vulnerable"]
    (noted,) = json.loads((tmp_path / "exited" / "index.json").read_text())["notes"]
    assert "exited with status 7" in noted["notes"][0]


def _job(seed):
    from redline.campaign.jobs import Job

    return Job(key=f"k{seed}", target="zoo:fair_logreg", data=None, target_config=None, check="FM05.equation_solving",
               seed=seed, budget=10, params=None, folder="/nonexistent", target_folder="t")


def test_the_local_executor_says_how_each_job_ended_and_replaces_a_dead_worker():
    from redline.campaign.executors import CRASHED, MEMORY, LocalExecutor

    executor = LocalExecutor(2, campaign_faults.whoami_or_die)
    executor.start()
    try:
        outcomes = {}
        for seed in range(4):
            if seed >= executor.capacity:
                got = executor.next_outcome()
                outcomes[got.job.seed] = got
            executor.submit(_job(seed))
        while len(outcomes) < 4:
            got = executor.next_outcome()
            outcomes[got.job.seed] = got
        assert outcomes[0].result["seed"] == 0 and outcomes[0].failure is None
        assert outcomes[1].failure == MEMORY and "SIGKILL" in outcomes[1].detail  # the worker died: that job only
        assert outcomes[2].failure == MEMORY and "MemoryError: no room" in outcomes[2].detail
        assert outcomes[3].failure == CRASHED and "ValueError: a defect" in outcomes[3].detail
        executor.submit(_job(0))
        executor.submit(_job(5))
        pids = {executor.next_outcome().result["pid"] for _ in range(2)}
        assert len(pids) == 2 and outcomes[0].result["pid"] != 0  # two live workers after the death
    finally:
        executor.close()
    assert executor._pool == []


def test_local_workers_start_warm_from_the_drivers_redline():
    """Workers fork from a forkserver that preloaded the heavy libraries (campaign/preload.py),
    from the redline the driver runs, not another copy on the path."""
    import redline
    from redline.campaign.executors import LocalExecutor

    executor = LocalExecutor(1, campaign_faults.modules_at_start)
    executor.start()
    try:
        executor.submit(_job(0))
        outcome = executor.next_outcome()
    finally:
        executor.close()
    assert outcome.result["modules"] == ["redline.pipeline.runner", "sklearn", "torch"]
    assert outcome.result["redline"] == redline.__file__
