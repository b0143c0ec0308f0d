"""``redline scan-files``: statically scan model files before anything loads them."""
from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from .limits import Limits

EXAMPLE = """example:
  redline scan-files model.pt checkpoints/ --format sarif --out scan.sarif
  redline scan-files models/ --strict --limit max_member_bytes=2G

Files named on the command line are always scanned. In folders, files that are neither named
like a model file nor hold model content (images, logs, text) are listed as skipped.

exit status: 0 every scanned file is safe; 1 a file is unsafe or could not be fully parsed
(a limit reached counts: the file could not be vouched for); 2 usage error"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan-files",
        help="statically scan model files (pickle, PyTorch, joblib, numpy, Keras, ONNX, safetensors...)",
        description="Read model files the way their loaders would, without importing or running "
        "anything, and report whether loading them is safe.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (scanned recursively)")
    parser.add_argument("--json", action="store_true", help="print JSON (same as --format json)")
    parser.add_argument("--format", choices=("table", "json", "sarif"), default=None,
                        help="output format (default: table)")
    parser.add_argument("--out", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--strict", action="store_true",
                        help="files in folders that are not model files are errors instead of skipped "
                        "(the fail-closed choice for folders that should hold only models)")
    parser.add_argument("--follow-links", action="store_true",
                        help="follow symbolic links that lead out of a scanned folder (special files are "
                        "never read)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="raise or lower a scanner limit, e.g. max_member_bytes=2G or max_opcodes=20000000 "
                        "(repeatable; also REDLINE_SCAN_LIMITS=NAME=VALUE,...); NAME is one of "
                        + ", ".join(Limits.names()))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .render import RENDERERS
    from .scanner import scan_tree

    if args.json and args.format not in (None, "json"):
        raise UsageError("--json conflicts with --format " + args.format)
    fmt = "json" if args.json else (args.format or "table")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no such file or directory: {missing[0]}")
    limits = Limits.from_env().with_settings(args.limit)
    tree = scan_tree(args.paths, limits, follow_links=args.follow_links, strict=args.strict)
    reports = tree.reports
    text = RENDERERS[fmt](reports, skipped=tree.skipped)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    else:
        from ..util.safe_text import echo

        echo(text)  # file and member names are attacker-chosen: escape control and bidi characters
    return 0 if all(r.verdict == "safe" for r in reports) else 1
