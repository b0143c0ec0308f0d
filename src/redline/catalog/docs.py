"""Generate ``docs/modes.md`` from the catalog.

    python -m redline.catalog.docs            # rewrite docs/modes.md
    python -m redline.catalog.docs --check    # exit 1 if docs/modes.md is stale

The page lists no checks on purpose: checks come and go with the code, and
``redline modes CODE`` shows the current ones.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import FailureMode, atlas_name, avid_name, load_modes
from .render import format_reference

__all__ = ["DEFAULT_PATH", "main", "render_markdown"]

# src/redline/catalog/docs.py -> repository root / docs / modes.md
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "modes.md"


def render_markdown(modes: Sequence[FailureMode]) -> str:
    lines = [
        "# Failure modes",
        "",
        "<!-- Generated from src/redline/catalog/modes.yaml by `python -m redline.catalog.docs`;",
        "     edit the YAML and regenerate instead of editing this page. -->",
        "",
        "redline names the ways a machine-learning system can fail with the stable codes below.",
        "FM01 to FM11 are intentional failures (attacks); FM12 to FM17 are unintentional ones.",
        "Severity ranges follow the AI/ML bug bar where it rates the threat; where it does not,",
        "the range and its reason are redline's own. `redline modes CODE` prints a record",
        "together with the checks that test it and their parameters; `redline checks CHECK`",
        "shows one check's parameters, which `redline scan --set CHECK.PARAM=VALUE` changes.",
        "",
        "| Code | Name | Kind | Compromises | Bug bar |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in modes:
        lines.append(f"| [{m.code}](#{_anchor(m)}) | {m.name} | {m.kind} | "
                     f"{', '.join(m.compromises)} | {m.bug_bar.label} |")
    for m in modes:
        lines.extend(_section(m))
    return "\n".join(lines) + "\n"


def _section(m: FailureMode) -> list[str]:
    knowledge = ", ".join(k.replace("_", " ") for k in m.knowledge) or "none (no attacker)"
    out = [
        "",
        f"## {_heading(m)}",
        "",
        f"*{m.kind.capitalize()}.* {m.summary}",
        "",
        f"- Compromises: {', '.join(m.compromises)}",
        f"- Attacker knowledge: {knowledge}",
        f"- Violates traditional access control: {'yes' if m.violates_access else 'no'}. {m.access_note}",
        f"- Bug bar: **{m.bug_bar.label}** ({m.bug_bar.threat}). {m.bug_bar.reason}",
        "",
        "Scenarios:",
        "",
        *[f"- {s}" for s in m.scenarios],
        "",
        "Mitigations:",
        "",
        *[f"- {s}" for s in m.mitigations],
        "",
        "MITRE ATLAS: "
        + (", ".join(f"`{i}` {atlas_name(i)}" for i in m.atlas) or "none (no adversary technique applies)"),
        "",
        "AVID: " + ", ".join(f"`{i}` {avid_name(i)}" for i in m.avid),
        "",
        "References:",
        "",
        *[f"- {format_reference(r)}" for r in m.references],
    ]
    return out


def _heading(m: FailureMode) -> str:
    return f"{m.code} {m.name}"


def _anchor(m: FailureMode) -> str:
    """The anchor GitHub-style renderers give the mode's heading."""
    kept = "".join(c for c in _heading(m).lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redline.catalog.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"where to write (default {DEFAULT_PATH})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render_markdown(load_modes())
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale; run: python -m redline.catalog.docs", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
