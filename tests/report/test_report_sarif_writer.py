"""The one SARIF writer (report.sarif): both producers, the scan report and `redline scan-files`,
write SARIF 2.1.0 through it, and it keeps the format's rules whatever a producer hands it."""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest
from report_samples import make_report

import redline
from redline.cli import main
from redline.filescan.limits import Limits
from redline.filescan.render import to_sarif as files_to_sarif
from redline.filescan.scanner import scan_tree
from redline.report import render
from redline.report.sarif import KINDS, LEVELS, SarifLog, artifact_uri, dumps, location

SRC = Path(redline.__file__).resolve().parent
# RFC 3986 URI-reference characters; "%" only as the start of a two-digit hex escape.
URI = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
# The members SARIF 2.1.0 defines for each object redline writes (a misspelt one is an error).
ALLOWED = {
    "log": {"$schema", "version", "runs"},
    "run": {"tool", "invocations", "results", "artifacts", "properties"},
    "driver": {"name", "version", "semanticVersion", "informationUri", "rules"},
    "rule": {"id", "name", "shortDescription", "fullDescription", "defaultConfiguration", "help", "properties"},
    "result": {"ruleId", "ruleIndex", "kind", "level", "message", "locations", "partialFingerprints", "properties"},
    "location": {"physicalLocation", "message"},
    "invocation": {"executionSuccessful", "startTimeUtc", "endTimeUtc", "toolExecutionNotifications"},
}


def _members(obj: dict, kind: str) -> None:
    assert set(obj) <= ALLOWED[kind], (kind, set(obj) - ALLOWED[kind])


def _uri(uri: str) -> None:
    assert isinstance(uri, str) and uri and URI.fullmatch(uri), uri


def assert_valid_sarif(text: str) -> dict:
    """The SARIF 2.1.0 requirements a code-scanning service enforces, checked on a written log."""
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    _members(doc, "log")
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    assert len(doc["runs"]) == 1
    run = doc["runs"][0]
    _members(run, "run")
    driver = run["tool"]["driver"]
    _members(driver, "driver")
    assert driver["name"] == "redline" and driver["version"] == driver["semanticVersion"]
    rules = driver["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        _members(rule, "rule")
        assert rule["shortDescription"]["text"]
        assert rule.get("defaultConfiguration", {"level": "none"})["level"] in LEVELS
    for result in run["results"]:
        _members(result, "result")
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["kind"] in KINDS and result["level"] in LEVELS
        assert result["kind"] == "fail" or result["level"] == "none"
        assert result["message"]["text"] and not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", result["message"]["text"])
        for where in result["locations"]:
            _members(where, "location")
            _uri(where["physicalLocation"]["artifactLocation"]["uri"])
            assert where["physicalLocation"].get("region", {"startLine": 1})["startLine"] >= 1
        assert all(isinstance(v, str) for v in result.get("partialFingerprints", {}).values())
    for artifact in run.get("artifacts", []):
        _uri(artifact["location"]["uri"])
    for invocation in run.get("invocations", []):
        _members(invocation, "invocation")
        assert isinstance(invocation["executionSuccessful"], bool)
        for note in invocation.get("toolExecutionNotifications", []):
            assert rules[note["associatedRule"]["index"]]["id"] == note["associatedRule"]["id"]
    text.encode("utf-8")  # writable as a UTF-8 file whatever the names held
    return doc


class _Payload:
    """Pickles as ``os.system(command)`` (the scanner reads it; nothing ever loads it)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def scanned(tmp_path):
    """A folder with a clean file, an unsafe one under a hostile name, a truncated one, and an
    archive whose member name and payload carry control characters and a lone surrogate."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "good.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (folder / "bad #1%?\u202e.pkl").write_bytes(pickle.dumps(_Payload("touch /nonexistent")))
    (folder / "broken.pkl").write_bytes(pickle.dumps(list(range(50)))[:-7])
    with zipfile.ZipFile(folder / "model.pt", "w") as archive:
        archive.writestr("model/data\x1b[2J.pkl", pickle.dumps(_Payload("id \udcff\x1b]0;owned\x07")))
    odd = os.fsencode(folder) + b"/odd\xff name.pkl"  # not UTF-8: a surrogate-escaped str in Python
    with open(odd, "wb") as handle:
        handle.write(pickle.dumps(_Payload("id")))
    return scan_tree([str(folder)], Limits.from_env(), follow_links=False, strict=False)


def test_scan_report_sarif_is_valid():
    assert_valid_sarif(render(make_report(), "sarif"))


def test_scan_files_sarif_is_valid_and_carries_every_issue(scanned):
    doc = assert_valid_sarif(files_to_sarif(scanned.reports, skipped=scanned.skipped))
    run = doc["runs"][0]
    levels = {"Critical": "error", "High": "error", "Medium": "warning", "Low": "note"}
    expected = [(f"redline.filescan/{i.kind}", levels[i.severity], artifact_uri(r.path), i.severity, r.verdict)
                for r in scanned.reports for i in r.issues]
    found = [(x["ruleId"], x["level"], x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
              x["properties"]["severity"], x["properties"]["verdict"]) for x in run["results"]]
    assert found == expected and len(found) >= 5
    assert {r["ruleId"].split("/")[1] for r in run["results"]} >= {"parse-error"}
    assert [a["location"]["uri"] for a in run["artifacts"]] == [artifact_uri(r.path) for r in scanned.reports]
    by_name = {Path(os.fsencode(r.path).decode("utf-8", "replace")).name: r for r in scanned.reports}
    assert by_name["good.pkl"].issues == [] and by_name["bad #1%?\u202e.pkl"].verdict == "unsafe"
    uris = {x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for x in run["results"]}
    assert any(u.endswith("/bad%20%231%25%3F%E2%80%AE.pkl") for u in uris)
    assert any(u.endswith("/odd%FF%20name.pkl") for u in uris)  # the raw byte, not a crash
    member = [x["message"]["text"] for x in run["results"] if "data\\x1b[2J.pkl" in x["message"]["text"]]
    assert member and all("\x1b" not in m for m in member)  # shown, never interpreted


def test_scan_files_cli_writes_the_same_sarif(scanned, tmp_path, capsys):
    folder = Path(os.path.commonpath([r.path for r in scanned.reports if not r.path.endswith(".pt")]))
    out = tmp_path / "scan.sarif"
    assert main(["scan-files", str(folder), "--format", "sarif", "--out", str(out)]) == 1
    assert out.read_text(encoding="utf-8") == files_to_sarif(scanned.reports, skipped=scanned.skipped) + "\n"
    assert main(["scan-files", str(folder), "--format", "sarif"]) == 1
    assert_valid_sarif(capsys.readouterr().out)


def test_both_producers_share_the_driver_and_the_document_shape(scanned):
    report = json.loads(render(make_report(), "sarif"))
    files = json.loads(files_to_sarif(scanned.reports))
    assert report["$schema"] == files["$schema"] and report["version"] == files["version"]
    shape = {k for k in report["runs"][0]["tool"]["driver"] if k != "rules"}
    assert shape == {k for k in files["runs"][0]["tool"]["driver"] if k != "rules"} == {
        "name", "version", "semanticVersion"}
    assert files["runs"][0]["tool"]["driver"]["version"] == redline.__version__


def test_only_the_report_package_writes_sarif():
    """A second SARIF writer would have to spell the format's version or schema again."""
    writers = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
               if re.search(r"sarif-2\.1\.0|['\"]2\.1\.0['\"]|['\"]ruleId['\"]", p.read_text(encoding="utf-8"))]
    assert writers == ["report/sarif.py"]


def test_the_writer_enforces_the_rules_of_the_format():
    log = SarifLog("redline", "9.9")
    assert log.add_rule("R1", name="One", short="first") == 0
    assert log.add_rule("R1", name="Other", short="ignored") == 0 and len(log.rules) == 1
    with pytest.raises(ValueError, match="undeclared"):
        log.add_result("R2", level="error", message="m", locations=[])
    with pytest.raises(ValueError, match="level 'none'"):
        log.add_result("R1", kind="review", level="error", message="m", locations=[])
    with pytest.raises(ValueError, match="unknown SARIF level"):
        log.add_result("R1", level="critical", message="m", locations=[])
    with pytest.raises(ValueError, match="unknown SARIF result kind"):
        log.add_result("R1", kind="bad", level="none", message="m", locations=[])
    log.add_result("R1", level="warning", message="m \x1b[31m", locations=[location(artifact_uri("a b"))],
                   properties={"x": float("nan")})
    log.add_notification("R1", "boom \u202e")
    log.record_invocation("2024-05-01T10:00:00+02:00", "not a time")
    doc = assert_valid_sarif(dumps(log.to_dict(artifacts=["a%20b"])))
    run = doc["runs"][0]
    assert run["results"][0]["message"]["text"] == "m \\x1b[31m" and run["results"][0]["properties"]["x"] is None
    assert run["invocations"][0] == {
        "executionSuccessful": False,
        "startTimeUtc": "2024-05-01T08:00:00Z",
        "toolExecutionNotifications": [
            {"level": "error", "message": {"text": "boom \\u202e"}, "associatedRule": {"id": "R1", "index": 0}}],
    }


@pytest.mark.parametrize(("path", "uri"), [
    ("dir/x y.pkl", "dir/x%20y.pkl"),
    ("/m/a#b%c?.pkl", "file:///m/a%23b%25c%3F.pkl"),
    ("C:\\m\\a b.pkl", "file:///C:/m/a%20b.pkl"),
    ("/m/odd\udcffname\x1b.pkl", "file:///m/odd%FFname%1B.pkl"),
    ("rel/Zürich.onnx", "rel/Z%C3%BCrich.onnx"),
])
def test_artifact_uris_are_percent_encoded(path, uri):
    assert artifact_uri(path) == uri


@pytest.mark.parametrize(("spec", "uri"), [
    ("onnx:./m.onnx", "m.onnx"),
    ("onnx:/abs//p/./m.onnx", "file:///abs/p/m.onnx"),
    ("torch:C:\\m\\a b.pt", "file:///C:/m/a%20b.pt"),  # the same handling as scan-files
])
def test_scan_report_locations_use_the_shared_uri_rules(spec, uri):
    report = make_report()
    report.target["spec"] = spec
    doc = assert_valid_sarif(render(report, "sarif"))
    assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri


def test_a_file_name_that_is_not_utf8_can_be_written(tmp_path):
    report = make_report()
    report.target["spec"] = "onnx:/models/odd\udcff.onnx"  # how Python spells the raw byte 0xff
    text = render(report, "sarif")
    doc = assert_valid_sarif(text)
    assert doc["runs"][0]["properties"]["target"]["spec"] == "onnx:/models/odd\udcff.onnx"
    uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "file:///models/odd%FF.onnx"
    assert report.to_sarif(tmp_path / "r.sarif").read_text(encoding="utf-8") == text
