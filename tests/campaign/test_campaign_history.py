"""A campaign run again compares with its previous run: new, fixed, regressed findings in the
CLI summary, index.json and index.html; the previous run is kept whole under --out/runs/."""
from __future__ import annotations

import json

import pytest

import campaign_faults
from redline.campaign import parse_campaign, run_campaign
from redline.campaign.history import compare_runs
from redline.cli import main
from redline.errors import UsageError

RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 300, "seeds": [0, 1, 2]}


def _run(out, monkeypatch, statuses, raw=RAW, **kw):
    monkeypatch.setenv("REDLINE_TEST_STATUSES", json.dumps(statuses))
    return run_campaign(parse_campaign(raw), out, executor="inline", progress=False,
                        job_fn=campaign_faults.scripted, **kw)


def test_a_second_run_says_which_findings_are_new_fixed_regressed_and_unconfirmed(tmp_path, monkeypatch):
    first = _run(tmp_path, monkeypatch, {"2": "not_vulnerable"})
    assert first.comparison is None  # a first run has nothing to compare with
    assert json.loads((tmp_path / "index.json").read_text())["comparison"] is None
    # The model changed: seed 1's weakness is gone, seed 2's appeared, seed 0 no longer decides; seed 3 is added.
    second = _run(tmp_path, monkeypatch, {"0": "inconclusive", "1": "not_vulnerable"}, raw={**RAW, "seeds": [0, 1, 2, 3]})
    (kept,) = (tmp_path / "runs").iterdir()  # the first run, moved whole
    first_index = json.loads((kept / "index.json").read_text())
    assert first_index["targets"][0]["statuses"] == {"not_vulnerable": 1, "vulnerable": 2}
    assert (kept / "zoo_fair_logreg" / "report.html").is_file() and (kept / "campaign.sqlite").is_file()

    comparison = json.loads((tmp_path / "index.json").read_text())["comparison"]
    assert comparison == second.comparison
    assert comparison["counts"] == {"new": 1, "regressed": 1, "fixed": 1, "improved": 0, "unconfirmed": 1, "unchanged": 0}
    assert [(c["seed"], c["after"]["status"]) for c in comparison["new"]] == [(3, "vulnerable")]
    (regressed,) = comparison["regressed"]
    assert (regressed["seed"], regressed["before"]["status"], regressed["after"]["severity"]) == (2, "not_vulnerable", "Important")
    (fixed,) = comparison["fixed"]
    assert fixed["seed"] == 1 and fixed["id"] == second.reports["zoo:fair_logreg"].findings[1].id
    assert comparison["unconfirmed"][0]["after"]["status"] == "inconclusive"  # not called fixed without evidence
    assert comparison["previous"]["folder"] == f"runs/{kept.name}" and kept.name.startswith("0001-")
    page = (tmp_path / "index.html").read_text()
    assert "Since the previous run" in page and f"runs/{kept.name}/index.html" in page
    assert "zoo:fair_logreg FM05.equation_solving seed 1: vulnerable (Important) -&gt; not vulnerable" in page

    # A third run compares with the second (the newest kept), not the first.
    third = _run(tmp_path, monkeypatch, {}, raw={**RAW, "seeds": [0, 1, 2, 3]})
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert third.comparison["counts"]["regressed"] == 2 and third.comparison["counts"]["unchanged"] == 2


def test_an_unfinished_run_is_resumed_not_replaced_and_keeps_its_comparison(tmp_path, monkeypatch):
    from redline.campaign.driver import CampaignInterrupted

    _run(tmp_path, monkeypatch, {})
    calls = []

    def interrupted_at_the_second_job(job):
        # Not "at seed 1": jobs run longest first by the previous run's times, so seed 1 may
        # come first, and a run interrupted before any job finished has nothing to resume.
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return campaign_faults.run_job(job)

    with pytest.raises(CampaignInterrupted):  # the second run stops after one finished job
        run_campaign(parse_campaign(RAW), tmp_path, executor="inline", progress=False,
                     job_fn=interrupted_at_the_second_job)
    with pytest.raises(UsageError, match="pass --resume"):
        _run(tmp_path, monkeypatch, {})
    resumed = _run(tmp_path, monkeypatch, {}, resume=True)
    (kept,) = (tmp_path / "runs").iterdir()
    assert kept.name.startswith("0001-") and resumed.comparison["previous"]["folder"] == f"runs/{kept.name}"
    assert resumed.comparison["counts"]["unchanged"] == 3 and resumed.complete


def test_changes_are_matched_by_target_check_and_seed_and_severity_counts():
    before = {("t", "FM04.lira", 0): {"id": "a", "status": "vulnerable", "severity": "Moderate"},
              ("t", "FM04.lira", 1): {"id": "b", "status": "vulnerable", "severity": "Critical"},
              ("t", "FM04.lira", 2): {"id": "c", "status": "vulnerable", "severity": "Low"},
              ("t", "FM05.learning", 0): {"id": "d", "status": "error", "severity": "None"},
              ("t", "FM05.learning", 1): {"id": "e", "status": "vulnerable", "severity": "Low"}}
    after = {("t", "FM04.lira", 0): {"id": "a", "status": "vulnerable", "severity": "Critical"},
             ("t", "FM04.lira", 1): {"id": "b", "status": "vulnerable", "severity": "Important"},
             ("t", "FM04.lira", 2): {"id": "c", "status": "vulnerable", "severity": "Low"},
             ("t", "FM05.learning", 0): {"id": "d", "status": "not_vulnerable", "severity": "None"}}
    changes = compare_runs(before, after)
    assert [c["id"] for c in changes["regressed"]] == ["a"]  # more severe is a regression
    assert [c["id"] for c in changes["improved"]] == ["b"]
    assert [c["id"] for c in changes["unconfirmed"]] == ["e"] and changes["unconfirmed"][0]["after"] is None
    assert changes["fixed"] == [] and changes["new"] == []  # error -> not vulnerable: nothing was fixed
    assert changes["unchanged"] == 2


def test_the_cli_compares_with_a_run_kept_elsewhere_and_prints_json(tmp_path, capsys):
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text(json.dumps({**RAW, "seeds": [0]}))
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "monday"), "--no-progress"]) == 1
    capsys.readouterr()
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "tuesday"), "--no-progress",
                 "--compare", str(tmp_path / "monday")]) == 1
    text = capsys.readouterr().out
    assert "since the run of " in text and "0 new, 0 regressed, 0 fixed, 0 improved, 0 unconfirmed, 1 unchanged" in text
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "tuesday"), "--resume", "--json",
                 "--compare", str(tmp_path / "monday")]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["schema"] == "redline.campaign/1" and summary["comparison"]["counts"]["unchanged"] == 1
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "x"), "--compare", str(tmp_path / "nowhere")]) == 2
    assert "--compare" in capsys.readouterr().err


def test_a_run_after_a_previous_one_starts_the_longest_jobs_first(tmp_path, monkeypatch):
    import sqlite3

    from redline.campaign.history import longest_first
    from redline.campaign.jobs import expand

    _run(tmp_path, monkeypatch, {})
    journal = tmp_path / "campaign.sqlite"
    jobs = expand(parse_campaign({**RAW, "seeds": [0, 1, 2, 3]}), tmp_path)
    with sqlite3.connect(journal) as db:  # seeds 0, 1, 2 took 1, 5 and 3 seconds last time; seed 3 is new
        for job, seconds in zip(jobs, (1.0, 5.0, 3.0)):
            db.execute("UPDATE jobs SET seconds = ? WHERE key = ?", (seconds, job.key))
    assert [j.seed for j in longest_first(jobs, journal)] == [3, 1, 2, 0]
    assert longest_first(jobs, None) == jobs  # a first run keeps the campaign's order
    (tmp_path / "garbage.sqlite").write_text("not a database")
    assert longest_first(jobs, tmp_path / "garbage.sqlite") == jobs


def test_an_empty_journal_file_in_out_is_not_taken_for_a_finished_run(tmp_path, monkeypatch):
    import sqlite3

    sqlite3.connect(tmp_path / "campaign.sqlite").close()  # e.g. something polled the folder before the run began
    result = _run(tmp_path, monkeypatch, {}, raw={**RAW, "seeds": [0]})
    assert result.complete and result.comparison is None and not (tmp_path / "runs").exists()


def test_urls_a_query_value_apart_are_compared_as_two_targets():
    from redline.campaign.history import journal_findings

    def row(key, target, status):
        finding = {"id": key, "check": "FM05.equation_solving", "seed": 0, "status": status, "severity": "None"}
        return key, target, "FM05.equation_solving", 0, json.dumps({"finding": finding})

    found = journal_findings([row("a", "http://h/m?model=v1", "vulnerable"),
                              row("b", "http://h/m?model=v2", "not_vulnerable")])
    assert sorted(state["id"] for state in found.values()) == ["a", "b"]
    assert all(target.startswith("http://h/m?model=REDACTED (pbkdf2:") and "v1" not in target
               for target, _, _ in found)
    # Targets shown as given are keyed as they always were.
    plain = journal_findings([row("c", "zoo:fair_logreg", "vulnerable")])
    assert list(plain) == [("zoo:fair_logreg", "FM05.equation_solving", 0)]
