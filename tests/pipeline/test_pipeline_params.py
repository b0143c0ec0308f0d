"""Check parameters from `redline scan --set/--checks` and `redline.scan(params=...)`: applied,
recorded, part of the id and fingerprint, and refused before anything is loaded when wrong."""
import json

import pytest

import redline
from redline.checks.params import command_line_params, normalise_params, parse_set
from redline.cli import main
from redline.errors import UsageError


def test_set_values_are_read_as_yaml():
    assert parse_set(["FM01.pgd.epsilon=0.1", "fm01.pgd.norm=l2", "FM02.label_flip.rates=[0.05, 0.1]",
                      "FM01.pgd.step_size=null", "FM01.pgd.bpda=false"]) == {
        "FM01.pgd": {"epsilon": 0.1, "step_size": None, "bpda": False},
        "fm01.pgd": {"norm": "l2"},
        "FM02.label_flip": {"rates": [0.05, 0.1]},
    }
    # Ids are made canonical and values fitted to their annotation (a YAML list -> tuple).
    params = normalise_params({"fm01.pgd": {"norm": "l2", "steps": 5}, "FM02.label_flip": {"rates": [0.05, 0.1]}})
    assert params == {"FM01.pgd": {"norm": "l2", "steps": 5}, "FM02.label_flip": {"rates": (0.05, 0.1)}}
    for bad in ("FM01.pgd", "epsilon=0.1", "FM01.pgd.epsilon=[1", "FM01.pgd.epsilon={a: 1}"):
        with pytest.raises(UsageError):
            parse_set([bad])


@pytest.mark.parametrize("params, words", [
    ({"FM01.pgx": {"steps": 3}}, ["unknown check 'FM01.pgx'", "FM01.pgd"]),
    ({"FM01.pgd": {"stepz": 3}}, ["no parameter 'stepz'", "steps"]),
    ({"FM01.pgd": {"steps": "many"}}, ["FM01.pgd.steps takes a whole number"]),
    ({"FM01.pgd": {"norm": "l3"}}, ["FM01.pgd", "'linf' or 'l2'"]),
    ({"FM01.pgd": {"steps": 0}}, ["FM01.pgd", "steps must be at least 1"]),
    ({"FM04.threshold": {"fpr": 0.1}}, ["FM04.threshold", "selection does not include"]),
])
def test_bad_params_are_usage_errors_before_anything_is_loaded(params, words, monkeypatch):
    import redline.targets

    def no_loading(*a, **k):
        raise AssertionError("the target was loaded before the parameters were checked")

    monkeypatch.setattr(redline.targets, "load_target", no_loading)
    with pytest.raises(UsageError) as info:
        redline.scan("zoo:does_not_matter", select="FM01.pgd", params=params)
    text = str(info.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_cli_bad_set_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["scan", "zoo:fair_logreg", "--select", "FM01.pgd", "--set", "FM01.pgd.norm=l3",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "'linf' or 'l2'" in err
    assert not out.exists()  # nothing written, nothing loaded


def test_checks_file_and_set_precedence(tmp_path):
    path = tmp_path / "checks.yaml"
    path.write_text("FM04.threshold: {score: confidence, fpr: 0.05}\nFM01.pgd: {steps: 3}\n")
    # --set wins over the file; the file's entry for an unselected check is checked, then left out.
    assert command_line_params(["FM04.threshold.fpr=0.02"], path, "FM04.threshold") == {
        "FM04.threshold": {"score": "confidence", "fpr": 0.02}}
    path.write_text("FM01.pgd: {stepz: 3}\n")
    with pytest.raises(UsageError, match="no parameter 'stepz'"):
        command_line_params([], path, "FM04.threshold")
    path.write_text("- not a mapping\n")
    with pytest.raises(UsageError, match="mapping"):
        command_line_params([], path, None)


def test_params_reach_the_check_the_finding_and_the_fingerprint(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["scan", "zoo:fair_logreg", "--select", "FM04.threshold", "--budget", "3000", "--out", str(out),
            "--no-progress", "--fail-on", "never", "--format", "json"]
    assert main(args + ["--set", "FM04.threshold.score=confidence", "--set", "FM04.threshold.max_records=200"]) == 0
    finding = json.loads((out / "report.json").read_text())["findings"][0]
    assert finding["params"]["score"] == "confidence" and finding["params"]["max_records"] == 200
    assert finding["metrics"]["score"] == "confidence" and finding["budget"] == 3000
    default = redline.scan("zoo:fair_logreg", select="FM04.threshold", budget=3000,
                           params={"FM04.threshold": {"max_records": 200}}).findings[0]
    assert default.params["score"] == "loss" and default.id != finding["id"]

    from redline.pipeline.runner import ScanRequest

    plain = ScanRequest(target="zoo:x", select="FM04")
    tuned = ScanRequest(target="zoo:x", select="FM04", params={"fm04.threshold": {"fpr": 0.05}})
    same = ScanRequest(target="zoo:x", select="FM04", params={"FM04.threshold": {"fpr": 0.05}})
    assert plain.fingerprint("t", "d", {}) != tuned.fingerprint("t", "d", {}) == same.fingerprint("t", "d", {})


def test_resume_with_other_params_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["scan", "zoo:fair_logreg", "--select", "FM04.threshold", "--budget", "2000", "--out", str(out),
            "--no-progress", "--fail-on", "never", "--format", "json", "--set", "FM04.threshold.max_records=100"]
    assert main(args) == 0
    assert main(args + ["--resume"]) == 0  # same parameters: the finding is kept
    capsys.readouterr()
    assert main(args + ["--resume", "--set", "FM04.threshold.max_records=150"]) == 2
    assert "check parameters" in capsys.readouterr().err
