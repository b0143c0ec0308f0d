import json
import socket

import pytest

from redline import cli


@pytest.fixture
def run(monkeypatch, capsys):
    """``redline ...`` with only the deps command registered, so other groups' state does not matter."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("redline.deps.commands",))

    def invoke(*argv):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_vulnerable_requirements_exit_1_with_a_table(run, requirements, osv_zip):
    code, out, err = run("deps", "--requirements", str(requirements), "--osv-db", str(osv_zip))
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["PACKAGE", "VERSION", "ADVISORY", "SEVERITY", "FIX"]
    pyyaml = next(line for line in lines if line.startswith("pyyaml"))
    assert "GHSA-test-yaml-0001 (PYSEC-2099-11, CVE-2099-0001)" in pyyaml
    assert "Critical" in pyyaml and "upgrade to 5.4" in pyyaml
    assert "5 known vulnerabilities in 5 of 8 packages" in out
    assert "not checked: scikit-learn>=1.0 (unpinned)" in out


def test_json_output(run, requirements, osv_zip, expected):
    code, out, _ = run("deps", "-r", str(requirements), "--osv-db", str(osv_zip), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["packages"] == 8
    assert {v["package"] for v in doc["vulnerabilities"]} == set(expected)
    for v in doc["vulnerabilities"]:
        assert {"package", "version", "ids", "aliases", "summary", "severity", "fixed_in"} <= set(v)
        ids, aliases, severity, fixed_in = expected[v["package"]]
        assert (v["ids"], v["aliases"], v["severity"], v["fixed_in"]) == (ids, aliases, severity, fixed_in)
    assert doc["unchecked"] == [{"requirement": "scikit-learn>=1.0", "reason": "unpinned"}]


def test_clean_requirements_exit_0(run, tmp_path, osv_zip):
    req = tmp_path / "clean.txt"
    req.write_text("pyyaml==6.0.1\nrequests==2.31.0\n")
    code, out, _ = run("deps", "--requirements", str(req), "--osv-db", str(osv_zip))
    assert code == 0
    assert "No known vulnerabilities in 2 packages" in out


def test_environment_audit_finds_a_planted_advisory(run, tmp_path):
    from importlib import metadata

    advisory = {
        "id": "GHSA-test-pytest-0001",
        "summary": "Planted advisory for the installed pytest",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "pytest"}, "versions": [metadata.version("pytest")]}],
        "database_specific": {"severity": "LOW"},
    }
    db = tmp_path / "db"
    db.mkdir()
    (db / "a.json").write_text(json.dumps(advisory))
    code, out, _ = run("deps", "--environment", "--osv-db", str(db), "--json")
    assert code == 1
    (vuln,) = json.loads(out)["vulnerabilities"]
    assert vuln["package"] == "pytest" and vuln["severity"] == "Low"


def test_usage_errors_exit_2_with_one_line(run, tmp_path, osv_zip):
    code, _, err = run("deps", "--requirements", str(tmp_path / "absent.txt"), "--osv-db", str(osv_zip))
    assert code == 2 and "no such requirements file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("deps", "--requirements", "x", "--environment")
    assert code == 2 and "not allowed with" in err
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a requirement!\n")
    code, _, err = run("deps", "--requirements", str(bad), "--osv-db", str(osv_zip))
    assert code == 2 and "bad.txt:1" in err


def test_unreachable_api_exits_2_and_names_the_offline_option(run, requirements, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDLINE_OSV_URL", f"http://127.0.0.1:{port}")
    code, out, err = run("deps", "--requirements", str(requirements))
    assert code == 2 and out == ""
    assert "OSV API unreachable" in err and "--osv-db" in err and "Traceback" not in err


def test_help_has_an_example(run):
    code, out, _ = run("deps", "--help")
    assert code == 0 and "Examples:" in out and "redline deps --requirements" in out
