"""A small OSV export built by hand, in the layout of the PyPI ``all.zip`` bulk download.

Each advisory exercises one matching rule; ``EXPECTED`` says what an audit of
``REQUIREMENTS`` must report, so tests compare against facts written down here rather
than against the matcher's own output.
"""

from __future__ import annotations

import json
import zipfile

import pytest

CVSS_98 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS_65 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N"  # 6.5


def _pypi(name, *, ranges=None, versions=None):
    entry = {"package": {"ecosystem": "PyPI", "name": name}}
    if ranges is not None:
        entry["ranges"] = ranges
    if versions is not None:
        entry["versions"] = versions
    return entry


ADVISORIES = [
    # One flaw published twice (GitHub and PyPA), linked by aliases: must be reported once.
    {
        "id": "GHSA-test-yaml-0001",
        "aliases": ["CVE-2099-0001"],
        "summary": "Unsafe loader in PyYAML",
        "details": "The full_load method can construct arbitrary Python objects.",
        "severity": [{"type": "CVSS_V3", "score": CVSS_98}],
        "affected": [
            _pypi("PyYAML", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}])
        ],
        "database_specific": {"severity": "CRITICAL"},
    },
    {
        "id": "PYSEC-2099-11",
        "aliases": ["CVE-2099-0001", "GHSA-test-yaml-0001"],
        "details": "PyYAML before 5.4 is vulnerable to arbitrary code execution.",
        "affected": [
            _pypi(
                "pyyaml",
                versions=["5.1", "5.3", "5.3.1"],
                ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}],
            )
        ],
    },
    # Two affected intervals in one range, with a CVSS 6.5 vector.
    {
        "id": "GHSA-test-req-0002",
        "aliases": ["CVE-2099-0002"],
        "summary": "Proxy credentials leak on redirect",
        "severity": [{"type": "CVSS_V3", "score": CVSS_65}],
        "affected": [
            _pypi(
                "requests",
                ranges=[
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "2.0"},
                            {"fixed": "2.20.0"},
                            {"introduced": "2.25.0"},
                            {"fixed": "2.31.0"},
                        ],
                    }
                ],
            )
        ],
    },
    # last_affected (no fix yet) and only a database label.
    {
        "id": "GHSA-test-np-0003",
        "summary": "Buffer over-read in array parsing",
        "affected": [
            _pypi(
                "numpy", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "1.21.9"}]}]
            )
        ],
        "database_specific": {"severity": "MODERATE"},
    },
    # Withdrawn: must never match.
    {
        "id": "GHSA-test-flask-0004",
        "withdrawn": "2099-01-02T00:00:00Z",
        "summary": "Withdrawn report",
        "affected": [_pypi("flask", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}])],
        "database_specific": {"severity": "HIGH"},
    },
    # Another ecosystem with a PyPI package's name: must not match.
    {
        "id": "GHSA-test-npm-0005",
        "summary": "npm package called torch",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "torch"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
            }
        ],
        "database_specific": {"severity": "CRITICAL"},
    },
    # Only a GIT range (commit ids): ignored for version matching.
    {
        "id": "PYSEC-2099-6",
        "details": "Sandbox escape in templates.",
        "affected": [
            _pypi(
                "Jinja2",
                ranges=[
                    {
                        "type": "GIT",
                        "repo": "https://example.invalid/jinja",
                        "events": [{"introduced": "0"}, {"fixed": "abc123"}],
                    }
                ],
            )
        ],
    },
    # Rated HIGH by the database, but the text describes remote code execution.
    {
        "id": "GHSA-test-pil-0007",
        "summary": "Remote code execution through a crafted image",
        "affected": [_pypi("Pillow", versions=["9.0.0", "9.0.1"])],
        "database_specific": {"severity": "HIGH"},
    },
    # A malicious package report: installing it runs the attacker's code.
    {
        "id": "MAL-2099-8",
        "summary": "Malicious code in evil-pkg (PyPI)",
        "affected": [_pypi("evil-pkg", versions=["1.0"])],
    },
]

REQUIREMENTS = """\
# model service dependencies
PyYAML==5.3 --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
requests==2.28.1
numpy==1.21.9 ; python_version >= "3"
flask==2.0.0
torch==2.13.0
jinja2==3.0.0
Pillow==9.0.0
scikit-learn>=1.0      # a range, so not checked
--index-url https://example.invalid/simple
-r extra.txt
"""
EXTRA_REQUIREMENTS = "evil_pkg==1.0\n"

# package -> (ids, aliases, severity label, fixed_in)
EXPECTED = {
    "pyyaml": (["GHSA-test-yaml-0001", "PYSEC-2099-11"], ["CVE-2099-0001"], "Critical", ["5.4"]),
    "requests": (["GHSA-test-req-0002"], ["CVE-2099-0002"], "Moderate", ["2.20.0", "2.31.0"]),
    "numpy": (["GHSA-test-np-0003"], [], "Moderate", []),
    "pillow": (["GHSA-test-pil-0007"], [], "Critical", []),
    "evil-pkg": (["MAL-2099-8"], [], "Critical", []),
}


@pytest.fixture
def advisories():
    return ADVISORIES


@pytest.fixture
def expected():
    return EXPECTED


@pytest.fixture
def osv_zip(tmp_path):
    """The advisories as an OSV bulk export: one JSON document per zip entry."""
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for advisory in ADVISORIES:
            archive.writestr(f"{advisory['id']}.json", json.dumps(advisory))
    return path


@pytest.fixture
def osv_folder(tmp_path):
    folder = tmp_path / "osv"
    (folder / "nested").mkdir(parents=True)
    for i, advisory in enumerate(ADVISORIES):
        where = folder / "nested" if i % 2 else folder
        (where / f"{advisory['id']}.json").write_text(json.dumps(advisory))
    return folder


@pytest.fixture
def requirements(tmp_path):
    (tmp_path / "extra.txt").write_text(EXTRA_REQUIREMENTS)
    path = tmp_path / "requirements.txt"
    path.write_text(REQUIREMENTS)
    return path
