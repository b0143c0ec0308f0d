"""`redline scan-files`: exit codes, renderers and the API the model gate relies on."""
import json
import pickle

import pytest
from filescan_asm import system

from redline.cli import main
from redline.filescan import FileReport, Issue, scan_path, scan_paths


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.pkl").write_bytes(system(f"touch {tmp_path}/CANARY"))
    (tmp_path / "broken.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=4)[:-3])
    return tmp_path


def test_exit_codes(files, capsys):
    assert main(["scan-files", str(files / "good.pkl")]) == 0
    assert main(["scan-files", str(files / "sub" / "bad.pkl")]) == 1
    assert main(["scan-files", str(files / "broken.pkl")]) == 1
    assert main(["scan-files", str(files / "missing.pkl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"redline: error: no such file or directory: {files / 'missing.pkl'}"
    assert not (files / "CANARY").exists()


def test_json_output_follows_the_contract(files, capsys):
    assert main(["scan-files", str(files), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_name = {f["path"].rsplit("/", 1)[-1]: f for f in doc["files"]}
    assert set(by_name) == {"good.pkl", "bad.pkl", "broken.pkl"}
    assert by_name["good.pkl"]["verdict"] == "safe" and by_name["good.pkl"]["issues"] == []
    assert by_name["broken.pkl"]["verdict"] == "error"
    bad = by_name["bad.pkl"]
    assert bad["verdict"] == "unsafe" and bad["format"] == "pickle"
    assert {"severity", "kind", "detail"} <= set(bad["issues"][0])
    assert any("os.system" in i["detail"] and i["severity"] == "Critical" for i in bad["issues"])


def test_sarif_and_table_to_file(files, tmp_path, capsys):
    out = tmp_path / "scan.sarif"
    assert main(["scan-files", str(files / "sub"), "--format", "sarif", "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert results and results[0]["level"] == "error"
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("bad.pkl")
    assert main(["scan-files", str(files / "sub")]) == 1
    table = capsys.readouterr().out
    assert "UNSAFE" in table and "os.system" in table and "1 file(s): 0 safe, 1 unsafe, 0 error" in table


def test_conflicting_format_flags(files, capsys):
    assert main(["scan-files", str(files / "good.pkl"), "--json", "--format", "sarif"]) == 2


def test_python_api(files):
    report = scan_path(files / "sub" / "bad.pkl")
    assert isinstance(report, FileReport) and report.verdict == "unsafe"
    assert all(isinstance(i, Issue) and i.severity in ("Critical", "High", "Medium", "Low") for i in report.issues)
    assert report.issues[0].severity in ("Critical", "High")  # the worst first
    assert [r.verdict for r in scan_paths([files])] == ["error", "safe", "unsafe"]
