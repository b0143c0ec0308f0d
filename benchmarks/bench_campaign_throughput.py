"""Campaign throughput: jobs per second with 1 and 2 local workers and on a local Ray, and what
each executor costs per job.

Throughput runs one campaign of independent jobs (zoo models x checks x seeds, each job a few
seconds of one core) into a fresh folder per run, timing the whole `run_campaign` call (worker
start and imports included, as a user waits for them). The 1- and 2-worker runs alternate,
round after round, so a neighbour's load falls on both alike; the ratio of each round is
printed, then the median. On a shared machine the ratio moves with other people's work:
read it with the machine's load average, printed beside it.

Overhead per job sends near-empty jobs (they return at once) through an executor and compares
with the same jobs called in this process: (executor time - in-process time) / jobs, with as
many jobs in flight as the executor has workers (the campaign's case), and one at a time
(the round trip). Ray's own start-up is timed apart.

    python benchmarks/bench_campaign_throughput.py [--rounds 2] [--no-ray] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

# 32 jobs: with the 12 of two targets, the fixed cost of a run (start, zoo loading, reports,
# about 8 s) hid the workers' gain (0.92x on a quiet machine against 1.4-1.8x for these 32).
CAMPAIGN = {"targets": ["zoo:digits_mlp_overfit", "zoo:digits_mlp_regularized", "zoo:fair_logreg", "zoo:fair_tree"],
            "select": "FM01.square,FM04.threshold,FM16.corruption,FM05.learning", "budget": 500, "seeds": [0, 1]}
QUICK = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving,FM04.threshold", "budget": 300,
         "seeds": [0, 1]}


def empty_job(job):
    """A job that does nothing: what is left of its time is the executor's."""
    return {"key": job.key, "pid": os.getpid()}


def _load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def timed_campaign(raw: dict, executor: str, workers: int | None) -> tuple[float, int]:
    from redline.campaign import parse_campaign, run_campaign

    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as out:
        start = time.perf_counter()
        result = run_campaign(parse_campaign(raw), out, executor=executor, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    return seconds, result.jobs_total


def throughput(raw: dict, rounds: int) -> list[float]:
    print("| round | workers | seconds | jobs/s | machine |")
    print("|---:|---:|---:|---:|---|")
    ratios = []
    for r in range(rounds):
        times = {}
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):  # alternate who goes first
            seconds, jobs = timed_campaign(raw, "local", workers)
            times[workers] = seconds
            print(f"| {r + 1} | {workers} | {seconds:.1f} | {jobs / seconds:.2f} | {_load()} |", flush=True)
        ratios.append(times[1] / times[2])
    print("\n2 workers vs 1, per round: " + ", ".join(f"{x:.2f}x" for x in ratios)
          + f"; median {statistics.median(ratios):.2f}x (goal >= 1.6x on 2 cores)\n", flush=True)
    return ratios


def _jobs(n: int) -> list:
    from redline.campaign.jobs import Job

    return [Job(key=f"empty{i}", target="zoo:none", data=None, target_config=None, check="FM05.learning", seed=i,
                budget=None, params=None, folder="/nonexistent", target_folder="t") for i in range(n)]


def drain(executor, jobs: list, in_flight: int) -> float:
    """Seconds to pass every job through ``executor`` with at most ``in_flight`` running."""
    pending = list(jobs)
    running = 0
    start = time.perf_counter()
    while pending or running:
        while pending and running < in_flight:
            executor.submit(pending.pop())
            running += 1
        outcome = executor.next_outcome()
        assert outcome.result is not None, outcome.detail
        running -= 1
    return time.perf_counter() - start


def overhead(name: str, make, n: int) -> None:
    jobs = _jobs(n)
    start = time.perf_counter()
    for job in jobs:
        empty_job(job)
    inline = time.perf_counter() - start
    executor = make()
    began = time.perf_counter()
    executor.start()
    drain(executor, _jobs(4), executor.capacity)  # warm: workers up and the function shipped
    started = time.perf_counter() - began
    try:
        parallel = drain(executor, jobs, executor.capacity)
        serial = drain(executor, jobs, 1)
    finally:
        executor.close()
    print(f"| {name} | {started:.1f} | {(parallel - inline) / n * 1000:.1f} | {(serial - inline) / n * 1000:.1f} "
          f"| {executor.capacity} | {_load()} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (1 worker, 2 workers), alternating who goes first")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray parts")
    ap.add_argument("--quick", action="store_true", help="a tiny campaign and one round (seconds; for the tests)")
    ap.add_argument("--empty-jobs", type=int, default=200, help="near-empty jobs for the overhead per job")
    args = ap.parse_args()
    raw = QUICK if args.quick else CAMPAIGN
    rounds = 1 if args.quick else args.rounds
    n = 40 if args.quick else args.empty_jobs
    print(f"# campaign throughput on {os.cpu_count()} CPUs ({_load()}; other work on the machine shows there)\n")
    print(f"campaign: {raw}\n")
    from redline.campaign.executors import LocalExecutor, RayExecutor

    timed_campaign(raw, "local", 1)  # builds any zoo model not yet cached, outside the timings
    throughput(raw, rounds)

    have_ray = not args.no_ray
    if have_ray:
        try:
            import ray
        except ModuleNotFoundError:
            print("Ray is not installed: its rows are skipped (pip install 'redline[ray]')\n")
            have_ray = False
    if have_ray:
        start = time.perf_counter()
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        except Exception as exc:  # noqa: BLE001 - Ray's start-up failures are plain Exceptions
            ray.shutdown()
            print(f"Ray could not start here ({_load()}): {str(exc).splitlines()[0][:160]}; its rows are skipped\n")
            have_ray = False
    if have_ray:
        print(f"Ray started in {time.perf_counter() - start:.1f} s (once per campaign, not per job)\n")
        seconds, jobs = timed_campaign(raw, "ray", None)
        print(f"the campaign on Ray (2 CPUs): {seconds:.1f} s, {jobs / seconds:.2f} jobs/s ({_load()})\n")

    print(f"overhead per job: {n} near-empty jobs through the executor minus the same jobs in process")
    print("| executor | start s | ms/job, workers busy | ms/job, one at a time | workers | machine |")
    print("|---|---:|---:|---:|---:|---|")
    overhead("local", lambda: LocalExecutor(2, empty_job), n)
    if have_ray:
        overhead("ray", lambda: RayExecutor(None, 2, empty_job), n)
        ray.shutdown()
    print("\n(goal: Ray overhead under 50 ms per job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
