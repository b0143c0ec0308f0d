"""`redline campaign … --registry DB`: each target's findings go into the registry, and the
summary says how this run compares with what the registry held (new, seen again, fixed,
regressed)."""
from __future__ import annotations

from redline.campaign.commands import _record_in_registry
from redline.campaign.driver import run_campaign
from redline.campaign.spec import parse_campaign
from redline.cli import main
from redline.registry import CaseStatus, Registry

RAW = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 500, "seeds": [0]}


def _run_and_record(out, db):
    result = run_campaign(parse_campaign(RAW), out, executor="inline", progress=False, formats=("json",))
    _record_in_registry(Registry(db), result)


def test_a_campaign_records_its_findings_and_compares_with_the_registry(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    _run_and_record(tmp_path / "run1", db)
    assert "1 new, 0 seen again, 0 fixed, 0 regressed" in capsys.readouterr().out
    with Registry(db) as registry:
        (case,) = registry.list().cases
        assert case.check == "FM05.equation_solving" and case.target == "zoo:fair_logreg"
        assert case.artifacts  # read from the written report's folder: the stolen model, by content
        registry.update_status(case.id, "fixed", note="labels only from now on")
    # The next run finds the same failure again: the fix did not hold.
    _run_and_record(tmp_path / "run2", db)
    assert "0 new, 0 seen again, 0 fixed, 1 regressed" in capsys.readouterr().out
    with Registry(db) as registry:
        assert registry.get(case.id).status is CaseStatus.REGRESSED


def test_a_bad_registry_url_stops_the_campaign_before_any_job(tmp_path, capsys):
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text("targets: [zoo:fair_logreg]\nselect: FM05.equation_solving\n")
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "out"), "--registry", "redis://x"]) == 2
    assert "registry URL" in capsys.readouterr().err and not (tmp_path / "out").exists()
