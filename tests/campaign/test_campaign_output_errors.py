"""A full disk during a campaign stops it as Ctrl-C does: the job that was writing is not
recorded (so --resume runs it), the finished ones stay in the journal, exit 3 with one line."""
from __future__ import annotations

import errno
import json
import sqlite3

import pytest

import campaign_faults
from redline.campaign import parse_campaign, run_campaign
from redline.campaign.jobs import expand
from redline.cli import main
from redline.errors import OutputError

RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 300, "seeds": [0, 1]}


def _run(out, job_fn, **kw):
    return run_campaign(parse_campaign(RAW), out, executor="inline", progress=False, job_fn=job_fn, **kw)


def _recorded(out):
    with sqlite3.connect(out / "campaign.sqlite") as db:
        return {key for (key,) in db.execute("SELECT key FROM jobs")}


def test_a_job_whose_report_cannot_be_written_stops_the_campaign_unrecorded_and_resume_runs_it(
        tmp_path, monkeypatch):
    import redline.report.writers as writers

    jobs = expand(parse_campaign(RAW), tmp_path)
    real = writers.atomic_write_text

    def full_for_seed_1(path, text):
        if jobs[1].key in str(path):  # the seed-1 job's own report.json, inside its folder
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(writers, "atomic_write_text", full_for_seed_1)
    with pytest.raises(OutputError) as stop:
        _run(tmp_path, campaign_faults.run_job)
    assert str(stop.value) == f"cannot write {jobs[1].folder}/report.json: No space left on device"
    assert stop.value.kept == 1 and _recorded(tmp_path) == {jobs[0].key}  # not recorded as an error
    assert not (tmp_path / "index.json").exists()

    monkeypatch.undo()
    done = _run(tmp_path, campaign_faults.run_job, resume=True)
    assert done.complete and (done.jobs_run, done.jobs_resumed) == (1, 1)
    assert [f.status.value for f in done.reports["zoo:fair_logreg"].findings] == ["vulnerable", "vulnerable"]


def test_the_local_executor_hands_a_jobs_output_error_back_as_such(tmp_path):
    from redline.campaign.executors import OUTPUT, LocalExecutor

    job = expand(parse_campaign(RAW), tmp_path)[1]
    executor = LocalExecutor(1, campaign_faults.light_disk_full_at_seed_1)
    executor.start()
    try:
        executor.submit(job)
        outcome = executor.next_outcome()
    finally:
        executor.close()
    assert outcome.failure == OUTPUT and isinstance(outcome.error, OutputError)
    assert outcome.error.errno == errno.ENOSPC and outcome.detail.startswith("cannot write ")


def test_a_full_journal_is_an_output_error_and_leaves_the_job_unrecorded(tmp_path):
    from redline.campaign.journal import Journal

    journal = Journal(tmp_path / "campaign.sqlite").open("fp", resume=False)
    try:
        jobs = expand(parse_campaign(RAW), tmp_path)
        journal.record(jobs[0], {"key": jobs[0].key}, attempts=1, notes=[], seconds=1.0, finished_at="now")
        pages = journal._conn().execute("PRAGMA page_count").fetchone()[0]
        journal._conn().execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        with pytest.raises(OutputError) as stop:
            journal.record(jobs[1], {"key": jobs[1].key, "pad": "x" * 20_000}, attempts=1, notes=[],
                           seconds=1.0, finished_at="now")
        assert stop.value.errno == errno.ENOSPC and "full" in str(stop.value)
        assert set(journal.finished()) == {jobs[0].key}
    finally:
        journal.close()


def test_cli_a_full_disk_is_one_line_exit_3_naming_the_file_and_the_resume(tmp_path, monkeypatch, capsys):
    import redline.campaign.index as index

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(index, "atomic_write_text", full)
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text(json.dumps({**RAW, "seeds": [0]}))
    out = tmp_path / "out"
    assert main(["campaign", str(campaign), "--out", str(out), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"redline: cannot write {out / 'index.json'}: No space left on device;")
    assert "the 1 job(s) that finished are kept" in err and "--resume" in err
