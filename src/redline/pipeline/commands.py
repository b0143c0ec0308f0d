"""``redline scan`` and ``redline replay``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import OutputError, UsageError
from ..report.writers import Format
from ..severity import Severity
from ..targets.adapters import target_help

FORMAT_CHOICES = ",".join(fmt.value for fmt in Format)  # the writers' table decides
FAIL_ON_CHOICES = ("low", "moderate", "important", "critical", "never")
MAX_SEED = 2**32 - 1  # scikit-learn's random_state takes no more; numpy's generators take no negative seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="attack or test a model for the failure modes of the taxonomy",
        description="Run redline's checks against a target and write a report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  redline scan zoo:mnist_cnn --select FM01 --budget 2000 --out out/\n"
            "  redline scan onnx:model.onnx --data npz:data.npz --format json,html,sarif --fail-on important\n"
            "  redline scan http://127.0.0.1:8000/predict --data builtin:digits --target-config api.yaml\n"
            "  redline scan zoo:mnist_cnn --select FM01.pgd --set FM01.pgd.epsilon=0.1 --set FM01.pgd.norm=l2\n"
            "  redline scan zoo:fair_logreg --select FM05 --defend guard.yaml   # bare vs defended, side by side\n"
            f"\n{target_help()}\n"
            "DATA: builtin:NAME (digits, mnist, breast_cancer, fair, diabetes), npz:PATH, csv:PATH#label=COL.\n"
            "exit codes: 0 nothing reached --fail-on, 1 a finding did, 2 usage or input error, 3 the scan could\n"
            "not test what was asked (a check ended in error, or every selected check was not applicable or\n"
            "inconclusive; a model file's static scan FM09 counts only when FM09 is selected or nothing is);\n"
            "the reports are written and say why. 1 wins over 3. 3 also when a file in DIR cannot be written\n"
            "(a full disk: the scan stops, finished checks are kept for --resume).\n"
            "130 interrupted (Ctrl-C; partial report written)."
        ),
    )
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--data", metavar="DATA", help="data set spec: builtin:NAME, npz:PATH, csv:PATH#label=COL, or one file per role as "
                   "ROLE=SPEC,ROLE=SPEC with roles train, test, pool, deploy (zoo targets bring their own)")
    p.add_argument("--select", metavar="CODES", help="mode codes and/or check ids, comma-separated (FM01,FM05.equation_solving)")
    p.add_argument("--budget", metavar="N", type=positive_int, help="most rows one check's attack may send to the target")
    p.add_argument("--seed", metavar="N", type=seed_int, default=0, help=f"random seed, 0 to {MAX_SEED} (default 0)")
    p.add_argument("--context", metavar="SYSTEM.yaml", help="deployment facts used to rate severities")
    p.add_argument("--target-config", metavar="FILE", help="headers, auth, timeouts, mapping, bounds, constraints (YAML)")
    p.add_argument("--out", metavar="DIR", default="redline-out", help="folder for reports, artifacts and events (default redline-out)")
    p.add_argument("--format", metavar="FORMATS", default="json,html", help=f"report formats to write, from {FORMAT_CHOICES} (default json,html)")
    p.add_argument("--fail-on", metavar="SEVERITY", default="important", type=str.lower, choices=FAIL_ON_CHOICES,
                   help="exit 1 when a finding reaches this severity: low, moderate, important (default), critical, "
                        "never (exit 3 for an untested scan still applies)")
    p.add_argument("--set", metavar="CHECK.PARAM=VALUE", action="append", default=[], dest="set_params",
                   help="set a check parameter (repeatable), e.g. --set FM01.pgd.epsilon=0.1; VALUE is YAML "
                        "(0.1, l2, true, [0.05, 0.1]); `redline checks CHECK` lists the parameters")
    p.add_argument("--checks", metavar="FILE", dest="checks_file",
                   help="YAML file mapping check ids to parameters (FM01.pgd: {epsilon: 0.1}); --set wins over it")
    p.add_argument("--defend", metavar="guard.yaml",
                   help="scan the target behind the defences of this guard policy, in process, and compare with the "
                        "bare target (the report's 'What the defences buy'); for a guarded endpoint, name the bare "
                        "model as baseline: SPEC in --target-config instead")
    p.add_argument("--resume", action="store_true", help="keep the findings already in DIR/events.jsonl and run only unfinished checks")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier scan's report in DIR (without --resume or --force, such a DIR is refused)")
    p.add_argument("--json", action="store_true", help="print report.json to standard output instead of the summary")
    p.add_argument("--no-progress", action="store_true", help="do not show progress on standard error")
    p.set_defaults(handler=scan_command)

    r = sub.add_parser(
        "replay",
        help="re-run one finding of a report and say whether it reproduces",
        description=("Re-run one finding from its record in report.json (check, parameters, seed, budget; target and "
                     "data from the report unless given) and compare the verdict and every metric."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=("example:\n  redline replay out/report.json 3f2a9c1d0b7e4a55\n"
                "\nexit codes: 0 reproduced, 1 not reproduced, 2 usage or input error."),
    )
    r.add_argument("report", metavar="REPORT.json")
    r.add_argument("finding", metavar="FINDING_ID", help="a finding id from the report (or a unique prefix of 6+ characters)")
    r.add_argument("--target", metavar="TARGET", help="target spec to use instead of the report's (e.g. the model moved)")
    r.add_argument("--data", metavar="DATA", help="data spec to use instead of the report's")
    r.add_argument("--target-config", metavar="FILE", help="target config (YAML); reports do not store it")
    r.add_argument("--defend", metavar="guard.yaml",
                   help="guard policy to put the model behind instead of the one the scan recorded (scan --defend)")
    r.add_argument("--tolerance", metavar="REL", type=float, default=None,
                   help="relative tolerance for numbers (default 1e-6)")
    r.add_argument("--json", action="store_true", help="print the comparison as JSON")
    r.set_defaults(handler=replay_command)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def seed_int(text: str) -> int:
    """A --seed: a whole number from 0 to MAX_SEED (what numpy, torch and scikit-learn all take)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED}, got {value}")
    return value


def scan_command(args: argparse.Namespace, on_finding=None) -> int:
    """``on_finding``: called with each new finding (redline.registry adds ``--registry`` this way)."""
    from ..checks.params import command_line_params
    from ..report.writers import parse_formats
    from .progress import Progress
    from .runner import ScanInterrupted, ScanRequest, run_scan

    formats = [f.value for f in parse_formats(args.format)]
    params = command_line_params(args.set_params, args.checks_file, args.select)
    # The pipeline itself, as redline.api.scan runs it (the API is the layer above this one).
    request = ScanRequest(target=args.target, data=args.data, select=args.select, budget=args.budget, seed=args.seed,
                          context=args.context, target_config=args.target_config, params=params,
                          defend=getattr(args, "defend", None))
    try:
        report = run_scan(request, out_dir=args.out, formats=formats, resume=args.resume, force=args.force,
                          progress=Progress(enabled=not args.no_progress and not args.json), on_finding=on_finding)
    except ScanInterrupted as stop:
        written = ", ".join(_file_name(fmt) for fmt in formats)
        print(f"redline: interrupted; partial report ({len(stop.report.findings)} findings, "
              f"{len(stop.report.pending_checks)} checks not run) written to {args.out} ({written})", file=sys.stderr)
        print(f"redline: to finish the scan, run: {resume_command(args)}", file=sys.stderr)
        return 130
    except OutputError as stop:  # a full disk or file-size limit: stopped, what finished is kept
        from ..report.model import EXIT_UNTESTED
        from ..util.safe_text import one_line, terminal_text

        print(f"redline: {one_line(stop)}; the scan stopped, and the {stop.kept or 0} check(s) that finished are "
              f"kept in {one_line(Path(args.out) / 'events.jsonl')}; once there is room, run: "
              f"{terminal_text(resume_command(args))}", file=sys.stderr)
        return EXIT_UNTESTED
    from ..util.safe_text import echo

    if args.json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        echo(report.summary())  # holds endpoint error bodies and other untrusted text
        for fmt in formats:
            echo(f"  wrote {Path(args.out) / _file_name(fmt)}")
    if report.untested_reason:
        echo(f"redline: the scan could not test what was asked: {report.untested_reason}", file=sys.stderr)
    return report.exit_code(args.fail_on)


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues an interrupted scan: the same words, with --resume."""
    import shlex

    argv = list(getattr(args, "argv", None) or [])
    if not argv:  # not started from redline.cli.main: name the arguments that decide the scan
        argv = ["scan", args.target, "--out", args.out]
        for flag, value in (("--data", args.data), ("--select", args.select), ("--budget", args.budget),
                            ("--context", args.context), ("--target-config", args.target_config),
                            ("--defend", getattr(args, "defend", None))):
            if value is not None:
                argv += [flag, str(value)]
        argv += ["--seed", str(args.seed), "--format", args.format]
        if getattr(args, "checks_file", None):
            argv += ["--checks", args.checks_file]
        for assignment in getattr(args, "set_params", None) or []:
            argv += ["--set", assignment]
    argv = [word for word in argv if word != "--force"]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["redline", *argv])


def replay_command(args: argparse.Namespace) -> int:
    from .replay import DEFAULT_TOLERANCE, replay

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance must be in [0, 1), not {tolerance}")
    result = replay(args.report, args.finding, target=args.target, data=args.data,
                    target_config=args.target_config, tolerance=tolerance, defend=args.defend)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 0 if result.reproduced else 1


def _file_name(fmt: str) -> str:
    return Format(fmt).filename


def exit_code(worst: Severity, fail_on: str) -> int:
    """1 when ``worst`` reaches ``fail_on``, else 0 (findings only; see Report.exit_code for 3)."""
    if fail_on == "never":
        return 0
    return 1 if worst is not Severity.NONE and worst >= Severity.parse(fail_on) else 0
