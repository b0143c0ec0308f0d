"""What the defences buy: the same checks against a bare and a defended model, side by side."""
from __future__ import annotations

import json

import pytest

import redline
from redline.defences.labels_only import LabelsOnly
from redline.defences.output_hardening import ConfidenceNoise
from redline.defences.rounding import Rounding
from redline.errors import UsageError
from redline.report.model import Report
from redline.report.validate import validate_report


def rows(report):
    return {row["check"]: row for row in report.defences["checks"]}


def test_labels_only_and_rounding_stop_equation_solving_in_every_report_format(tmp_path):
    out = tmp_path / "out"
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=[LabelsOnly(), Rounding(2)],
                          out=out, formats="json,md,html")
    row = rows(report)["FM05.equation_solving"]
    assert row["bare"]["status"] == "vulnerable" and row["bare"]["value"] == pytest.approx(1.0, abs=1e-3)
    assert row["bare"]["queries"] > 0 and row["metric"] == "fidelity"
    assert row["defended"]["status"] == "not_applicable" and row["effect"] == "stopped"
    assert report.defences["defences"] == ["round2", "labels"]  # the order a request meets them
    assert report.defences["baseline"]["spec"] == "zoo:fair_logreg"
    assert report.target["spec"] == report.defences["defended"]["spec"] == "zoo:fair_logreg+labels+round2"
    document = json.loads((out / "report.json").read_text())
    validate_report(document)
    assert Report.from_dict(document).defences == document["defences"]
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## What the defences buy" in md and "| `FM05.equation_solving` | vulnerable (Important) | not\\_applicable" in md
    assert 'id="defences"' in page and "stopped" in page


def test_confidence_noise_lowers_the_fidelity_of_equation_solving():
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=[ConfidenceNoise(scale=0.3)])
    row = rows(report)["FM05.equation_solving"]
    assert row["defended"]["value"] < row["bare"]["value"] - 0.2
    assert row["bare"]["queries"] == row["defended"]["queries"]  # same attack, same cost, worse copy


def test_labels_only_stops_the_confidence_threshold_membership_attack():
    report = redline.scan("zoo:fair_tree_overfit", select="FM04.threshold", defend=[LabelsOnly(), Rounding(2)])
    row = rows(report)["FM04.threshold"]
    assert row["metric"] == "auc" and row["bare"]["status"] == "vulnerable" and row["bare"]["value"] > 0.6
    assert row["defended"]["status"] == "not_applicable" and row["effect"] == "stopped"


def test_a_scan_without_defences_keeps_report_json_as_it_was():
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving")
    assert report.defences is None and "defences" not in report.to_dict()


def test_a_guarded_endpoint_is_compared_with_the_baseline_its_config_names(tmp_path, model_server):
    from redline.targets import load_target

    estimator = load_target("zoo:fair_logreg").sklearn_estimator()
    config = tmp_path / "endpoint.yaml"
    config.write_text("baseline: zoo:fair_logreg\nn_classes: 2\n")
    with model_server(estimator, labels_only=True) as server:
        report = redline.scan(server.url, "builtin:fair", select="FM05.equation_solving", target_config=str(config))
    row = rows(report)["FM05.equation_solving"]
    assert (row["bare"]["status"], row["defended"]["status"]) == ("vulnerable", "not_applicable")
    assert report.defences["policy"] is None and report.defences["baseline"]["spec"] == "zoo:fair_logreg"
    assert report.defences["defences"] == []


@pytest.mark.parametrize("defend, match", [
    ("no-such-guard.yaml", "no such policy file"),
    ([], "non-empty list"),
    ([object()], "Defence objects"),
])
def test_bad_defend_values_are_usage_errors_before_any_work(defend, match):
    with pytest.raises(UsageError, match=match):
        redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=defend)


def test_the_baseline_key_of_a_target_config_must_be_a_spec(tmp_path):
    from redline.targets.config import load_target_config

    path = tmp_path / "c.yaml"
    path.write_text("baseline: [zoo:fair_logreg]\n")
    with pytest.raises(UsageError, match="baseline"):
        load_target_config(path)
    path.write_text("baseline: zoo:fair_logreg\n")
    assert load_target_config(path).baseline == "zoo:fair_logreg"


def test_cli_defend_loads_the_guard_policy_and_writes_the_comparison(tmp_path, capsys):
    from redline.cli import main

    policy = tmp_path / "guard.yaml"
    policy.write_text("version: 1\ndefences:\n  - round: {decimals: 3}\n  - noise: {scale: 0.3, seed: 1}\n")
    out = tmp_path / "out"
    code = main(["scan", "zoo:fair_logreg", "--select", "FM05.equation_solving", "--defend", str(policy),
                 "--out", str(out), "--format", "json", "--no-progress", "--fail-on", "never"])
    assert code == 0
    document = json.loads((out / "report.json").read_text())
    validate_report(document)
    section = document["defences"]
    assert section["policy"] == str(policy) and section["defences"] == ["round3", "noise0.3"]
    row = section["checks"][0]
    assert row["bare"]["value"] > row["defended"]["value"]  # the noisy copy is a worse copy
    assert document["target"]["spec"] == "zoo:fair_logreg+noise0.3+round3"


def test_cli_defend_with_a_defence_that_cannot_front_the_model_is_a_one_line_error(tmp_path, capsys):
    from redline.cli import main

    policy = tmp_path / "guard.yaml"
    policy.write_text("version: 1\ndefences:\n  - smooth: {size: 3}\n")
    code = main(["scan", "zoo:fair_logreg", "--select", "FM05.equation_solving", "--defend", str(policy),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "table has no neighbouring pixels" in err and "Traceback" not in err


def test_queries_the_defences_refuse_are_counted_and_called_refused():
    from redline.defences.validation import Validation

    # fair_logreg's survey codes are categories; equation solving asks about points between them
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=[Validation()])
    row = rows(report)["FM05.equation_solving"]
    assert row["defended"]["status"] == "error" and row["defended"]["refusals"] >= 1
    assert row["effect"] == "refused" and "categories" in row["defended"]["reason"]


def test_a_finding_of_a_defended_scan_replays_behind_the_same_policy(tmp_path, capsys):
    from redline.cli import main

    policy = tmp_path / "guard.yaml"
    policy.write_text("version: 1\ndefences:\n  - round: {decimals: 3}\n  - noise: {scale: 0.3, seed: 1}\n")
    out = tmp_path / "out"
    assert main(["scan", "zoo:fair_logreg", "--select", "FM05.equation_solving", "--defend", str(policy),
                 "--out", str(out), "--format", "json", "--no-progress", "--fail-on", "never"]) == 0
    document = json.loads((out / "report.json").read_text())
    section, finding = document["defences"], document["findings"][0]
    assert section["policy_file"] == str(policy.resolve()) and len(section["policy_sha256"]) == 64
    capsys.readouterr()
    # the noisy copy's fidelity reproduces only if the model is behind the same noise again
    assert main(["replay", str(out / "report.json"), finding["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is True
    # a policy edited since the scan is refused rather than compared
    policy.write_text("version: 1\ndefences:\n  - round: {decimals: 3}\n  - noise: {scale: 0.1, seed: 1}\n")
    assert main(["replay", str(out / "report.json"), finding["id"]]) == 2
    assert "changed since the scan" in capsys.readouterr().err
    # ... unless the user names a policy, whose answers then decide
    other = tmp_path / "other.yaml"
    other.write_text("version: 1\ndefences:\n  - round: {decimals: 3}\n")
    assert main(["replay", str(out / "report.json"), finding["id"], "--defend", str(other), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["reproduced"] is False


def test_a_defended_scan_from_python_objects_asks_for_the_policy_on_replay(tmp_path):
    from redline.pipeline.replay import replay

    out = tmp_path / "out"
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=[Rounding(2)], out=out,
                          formats="json")
    with pytest.raises(UsageError, match="give the policy with --defend"):
        replay(out / "report.json", report.findings[0].id)


def test_a_report_with_a_damaged_defences_record_is_a_one_line_error_on_replay(tmp_path):
    from redline.pipeline.replay import replay

    policy = tmp_path / "guard.yaml"
    policy.write_text("version: 1\ndefences:\n  - round: {decimals: 3}\n")
    out = tmp_path / "out"
    report = redline.scan("zoo:fair_logreg", select="FM05.equation_solving", defend=str(policy), out=out,
                          formats="json")
    document = json.loads((out / "report.json").read_text())
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse; hashing it whole would read 64 MiB
    damaged = {
        "baseline": (r"damaged \(baseline is a str", {"baseline": "zoo:fair_logreg"}),
        "policy_file": ("policy_file must be a path, not int", {"policy_file": 7}),
        "policy": ("policy must be a path, not list", {"policy": ["guard.yaml"], "policy_file": None}),
        "huge": ("is larger than", {"policy_file": str(huge)}),
    }
    for name, (message, change) in damaged.items():
        edited = tmp_path / name / "report.json"
        edited.parent.mkdir()
        edited.write_text(json.dumps({**document, "defences": {**document["defences"], **change}}))
        with pytest.raises(UsageError, match=message) as err:
            replay(edited, report.findings[0].id)
        assert "\n" not in str(err.value)
