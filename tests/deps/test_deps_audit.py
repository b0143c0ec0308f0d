import json
import zipfile

import pytest

from redline.deps import OsvDatabase, audit, from_requirements, to_findings
from redline.errors import DataError, UsageError
from redline.findings import Status
from redline.severity import Severity


def summarise(vulns):
    return {v.package: (v.ids, v.aliases, v.severity.label, v.fixed_in) for v in vulns}


def test_audit_of_zip_export_matches_the_expected_table(osv_zip, requirements, expected):
    vulns = audit(from_requirements(requirements).packages, osv_zip)
    assert summarise(vulns) == expected
    # worst first; the two advisories for the same CVE are one entry
    assert [v.severity for v in vulns] == sorted((v.severity for v in vulns), reverse=True)
    assert sum(v.package == "pyyaml" for v in vulns) == 1


def test_folder_and_single_json_sources_agree(osv_folder, requirements, tmp_path, advisories, expected):
    packages = from_requirements(requirements).packages
    assert summarise(audit(packages, osv_folder)) == expected
    one = tmp_path / "one.json"
    one.write_text(json.dumps(advisories))
    assert summarise(audit(packages, one)) == expected


def test_fix_hint_picks_the_first_fix_above_the_installed_version(osv_zip):
    (old,) = audit({"requests": "2.19.1"}, osv_zip)
    assert old.fix == "2.20.0" and old.fix_hint == "upgrade to 2.20.0"
    (new,) = audit({"requests": "2.28.1"}, osv_zip)
    assert new.fix == "2.31.0"
    assert audit({"requests": "2.22.0"}, osv_zip) == []  # between the two affected intervals
    assert audit({"requests": "2.31.0"}, osv_zip) == []


def test_unaffected_versions_and_names(osv_zip, advisories):
    db = OsvDatabase.load(osv_zip)
    assert db.records == len(advisories)
    assert audit({"pyyaml": "5.4", "numpy": "1.22.0", "flask": "0.1", "torch": "1.0", "jinja2": "2.0"}, db) == []
    (hit,) = audit({"PyYAML": "5.1"}, db)  # any spelling of the name
    assert hit.package == "pyyaml"


def test_aliases_merge_transitively():
    def adv(vid, aliases, version="1.0"):
        return {
            "id": vid,
            "aliases": aliases,
            "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": [version]}],
        }

    db = OsvDatabase(
        [adv("GHSA-1", ["CVE-1"]), adv("PYSEC-1", ["CVE-1"]), adv("OSV-9", ["PYSEC-1"]), adv("GHSA-2", [])]
    )
    vulns = audit({"x": "1.0"}, db)
    assert sorted(v.ids for v in vulns) == [["GHSA-1", "PYSEC-1", "OSV-9"], ["GHSA-2"]]
    merged = next(v for v in vulns if len(v.ids) == 3)
    assert merged.aliases == ["CVE-1"]


def test_findings_for_vulnerable_and_clean_audits(osv_zip, requirements):
    packages = from_requirements(requirements).packages
    vulns = audit(packages, osv_zip)
    (finding,) = to_findings(vulns, packages_checked=len(packages), source=str(requirements))
    assert finding.mode == "FM11" and finding.check == "FM11.deps"
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.CRITICAL
    assert finding.metrics == {"vulnerable_packages": 5, "advisories": 5, "max_cvss": 9.8, "packages_checked": 8,
                               "advisories_critical": 3, "advisories_important": 0, "advisories_moderate": 2,
                               "advisories_low": 0}
    assert "GHSA-test-yaml-0001" in finding.summary and "upgrade to 5.4" in finding.summary
    assert finding.rationale == "The dependency audit found 3 critical vulnerabilities among 5 known vulnerabilities, rated Critical."
    assert len(finding.to_dict()["evidence"]["vulnerabilities"]) == 5

    (clean,) = to_findings([], packages_checked=3)
    assert clean.status is Status.NOT_VULNERABLE and clean.severity is Severity.NONE
    assert clean.metrics["max_cvss"] is None and "3 packages" in clean.rationale
    assert clean.id != finding.id


def test_damaged_exports_are_data_errors(tmp_path, advisories):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("GOOD.json", json.dumps(advisories[0]))
        archive.writestr("BAD.json", "{not json")
    with pytest.raises(DataError, match="BAD.json"):
        OsvDatabase.load(broken)
    not_advisory = tmp_path / "x.json"
    not_advisory.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not an OSV advisory"):
        OsvDatabase.load(not_advisory)
    with pytest.raises(UsageError, match="no such file"):
        OsvDatabase.load(tmp_path / "absent.zip")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UsageError, match="expected an OSV export"):
        OsvDatabase.load(text)
