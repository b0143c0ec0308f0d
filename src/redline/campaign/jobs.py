"""Jobs: one (target, check, seed) of a campaign, keyed by the id of the finding it produces.

:func:`run_job` is what an executor's worker runs. It is the scan pipeline itself
(:func:`redline.pipeline.runner.run_scan` with one check selected), run in the job's own
folder with ``resume`` on: a job whose check finished there but whose result the driver
never recorded (the driver was killed in between) is picked up from that folder's event
log instead of being run a second time.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import RedlineError, UsageError
from ..findings import finding_id, target_digest
from ..util.urls import redact_url
from .spec import Campaign, TargetEntry

JOBS_FOLDER = "jobs"


@dataclasses.dataclass(frozen=True)
class Job:
    key: str  # the finding id
    target: str
    data: str | None
    target_config: str | None
    check: str
    seed: int
    budget: int | None  # as the campaign gives it (None: the check's default)
    params: dict[str, Any] | None  # the campaign's parameters for this check, if any
    folder: str  # absolute: where the job's scan writes its events and artifacts
    target_folder: str  # the per-target report folder, relative to --out


def target_folders(targets: tuple[TargetEntry, ...]) -> dict[str, str]:
    """A readable folder name per target (``zoo:fair_logreg`` -> ``zoo_fair_logreg``), made
    unique with a short hash when two specs give the same name."""
    names = {t.target: re.sub(r"[^A-Za-z0-9_.-]+", "_", redact_url(t.target)).strip("._")[:60] or "target"
             for t in targets}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    import hashlib

    return {spec: name if counts[name] == 1 else f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:6]}"
            for spec, name in names.items()}


def expand(campaign: Campaign, out: Path) -> list[Job]:
    """Every job of the campaign, in a stable order: target, then check (registry order), then seed."""
    from ..checks import plan
    from ..checks.params import resolve_checks

    checks = resolve_checks(plan(campaign.select), campaign.params)
    folders = target_folders(campaign.targets)
    # Two targets with one report folder or one job key would mix their results: refused.
    owners: dict[str, int] = {}
    for i, entry in enumerate(campaign.targets):
        _require_own(campaign, owners, f"folder:{folders[entry.target]}", i, "the report folder")
    out = out.resolve()
    jobs = []
    for i, entry in enumerate(campaign.targets):
        for check in checks:
            budget = campaign.budget if campaign.budget is not None else check.default_budget
            for seed in campaign.seeds:
                # As the scan computes its finding's id (checks/base.py): from the spec as recorded,
                # and the digest of the spec as written when the recorded one hides a query value.
                key = finding_id(check.id, redact_url(entry.target), check.get_params(), seed, budget,
                                 target_digest(entry.target))
                _require_own(campaign, owners, key, i, f"the job key {key}")
                jobs.append(Job(key=key, target=entry.target, data=entry.data, target_config=entry.target_config,
                                check=check.id, seed=seed, budget=campaign.budget,
                                params=campaign.params.get(check.id), folder=str(out / folders[entry.target] / JOBS_FOLDER / key),
                                target_folder=folders[entry.target]))
    return jobs


def _require_own(campaign: Campaign, owners: dict[str, int], name: str, index: int, what: str) -> None:
    """A usage error naming both targets when ``name`` already belongs to another one."""
    first = owners.setdefault(name, index)
    if first != index:
        targets = campaign.targets
        raise UsageError(f"{campaign.source}: targets[{index}] ({redact_url(targets[index].target)}) and "
                         f"targets[{first}] ({redact_url(targets[first].target)}) would share {what}; "
                         "list each target once")


def pin_threads() -> None:
    """One math thread per job: the executors run one job per CPU, and the same thread count
    everywhere keeps floating-point sums, and so results, identical across executors."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class JobOutOfMemory(Exception):
    """The job ran out of memory in its worker (the executor retries it once)."""


def run_job(job: Job) -> dict[str, Any]:
    """Run one job; returns its result record (what the journal stores).

    A usage or input error (a target that does not load, data that does not parse) is the
    job's own ``error`` finding, not retried: running it again would fail the same way.
    Running out of memory raises :class:`JobOutOfMemory`, which the executor reports so the
    driver can retry the job once.
    """
    pin_threads()
    from ..pipeline.progress import Progress
    from ..pipeline.runner import ScanRequest, run_scan

    request = ScanRequest(target=job.target, data=job.data, select=job.check, budget=job.budget, seed=job.seed,
                          target_config=job.target_config, params={job.check: job.params} if job.params else None)
    try:
        report = run_scan(request, out_dir=job.folder, formats=["json"], resume=True, progress=Progress(enabled=False))
    except MemoryError as exc:
        raise JobOutOfMemory(f"MemoryError: {exc}") from None
    except RedlineError as exc:
        return {"key": job.key, "error": str(exc), "pid": os.getpid()}
    findings = [f.to_dict() for f in report.findings]
    own = [f for f in findings if f["check"] == job.check]
    if own and own[0]["status"] == "error" and str(own[0].get("reason", "")).startswith("MemoryError"):
        raise JobOutOfMemory(own[0]["reason"])  # the check's isolation caught it; it is still memory
    prefix = f"{JOBS_FOLDER}/{job.key}/"
    return {
        "key": job.key,
        "finding": _relocate(own[0], prefix) if own else None,
        # Findings of the scan that are not the job's check: the static scan (FM09) of a model file.
        "other_findings": [_relocate(f, prefix) for f in findings if f["check"] != job.check],
        "target": report.target,
        "data": report.data,
        "context": report.context,
        "context_assumed": report.context_assumed,
        "pid": os.getpid(),
    }


def _relocate(finding: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Evidence paths are relative to the job's folder; the target's report sits two levels up."""
    def move(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("artifacts/"):
            return prefix + value
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    return {**finding, "evidence": move(finding.get("evidence") or {})}
