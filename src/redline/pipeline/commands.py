"""``redline scan`` and ``redline demo``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..severity import Severity

FORMAT_CHOICES = "json,md,html,sarif,junit"
FAIL_ON_CHOICES = ("low", "moderate", "important", "critical", "never")


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
            "\nTARGET: zoo:NAME, onnx:PATH, sklearn:PATH (.skops), torch:PATH (TorchScript), or an http(s) URL.\n"
            "DATA: builtin:NAME (digits, mnist, breast_cancer, fair, diabetes), npz:PATH, csv:PATH#label=COL.\n"
            "exit codes: 0 nothing reached --fail-on, 1 a finding did, 2 usage or input error, 3 the scan could\n"
            "not test what was asked (a check ended in error, or every check was not applicable or\n"
            "inconclusive); the reports are written and say why. 1 wins over 3."
        ),
    )
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--data", metavar="DATA", help="data set spec (zoo targets bring their own)")
    p.add_argument("--select", metavar="CODES", help="mode codes and/or check ids, comma-separated (FM01,FM05.equation_solving)")
    p.add_argument("--budget", metavar="N", type=_positive_int, help="most rows one check's attack may send to the target")
    p.add_argument("--seed", metavar="N", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--context", metavar="SYSTEM.yaml", help="deployment facts used to rate severities")
    p.add_argument("--target-config", metavar="FILE", help="headers, auth, timeouts, mapping, bounds, constraints (YAML)")
    p.add_argument("--out", metavar="DIR", default="redline-out", help="folder for reports, artifacts and events (default redline-out)")
    p.add_argument("--format", metavar="FORMATS", default="json,html", help=f"report formats to write, from {FORMAT_CHOICES} (default json,html)")
    p.add_argument("--fail-on", metavar="SEVERITY", default="important", type=str.lower, choices=FAIL_ON_CHOICES,
                   help="exit 1 when a finding reaches this severity: low, moderate, important (default), critical, "
                        "never (exit 3 for an untested scan still applies)")
    p.add_argument("--resume", action="store_true", help="keep the findings already in DIR/events.jsonl and run only unfinished checks")
    p.add_argument("--json", action="store_true", help="print report.json to standard output instead of the summary")
    p.add_argument("--no-progress", action="store_true", help="do not show progress on standard error")
    p.set_defaults(handler=scan_command)

    d = sub.add_parser(
        "demo",
        help="build the zoo and scan every zoo target with the checks it is a control for",
        description=("Build the demo models, scan each with the checks of the failure modes it is a positive or "
                     "negative control for (every check with --full), and write an HTML report."),
        epilog="example:\n  redline demo --out redline-demo/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--out", metavar="DIR", default="redline-demo", help="output folder (default redline-demo)")
    d.add_argument("--budget", metavar="N", type=_positive_int, help="attack budget per check (default: each check's own)")
    d.add_argument("--targets", metavar="NAMES", help="comma-separated zoo names (default: all)")
    d.add_argument("--full", action="store_true",
                   help="scan every target with every check (much slower: retrains models many times)")
    d.add_argument("--no-progress", action="store_true", help="do not show progress on standard error")
    d.set_defaults(handler=demo_command)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def scan_command(args: argparse.Namespace) -> int:
    from ..api import scan
    from ..report.writers import parse_formats

    formats = [f.value for f in parse_formats(args.format)]
    report = scan(
        args.target,
        args.data,
        select=args.select,
        budget=args.budget,
        seed=args.seed,
        context=args.context,
        target_config=args.target_config,
        out=args.out,
        formats=formats,
        resume=args.resume,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        for fmt in formats:
            print(f"  wrote {Path(args.out) / _file_name(fmt)}")
    if report.untested_reason:
        print(f"redline: the scan could not test what was asked: {report.untested_reason}", file=sys.stderr)
    return report.exit_code(args.fail_on)


def _file_name(fmt: str) -> str:
    return {"json": "report.json", "md": "report.md", "html": "report.html",
            "sarif": "report.sarif", "junit": "report.junit.xml"}[fmt]


def exit_code(worst: Severity, fail_on: str) -> int:
    """1 when ``worst`` reaches ``fail_on``, else 0 (findings only; see Report.exit_code for 3)."""
    if fail_on == "never":
        return 0
    return 1 if worst is not Severity.NONE and worst >= Severity.parse(fail_on) else 0


def demo_command(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    index = run_demo(args.out, budget=args.budget, names=args.targets.split(",") if args.targets else None,
                     progress=not args.no_progress, full=args.full)
    print(f"redline demo: report written to {index}")
    return 0
