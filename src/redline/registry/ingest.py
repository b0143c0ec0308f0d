"""What goes into the registry: scan findings and triaged incidents as FailureCase records,
and the evidence files a report names, read by content."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..catalog import MODE_CODES, get_mode
from ..errors import UsageError
from .case import FailureCase

REPORT_SCHEMA = "redline.report/1"
MAX_ARTIFACT_BYTES = 50 * 1024 * 1024  # evidence larger than this stays in the report folder


def read_report(path: str | Path) -> dict[str, Any]:
    from ..pipeline.replay import read_report_file

    report = read_report_file(path)
    check_report(report, str(path))
    return report


def check_report(report: Any, where: str = "the report") -> None:
    if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
        raise UsageError(f"{where} is not a redline report.json (no findings list)")
    if report.get("schema", REPORT_SCHEMA) != REPORT_SCHEMA:
        raise UsageError(f"{where} has schema {report.get('schema')!r}; the registry reads {REPORT_SCHEMA}")


def is_failure(finding: Mapping[str, Any]) -> bool:
    """Only vulnerable findings are failure cases; the others can still close or reopen one."""
    return finding.get("status") == "vulnerable"


def case_from_finding(finding: Mapping[str, Any], report: Mapping[str, Any], *, added_by: str = "",
                      system: str = "") -> FailureCase:
    """The failure case a vulnerable finding of ``report`` records."""
    mode = str(finding.get("mode") or "")
    where = f"finding {str(finding.get('id'))[:40]!r}"
    if mode not in MODE_CODES:
        raise UsageError(f"{where} has no known mode ({mode[:20]!r})")
    for name in ("params", "metrics", "evidence"):
        if not isinstance(finding.get(name) or {}, dict):
            raise UsageError(f"{where}: {name} must be a mapping, not {type(finding.get(name)).__name__}")
    for name in ("seed", "budget"):
        value = finding.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62):
            raise UsageError(f"{where}: {name} must be a whole number >= 0, not {str(value)[:20]!r}")
    target = _mapping(report.get("target")).get("spec") or ""
    context = _mapping(report.get("context"))
    budget = finding.get("budget")
    return FailureCase(
        title=str(finding.get("title") or finding.get("check") or mode),
        mode=mode,
        severity=str(finding.get("severity") or "None"),
        rationale=str(finding.get("rationale") or ""),
        summary=str(finding.get("summary") or ""),
        remediation=str(finding.get("remediation") or ""),
        source="finding",
        system=system or str(context.get("system") or context.get("name") or ""),
        target=str(target),
        data=str(_mapping(report.get("data")).get("spec") or ""),
        finding_id=str(finding.get("id") or ""),
        check=str(finding.get("check") or ""),
        params=dict(finding.get("params") or {}),
        seed=finding.get("seed"),
        budget=budget if isinstance(budget, int) else None,
        metrics=dict(finding.get("metrics") or {}),
        evidence=dict(finding.get("evidence") or {}),
        atlas=list(get_mode(mode).atlas),
        avid=list(get_mode(mode).avid),
        added_by=added_by,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def evidence_files(evidence: Any, base_dir: Path) -> Iterator[tuple[str, Path]]:
    """(name as written in the evidence, file) for every evidence string that is a file in ``base_dir``."""
    if isinstance(evidence, dict):
        for value in evidence.values():
            yield from evidence_files(value, base_dir)
    elif isinstance(evidence, list):
        for value in evidence:
            yield from evidence_files(value, base_dir)
    elif isinstance(evidence, str) and evidence and not evidence.startswith("/") and ".." not in Path(evidence).parts:
        path = base_dir / evidence
        try:
            inside = path.resolve().is_relative_to(base_dir.resolve())
        except (OSError, ValueError):  # ValueError: a NUL byte, which no file name holds
            return
        if inside and path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_ARTIFACT_BYTES:
            yield evidence, path


def incident_content_id(raw: Mapping[str, Any]) -> str:
    blob = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def triage_incident_file(incident: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the incident as given, its triage as ``redline triage --json`` prints it)."""
    from ..threatmodel.triage import triage_incident

    result = triage_incident(incident)
    return dict(result.incident.raw), result.to_dict()


def case_from_incident(raw: Mapping[str, Any], triage: Mapping[str, Any], *, added_by: str = "") -> FailureCase | None:
    """The failure case of a triaged incident (None when triage matched no failure mode)."""
    primary = triage.get("primary")
    if not primary:
        return None
    match = next((m for m in triage.get("matches") or [] if m.get("code") == primary), {})
    summary = " ".join(str(raw[k]) for k in ("what_happened", "attacker_capability", "exposed") if raw.get(k))
    system = triage.get("system") or {}
    references = [str(r) for r in raw.get("references") or [] if isinstance(r, str)]
    return FailureCase(
        title=str(raw.get("title") or ""),
        mode=str(primary),
        severity=str(match.get("severity") or triage.get("severity") or "None"),
        rationale=str(match.get("severity_rationale") or triage.get("severity_rationale") or ""),
        summary=summary,
        source="incident",
        system=str(system.get("name") or ""),
        metrics=dict(raw.get("metrics") or {}),
        evidence={"incident": raw.get("id") or "", "how_found": raw.get("how_found") or ""},
        references=references,
        tags=[str(m.get("code")) for m in triage.get("matches") or [] if m.get("code") != primary],
        atlas=list(get_mode(str(primary)).atlas),
        avid=list(get_mode(str(primary)).avid),
        added_by=added_by,
    )
