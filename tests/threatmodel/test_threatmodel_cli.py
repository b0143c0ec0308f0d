"""``redline threat-model`` and ``redline triage`` on the command line: output and exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from redline.cli import main
from redline.threatmodel import SystemDescription

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE_API = str(EXAMPLES / "image-api.system.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_in_the_terminal(capsys, fixed_registry):
    code, out, err = run(capsys, "threat-model", IMAGE_API)
    assert code == 0 and err == ""
    assert out.startswith("Threat model: Photo tagging API")
    assert "--out DIR" in out


def test_json_on_stdout(capsys, fixed_registry):
    code, out, _ = run(capsys, "threat-model", IMAGE_API, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["schema"] == "redline.threat-model/1"
    assert len(document["modes"]) == 17 and all(m["code"] for m in document["modes"])


def test_out_writes_three_reports(capsys, tmp_path, fixed_registry):
    out_dir = tmp_path / "tm"
    code, out, _ = run(capsys, "threat-model", str(EXAMPLES / "traffic-sign-car.system.yaml"), "--out", str(out_dir))
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["threat-model.html", "threat-model.json", "threat-model.md"]
    assert f"wrote {out_dir / 'threat-model.html'}" in out
    assert json.loads((out_dir / "threat-model.json").read_text())["system"]["name"] == "Traffic-sign recognition"
    assert "<svg" in (out_dir / "threat-model.html").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["threat-model"], "name a system description"),
        (["threat-model", "missing.yaml"], "missing.yaml does not exist"),
        (["threat-model", IMAGE_API, "--force"], "--force only applies to --interview"),
        (["threat-model", IMAGE_API, "--interview"], "do not also name SYSTEM.yaml"),
        (["triage", "missing.yaml"], "missing.yaml does not exist"),
        (["triage", IMAGE_API], "is a system description (redline.system/1), not an incident report"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("redline: error: ") and message in err
    assert err.count("\n") == 1


def test_invalid_yaml_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [oops\n", encoding="utf-8")
    code, _, err = run(capsys, "threat-model", str(bad))
    assert code == 2 and "not valid YAML" in err and err.count("\n") == 1


def test_out_must_be_a_folder(capsys, tmp_path, fixed_registry):
    file = tmp_path / "taken"
    file.write_text("x")
    code, _, err = run(capsys, "threat-model", IMAGE_API, "--out", str(file))
    assert code == 2 and "is a file" in err


def test_interview_writes_a_valid_file(capsys, tmp_path, monkeypatch):
    target = tmp_path / "system.yaml"
    monkeypatch.setattr(sys, "stdin", io.StringIO("Recommender\n\nuser_feedback\n"))
    code, out, err = run(capsys, "threat-model", "--interview", "--out", str(target))
    assert code == 0 and out == ""
    assert "What is the system called?" in err and f"wrote {target}" in err
    description = SystemDescription.from_yaml(target)
    assert description.name == "Recommender" and description.context.training_influence == "users"
    # It will not overwrite without --force...
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "threat-model", "--interview", "--out", str(target))
    assert code == 2 and "already exists" in err
    # ...and with --force it does.
    monkeypatch.setattr(sys, "stdin", io.StringIO("Other\n"))
    assert run(capsys, "threat-model", "--interview", "--out", str(target), "--force")[0] == 0
    assert SystemDescription.from_yaml(target).name == "Other"


def test_interview_without_out_prints_yaml(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Piped\n"))
    code, out, err = run(capsys, "threat-model", "--interview")
    assert code == 0 and yaml.safe_load(out) == {"schema": "redline.system/1", "name": "Piped"}
    assert "What is the system called?" in err


def test_triage_text_and_json(capsys):
    path = str(EXAMPLES / "poisoned-feedback.incident.yaml")
    code, out, _ = run(capsys, "triage", path)
    assert code == 0 and "FM02 Poisoning attack" in out and "Response playbook:" in out
    code, out, _ = run(capsys, "triage", path, "--json")
    document = json.loads(out)
    assert code == 0 and document["primary"] == "FM02" and document["severity"] == "Critical"
    assert document["matches"][0]["evidence"] and set(document["playbook"]) == {
        "contain",
        "eradicate",
        "recover",
        "lessons",
    }


def test_help_has_examples(capsys):
    for command in ("threat-model", "triage"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_real_process_with_piped_stdin_and_no_tty(tmp_path):
    """The installed entry point, a closed pipe as stdin, no traceback anywhere."""
    target = tmp_path / "system.yaml"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "redline.cli", "threat-model", "--interview", "--out", str(target)],
        input="Piped system\n\ninternal\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert SystemDescription.from_yaml(target).name == "Piped system"
    bad = subprocess.run(
        [sys.executable, "-m", "redline.cli", "triage", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_importing_the_package_stays_light():
    code = (
        "import sys, redline.threatmodel, redline.threatmodel.commands; "
        "heavy = {'torch', 'sklearn', 'onnxruntime', 'matplotlib', 'scipy'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "[]", done.stderr
