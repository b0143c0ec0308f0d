import json

import pytest

from redline import cli


@pytest.fixture
def run(monkeypatch, capsys):
    """``redline ...`` with only the provenance commands registered."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("redline.provenance.commands",))

    def invoke(*argv):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_keygen_sign_verify_round_trip(run, model_dir, tmp_path):
    code, out, _ = run("keygen", "--out", tmp_path / "rel")
    assert code == 0 and "rel.key" in out and "rel.pub" in out
    keyid = out.split("key id ")[1].strip()
    code, out, _ = run("sign", model_dir, "--key", tmp_path / "rel.key")
    assert code == 0 and "signed 4 files" in out and (model_dir / "model.sig").exists()
    code, out, _ = run("sign", model_dir, "--key", tmp_path / "rel.key", "--json")
    assert code == 0 and json.loads(out)["files"] == 4 and json.loads(out)["keyid"] == keyid
    code, out, _ = run("verify", model_dir, "--key", tmp_path / "rel.pub")
    assert code == 0
    assert out.strip() == f"OK: 4 files in {model_dir} match the signature by key {keyid}"
    assert len(out.strip().splitlines()) == 1


def test_verify_failure_lists_problems_and_exits_1(run, model_dir, tmp_path):
    run("keygen", "--out", tmp_path / "rel")
    run("sign", model_dir, "--key", tmp_path / "rel.key")
    (model_dir / "config.json").write_text("{}")
    (model_dir / "new.bin").write_bytes(b"1")
    code, out, _ = run("verify", model_dir, "--key", tmp_path / "rel.pub")
    assert code == 1
    assert out.startswith("FAILED") and "(2 problems)" in out
    assert "changed    config.json" in out and "extra      new.bin" in out

    code, out, _ = run("verify", model_dir, "--key", tmp_path / "rel.pub", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["files"] == 4
    assert sorted((p["kind"], p["path"]) for p in doc["problems"]) == [("changed", "config.json"), ("extra", "new.bin")]


def test_usage_errors_exit_2_with_one_line(run, model_dir, tmp_path):
    run("keygen", "--out", tmp_path / "rel")
    for argv, message in [
        (("sign", tmp_path / "absent", "--key", tmp_path / "rel.key"), "no such directory"),
        (("sign", model_dir, "--key", tmp_path / "absent.key"), "no such key file"),
        (("verify", model_dir, "--key", tmp_path / "rel.pub"), "no signature file"),
        (("keygen", "--out", tmp_path / "rel"), "already exists"),
    ]:
        code, _, err = run(*argv)
        assert code == 2, argv
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run("sign", model_dir)  # --key is required
    assert code == 2 and "--key" in err


def test_bom_prints_or_writes_json(run, model_dir, tmp_path):
    code, out, _ = run("bom", model_dir, "--no-scan")
    assert code == 0 and json.loads(out)["specVersion"] == "1.6"
    code, out, _ = run("bom", model_dir, "--no-scan", "--out", tmp_path / "bom.json")
    assert code == 0 and "4 files" in out
    assert json.loads((tmp_path / "bom.json").read_text())["components"][0]["name"] == "tiny-model"


@pytest.mark.parametrize("command", ["keygen", "sign", "verify", "bom"])
def test_every_command_has_help_with_an_example(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0 and f"Example: redline {command}" in out
