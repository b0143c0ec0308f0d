"""Executors: where a campaign's jobs run, behind one small interface.

An executor takes jobs with :meth:`submit` (at most :attr:`capacity` at a time) and hands
back each one's :class:`Outcome` from :meth:`next_outcome` as it ends. It never retries
by itself: the driver decides (a lost worker is retried, a job out of memory once), so the
policy is the same on every executor.

- ``local``: long-lived worker processes (one per ``--workers``), each taking job after job.
  They fork from a ``forkserver`` that imported redline and the heavy libraries once
  (:mod:`.preload`), so a worker starts warm, and two workers do not pay the imports twice
  on the same cores (``spawn`` where there is no forkserver). Each worker runs one job at a
  time, so a worker that dies takes exactly its own job with it, and its exit status says
  how it died.
- ``ray``: one Ray task per job on a running cluster (``--address``) or a local one.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ..errors import OutputError, UsageError
from .jobs import Job, JobOutOfMemory, run_job

# How a job that did not return a result ended.
LOST = "lost"  # its worker died or its node went away
MEMORY = "memory"  # out of memory (MemoryError, Ray's OOM killer, or a worker killed by a signal)
CRASHED = "crashed"  # the job raised: a defect, reported as the job's error finding
OUTPUT = "output"  # a file in --out could not be written (a full disk): the campaign stops, the job is not recorded


@dataclasses.dataclass
class Outcome:
    job: Job
    result: dict[str, Any] | None = None  # the job's record when it finished
    failure: str | None = None  # LOST, MEMORY, CRASHED or OUTPUT
    detail: str = ""
    error: OutputError | None = None  # OUTPUT: what could not be written


def _ended(job: Job, kind: str, payload: Any) -> Outcome:
    """The outcome of a job whose worker answered ``(kind, payload)``."""
    if kind == "ok":
        return Outcome(job, result=payload)
    if kind == OUTPUT:
        return Outcome(job, failure=OUTPUT, detail=str(payload), error=payload)
    return Outcome(job, failure=kind, detail=payload)


JobFunction = Callable[[Job], dict]


def memory_detail(exc: BaseException) -> str:
    """How a job's memory failure reads in its note and, at last, in its error finding."""
    text = str(exc) if isinstance(exc, JobOutOfMemory) else f"{type(exc).__name__}: {exc}"
    return f"out of memory ({text})"


# -- local processes ---------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Stop this worker once the driver is gone (even killed with SIGKILL): an orphan would
    go on writing into a job folder that a resumed campaign is about to reuse. The parent is
    the driver (spawn) or its forkserver, which exits as soon as the driver does."""
    import time

    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.3)


def _worker_main(conn: Any, job_fn: JobFunction) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            conn.send(("ok", job_fn(job)))
        except (JobOutOfMemory, MemoryError) as exc:
            conn.send((MEMORY, memory_detail(exc)))
        except OutputError as exc:
            conn.send((OUTPUT, exc))
        except Exception as exc:  # noqa: BLE001 - reported to the driver as the job's error
            conn.send((CRASHED, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"))


def worker_context() -> Any:
    """Where local workers come from: a forkserver that preloads :mod:`.preload` (a fork of
    a warm, single-threaded process), else spawn. Never a plain fork of the driver, whose
    threads (progress, Ray, math pools) a fork would copy half-way."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([f"{__package__}.preload"])
    # The forkserver starts (once per driver) from the environment, not from this process's
    # sys.path: point it at this redline, or it could preload another copy (an installed one)
    # that the workers would then run instead of the driver's.
    from multiprocessing import forkserver
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[2])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved) if p)
    try:
        forkserver.ensure_running()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return ctx


class _Worker:
    def __init__(self, ctx: Any, job_fn: JobFunction):
        here, there = ctx.Pipe()
        self.conn = here
        self.process = ctx.Process(target=_worker_main, args=(there, job_fn), daemon=True)
        self.process.start()
        there.close()
        self.job: Job | None = None


class LocalExecutor:
    """Jobs in ``workers`` spawned processes on this machine."""

    name = "local"

    def __init__(self, workers: int = 1, job_fn: JobFunction = run_job):
        self.workers = workers
        self.job_fn = job_fn
        self._ctx: Any = None
        self._pool: list[_Worker] = []

    @property
    def capacity(self) -> int:
        return self.workers

    def start(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers}")
        from .jobs import pin_threads

        pin_threads()  # workers (and the forkserver) inherit the environment: one math thread each
        self._ctx = worker_context()
        self._pool = [_Worker(self._ctx, self.job_fn) for _ in range(self.workers)]

    def submit(self, job: Job) -> None:
        worker = next((w for w in self._pool if w.job is None), None)
        if worker is None:
            raise RuntimeError("every worker is busy; wait for an outcome first")
        worker.job = job
        worker.conn.send(job)

    def next_outcome(self) -> Outcome:
        from multiprocessing.connection import wait

        busy = [w for w in self._pool if w.job is not None]
        if not busy:
            raise RuntimeError("no job is running")
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        for worker in busy:
            if worker.conn in ready:
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):
                    return self._lost(worker)
                job, worker.job = worker.job, None
                return _ended(job, kind, payload)
        worker = next(w for w in busy if w.process.sentinel in ready)
        return self._lost(worker)

    def _lost(self, worker: _Worker) -> Outcome:
        """The worker died mid-job: replace it and say how it ended."""
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        job = worker.job
        self._pool.remove(worker)
        worker.conn.close()
        self._pool.append(_Worker(self._ctx, self.job_fn))
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            # The kernel's out-of-memory killer ends a process with SIGKILL; a worker killed
            # by a signal is treated as a job out of memory (retried once), not as a defect.
            return Outcome(job, failure=MEMORY, detail=f"its worker process was killed by {name} (out of memory?)")
        return Outcome(job, failure=LOST, detail=f"its worker process exited with status {code}")

    def close(self) -> None:
        for worker in self._pool:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._pool:
            worker.process.join(timeout=1 if worker.job is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        self._pool = []


# -- in this process ---------------------------------------------------------------------------


class InlineExecutor:
    """Jobs one at a time in the driver's own process (no isolation; for debugging and tests
    of the driver's bookkeeping). A MemoryError is reported as such, as the others do."""

    name = "inline"
    capacity = 1

    def __init__(self, job_fn: JobFunction = run_job):
        self.job_fn = job_fn
        self._queued: list[Job] = []

    def start(self) -> None:
        pass

    def submit(self, job: Job) -> None:
        self._queued.append(job)

    def next_outcome(self) -> Outcome:
        job = self._queued.pop(0)
        try:
            return Outcome(job, result=self.job_fn(job))
        except (JobOutOfMemory, MemoryError) as exc:
            return Outcome(job, failure=MEMORY, detail=memory_detail(exc))
        except OutputError as exc:
            return Outcome(job, failure=OUTPUT, detail=str(exc), error=exc)
        except Exception as exc:  # noqa: BLE001
            return Outcome(job, failure=CRASHED, detail=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._queued.clear()


# -- Ray ---------------------------------------------------------------------------------------


class RayExecutor:
    """One Ray task per job. ``address``: ``auto`` (a cluster started with ``ray start``), a
    ``ray://host:port`` client address, or None for a Ray started here for this campaign."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, job_fn: JobFunction = run_job):
        self.address = address
        self.workers = workers
        self.job_fn = job_fn
        self._ray: Any = None
        self._remote: Any = None
        self._running: dict[Any, Job] = {}
        self._started_ray = False

    @property
    def capacity(self) -> int:
        if self.workers:
            return self.workers
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def start(self) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            from ..util.extras import install_hint

            raise UsageError(f"--executor ray needs Ray: {install_hint('ray')}") from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            elif self.workers:
                kwargs["num_cpus"] = self.workers
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise UsageError(f"--address {self.address}: cannot reach a Ray cluster ({exc})") from None
            self._started_ray = True
        # No retries inside Ray: the driver retries lost and out-of-memory jobs itself.
        self._remote = ray.remote(num_cpus=1, max_retries=0, retry_exceptions=False)(_ray_job)

    def submit(self, job: Job) -> None:
        ref = self._remote.remote(self.job_fn, job)
        self._running[ref] = job

    def next_outcome(self) -> Outcome:
        ray = self._ray
        done, _ = ray.wait(list(self._running), num_returns=1)
        ref = done[0]
        job = self._running.pop(ref)
        try:
            kind, payload = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - classified below
            failure, detail = classify_ray_error(exc)
            return Outcome(job, failure=failure, detail=detail)
        return _ended(job, kind, payload)

    def close(self) -> None:
        if self._ray is None:
            return
        for ref in list(self._running):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self._running.clear()
        if self._started_ray:
            self._ray.shutdown()


def _ray_job(job_fn: JobFunction, job: Job) -> tuple[str, Any]:
    try:
        return "ok", job_fn(job)
    except (JobOutOfMemory, MemoryError) as exc:
        return MEMORY, memory_detail(exc)
    except OutputError as exc:
        return OUTPUT, exc
    except Exception as exc:  # noqa: BLE001
        return CRASHED, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"


def classify_ray_error(exc: BaseException) -> tuple[str, str]:
    """How a Ray task that raised ended: out of memory, lost (worker or node died), or crashed."""
    from ray import exceptions as rex

    name = type(exc).__name__
    if isinstance(exc, rex.OutOfMemoryError):
        return MEMORY, f"Ray's memory monitor killed the task ({name})"
    lost = tuple(getattr(rex, n) for n in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError",
                                            "LocalRayletDiedError", "RaySystemError", "TaskCancelledError")
                 if hasattr(rex, n))
    if isinstance(exc, lost):
        return LOST, f"its Ray worker was lost ({name})"
    return CRASHED, f"{name}: {exc}"


def make_executor(name: str, *, workers: int | None = None, address: str | None = None,
                  job_fn: JobFunction = run_job) -> Any:
    if name == "local":
        if address:
            raise UsageError("--address is for --executor ray")
        return LocalExecutor(workers or 1, job_fn)
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # said before any folder is made or job planned
            from ..util.extras import install_hint

            raise UsageError(f"--executor ray needs Ray: {install_hint('ray')}")
        return RayExecutor(address, workers, job_fn)
    if name == "inline":
        return InlineExecutor(job_fn)
    raise UsageError(f"--executor must be local or ray, not {name!r}")
