"""`redline modes` through the real command-line entry point."""
from __future__ import annotations

import json

import pytest

import redline.checks
import redline.cli
from redline.cli import main


class _FakeCheck:
    def __init__(self, check_id):
        self.id = check_id
        self.mode = check_id.partition(".")[0]


@pytest.fixture(autouse=True)
def only_catalog_commands(monkeypatch):
    # Other command groups are built in parallel; these tests exercise `modes` alone.
    monkeypatch.setattr(redline.cli, "COMMAND_MODULES", ("redline.checks.mode_commands",))


@pytest.fixture
def registry(monkeypatch):
    checks = {cid: _FakeCheck(cid) for cid in ("FM01.pgd", "FM01.square", "FM04.lira")}
    monkeypatch.setattr(redline.checks, "all_checks", lambda: checks)
    return checks


def test_table(capsys, registry):
    assert main(["modes"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nFM") == 17
    fm01 = next(line for line in out.splitlines() if line.startswith("FM01"))
    assert fm01.split()[-1] == "2" and "Important to Critical" in fm01


def test_one_record(capsys, registry):
    assert main(["modes", "fm04"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FM04  Membership inference")
    assert "  - FM04.lira" in out and "Moderate to Critical" in out


def test_json_list(capsys, registry):
    assert main(["modes", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in records] == [f"FM{i:02d}" for i in range(1, 18)]
    for r in records:
        assert {"code", "name", "kind", "summary", "compromises", "knowledge", "violates_access",
                "bug_bar", "atlas", "avid", "mitigations", "checks"} <= set(r)
        assert {"threat", "severity_min", "severity_max"} <= set(r["bug_bar"])
    assert records[0]["checks"] == ["FM01.pgd", "FM01.square"] and records[1]["checks"] == []


def test_json_one_record(capsys, registry):
    assert main(["modes", "FM04", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["code"] == "FM04" and record["checks"] == ["FM04.lira"]
    assert record["bug_bar"] == {**record["bug_bar"], "threat": "Membership Inference",
                                 "severity_min": "Moderate", "severity_max": "Critical"}


def test_unknown_code_is_a_one_line_error(capsys, registry):
    assert main(["modes", "FM42"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "unknown failure mode 'FM42'" in captured.err


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["modes", "--help"])
    assert exc.value.code == 0
    assert "redline modes FM04" in capsys.readouterr().out


def test_real_registry_checks_belong_to_their_mode(capsys):
    assert main(["modes", "--json"]) == 0
    for record in json.loads(capsys.readouterr().out):
        assert all(check_id.upper().startswith(record["code"]) for check_id in record["checks"])


def test_one_record_lists_each_check_with_its_parameters(capsys, monkeypatch):
    monkeypatch.setattr(redline.cli, "COMMAND_MODULES", ("redline.checks.mode_commands",))
    assert main(["modes", "FM01"]) == 0
    out = capsys.readouterr().out
    assert "  - FM01.pgd" in out and "White-box projected gradient descent evasion" in out
    assert "      epsilon (float | None, default null)" in out and "      steps (int, default 20)" in out
    assert "gradient steps per restart" in out
    assert main(["modes", "FM01", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    steps = next(p for p in record["check_params"]["FM01.pgd"] if p["name"] == "steps")
    assert steps == {"name": "steps", "type": "int", "default": 20, "doc": "gradient steps per restart"}
