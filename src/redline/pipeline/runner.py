"""Scan orchestration: resolve target and data, plan checks, run each in isolation,
triage, log events as they happen, and write the reports.

One check's crash becomes an ``error`` finding; the scan goes on. With ``resume`` the
findings already logged in ``events.jsonl`` are kept and only unfinished checks run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from ..catalog import MODE_CODES
from ..checks import CheckContext, plan
from ..checks.params import normalise_params, resolve_checks
from ..errors import UsageError
from ..findings import Finding, Status
from ..report.model import Report
from ..report.writers import Format
from ..util.urls import redact_url
from .events import EVENTS_FILE, EventLog, finished_findings, now_iso
from .progress import Progress


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan: the partial report was written (marked incomplete) before this was raised.

    A KeyboardInterrupt, so code that stops on Ctrl-C still stops; ``report`` is what was saved.
    """

    def __init__(self, report: Report):
        super().__init__("scan interrupted")
        self.report = report


# Files a scan writes into --out; their presence means the folder holds someone's results.
_REPORT_MARKERS = (EVENTS_FILE, "report.json")
_OWN_OUTPUTS = (EVENTS_FILE, *(fmt.filename for fmt in Format))
_OWN_FOLDERS = ("artifacts",)


def prepare_out_dir(out: Path, *, resume: bool, force: bool) -> None:
    """Make sure ``out`` can take this scan's results without losing an earlier scan's.

    Runs before anything is loaded or queried: a folder we cannot write, or one holding a
    previous report (unless --resume continues it or --force replaces it), is a usage error.
    """
    if resume and force:
        raise UsageError("--resume keeps the earlier results and --force deletes them; pass only one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".redline-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    present = [name for name in _REPORT_MARKERS if _holds_results(out / name)]
    if present and not resume and not force:
        raise UsageError(
            f"--out {out} already holds a scan ({present[0]}); pass --resume to continue it, "
            "--force to replace it, or choose another --out"
        )
    if force:
        # Only what a scan itself writes is removed; anything else in the folder stays.
        for name in _OWN_OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for name in _OWN_FOLDERS:
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name)


def _holds_results(path: Path) -> bool:
    """Whether ``path`` holds work a new scan would lose. An event log counts only once a
    check finished: a scan stopped before its first check (a model file that failed its
    static scan, a refused target) leaves nothing to keep, and must not block the next run."""
    if not path.exists():
        return False
    if path.name != EVENTS_FILE or not path.is_file() or path.is_symlink():
        return True
    try:
        with path.open("rb") as log:
            return any(b'"check_finished"' in line for line in log)
    except OSError:
        return True


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
    # Check parameters by check id ({"FM01.pgd": {"epsilon": 0.1}}); see redline.checks.params.
    params: dict[str, dict[str, Any]] | None = None
    # Budgets by check id that replace ``budget`` for those checks (the demo's reduced tour).
    budgets: dict[str, int] | None = None
    # A sentence by check id added to that check's finding summary (e.g. "ran with the demo budget").
    notes: dict[str, str] | None = None
    # Scan the target behind these defences (a guard policy file or a list of Defence objects)
    # and compare with the bare target: the report's "What the defences buy" (pipeline/defended.py).
    defend: Any = None

    def budget_for(self, check: Any) -> int:
        """The budget ``check`` runs with: its own from ``budgets``, else the scan's, else its default."""
        if self.budgets and check.id in self.budgets:
            return self.budgets[check.id]
        return self.budget if self.budget is not None else check.default_budget

    def fingerprint(self, target_spec: str, data_spec: str, context: dict[str, Any]) -> str:
        blob = json.dumps(
            {
                "target": target_spec,
                "data": data_spec,
                "select": self.select if isinstance(self.select, (str, type(None))) else list(self.select),
                "budget": self.budget,
                "seed": self.seed,
                "context": context,
                "params": normalise_params(self.params),
                # Only when set, so the fingerprints of earlier scans (and their --resume) stay valid.
                **({"budgets": dict(sorted(self.budgets.items()))} if self.budgets else {}),
                **({"defend": str(self.defend)} if self.defend is not None else {}),
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


def _operating_conditions(context: Any) -> tuple[Any, Any]:
    """(parsed, raw) ``operating_conditions`` of a system description given as --context (a
    mapping or a YAML path), or (None, None); a malformed section is a usage error here,
    before any work."""
    from collections.abc import Mapping

    from ..checks.robustness.conditions import SECTION, parse_operating_conditions

    raw = context
    if isinstance(context, (str, Path)):
        from ..util.safe_yaml import load_yaml_file

        raw = load_yaml_file(Path(context), "context file")
    if not isinstance(raw, Mapping) or raw.get(SECTION) is None:
        return None, None
    source = f"operating_conditions of {context}" if isinstance(context, (str, Path)) else "operating_conditions"
    path = str(context) if isinstance(context, (str, Path)) else ""
    return parse_operating_conditions(raw[SECTION], source, path), raw[SECTION]


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


def _is_model_file(target: Any) -> bool:
    """A target named by a file path (statically scanned before it is loaded)."""
    from ..targets.adapters import model_file_path

    if not isinstance(target, (str, Path)):
        return False
    return not str(target).startswith("py:") and model_file_path(str(target)) is not None


def _require_something_to_run(request: ScanRequest, checks: list, data: Any, target_spec: str) -> None:
    """A usage error, before any work, when the scan as asked would test nothing: only FM09
    selected for a target that is not a model file, or no data for checks that read data
    (for a model file that comes after its static scan, so an unsafe file is still reported)."""
    from ..checks import STATIC_SCAN_MODE

    if not checks:
        if _is_model_file(request.target):
            return  # the static scan (FM09) is what was asked for
        from ..targets.adapters import either, of_kind

        file_schemes = either([f"{a.scheme}:" for a in of_kind("file")] + ["a path"])
        raise UsageError(f"--select {request.select}: {STATIC_SCAN_MODE} is the static scan of a model file "
                         f"({file_schemes}), and {target_spec} is not one")
    if not _is_model_file(request.target):
        _require_data(checks, data, target_spec)


def _require_data(checks: list, data: Any, target_spec: str) -> None:
    """A usage error when a selected check reads data and none was given."""
    if data is not None:
        return
    readers = [c.id for c in checks if c.needs.needs_data]
    if readers:
        free = [c.id for c in checks if not c.needs.needs_data]
        alternative = f"; of those selected only {', '.join(free)} run without data" if free else ""
        shown = ", ".join(readers[:4]) + (f" and {len(readers) - 4} more" if len(readers) > 4 else "")
        raise UsageError(f"--data is required for {target_spec} (the selected checks {shown} read data{alternative})")


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
    force: bool = False,
    progress: Progress | None = None,
    on_finding: Callable[[Finding, str, str], None] | None = None,
) -> Report:
    """Run a scan and return its Report; writes reports and events when ``out_dir`` is given.

    ``on_finding(finding, target_spec, data_spec)`` is called as each new finding is made
    (rated), e.g. to record it in a failure-case registry while the scan goes on.

    ``out_dir`` must not hold an earlier scan unless ``resume`` continues it or ``force``
    replaces it. Ctrl-C writes the report of the checks that finished (marked incomplete)
    and raises :class:`ScanInterrupted`.
    """
    from ..targets import load_target
    from .deployment import as_deployed, deployment_context, note_rate_limit

    progress = progress or Progress(enabled=False)
    checks = plan(request.select)  # validate --select before any heavy loading
    # Parameters are validated here too, before any data, model or query.
    instances = resolve_checks(checks, request.params)
    _check_per_check_settings(request, instances)
    context = _load_context(request.context)
    context_dict = context.to_dict() if context is not None else {}
    conditions, raw_conditions = _operating_conditions(request.context)
    if raw_conditions is not None:  # FM17's results depend on them: a changed section is a new scan
        # As text: YAML may mix int and str keys, which the fingerprint's sorted dump refuses.
        context_dict = {**context_dict, "operating_conditions": json.dumps(raw_conditions, default=str)}
    out = Path(out_dir) if out_dir is not None else None
    target_config = request.target_config
    if isinstance(target_config, (str, Path)):  # a bad config file is refused before any work
        from ..targets.config import load_target_config

        target_config = load_target_config(target_config)
    defences = policy = None
    refusals: dict[str, int] = {}  # by check id: requests the in-process defences refused
    if request.defend is not None:  # a bad policy is refused before any work, too
        from .defended import policy_defences

        defences, policy = policy_defences(request.defend)
    data = _resolve_data(request.data, request.target)
    from ..checks.agents.selection import fit_checks_to_data, require_matching_target

    checks, instances = fit_checks_to_data(request.select, checks, instances, data, request.target)  # agents or not
    raw_target_spec = _describe_target_arg(request.target)
    _require_something_to_run(request, checks, data, redact_url(raw_target_spec))
    # After every argument is known to be good: --force must not clear a folder for a scan
    # that is then refused.
    if out is not None:
        prepare_out_dir(out, resume=resume, force=force)
    retest = _retest_info(request, checks)
    data_spec = (data.spec or data.name) if data is not None else ""
    # The fingerprint tells endpoints apart by their full URL; the log and reports record the
    # URL with its query values and user info redacted (they may hold keys).
    fingerprint = request.fingerprint(raw_target_spec, data_spec, context_dict)
    target_spec = redact_url(raw_target_spec)

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
    pre = _static_scan_findings(request.target, previous, deployment_context(context, None))
    findings.extend(pre)
    for f in pre:
        if log is not None and f.id not in previous:
            log.append("check_finished", check=f.check, finding=f.to_dict())
        if on_finding is not None and f.id not in previous:
            on_finding(f, target_spec, data_spec)
    if any(f.status is Status.VULNERABLE or f.status is Status.ERROR for f in pre):
        # An unsafe or unparseable model file is never loaded; report what the scanner found.
        target_desc = {"spec": target_spec, "capabilities": None}
        data_desc = {"spec": data_spec}
        applied = deployment_context(context, None)
        return _finish(findings, applied, target_desc, data_desc, started_at, out, formats, log, retest)

    if _is_model_file(request.target):  # the file's static scan ran; the checks may still lack data
        _require_data(checks, data, target_spec)
    loaded = load_target(request.target, data=data, config=target_config)
    require_matching_target(loaded, data)
    # The attacks query the model as the deployment exposes it (labels only, rounded).
    target = as_deployed(loaded, context)
    baseline = None  # the bare model, when the scan compares it with the defended one
    if defences is not None:
        from .defended import scanned

        baseline, target = target, scanned(target, defences)
    elif getattr(target_config, "baseline", None):
        from .defended import load_baseline

        baseline = load_baseline(target_config.baseline, data)
    defended_section = None
    interrupted = False
    try:
        data_desc = data.describe() if data is not None else {"spec": ""}
        from ..findings import finding_id
        from ..triage.engine import apply as triage

        # overall progress and ETA across the checks (twice as many with a baseline to compare)
        progress.expect(len(instances) * (1 if baseline is None else 2))
        for index, check in enumerate(instances, start=1):
            budget = request.budget_for(check)
            fid = finding_id(check.id, target.spec, check.get_params(), request.seed, budget)
            if fid in previous:
                findings.append(Finding.from_dict(previous[fid]))
                progress.skip()
                continue
            progress.start(check.id, index, len(checks))
            if log is not None:
                log.append("check_started", check=check.id, id=fid)
            ctx = CheckContext(out, progress.update, operating_conditions=conditions, earlier=tuple(findings))
            finding = check(target, data, budget=budget, seed=request.seed, ctx=ctx)
            if defences is not None:
                refusals[check.id] = target.take_refusals()
                if policy is not None:  # so a registry case made from it replays behind the same defences
                    from .defended import defended_by

                    finding.evidence["defended_by"] = defended_by(policy, baseline.spec)
            if request.notes and check.id in request.notes:
                finding.summary = f"{finding.summary} {request.notes[check.id]}".strip()
            applied = deployment_context(context, target)
            note_rate_limit(finding, applied)
            triage([finding], applied)
            _remediate([finding], applied, retest)
            findings.append(finding)
            if log is not None:
                log.append("check_finished", check=check.id, finding=finding.to_dict())
            if on_finding is not None:
                on_finding(finding, target.spec, data_spec)
            progress.finish(_outcome_text(finding))
        if baseline is not None:
            from .defended import comparison, run_baseline

            bare = run_baseline(instances, baseline, data, request, context, progress, _outcome_text)
            defended_section = comparison(bare, [f for f in findings if f.check in {c.id for c in instances}],
                                          policy=policy, defences=getattr(target, "defences", []),
                                          baseline_spec=baseline.spec, defended_spec=target.spec,
                                          refusals=refusals)
    except KeyboardInterrupt:
        # Keep what finished: the report is written below, marked incomplete.
        interrupted = True
        progress.finish("interrupted")
    finally:
        loaded.close()
        if baseline is not None and baseline is not loaded and defences is None:
            baseline.close()
    # Described after the checks: a remote target reveals what it returns only when it answers.
    target_desc = {"spec": target.spec, "capabilities": target.capabilities.to_dict(), "n_classes": target.n_classes}
    applied = deployment_context(context, target)
    pending = [c.id for c in checks if c.id not in {f.check for f in findings}] if interrupted else None
    report = _finish(findings, applied, target_desc, data_desc, started_at, out, formats, log, retest, pending,
                     defences=defended_section)
    if interrupted:
        raise ScanInterrupted(report)
    return report


def _check_per_check_settings(request: ScanRequest, instances: list) -> None:
    """Budgets and notes by check id must name selected checks, and budgets be whole numbers >= 0."""
    selected = {c.id for c in instances}
    for label, table in (("budget", request.budgets), ("note", request.notes)):
        for check_id in table or {}:
            if check_id not in selected:
                raise UsageError(f"a {label} is given for {check_id}, which this scan does not run")
    for check_id, value in (request.budgets or {}).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"the budget of {check_id} must be a whole number of queries >= 0, not {value!r}")


def _outcome_text(f: Finding) -> str:
    if f.status is Status.VULNERABLE:
        return f"vulnerable ({f.severity.label})"
    if f.reason:
        return f"{f.status.value}: {f.reason}"
    return f.status.value


def _static_scan_findings(target: Any, previous: dict[str, dict[str, Any]], context) -> list[Finding]:
    """FM09: a model file named on the command line is statically scanned before loading; its
    finding is rated by triage at once, as a check's finding is."""
    if not isinstance(target, (str, Path)):
        return []
    from ..targets.adapters import model_file_path

    text = str(target)
    path = model_file_path(text)
    if path is None:
        return []
    if not path.exists():
        return []  # load_target reports the missing file
    from ..filescan.findings import static_scan_finding
    from ..triage.engine import apply as triage

    finding = static_scan_finding(path, target_spec=text)
    if finding.id in previous:
        return [Finding.from_dict(previous[finding.id])]
    return triage([finding], context)


def _retest_info(request: ScanRequest, checks: list) -> dict[str, Any]:
    """What a remediation's re-test command needs: the scan's own arguments, per check budget."""
    as_text = lambda v: str(v) if isinstance(v, (str, Path)) else None  # noqa: E731
    return {
        "target": redact_url(as_text(request.target)) if as_text(request.target) else None,  # no keys in commands
        "data": as_text(request.data),
        "context": as_text(request.context),
        "target_config": as_text(request.target_config),
        "seed": request.seed,
        "budgets": {c.id: request.budget_for(c) for c in checks},
    }


def _remediate(findings: list[Finding], context, retest: dict[str, Any]) -> None:
    from ..triage.remediation import remediate

    for f in findings:
        if not f.remediation:
            remediate(f, context, retest)


def _finish(findings, context, target_desc, data_desc, started_at, out, formats, log, retest,
            pending: list[str] | None = None, defences: dict[str, Any] | None = None) -> Report:
    from ..triage.engine import apply as triage

    triage([f for f in findings if not f.rationale], context)
    _remediate(findings, context, retest)
    report = Report(
        target=target_desc,
        data=data_desc,
        started_at=started_at,
        finished_at=now_iso(),
        findings=findings,
        coverage=coverage_of(findings),
        context=context.to_dict(),
        context_assumed=list(context.assumed),
        out_dir=str(out) if out is not None else None,
        complete=pending is None,
        pending_checks=list(pending or []),
        defences=defences,
    )
    if out is not None:
        from ..report.writers import write_all

        write_all(report, out, list(formats) if formats else ["json", "html"])
        if log is not None:
            if pending is None:
                log.append("scan_finished", findings=len(findings), worst=report.worst_severity.label)
            else:
                log.append("scan_interrupted", findings=len(findings), pending=pending)
    return report
