"""``redline demo``: build the zoo, scan zoo targets, and write an index page that opens on
a one-screen summary and links each target's full report.

By default the demo runs the tour (``tour.yaml``): each family of checks on the zoo entry
that shows it best, with budgets small enough for a first run of a few minutes on a
laptop, and each finding saying which demo settings it ran with. ``full=True`` is the
exhaustive run: every zoo entry with every check of the failure modes it is a positive or
negative control for, at default budgets (``every_check=True``: every check on every entry,
which retrains CNNs many times over).
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .tour import Stop, Tour, load_tour


def run_demo(out: str | Path, *, budget: int | None = None, names: Sequence[str] | None = None,
             progress: bool = True, full: bool = False, every_check: bool = False,
             tour: Tour | None = None) -> Path:
    """Run the demo into ``out`` and return the path of its ``index.html``."""
    from .. import zoo
    from ..errors import UsageError
    from ..pipeline.progress import Overall, Progress
    from .index import write_index

    out = Path(out)
    known = set(zoo.names()) | set(zoo.agent_names())
    for name in names or ():
        if name not in known:
            raise UsageError(f"unknown zoo target {name!r} (known: {', '.join(sorted(known))})")
    if full or every_check:
        stops = _exhaustive_stops(list(names) if names else zoo.names() + zoo.agent_names(), every_check)
        kind = "every check" if every_check else "full"
    else:
        stops = (tour or load_tour()).stops(names, budget=budget)
        if not stops:
            raise UsageError(f"the demo tour has no row for {', '.join(names or [])}; use --full to scan any zoo entry")
        kind = "tour"
    _validate(stops)  # every row's checks and parameters, before the first model is built
    out.mkdir(parents=True, exist_ok=True)

    # Units of work in run order: each stop's model build, then its checks (in plan order).
    weights: list[float] = []
    for stop in stops:
        weights.append(stop.build_seconds)
        weights.extend(stop.check_seconds.get(c, 1.0) for c in _planned(stop))
    overall = Overall(weights)
    shown = Progress(enabled=progress, overall=overall)
    wall0, cpu0 = time.monotonic(), _cpu_seconds()
    rows = []
    per_stop: list[dict[str, Any]] = []  # CPU seconds per target, for timing.json
    unit = 0
    for i, stop in enumerate(stops, start=1):
        overall.seek(unit)
        if progress:
            eta = f" | {overall.text()}" if shown.tty else ""
            print(f"== [{i}/{len(stops)}] zoo:{stop.target}: {', '.join(stop.checks)}{eta}", file=sys.stderr, flush=True)
        cpu_start = _cpu_seconds()
        _build(stop.target, overall)
        cpu_built = _cpu_seconds()
        report = _scan(stop, out, budget, shown)
        unit += 1 + len(_planned(stop))
        rows.append((stop, zoo.describe(stop.target), report))
        per_stop.append({"target": stop.target, "build_cpu_seconds": round(cpu_built - cpu_start, 1),
                         "checks_cpu_seconds": round(_cpu_seconds() - cpu_built, 1)})
    overall.seek(len(weights))
    timing = {"wall_seconds": round(time.monotonic() - wall0, 1), "cpu_seconds": round(_cpu_seconds() - cpu0, 1),
              "targets": per_stop}
    return write_index(out, rows, kind=kind, timing=timing)


def _planned(stop: Stop) -> list[str]:
    from ..checks import plan

    return [c.id for c in plan(stop.select)]


def _validate(stops: list[Stop]) -> None:
    from ..checks import plan
    from ..checks.params import resolve_checks

    for stop in stops:
        resolve_checks(plan(stop.select), stop.params)


def _build(name: str, overall: Any) -> None:
    """Build (or load) the entry's model as its own unit of work, so the ETA learns the
    pace from real training and not from a cache hit."""
    from .. import zoo

    cached = zoo.describe(name).get("build") is not None
    if cached:
        overall.skip()
        return
    overall.begin()
    zoo.load_target(name)
    overall.end()


def _scan(stop: Stop, out: Path, budget: int | None, shown: Any):
    from ..pipeline import ScanRequest, run_scan

    request = ScanRequest(target=f"zoo:{stop.target}", select=stop.select, budget=budget,
                          params=stop.params or None, budgets=stop.budgets or None, notes=stop.notes or None)
    return run_scan(request, out_dir=out / stop.target, formats=["json", "html", "md"], resume=True, progress=shown)


def _exhaustive_stops(names: list[str], every_check: bool) -> list[Stop]:
    from .. import zoo

    stops = []
    for name in names:
        select = None if every_check else demo_select(zoo.describe(name)["modes"])
        checks = tuple(c for c in _all_ids(select))
        stops.append(Stop(target=name, checks=checks, budgets={}, params={}, notes={},
                          shows=(zoo.describe(name)["weakness"],), check_seconds={}, build_seconds=1.0))
    return stops


def _all_ids(select: str | None) -> list[str]:
    from ..checks import plan

    return [c.id for c in plan(select)]


def demo_select(modes) -> str:
    """The ``--select`` for a zoo entry: the modes it is a control for that have checks (an
    entry may also be a control for modes no check tests yet), plus FM11."""
    from ..checks import all_checks

    tested = {check.mode for check in all_checks().values()}
    return ",".join(sorted({m for m in modes if m in tested} | {"FM11"}))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def register(sub: Any) -> None:
    """The ``redline demo`` sub-command (the CLI lists this module in its COMMAND_MODULES)."""
    import argparse

    from ..pipeline.commands import positive_int

    d = sub.add_parser(
        "demo",
        help="build the demo models and take a short tour of redline's checks on them",
        description=("Build the demo models and run the tour: each family of checks on the demo model that shows "
                     "it best, with small budgets (a few minutes), then write an HTML report. --full scans every "
                     "demo model with every check of the failure modes it is a positive or negative control for, "
                     "at default budgets."),
        epilog="examples:\n  redline demo --out redline-demo/\n  redline demo --full --out redline-demo-full/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--out", metavar="DIR", default="redline-demo", help="output folder (default redline-demo)")
    d.add_argument("--budget", metavar="N", type=positive_int,
                   help="attack budget per check (default: the tour's, or each check's own with --full)")
    d.add_argument("--targets", metavar="NAMES", help="comma-separated zoo names (default: all in the tour)")
    d.add_argument("--full", action="store_true",
                   help="every demo model with every check it is a control for, default budgets (tens of minutes)")
    d.add_argument("--every-check", action="store_true",
                   help="with --full: every check on every demo model (much slower: retrains models many times)")
    d.add_argument("--no-progress", action="store_true", help="do not show progress on standard error")
    d.set_defaults(handler=demo_command)


def demo_command(args: Any) -> int:
    from ..errors import UsageError

    if args.every_check and not args.full:
        raise UsageError("--every-check goes with --full")
    index = run_demo(args.out, budget=args.budget, names=args.targets.split(",") if args.targets else None,
                     progress=not args.no_progress, full=args.full, every_check=args.every_check)
    print(f"redline demo: report written to {index}")
    return 0
