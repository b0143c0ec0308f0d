"""The driver's bookkeeping, on the in-process executor: every job once, reports per target,
resume skips what the journal holds, memory failures retried once then an error finding."""
from __future__ import annotations

import json
import sqlite3

import pytest

import campaign_faults
from redline.campaign import parse_campaign, run_campaign
from redline.campaign.jobs import expand, run_job
from redline.errors import UsageError

RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 300, "seeds": [0, 1]}


def _run(out, job_fn=campaign_faults.run_job, raw=RAW, **kw):
    return run_campaign(parse_campaign(raw), out, executor="inline", progress=False, job_fn=job_fn, **kw)


def _journal(out):
    with sqlite3.connect(out / "campaign.sqlite") as db:
        return {key: (attempts, json.loads(notes)) for key, attempts, notes in
                db.execute("SELECT key, attempts, notes FROM jobs")}


def _comparable(report):
    return [{k: v for k, v in f.to_dict().items() if k != "seconds"} for f in report.findings]


def test_every_job_runs_once_into_one_report_per_target_and_an_index(tmp_path):
    result = _run(tmp_path)
    jobs = expand(parse_campaign(RAW), tmp_path)
    report = result.reports["zoo:fair_logreg"]
    assert [f.id for f in report.findings] == [j.key for j in jobs]  # the key is the finding id
    assert [f.seed for f in report.findings] == [0, 1]
    assert all(f.status.value == "vulnerable" for f in report.findings)
    assert set(_journal(tmp_path)) == {j.key for j in jobs}
    written = json.loads((tmp_path / "zoo_fair_logreg" / "report.json").read_text())
    assert written["schema"] == "redline.report/1" and len(written["findings"]) == 2
    assert (tmp_path / "zoo_fair_logreg" / "report.html").is_file()
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["jobs"] == {"total": 2, "finished": 2, "run": 2, "resumed": 0, "retried": 0}
    assert index["targets"][0]["worst_severity"] == "Important" and index["targets"][0]["exit_code"] == 1
    assert "zoo_fair_logreg/report.html" in (tmp_path / "index.html").read_text()
    assert result.exit_code("important") == 1 and result.exit_code("critical") == 0


def test_resume_runs_only_missing_jobs_and_a_new_run_will_not_overwrite(tmp_path):
    first = _run(tmp_path, raw={**RAW, "seeds": [0]})
    with sqlite3.connect(tmp_path / "campaign.sqlite") as db:  # as if killed after its last job, before its reports
        db.execute("DELETE FROM meta WHERE name = 'complete'")
    with pytest.raises(UsageError, match="already holds a campaign"):
        _run(tmp_path, raw={**RAW, "seeds": [0]})  # an unfinished run is resumed, never replaced
    with pytest.raises(UsageError, match="holds another campaign"):
        _run(tmp_path, raw=RAW, resume=True)  # the file changed: its journal is not this one's
    again = _run(tmp_path, raw={**RAW, "seeds": [0]}, resume=True)
    assert (again.jobs_run, again.jobs_resumed) == (0, 1)
    assert _comparable(again.reports["zoo:fair_logreg"]) == _comparable(first.reports["zoo:fair_logreg"])


def test_a_job_out_of_memory_is_retried_once_with_a_note(tmp_path):
    clean = _run(tmp_path / "clean")
    result = _run(tmp_path / "faulty", job_fn=campaign_faults.memory_once)
    assert _comparable(result.reports["zoo:fair_logreg"]) == _comparable(clean.reports["zoo:fair_logreg"])
    notes = [n for n in _journal(tmp_path / "faulty").values() if n[1]]
    assert len(notes) == 1 and notes[0][0] == 2 and "MemoryError" in notes[0][1][0] and "retried" in notes[0][1][0]
    index = json.loads((tmp_path / "faulty" / "index.json").read_text())
    assert index["jobs"]["retried"] == 1 and index["notes"][0]["seed"] == 1


def test_a_job_out_of_memory_twice_becomes_an_error_finding_not_a_failed_campaign(tmp_path):
    result = _run(tmp_path, job_fn=campaign_faults.memory_always)
    report = result.reports["zoo:fair_logreg"]
    by_seed = {f.seed: f for f in report.findings}
    assert by_seed[0].status.value == "vulnerable"
    assert by_seed[1].status.value == "error" and "failed 2 times" in by_seed[1].reason
    assert "MemoryError" in by_seed[1].reason
    assert by_seed[1].id == expand(parse_campaign(RAW), tmp_path)[1].key
    assert result.exit_code("never") == 3 and result.exit_code("important") == 1  # 1 wins over 3


def test_a_target_that_does_not_load_is_an_error_finding_per_job(tmp_path):
    raw = {**RAW, "targets": ["zoo:fair_logreg", "zoo:no_such_model"], "seeds": [0]}
    result = _run(tmp_path, raw=raw)
    broken = result.reports["zoo:no_such_model"]
    assert [f.status.value for f in broken.findings] == ["error"]
    assert "no_such_model" in broken.findings[0].reason
    assert result.reports["zoo:fair_logreg"].findings[0].status.value == "vulnerable"
    assert _journal(tmp_path)[broken.findings[0].id][0] == 1  # an input error is not retried


def test_a_job_finished_by_its_worker_but_never_recorded_is_not_run_again(tmp_path):
    from redline.campaign.jobs import run_job

    job = expand(parse_campaign(RAW), tmp_path)[1]
    run_job(job)  # the worker finished; then the driver died before recording it
    _run(tmp_path)
    events = (tmp_path / "zoo_fair_logreg" / "jobs" / job.key / "events.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["event"] == "check_finished" for line in events) == 1
    assert set(_journal(tmp_path)) == {j.key for j in expand(parse_campaign(RAW), tmp_path)}


def test_ctrl_c_writes_incomplete_reports_and_resume_finishes(tmp_path):
    from redline.campaign.driver import CampaignInterrupted

    with pytest.raises(CampaignInterrupted) as stop:
        _run(tmp_path, job_fn=campaign_faults.interrupted_at_seed_1)
    partial = stop.value.result.reports["zoo:fair_logreg"]
    assert not partial.complete and partial.pending_checks == ["FM05.equation_solving (seed 1)"]
    written = json.loads((tmp_path / "zoo_fair_logreg" / "report.json").read_text())
    assert written["complete"] is False and len(written["findings"]) == 1
    assert json.loads((tmp_path / "index.json").read_text())["complete"] is False
    done = _run(tmp_path, resume=True)
    assert (done.jobs_run, done.jobs_resumed) == (1, 1) and done.reports["zoo:fair_logreg"].complete


def test_a_bad_report_format_is_refused_before_any_job(tmp_path):
    with pytest.raises(UsageError, match="unknown report format 'pdf'"):
        _run(tmp_path, formats=["json", "pdf"])
    assert not (tmp_path / "campaign.sqlite").exists()


def test_two_versions_of_one_service_a_query_value_apart_are_two_jobs_and_two_results(tmp_path):
    from redline_testkit import ModelVersionsServer

    config = tmp_path / "api.yaml"
    config.write_text("retries: 0\ntimeout: 10\n")
    with ModelVersionsServer() as server:
        data = server.npz(tmp_path / "data.npz")
        raw = {"targets": [{"target": f"{server.url}?model={version}", "data": data, "target_config": str(config)}
                           for version in ("logistic", "broken")],
               "select": "FM05.equation_solving", "budget": 300}
        result = _run(tmp_path / "out", job_fn=run_job, raw=raw)
    assert len(_journal(tmp_path / "out")) == 2
    logistic, broken = (result.reports[f"{server.url}?model={v}"] for v in ("logistic", "broken"))
    assert [f.status.value for f in logistic.findings] == ["vulnerable"]
    assert [f.status.value for f in broken.findings] == ["error"]  # HTTP 500: not reported clean
    assert logistic.findings[0].id != broken.findings[0].id
    assert result.exit_code("never") == 3  # one target could not be tested
