"""Known vulnerabilities of the Python packages a model service runs on (FM11).

The taxonomy's "exploit software dependencies" mode needs no ML at all: a flaw in a
parser or a deserializer the service imports is enough. This module matches pinned
packages against OSV advisories, folds the aliases of one flaw (a GHSA and a PYSEC record
for the same CVE) into one vulnerability, rates it on the bug bar and turns the result
into a finding. Both the single vulnerability and the audit's finding are rated by triage
(the ``FM11`` rules of ``redline/triage/rules.yaml``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from packaging.version import Version

from ..findings import Finding, Status, finding_id
from ..severity import Severity
from .matching import fixed_versions, normalize, parse_version
from .osv import AdvisorySource, OsvApi, OsvDatabase
from .rating import ADVISORY_METRICS, MODE, rate

CHECK_ID = "FM11.deps"
# Vulnerabilities of the audit by the severity triage gave each on its own evidence.
_RATED = (Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW)
# The metrics of the audit's finding, then those each vulnerability is rated on (triage.vocabulary
# reads them): counts, the highest CVSS base score, and the vulnerabilities by their severity.
METRICS = (
    "vulnerable_packages", "advisories", "max_cvss", "packages_checked",
    *(f"advisories_{severity.label.lower()}" for severity in _RATED),
    *ADVISORY_METRICS,
)
TITLE = "Known vulnerabilities in software dependencies"
# Which record's id leads when several describe one flaw (lower first).
_ID_ORDER = {"GHSA": 0, "PYSEC": 1, "MAL": 2}


@dataclasses.dataclass
class Vulnerability:
    package: str
    version: str
    ids: list[str]  # the OSV records describing this flaw, the leading one first
    aliases: list[str]  # other names (CVE ...) not present as records
    summary: str
    severity: Severity
    cvss: float | None
    fixed_in: list[str]
    rationale: str

    @property
    def id(self) -> str:
        return self.ids[0]

    @property
    def fix(self) -> str:
        """The smallest fixed release above the installed version, if any."""
        installed = parse_version(self.version)
        for candidate in self.fixed_in:
            parsed = parse_version(candidate)
            if installed is None or (parsed is not None and parsed > installed):
                return candidate
        return ""

    @property
    def fix_hint(self) -> str:
        return f"upgrade to {self.fix}" if self.fix else "no fixed release known"

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "ids": list(self.ids),
            "aliases": list(self.aliases),
            "summary": self.summary,
            "severity": self.severity.label,
            "cvss": self.cvss,
            "fixed_in": list(self.fixed_in),
            "fix": self.fix,
            "rationale": self.rationale,
        }


def open_source(db: AdvisorySource | str | os.PathLike | None) -> AdvisorySource:
    """A path loads an OSV export, None means the online API, anything else is used as is."""
    if db is None:
        return OsvApi()
    if isinstance(db, (str, os.PathLike)):
        return OsvDatabase.load(db)
    return db


def audit(packages: dict[str, str], db: AdvisorySource | str | os.PathLike | None) -> list[Vulnerability]:
    """Known vulnerabilities of ``packages`` (name -> pinned version), worst first."""
    source = open_source(db)
    versions = {normalize(name): version for name, version in packages.items()}
    found: list[Vulnerability] = []
    for name, records in source.lookup(versions).items():
        for group in _group_aliases(records):
            found.append(_vulnerability(name, versions[name], group))
    found.sort(key=lambda v: (-v.severity, v.package, v.id))
    return found


def _group_aliases(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records that share an id or alias describe one flaw (union-find over their names)."""
    unique = list({r["id"]: r for r in records}.values())
    parent = list(range(len(unique)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, record in enumerate(unique):
        for name in [record["id"], *(a for a in record.get("aliases") or [] if isinstance(a, str))]:
            if name in owner:
                parent[root(index)] = root(owner[name])
            else:
                owner[name] = index
    groups: dict[int, list[dict[str, Any]]] = {}
    for index, record in enumerate(unique):
        groups.setdefault(root(index), []).append(record)
    return [sorted(g, key=lambda r: (_ID_ORDER.get(r["id"].split("-")[0], 9), r["id"])) for g in groups.values()]


def _vulnerability(name: str, version: str, records: list[dict[str, Any]]) -> Vulnerability:
    ids = [r["id"] for r in records]
    aliases = sorted({a for r in records for a in r.get("aliases") or [] if isinstance(a, str)} - set(ids))
    fixed = set().union(*(fixed_versions(r, name) for r in records))
    rating = rate(records)
    return Vulnerability(
        package=name,
        version=version,
        ids=ids,
        aliases=aliases,
        summary=_summary(records),
        severity=rating.severity,
        cvss=rating.cvss,
        fixed_in=sorted(fixed, key=_version_key),
        rationale=rating.rationale,
    )


def _summary(records: list[dict[str, Any]]) -> str:
    for record in records:
        if isinstance(record.get("summary"), str) and record["summary"].strip():
            return record["summary"].strip()
    for record in records:
        details = record.get("details")
        if isinstance(details, str) and details.strip():
            first = details.strip().splitlines()[0]
            return first if len(first) <= 160 else first[:157] + "..."
    return ""


def _version_key(text: str) -> tuple[int, Version | str]:
    parsed = parse_version(text)
    return (0, parsed) if parsed is not None else (1, text)  # type: ignore[return-value]


def to_findings(
    vulns: list[Vulnerability], *, packages_checked: int | None = None, source: str = "", context: Any = None
) -> list[Finding]:
    """One FM11 finding summarising the audit, rated by triage in ``context`` (a
    :class:`~redline.triage.DeploymentContext`; None: nothing known about the deployment)."""
    from ..triage import apply

    worst = max(vulns, key=lambda v: (v.severity, v.cvss or 0.0), default=None)
    scores = [v.cvss for v in vulns if v.cvss is not None]
    metrics: dict[str, Any] = {
        "vulnerable_packages": len({v.package for v in vulns}),
        "advisories": len(vulns),
        "max_cvss": max(scores) if scores else None,
    }
    if packages_checked is not None:
        metrics["packages_checked"] = packages_checked
    for severity in _RATED:
        metrics[f"advisories_{severity.label.lower()}"] = sum(v.severity is severity for v in vulns)
    params = {"source": source}
    finding = Finding(
        id=finding_id(CHECK_ID, source or "dependencies", params, 0, None),
        mode=MODE,
        check=CHECK_ID,
        title=TITLE,
        status=Status.VULNERABLE if vulns else Status.NOT_VULNERABLE,
        metrics=metrics,
        evidence={"vulnerabilities": [v.to_dict() for v in vulns]},
        params=params,
    )
    if worst is None:
        checked = f" in the {packages_checked} packages checked" if packages_checked is not None else ""
        finding.summary = f"No known vulnerability{checked} according to the OSV data used."
    else:
        finding.summary = (
            f"{len(vulns)} known vulnerabilit{'y' if len(vulns) == 1 else 'ies'} in "
            f"{metrics['vulnerable_packages']} package(s); the worst is {worst.id} in {worst.package} "
            f"{worst.version} ({worst.rationale.rstrip('.')}); {worst.fix_hint}."
        )
    return apply([finding], context)
