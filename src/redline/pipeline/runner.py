"""Scan orchestration: resolve target and data, plan checks, run each in isolation,
triage, log events as they happen, and write the reports.

One check's crash becomes an ``error`` finding; the scan goes on. With ``resume`` the
findings already logged in ``events.jsonl`` are kept and only unfinished checks run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from ..checks import CheckContext, plan
from ..errors import RedlineError, UsageError
from ..findings import Finding, Status
from ..report.model import MODE_CODES, Report
from .events import EventLog, EVENTS_FILE, finished_findings, now_iso
from .progress import Progress


@dataclasses.dataclass
class ScanRequest:
    """Everything that determines a scan's results (and so its resume fingerprint)."""

    target: Any
    data: Any = None
    select: str | Sequence[str] | None = None
    budget: int | None = None
    seed: int = 0
    context: Any = None
    target_config: Any = None

    def fingerprint(self, target_spec: str, data_spec: str, context: dict[str, Any]) -> str:
        blob = json.dumps(
            {
                "target": target_spec,
                "data": data_spec,
                "select": self.select if isinstance(self.select, (str, type(None))) else list(self.select),
                "budget": self.budget,
                "seed": self.seed,
                "context": context,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_context(context: Any):
    from ..triage.context import DeploymentContext

    if context is None:
        return None
    if isinstance(context, DeploymentContext):
        return context
    if isinstance(context, dict):
        return DeploymentContext.from_dict(context)
    path = Path(context)
    if not path.is_file():
        raise UsageError(f"context file not found: {path}")
    return DeploymentContext.from_yaml(path)


def _resolve_data(data: Any, target_arg: Any):
    from ..data import as_dataset, load_data

    if data is None:
        if isinstance(target_arg, str) and target_arg.startswith("zoo:"):
            from .. import zoo

            return zoo.load_data_for(target_arg[4:])
        return None
    if isinstance(data, str):
        return load_data(data)
    return as_dataset(data)


def _describe_target_arg(target: Any) -> str:
    if isinstance(target, (str, Path)):
        return str(target)
    spec = getattr(target, "spec", None)
    return spec if isinstance(spec, str) else f"python:{type(target).__module__}.{type(target).__qualname__}"


def coverage_of(findings: list[Finding]) -> dict[str, str]:
    """tested if any check of the mode produced a verdict; inconclusive if the best any of
    them got was inconclusive; not_applicable if all of its checks were inapplicable;
    not_covered otherwise (no check, or only errors)."""
    cov: dict[str, str] = {}
    for code in MODE_CODES:
        statuses = {f.status for f in findings if f.mode == code}
        if statuses & {Status.VULNERABLE, Status.NOT_VULNERABLE}:
            cov[code] = "tested"
        elif Status.INCONCLUSIVE in statuses:
            cov[code] = "inconclusive"
        elif statuses and statuses == {Status.NOT_APPLICABLE}:
            cov[code] = "not_applicable"
        else:
            cov[code] = "not_covered"
    return cov


def run_scan(
    request: ScanRequest,
    *,
    out_dir: str | Path | None = None,
    formats: Sequence[str] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Run a scan and return its Report; writes reports and events when ``out_dir`` is given."""
    from ..targets import load_target

    progress = progress or Progress(enabled=False)
    checks = plan(request.select)  # validate --select before any heavy loading
    context = _load_context(request.context)
    context_dict = context.to_dict() if context is not None else {}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)

    data = _resolve_data(request.data, request.target)
    target_spec = _describe_target_arg(request.target)
    data_spec = (data.spec or data.name) if data is not None else ""
    fingerprint = request.fingerprint(target_spec, data_spec, context_dict)

    log = EventLog(out / EVENTS_FILE) if out is not None else None
    previous: dict[str, dict[str, Any]] = {}
    started_at = now_iso()
    if log is not None:
        if resume:
            previous, first_start = finished_findings(log, fingerprint)
            started_at = first_start or started_at
        else:
            log.reset()
        log.append("scan_started", fingerprint=fingerprint, target=target_spec, data=data_spec,
                   select=request.select, budget=request.budget, seed=request.seed, resume=resume)

    findings: list[Finding] = []
    pre = _static_scan_findings(request.target, previous)
    findings.extend(pre)
    for f in pre:
        if log is not None and f.id not in previous:
            log.append("check_finished", check=f.check, finding=f.to_dict())
    if any(f.status is Status.VULNERABLE or f.status is Status.ERROR for f in pre):
        # An unsafe or unparseable model file is never loaded; report what the scanner found.
        target_desc = {"spec": target_spec, "capabilities": None}
        data_desc = {"spec": data_spec}
        return _finish(findings, context, context_dict, target_desc, data_desc, started_at, out, formats, log)

    target = load_target(request.target, data=data, config=request.target_config)
    try:
        data_desc = data.describe() if data is not None else {"spec": ""}
        from ..findings import finding_id
        from ..triage.engine import apply as triage

        for index, check_cls in enumerate(checks, start=1):
            check = check_cls()
            budget = request.budget if request.budget is not None else check.default_budget
            fid = finding_id(check.id, target.spec, check.get_params(), request.seed, budget)
            if fid in previous:
                findings.append(Finding.from_dict(previous[fid]))
                continue
            progress.start(check.id, index, len(checks))
            if log is not None:
                log.append("check_started", check=check.id, id=fid)
            ctx = CheckContext(out, progress.update)
            finding = check(target, data, budget=budget, seed=request.seed, ctx=ctx)
            triage([finding], context)
            findings.append(finding)
            if log is not None:
                log.append("check_finished", check=check.id, finding=finding.to_dict())
            progress.finish(_outcome_text(finding))
    finally:
        target.close()
    # Described after the checks: a remote target reveals what it returns only when it answers.
    target_desc = {"spec": target.spec, "capabilities": target.capabilities.to_dict(), "n_classes": target.n_classes}
    return _finish(findings, context, context_dict, target_desc, data_desc, started_at, out, formats, log)


def _outcome_text(f: Finding) -> str:
    if f.status is Status.VULNERABLE:
        return f"vulnerable ({f.severity.label})"
    if f.reason:
        return f"{f.status.value}: {f.reason}"
    return f.status.value


def _static_scan_findings(target: Any, previous: dict[str, dict[str, Any]]) -> list[Finding]:
    """FM09: a model file named on the command line is statically scanned before loading."""
    if not isinstance(target, (str, Path)):
        return []
    text = str(target)
    if text.startswith(("zoo:", "http://", "https://")):
        return []
    path = Path(text.split(":", 1)[1] if text.split(":", 1)[0] in ("onnx", "sklearn", "torch") else text)
    if not path.exists():
        return []  # load_target reports the missing file
    try:
        from ..filescan.findings import static_scan_finding
    except ModuleNotFoundError:
        return []
    finding = static_scan_finding(path, target_spec=text)
    if finding.id in previous:
        return [Finding.from_dict(previous[finding.id])]
    return [finding]


def _finish(findings, context, context_dict, target_desc, data_desc, started_at, out, formats, log) -> Report:
    from ..triage.engine import apply as triage

    triage([f for f in findings if not f.rationale], context)
    report = Report(
        target=target_desc,
        data=data_desc,
        started_at=started_at,
        finished_at=now_iso(),
        findings=findings,
        coverage=coverage_of(findings),
        context=context_dict,
        out_dir=str(out) if out is not None else None,
    )
    if out is not None:
        from ..report.writers import write_all

        write_all(report, out, list(formats) if formats else ["json", "html"])
        if log is not None:
            log.append("scan_finished", findings=len(findings), worst=report.worst_severity.label)
    return report
