"""Endpoints that reports show alike (URLs a query value or a key apart, both shown as
``?model=REDACTED``) are still two targets: each gets its own finding ids, so a clean scan of
one never marks the other's case fixed; resume and replay find the same ids again; and the ids
of targets shown as given are what they always were."""
from __future__ import annotations

import json

import pytest
from redline_testkit import ModelVersionsServer

from redline.cli import main
from redline.findings import finding_id
from redline.registry import CaseStatus, Registry

CHECK = "FM05.equation_solving"
SECRET = "S3CRETKEY42"


@pytest.fixture(scope="module")
def service():
    with ModelVersionsServer() as server:
        yield server


@pytest.fixture
def scan(service, tmp_path):
    data = service.npz(tmp_path / "data.npz")
    config = tmp_path / "api.yaml"
    config.write_text("retries: 0\ntimeout: 10\n")

    def run(target, out, *extra):
        return main(["scan", target, "--data", data, "--select", CHECK, "--budget", "300", "--target-config",
                     str(config), "--out", str(tmp_path / out), "--format", "json", "--no-progress",
                     "--fail-on", "never", *extra])
    return run


def _finding(folder):
    report = json.loads((folder / "report.json").read_text())
    return report, next(f for f in report["findings"] if f["check"] == CHECK)


def test_ids_of_targets_shown_as_given_do_not_change():
    # Pinned: reports and registries made before targets shown redacted got a digest keep their ids.
    assert finding_id(CHECK, "http://127.0.0.1:8000/predict", {"spread": 0.1}, 0, 300) == "3b9f1802657b509b"
    assert finding_id(CHECK, "zoo:fair_logreg", {"spread": 0.1}, 0, 300) == "fe83505406b63999"


def test_urls_a_query_value_apart_get_their_own_ids_and_a_plain_url_keeps_its_own(service, scan, tmp_path):
    for version in ("logistic", "noise"):
        assert scan(f"{service.url}?model={version}&key={SECRET}", version) == 0
    (logistic_report, logistic), (noise_report, noise) = _finding(tmp_path / "logistic"), _finding(tmp_path / "noise")
    assert logistic_report["target"]["spec"] == noise_report["target"]["spec"] == \
        f"{service.url}?model=REDACTED&key=REDACTED"
    assert (logistic["status"], noise["status"]) == ("vulnerable", "not_vulnerable")
    assert logistic["id"] != noise["id"]
    assert logistic["evidence"]["target_digest"] != noise["evidence"]["target_digest"]
    for version in ("logistic", "noise"):  # the digest is written, never the value
        for name in ("report.json", "events.jsonl"):
            text = (tmp_path / version / name).read_text()
            assert SECRET not in text and "model=logistic" not in text and "model=noise" not in text
    # A URL shown as given: the id as it always was, and no digest.
    assert scan(service.url, "plain") == 0
    _, plain = _finding(tmp_path / "plain")
    assert plain["id"] == finding_id(CHECK, service.url, plain["params"], 0, 300)
    assert "target_digest" not in plain["evidence"]


def test_a_clean_scan_of_another_version_does_not_fix_a_case(service, scan, tmp_path):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    assert scan(f"{service.url}?model=logistic", "v1", "--registry", registry) == 0
    assert scan(f"{service.url}?model=noise", "v2", "--registry", registry) == 0
    with Registry(registry) as reg:
        cases = reg.list().cases
    assert [(c.finding_id, c.status) for c in cases] == [(_finding(tmp_path / "v1")[1]["id"], CaseStatus.OPEN)]


def test_resume_and_replay_find_the_same_ids(service, scan, tmp_path, capsys):
    url = f"{service.url}?model=logistic&key={SECRET}"
    assert scan(url, "out") == 0
    _, first = _finding(tmp_path / "out")
    assert scan(url, "out", "--resume") == 0
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "check_started" for e in events) == 1  # nothing ran again
    assert _finding(tmp_path / "out")[1]["id"] == first["id"]
    report = str(tmp_path / "out" / "report.json")
    capsys.readouterr()
    # The recorded spec would reach ?model=REDACTED: refused, with what to do.
    assert main(["replay", report, first["id"]]) == 2
    assert "give the URL it was scanned at with --target" in capsys.readouterr().err
    assert main(["replay", report, first["id"], "--target", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is True
    # A registry case of it replays the same way.
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(registry) as reg:
        case_id = reg.add_report(report)[0]
    assert main(["registry", "replay", case_id, "--db", registry, "--target", url, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "still-failing" and result["reproduced"] is True
    with Registry(registry) as reg:
        assert SECRET not in json.dumps(reg.replays(case_id), default=str)  # the replay is recorded redacted
