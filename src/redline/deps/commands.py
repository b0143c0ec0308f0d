"""``redline deps``: known vulnerabilities of the Python packages a model service uses (FM11)."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_OK, EXIT_VULNERABLE = 0, 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deps",
        help="audit Python dependencies against OSV advisories (FM11)",
        description=(
            "Look up known vulnerabilities of pinned packages in OSV data and rate each on the\n"
            "bug bar. Without --osv-db the OSV API is asked (its URL can be changed with\n"
            "$REDLINE_OSV_URL); with it, an offline export such as PyPI's all.zip is used.\n"
            "Exit 1 when any vulnerability is found."
        ),
        epilog=(
            "Examples:\n"
            "  redline deps --requirements requirements.txt --osv-db all.zip\n"
            "  redline deps --environment --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--requirements", "-r", metavar="FILE", help="a pip requirements file (pinned name==version)")
    which.add_argument("--environment", action="store_true", help="the packages installed in this Python (the default)")
    parser.add_argument("--osv-db", metavar="FILE", help="offline OSV export: a zip, a JSON file or a folder of JSON")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_deps)


def run_deps(args: argparse.Namespace) -> int:
    from .auditor import audit
    from .inputs import from_environment, from_requirements

    inventory = from_requirements(args.requirements) if args.requirements else from_environment()
    vulns = audit(inventory.packages, args.osv_db)
    from ..util.safe_text import echo

    if args.json:
        echo(
            json.dumps(
                {
                    "packages": len(inventory.packages),
                    "vulnerabilities": [v.to_dict() for v in vulns],
                    "unchecked": [{"requirement": r, "reason": why} for r, why in inventory.unchecked],
                },
                indent=2,
            )
        )
    else:
        echo(render_table(vulns, len(inventory.packages), inventory.unchecked))  # names from a requirements file or OSV
    return EXIT_VULNERABLE if vulns else EXIT_OK


def render_table(vulns: list[Any], packages: int, unchecked: list[tuple[str, str]]) -> str:
    lines = []
    if vulns:
        rows = [("PACKAGE", "VERSION", "ADVISORY", "SEVERITY", "FIX", "SUMMARY")]
        for v in vulns:
            advisory = v.id + (f" ({', '.join(v.ids[1:] + v.aliases)})" if v.ids[1:] or v.aliases else "")
            rows.append((v.package, v.version, advisory, v.severity.label, v.fix_hint, v.summary))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
            lines.append("  ".join(cells).rstrip())
        affected = len({v.package for v in vulns})
        lines.append("")
        lines.append(
            f"{len(vulns)} known vulnerabilit{'y' if len(vulns) == 1 else 'ies'} in {affected} of {packages} packages"
        )
    else:
        lines.append(f"No known vulnerabilities in {packages} packages")
    for requirement, reason in unchecked:
        lines.append(f"not checked: {requirement} ({reason})")
    return "\n".join(lines)
