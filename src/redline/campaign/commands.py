"""``redline campaign``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from ..pipeline.commands import FAIL_ON_CHOICES, FORMAT_CHOICES, positive_int

    p = sub.add_parser(
        "campaign",
        help="run many scans (targets x checks x seeds) as resumable jobs, locally or on Ray",
        description=("Run every (target, check, seed) job of a campaign file on an executor, record each finished "
                     "job in DIR/campaign.sqlite, and write one report per target plus DIR/index.html and "
                     "DIR/index.json. --resume after any interruption runs only the jobs not yet recorded."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  redline campaign examples/fair.campaign.yaml --workers 2 --out campaign-out/\n"
            "  ray start --head && redline campaign examples/fair.campaign.yaml --executor ray --address auto\n"
            "\ncampaign file (YAML):\n"
            "  targets: [zoo:fair_logreg, {target: http://host/model, data: builtin:fair, target_config: api.yaml}]\n"
            "  data: builtin:fair      # for targets that name none\n"
            "  select: FM05,FM11       # as scan --select\n"
            "  budget: 500             # as scan --budget (default: each check's own)\n"
            "  seeds: [0, 1]\n"
            "  params: {FM01.pgd: {epsilon: 0.1}}\n"
            "\nexit codes: as redline scan over all targets: 0 nothing reached --fail-on, 1 a finding did,\n"
            "2 usage or input error, 3 some target could not be tested as asked (a job ended in error, or\n"
            "no check reached a verdict), or a file in --out cannot be written (a full disk: the campaign\n"
            "stops, finished jobs are kept for --resume); 130 interrupted (reports of the finished jobs are\n"
            "written)."
        ),
    )
    p.add_argument("campaign", metavar="CAMPAIGN.yaml")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: tasks on a Ray cluster")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster: auto (started with `ray start --head`) or ray://HOST:PORT; "
                        "without it --executor ray starts a Ray on this machine")
    p.add_argument("--workers", metavar="N", type=positive_int,
                   help="jobs at once: local worker processes (default 1), or a cap on Ray tasks (default: the cluster's CPUs)")
    p.add_argument("--out", metavar="DIR", default="redline-campaign", help="folder for reports, journal and index (default redline-campaign)")
    p.add_argument("--resume", action="store_true", help="continue the campaign in DIR: run only the jobs its journal lacks")
    p.add_argument("--format", metavar="FORMATS", default="json,html",
                   help=f"report formats per target, from {FORMAT_CHOICES} (default json,html)")
    p.add_argument("--fail-on", metavar="SEVERITY", default="important", type=str.lower, choices=FAIL_ON_CHOICES,
                   help="exit 1 when a finding reaches this severity (default important; never: only exit 3 applies)")
    p.add_argument("--compare", metavar="DIR",
                   help="compare with the campaign run in DIR (default: the previous run in --out, kept in --out/runs/)")
    p.add_argument("--json", action="store_true", help="print the campaign summary (index.json) instead of text")
    p.add_argument("--no-progress", action="store_true", help="do not show progress (it shows only on a terminal)")
    p.add_argument("--registry", metavar="DB",
                   help="record each target's findings in this failure-case registry and compare with what it "
                        "holds: new, seen again, fixed and regressed cases (sqlite:///PATH, postgresql://…)")
    p.set_defaults(handler=campaign_command)


def campaign_command(args: argparse.Namespace) -> int:
    from ..errors import OutputError
    from ..report.writers import parse_formats
    from ..util.safe_text import echo
    from .driver import CampaignInterrupted, run_campaign
    from .journal import JOURNAL_FILE

    formats = [f.value for f in parse_formats(args.format)]
    from .registry_record import record_in_registry

    registry = None
    if getattr(args, "registry", None):
        from ..registry.store import Registry

        registry = Registry(args.registry, create=True)  # a bad URL is refused before any job runs
    try:
        result = run_campaign(args.campaign, args.out, executor=args.executor, workers=args.workers,
                              address=args.address, resume=args.resume, formats=formats,
                              progress=not args.no_progress, compare=args.compare)
    except CampaignInterrupted as stop:
        if registry is not None:
            record_in_registry(registry, stop.result)
        done = stop.result.jobs_run + stop.result.jobs_resumed
        print(f"redline: interrupted; {done} of {stop.result.jobs_total} jobs recorded, reports written to {args.out}",
              file=sys.stderr)
        print("redline: to finish the campaign, add --resume to the same command", file=sys.stderr)
        return 130
    except OutputError as stop:  # a full disk or file-size limit: stopped, the journal keeps what finished
        from ..report.model import EXIT_UNTESTED
        from ..util.safe_text import one_line

        print(f"redline: {one_line(stop)}; the campaign stopped, and the {stop.kept or 0} job(s) that finished are "
              f"kept in {one_line(Path(args.out) / JOURNAL_FILE)}; once there is room, add --resume to the same "
              "command", file=sys.stderr)
        return EXIT_UNTESTED
    if registry is not None:
        record_in_registry(registry, result, quiet=args.json)
    if args.json:
        print((Path(result.out) / "index.json").read_text(), end="")
        return result.exit_code(args.fail_on)
    for spec, report in result.reports.items():
        counts = {}
        for f in report.findings:
            counts[f.status.value] = counts.get(f.status.value, 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no findings"
        state = "" if report.complete else " (incomplete)"
        echo(f"{report.target.get('spec')}: worst severity {report.worst_severity.label}; {shown}{state}")
        if report.untested_reason:
            echo(f"  not tested as asked: {report.untested_reason}")
    _echo_comparison(result.comparison)
    echo(f"campaign: {result.jobs_total} jobs ({result.jobs_run} run now, {result.jobs_resumed} resumed); "
         f"index {Path(result.out) / 'index.html'}")
    return result.exit_code(args.fail_on)


def _echo_comparison(comparison: dict | None, shown: int = 20) -> None:
    """Since the previous run: counts, then the changes to act on (at most ``shown`` lines)."""
    from ..util.safe_text import echo
    from .history import CHANGES, describe

    if not comparison:
        return
    counts = comparison["counts"]
    echo(f"since the run of {comparison['previous']['started_at']}: "
         + ", ".join(f"{counts[name]} {name}" for name in CHANGES) + f", {counts['unchanged']} unchanged")
    lines = [f"  {name}: {describe(change)}" for name in CHANGES for change in comparison[name]]
    for line in lines[:shown]:
        echo(line)
    if len(lines) > shown:
        echo(f"  ... and {len(lines) - shown} more in index.json")
