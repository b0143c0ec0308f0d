"""`redline registry …` and `redline scan … --registry`: the commands, their JSON, exit codes
and one-line errors; a real scan recorded as it goes and a real replay of its case."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_testkit import make_finding, make_report

from redline.cli import main
from redline.registry import CaseStatus, Registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cases.db'}"


@pytest.fixture
def report_file(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report([make_finding(1), make_finding(2, mode="FM04", check="FM04.lira",
                                                                          title="Members of the training set")])))
    return path


def test_add_list_search_show_update(capsys, db, report_file):
    code, out, _ = run(capsys, "registry", "add", str(report_file), str(EXAMPLES / "stop-sign-sticker.incident.yaml"),
                       "--db", db, "--by", "ann", "--json")
    assert code == 0
    recorded = json.loads(out)["recorded"]
    assert [r["new"] for r in recorded] == [True, True, True] and recorded[2]["incident_new"]
    code, out, _ = run(capsys, "registry", "add", str(report_file), "--db", db)
    assert code == 0 and out.count("seen again (same finding id)") == 2

    code, out, _ = run(capsys, "registry", "list", "--db", db)
    assert code == 0 and out.strip().endswith("1-3 of 3 cases")
    code, out, _ = run(capsys, "registry", "search", "sign", "--mode", "FM07", "--db", db, "--json")
    found = json.loads(out)
    assert found["total"] == 1 and found["cases"][0]["source"] == "incident" and found["cases"][0]["mode"] == "FM07"
    code, out, _ = run(capsys, "registry", "search", "members", "--severity", "important", "--status", "open",
                       "--db", db, "--json")
    case_id = json.loads(out)["cases"][0]["id"]

    code, out, _ = run(capsys, "registry", "show", case_id[:8], "--db", db, "--json")
    shown = json.loads(out)
    assert shown["case"]["id"] == case_id and len(shown["observations"]) == 2
    code, out, _ = run(capsys, "registry", "update", case_id, "--status", "wont-fix", "--note", "accepted", "--db", db)
    assert code == 0 and "wont-fix" in out
    code, out, _ = run(capsys, "registry", "show", case_id, "--db", db)
    assert "status open -> wont-fix accepted" in out and "reproduce: redline registry replay" in out


def test_export_json_and_import_it_elsewhere(capsys, db, report_file, tmp_path):
    run(capsys, "registry", "add", str(report_file), "--db", db)
    case_id = Registry(db).list().cases[0].id
    exported = tmp_path / "case.json"
    code, out, _ = run(capsys, "registry", "export", case_id, "--format", "json", "--out", str(exported), "--db", db)
    assert code == 0 and json.loads(exported.read_text())["schema"] == "redline.case/1"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run(capsys, "registry", "import", str(exported), "--db", other)
    assert code == 0 and "1 new" in out
    with Registry(other) as registry:
        imported = registry.list().cases[0]
    original = Registry(db).get(case_id)
    assert {k: v for k, v in imported.to_dict().items() if k not in ("created_at", "updated_at", "added_by")} == \
           {k: v for k, v in original.to_dict().items() if k not in ("created_at", "updated_at", "added_by")}


def test_export_in_the_exchange_formats_and_a_hostile_import_is_a_one_line_error(capsys, db, report_file, tmp_path):
    run(capsys, "registry", "add", str(report_file), "--db", db)
    case_id = Registry(db).list().cases[0].id
    code, out, _ = run(capsys, "registry", "export", case_id, "--format", "avid", "--db", db)
    assert code == 0 and json.loads(out)["data_type"] == "AVID"
    code, out, _ = run(capsys, "registry", "export", case_id, "--format", "md", "--db", db)
    assert code == 0 and out.startswith("#")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run(capsys, "registry", "import", str(deep), "--db", db)
    assert code == 2 and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["registry", "show", "ffffff"], "no case 'ffffff' in the registry"),
    (["registry", "update", "ffffff", "--status", "fixed"], "no case 'ffffff'"),
    (["registry", "replay", "ffffff"], "no case 'ffffff'"),
    (["registry", "list", "--status", "closed"], "status must be one of open, fixed, regressed, wont-fix"),
    (["registry", "list", "--db", "mysql://root:hunter2@db/x"], "only sqlite:///PATH and postgresql://"),
    (["registry", "list", "--db", "postgresql://u:hunter2@127.0.0.1:1/x"], "cannot open registry"),
    (["registry", "add", "nothing.json"], "nothing.json does not exist"),
])
def test_errors_are_one_line_with_exit_2(capsys, db, report_file, argv, message):
    run(capsys, "registry", "add", str(report_file), "--db", db)
    if "--db" not in argv:
        argv = [*argv, "--db", db]
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "hunter2" not in err


def test_reading_a_registry_that_does_not_exist_does_not_create_it(capsys, tmp_path):
    code, _, err = run(capsys, "registry", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and "does not exist" in err and not (tmp_path / "none.db").exists()


def test_the_default_registry_comes_from_the_environment(capsys, tmp_path, monkeypatch, report_file):
    monkeypatch.setenv("REDLINE_REGISTRY", str(tmp_path / "env.db"))
    assert run(capsys, "registry", "add", str(report_file))[0] == 0
    assert (tmp_path / "env.db").is_file()


def test_replay_outcomes_follow_the_verdict_and_the_status(capsys, db, report_file, monkeypatch):
    from redline.pipeline import replay as pipeline_replay
    from redline.pipeline.replay import ReplayResult

    run(capsys, "registry", "add", str(report_file), "--db", db)
    case = Registry(db).search("stealing").cases[0]
    verdicts = iter(["not_vulnerable", "vulnerable", "vulnerable", "error"])
    seen = []

    def fake_replay(path, finding_id, **kw):
        recorded = json.loads(Path(path).read_text())
        seen.append((recorded["target"]["spec"], recorded["findings"][0]["check"], finding_id, kw["target"]))
        return ReplayResult(finding_id, "FM05.equation_solving", "vulnerable", next(verdicts), [], "")

    monkeypatch.setattr(pipeline_replay, "replay", fake_replay)
    outcomes = []
    for _ in range(4):
        code, out, _ = run(capsys, "registry", "replay", case.id, "--target", "onnx:v2.onnx", "--db", db, "--json")
        outcomes.append((code, json.loads(out)["outcome"]))
    assert outcomes == [(0, "fixed"), (1, "regressed"), (1, "still-failing"), (3, "error")]
    assert seen[0] == ("zoo:fair_logreg", "FM05.equation_solving", case.finding_id, "onnx:v2.onnx")
    registry = Registry(db)
    assert registry.get(case.id).status is CaseStatus.REGRESSED
    assert [r["outcome"] for r in registry.replays(case.id)] == ["fixed", "regressed", "still-failing", "error"]


def test_an_incident_case_cannot_be_replayed(capsys, db):
    run(capsys, "registry", "add", str(EXAMPLES / "stolen-model.incident.yaml"), "--db", db)
    case_id = Registry(db).list().cases[0].id
    code, _, err = run(capsys, "registry", "replay", case_id, "--db", db)
    assert code == 2 and "nothing to re-run" in err


def test_a_scan_records_its_findings_as_they_are_made_and_the_case_replays(capsys, tmp_path, monkeypatch):
    from redline.registry import store

    out_dir = tmp_path / "scan"
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    moments = []
    original = store.Registry.add_finding

    def watching(self, finding, **kw):
        moments.append((finding["check"], (out_dir / "report.json").exists()))
        return original(self, finding, **kw)

    monkeypatch.setattr(store.Registry, "add_finding", watching)
    code, out, err = run(capsys, "scan", "zoo:fair_logreg", "--select", "FM05.equation_solving,FM04.threshold",
                         "--set", "FM04.threshold.max_records=200", "--budget", "3000", "--out", str(out_dir),
                         "--format", "json", "--no-progress", "--fail-on", "never", "--registry", db)
    assert code == 0, err
    assert sorted(moments) == [("FM04.threshold", False), ("FM05.equation_solving", False)]  # before the report
    assert "1 new case" in out
    with Registry(db) as registry:
        (case,) = registry.list().cases
    assert case.check == "FM05.equation_solving" and case.target == "zoo:fair_logreg" and case.seed == 0
    report = json.loads((out_dir / "report.json").read_text())
    assert case.finding_id == next(f["id"] for f in report["findings"] if f["check"] == case.check)

    code, out, err = run(capsys, "registry", "replay", case.id, "--db", db, "--json")
    assert code == 1, err
    result = json.loads(out)
    assert result["outcome"] == "still-failing" and result["replayed_status"] == "vulnerable" and result["reproduced"]
    assert result["metrics"]["fidelity"] == case.metrics["fidelity"]


def test_scan_with_a_bad_registry_url_stops_before_scanning(capsys, tmp_path):
    code, _, err = run(capsys, "scan", "zoo:fair_logreg", "--select", "FM05", "--out", str(tmp_path / "o"),
                       "--registry", "ftp://nowhere")
    assert code == 2 and "registry URL" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("finding, words", [
    ({"metrics": [1, 2]}, "metrics must be a mapping"),
    ({"seed": 2**70}, "seed must be a whole number"),
    ({"budget": "lots"}, "budget must be a whole number"),
    ({"mode": "FM99"}, "no known mode"),
])
def test_a_malformed_report_is_a_one_line_error_and_records_nothing(capsys, db, tmp_path, finding, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(make_report([make_finding(1), {**make_finding(2), **finding}])))
    code, _, err = run(capsys, "registry", "add", str(path), "--db", db)
    assert code == 2 and words in err and err.count("\n") == 1
    assert Registry(db).list().total == 0  # the good finding of the same report is not recorded alone


def test_a_case_found_behind_a_guard_policy_replays_behind_it(capsys, tmp_path):
    from redline.registry.reproduce import scan_command

    policy = tmp_path / "guard.yaml"
    policy.write_text("version: 1\ndefences:\n  - round: {decimals: 8}\n")
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    code, _, err = run(capsys, "scan", "zoo:fair_logreg", "--select", "FM05.equation_solving", "--defend", str(policy),
                       "--out", str(tmp_path / "scan"), "--format", "json", "--no-progress", "--fail-on", "never",
                       "--registry", db)
    assert code == 0, err
    with Registry(db) as registry:
        (case,) = registry.list().cases
    assert case.target == "zoo:fair_logreg+round8"  # what answered the attack
    assert case.evidence["defended_by"]["baseline"] == "zoo:fair_logreg"
    command = scan_command(case)
    assert command.startswith(f"redline scan zoo:fair_logreg --defend {policy.resolve()}")
    code, out, err = run(capsys, "registry", "replay", case.id, "--db", db, "--json")
    assert code == 1, err
    result = json.loads(out)
    assert result["outcome"] == "still-failing" and result["reproduced"]


def test_evidence_that_names_no_file_a_path_can_hold_is_recorded_as_text(capsys, db, tmp_path):
    # a hand-edited report: a NUL byte in an evidence string (here a guard policy's path)
    finding = {**make_finding(1), "evidence": {"defended_by": {"policy": "guard\u0000.yaml", "baseline": "zoo:fair_logreg"}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report([finding])))
    code, _, err = run(capsys, "registry", "add", str(path), "--db", db)
    assert code == 0, err
    (case,) = Registry(db).list().cases
    assert case.evidence["defended_by"]["policy"] == "guard\u0000.yaml"
