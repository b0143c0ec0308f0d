"""The campaign driver: expand the campaign into jobs, skip the ones the journal holds, run
the rest on an executor (retrying lost and out-of-memory jobs), record each as it ends,
then write one report per target and the index."""
from __future__ import annotations

import dataclasses
import errno
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError
from ..findings import Finding, Status
from ..pipeline.events import now_iso
from ..report.model import EXIT_FINDINGS, EXIT_OK, EXIT_UNTESTED, Report
from ..util.safe_text import one_line
from .executors import CRASHED, LOST, MEMORY, OUTPUT, make_executor
from .jobs import Job, expand, run_job
from .journal import JOURNAL_FILE, Journal
from .progress import CampaignProgress
from .spec import Campaign, load_campaign

# Retries after the first attempt, by how the attempt ended.
RETRIES = {LOST: 3, MEMORY: 1, CRASHED: 0}


@dataclasses.dataclass
class CampaignResult:
    out: Path
    reports: dict[str, Report]  # by target spec, in campaign order
    index: Path
    jobs_total: int
    jobs_run: int  # run (or recorded) by this invocation
    jobs_resumed: int  # already in the journal when it started
    complete: bool = True
    comparison: dict[str, Any] | None = None  # against the previous run (history.comparison)

    def exit_code(self, fail_on: str = "important") -> int:
        """As ``redline scan``: 1 when a finding of any target reaches ``fail_on``, else 3 when
        some target could not be tested as asked, else 0."""
        codes = [report.exit_code(fail_on) for report in self.reports.values()]
        if EXIT_FINDINGS in codes:
            return EXIT_FINDINGS
        return EXIT_UNTESTED if EXIT_UNTESTED in codes or not codes else EXIT_OK


class CampaignInterrupted(KeyboardInterrupt):
    """Ctrl-C: the reports of what finished were written (marked incomplete) first."""

    def __init__(self, result: CampaignResult):
        super().__init__("campaign interrupted")
        self.result = result


def run_campaign(
    campaign: Campaign | str | Path,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    formats: Sequence[str] = ("json", "html"),
    progress: bool = True,
    job_fn: Any = run_job,
    compare: str | Path | None = None,
) -> CampaignResult:
    """Run a campaign into ``out`` and return its reports; see the package docstring."""
    if not isinstance(campaign, Campaign):
        campaign = load_campaign(campaign)
    from ..report.writers import parse_formats

    formats = [f.value for f in parse_formats(list(formats))]  # a bad format is refused before any job runs
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    runner = make_executor(executor, workers=workers, address=address, job_fn=job_fn)  # checks the flags
    jobs = expand(campaign, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    from . import history

    before = history.prepare_run(out, resume=resume, compare=compare)
    journal = Journal(out / JOURNAL_FILE).open(campaign.fingerprint(), resume=resume)
    try:
        started_at = journal.meta("started_at", now_iso())
        journal.meta("run_number", str(history.next_run_number(out)))
        finished = journal.finished()
        todo = history.longest_first([job for job in jobs if job.key not in finished], before)
        resumed = len(jobs) - len(todo)
        notes: dict[str, list[str]] = {}
        interrupted = False
        if todo:
            bar = CampaignProgress(len(jobs), resumed, enabled=progress)
            bar.draw()
            try:
                _run_jobs(todo, runner, journal, bar, notes)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                bar.close()
        finished = journal.finished()
        reports = {entry.target: _target_report(campaign, entry.target, jobs, finished, out, formats, started_at)
                   for entry in campaign.targets}
        result = CampaignResult(out=out, reports=reports, index=out / "index.html", jobs_total=len(jobs),
                                jobs_run=len(todo) if not interrupted else sum(j.key in finished for j in todo),
                                jobs_resumed=resumed, complete=all(j.key in finished for j in jobs))
        if before is not None:
            result.comparison = history.comparison(out / JOURNAL_FILE, before, out)
        from .index import write_index

        write_index(result, campaign, jobs, finished, runner.name, started_at)
        if result.complete:  # the next run without --resume starts afresh and compares with this one
            journal.set_meta("complete", "1")
    except OutputError as stop:  # a full disk: the journal keeps every job recorded so far for --resume
        if stop.kept is None:
            try:
                done = journal.finished()
                stop.kept = sum(job.key in done for job in jobs)
            except Exception:  # noqa: BLE001 - the count is only what the message says
                pass
        raise
    finally:
        journal.close()
    if interrupted:
        raise CampaignInterrupted(result)
    return result


def _run_jobs(todo: list[Job], runner: Any, journal: Journal, bar: CampaignProgress,
              notes: dict[str, list[str]]) -> None:
    queue = deque(todo)
    attempts: dict[str, int] = {}
    began: dict[str, float] = {}
    running = 0
    runner.start()
    try:
        while queue or running:
            while queue and running < runner.capacity:
                job = queue.popleft()
                attempts[job.key] = attempts.get(job.key, 0) + 1
                began[job.key] = time.monotonic()
                runner.submit(job)
                running += 1
            outcome = runner.next_outcome()
            running -= 1
            job = outcome.job
            seconds = time.monotonic() - began[job.key]
            if outcome.result is not None:
                result = outcome.result
            elif outcome.failure == OUTPUT:
                # A full disk: stop as on Ctrl-C, the job unrecorded so --resume runs it again.
                raise outcome.error or OutputError(errno.EIO, outcome.detail, "--out")
            else:
                tries = attempts[job.key]
                detail = one_line(outcome.detail.splitlines()[0] if outcome.detail else outcome.failure)
                if tries <= RETRIES[outcome.failure]:
                    notes.setdefault(job.key, []).append(f"attempt {tries}: {detail}; retried")
                    queue.appendleft(job)
                    bar.draw(f"retrying {job.check} seed {job.seed}")
                    continue
                reason = (f"the job failed {tries} times; last: {detail}" if tries > 1 else detail)
                notes.setdefault(job.key, []).append(f"attempt {tries}: {detail}; gave up")
                result = {"key": job.key, "error": reason, "failure": outcome.failure}
            journal.record(job, result, attempts=attempts[job.key], notes=notes.get(job.key, []),
                           seconds=seconds, finished_at=now_iso())
            bar.advance()
    finally:
        runner.close()


def error_finding(job: Job, reason: str) -> Finding:
    """The ``error`` finding of a job that produced none (its target did not load, or it was
    lost or out of memory more often than it is retried)."""
    from ..checks import get_check
    from ..checks.params import instantiate

    check = instantiate(get_check(job.check), job.params)
    return Finding(id=job.key, mode=check.mode, check=check.id, title=check.title, status=Status.ERROR,
                   params=check.get_params(), seed=job.seed,
                   budget=job.budget if job.budget is not None else check.default_budget, reason=reason)


def _target_report(campaign: Campaign, target: str, jobs: list[Job], finished: dict[str, dict[str, Any]],
                   out: Path, formats: Sequence[str], started_at: str) -> Report:
    from ..pipeline.deployment import deployment_context
    from ..pipeline.runner import unselected_checks, coverage_of
    from ..report.writers import write_all
    from ..triage.engine import apply as triage
    from ..util.urls import redact_url

    own = [job for job in jobs if job.target == target]
    findings: list[Finding] = []
    seen: set[str] = set()
    first: dict[str, Any] | None = None
    pending: list[str] = []
    for job in own:
        record = finished.get(job.key)
        if record is None:
            pending.append(f"{job.check} (seed {job.seed})")
            continue
        result = record["result"]
        if first is None and "target" in result:
            first = result
        extra = [Finding.from_dict(f) for f in result.get("other_findings", [])]
        if result.get("finding") is not None:
            extra.append(Finding.from_dict(result["finding"]))
        elif result.get("error"):
            failed = error_finding(job, result["error"])
            triage([failed], deployment_context(None, None))
            extra.append(failed)
        for finding in extra:
            if finding.id not in seen:
                seen.add(finding.id)
                findings.append(finding)
    folder = out / own[0].target_folder if own else out
    report = Report(
        target=first["target"] if first else {"spec": redact_url(target), "capabilities": None},
        data=first["data"] if first else {"spec": next((j.data for j in own if j.data), "") or ""},
        started_at=started_at,
        finished_at=now_iso(),
        findings=findings,
        coverage=coverage_of(findings),
        context=first.get("context", {}) if first else {},
        context_assumed=list(first.get("context_assumed", [])) if first else [],
        out_dir=str(folder),
        complete=not pending,
        pending_checks=pending,
        # As for a scan: what no job ran (the static scan of a model file) counts only when selected.
        added_checks=unselected_checks(campaign.select, [f for f in findings if f.check not in {j.check for j in own}]),
    )
    write_all(report, folder, list(formats))
    return report
