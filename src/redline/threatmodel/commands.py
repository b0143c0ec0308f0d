"""``redline threat-model`` and ``redline triage``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..util.safe_text import echo

__all__ = ["register", "run_threat_model", "run_triage"]

THREAT_MODEL_EPILOG = """\
examples:
  redline threat-model examples/image-api.system.yaml              summary in the terminal
  redline threat-model system.yaml --out threat-model/             JSON, Markdown and HTML
  redline threat-model system.yaml --json                          JSON for scripts
  redline threat-model --interview --out system.yaml               answer questions, write the file

The description format is redline.system/1 (schema: redline/threatmodel/system.schema.json).
exit codes: 0 done, 2 usage or input error.
"""

TRIAGE_EPILOG = """\
examples:
  redline triage examples/stolen-model.incident.yaml
  redline triage incident.yaml --json          for ticket systems

The report format is redline.incident/1 (schema: redline/threatmodel/incident.schema.json).
exit codes: 0 done, 2 usage or input error.
"""

OUTPUT_FILES = ("threat-model.json", "threat-model.md", "threat-model.html")


def register(subparsers: Any) -> None:
    tm = subparsers.add_parser(
        "threat-model",
        help="which failure modes apply to a described ML system, how severe, and what to do",
        description="Judge all 17 failure modes against a system description (system.yaml): applicability\n"
        "and why, attacker knowledge, impact, bug-bar severity, the redline commands that test\n"
        "each mode, and mitigations. With --interview, write the description by answering questions.",
        epilog=THREAT_MODEL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tm.add_argument("system", nargs="?", metavar="SYSTEM.yaml", help="the system description")
    tm.add_argument("--json", action="store_true", help="print the threat model as JSON")
    tm.add_argument(
        "--out",
        metavar="DIR",
        help="write threat-model.json, .md and .html into DIR (with --interview: the system.yaml to write)",
    )
    tm.add_argument("--interview", action="store_true", help="ask the questions in the terminal and write system.yaml")
    tm.add_argument("--force", action="store_true", help="with --interview: overwrite an existing --out file")
    tm.set_defaults(handler=run_threat_model)

    tr = subparsers.add_parser(
        "triage",
        help="classify a reported ML incident, rate it on the bug bar, and plan the response",
        description="Match a reported incident (incident.yaml) to failure modes, with the evidence for each,\n"
        "rate it on the bug bar with the affected system's facts, and print a response playbook.",
        epilog=TRIAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("incident", metavar="INCIDENT.yaml", help="the incident report")
    tr.add_argument("--json", action="store_true", help="print the triage as JSON (for ticket systems)")
    tr.add_argument(
        "--allow-outside-files",
        action="store_true",
        help="let the incident's system: file lie outside the incident file's folder",
    )
    tr.set_defaults(handler=run_triage)


def run_threat_model(args: argparse.Namespace) -> int:
    if args.interview:
        return _interview(args)
    if args.force:
        raise UsageError("--force only applies to --interview")
    if args.system is None:
        raise UsageError("name a system description (SYSTEM.yaml), or write one with --interview")
    from .assess import build_threat_model
    from .render import render_text

    model = build_threat_model(args.system)
    if args.out is not None:
        written = write_threat_model(model, args.out)
        if args.json:
            echo(json.dumps(model.to_dict(), indent=2, ensure_ascii=False))
        else:
            echo(render_text(model).rsplit("\n", 1)[0])  # drop the "use --out" hint
            for path in written:
                echo(f"  wrote {path}")
        return 0
    # names, descriptions and paths come from the YAML: escape control and bidi characters
    echo(json.dumps(model.to_dict(), indent=2, ensure_ascii=False) if args.json else render_text(model))
    return 0


def write_threat_model(model: Any, out_dir: str | Path) -> list[Path]:
    """Write the JSON, Markdown and HTML reports into ``out_dir``; return their paths."""
    from ..util.atomic import atomic_write_text
    from .html import render_html
    from .render import render_markdown

    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a folder for the threat-model reports")
    json_text = json.dumps(model.to_dict(), indent=2, ensure_ascii=False) + "\n"
    contents = (json_text, render_markdown(model), render_html(model))
    try:
        return [atomic_write_text(folder / name, text) for name, text in zip(OUTPUT_FILES, contents)]
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def _interview(args: argparse.Namespace) -> int:
    if args.system is not None:
        raise UsageError("--interview writes a new description; do not also name SYSTEM.yaml (use --out FILE)")
    if args.json:
        raise UsageError("--json does not apply to --interview")
    from ..util.atomic import atomic_write_text
    from .interview import run_interview, to_yaml

    target = Path(args.out) if args.out is not None else None
    if target is not None:
        if target.is_dir():
            raise UsageError(f"--out {target} is a folder; give the file to write, e.g. {target / 'system.yaml'}")
        if target.exists() and not args.force:
            raise UsageError(f"{target} already exists; choose another --out or add --force")
    document = run_interview(sys.stdin, sys.stderr)
    text = to_yaml(document)
    if target is None:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write_text(target, text)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    echo(f"redline: wrote {target}; see its threat model with: redline threat-model {target}", file=sys.stderr)
    return 0


def run_triage(args: argparse.Namespace) -> int:
    from .incident import Incident
    from .incident_render import render_triage_text
    from .triage import triage_incident

    result = triage_incident(Incident.from_yaml(args.incident, allow_outside=args.allow_outside_files))
    echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else render_triage_text(result))
    return 0
