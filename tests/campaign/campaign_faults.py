"""Job functions that fail the way workers fail in production, for the campaign tests.

They take the place of redline.campaign.jobs.run_job in an executor, and must be importable
by name in spawned workers (pytest puts this folder on sys.path, and spawn copies sys.path).
Each fault strikes only the jobs of seed 1, so the other jobs show that the rest goes on.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from redline.campaign.jobs import run_job


def _first_time(job, tag: str) -> bool:
    """True on the job's first attempt (a marker beside its folder remembers the attempt)."""
    marker = Path(f"{job.folder}.{tag}")
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("attempted")
    return True


def killed_once(job):
    """The worker process dies by SIGKILL (as from the out-of-memory killer) on the job's first attempt."""
    if job.seed == 1 and _first_time(job, "killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    return run_job(job)


def killed_always(job):
    """The worker dies on every attempt of the job."""
    if job.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return run_job(job)


def exits_once(job):
    """The worker process exits (not by a signal: a lost worker) on the job's first attempt."""
    if job.seed == 1 and _first_time(job, "exited"):
        os._exit(7)
    return run_job(job)


def memory_once(job):
    if job.seed == 1 and _first_time(job, "memory"):
        raise MemoryError("cannot allocate 64 GiB")
    return run_job(job)


def memory_always(job):
    if job.seed == 1:
        raise MemoryError("cannot allocate 64 GiB")
    return run_job(job)


def slow(job):
    """Each job takes at least a second, so a test can kill the driver between two of them."""
    time.sleep(1.0)
    return run_job(job)


def scripted(job):
    """run_job, then the status of some seeds replaced as REDLINE_TEST_STATUSES says
    (``{"1": "not_vulnerable"}``): a model that changed between two runs of a campaign."""
    result = run_job(job)
    wanted = json.loads(os.environ.get("REDLINE_TEST_STATUSES", "{}")).get(str(job.seed))
    if wanted and result.get("finding"):
        finding = {**result["finding"], "status": wanted}
        if wanted != "vulnerable":
            finding["severity"] = "None"
        result = {**result, "finding": finding}
    return result


# Light job functions (no scan): the executor's own mechanics, cheap enough for every test run.

def whoami(job):
    return {"key": job.key, "pid": os.getpid(), "seed": job.seed}


def whoami_or_die(job):
    if job.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.seed == 2:
        raise MemoryError("no room")
    if job.seed == 3:
        raise ValueError("a defect")
    return whoami(job)


def light_result(job):
    """A job's record without a scan: a not-vulnerable finding with the job's key, check and seed."""
    from redline.findings import Finding, Status

    finding = Finding(id=job.key, mode=job.check.split(".")[0], check=job.check, title="light job",
                      status=Status.NOT_VULNERABLE, seed=job.seed, budget=job.budget)
    return {"key": job.key, "finding": finding.to_dict(), "other_findings": [],
            "target": {"spec": job.target, "capabilities": None}, "data": {"spec": job.data or ""},
            "context": {}, "context_assumed": [], "pid": os.getpid()}


def light_killed_once(job):
    """light_result, but the worker dies by SIGKILL on the first attempt of a seed-1 job."""
    if job.seed == 1 and _first_time(job, "killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    return light_result(job)


def modules_at_start(job):
    """What the worker had imported before this job: the forkserver's preload shows here."""
    import sys

    import redline

    return {"key": job.key, "modules": sorted(m for m in ("torch", "sklearn", "redline.pipeline.runner")
                                              if m in sys.modules), "redline": redline.__file__}


def interrupted_at_seed_1(job):
    """Ctrl-C arrives while the job of seed 1 runs (in-process executor)."""
    if job.seed == 1:
        raise KeyboardInterrupt
    return run_job(job)


def light_disk_full_at_seed_1(job):
    """light_result, but the job of seed 1 cannot write its report (a full disk), as run_scan says it."""
    import errno

    from redline.errors import OutputError

    if job.seed == 1:
        raise OutputError(errno.ENOSPC, "No space left on device", f"{job.folder}/report.json")
    return light_result(job)
