"""Plain-text views of the catalog for a terminal: a one-line-per-mode table and a full record."""
from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence

from . import FailureMode, Reference, atlas_name, avid_name

__all__ = ["checks_per_mode", "render_record", "render_table"]

WIDTH = 88
_INITIALS = {"confidentiality": "C", "integrity": "I", "availability": "A", "safety": "S"}
_LEGEND = "Compromises: C confidentiality, I integrity, A availability, S safety."

CheckIds = Mapping[str, Sequence[str]] | Iterable[str]


def checks_per_mode(checks: CheckIds) -> dict[str, list[str]]:
    """Group check ids by mode code.

    Accepts either a mapping ``{"FM04": ["FM04.lira", ...]}`` or a flat iterable of check
    ids, which are grouped by the code before the dot (``FM04.lira`` -> ``FM04``).
    """
    if isinstance(checks, Mapping):
        return {str(code).upper(): list(ids) for code, ids in checks.items()}
    grouped: dict[str, list[str]] = {}
    for check_id in checks:
        grouped.setdefault(check_id.partition(".")[0].upper(), []).append(check_id)
    return grouped


def render_table(modes: Sequence[FailureMode], checks: CheckIds | None = None) -> str:
    """A fixed-width table: code, name, kind, what it compromises, bug-bar range and,
    when ``checks`` is given, how many checks test each mode."""
    header = ["CODE", "NAME", "KIND", "COMPROMISES", "BUG BAR"]
    rows = [
        [m.code, m.name, m.kind, ",".join(_INITIALS[p] for p in m.compromises), m.bug_bar.label]
        for m in modes
    ]
    if checks is not None:
        grouped = checks_per_mode(checks)
        header.append("CHECKS")
        for row, mode in zip(rows, modes):
            row.append(str(len(grouped.get(mode.code, []))))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.append("")
    lines.append(_LEGEND)
    return "\n".join(lines)


def render_record(mode: FailureMode, checks: Sequence[str] = (),
                  details: Mapping[str, Sequence[str]] | None = None) -> str:
    """Everything the catalog knows about ``mode``, plus the ids of the checks that test it
    (each followed by its ``details`` lines, e.g. its parameters, when given)."""
    knowledge = ", ".join(k.replace("_", " ") for k in mode.knowledge) or "none (no attacker)"
    out = [
        f"{mode.code}  {mode.name}",
        (f"{mode.kind} failure; compromises {', '.join(mode.compromises)}; attacker knowledge: {knowledge}; "
         f"violates access control: {'yes' if mode.violates_access else 'no'}"),
    ]
    out[1:] = _wrap(out[1], indent="")
    _section(out, "Summary", _wrap(mode.summary))
    bug_bar = mode.bug_bar
    _section(out, "Bug bar", [*_wrap(f"{bug_bar.label} ({bug_bar.threat})"), *_wrap(bug_bar.reason)])
    _section(out, "Access", _wrap(mode.access_note))
    _section(out, "Scenarios", _bullets(mode.scenarios))
    _section(out, "Mitigations", _bullets(mode.mitigations))
    _section(out, "Checks", _check_lines(checks, details) if checks else ["  none yet"])
    _section(out, "MITRE ATLAS", _id_lines(mode.atlas, atlas_name) or ["  none (no adversary technique applies)"])
    _section(out, "AVID", _id_lines(mode.avid, avid_name))
    _section(out, "References", _bullets(format_reference(r) for r in mode.references))
    return "\n".join(out)


def _check_lines(checks: Sequence[str], details: Mapping[str, Sequence[str]] | None) -> list[str]:
    lines: list[str] = []
    for check_id in checks:
        lines.extend(_bullets([check_id]))
        lines.extend((details or {}).get(check_id, ()))
    return lines


def format_reference(ref: Reference) -> str:
    """``Authors (year). Title. Venue. URL`` with the parts that are known."""
    parts = []
    head = ", ".join(ref.authors)
    if ref.year is not None:
        head = f"{head} ({ref.year})" if head else f"({ref.year})"
    if head:
        parts.append(head)
    parts.append(ref.title)
    if ref.venue:
        parts.append(ref.venue)
    text = ". ".join(p.rstrip(".") for p in parts) + "."
    return f"{text} {ref.url}" if ref.url else text


def _section(out: list[str], title: str, body: list[str]) -> None:
    out.extend(["", title, *body])


def _wrap(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=False)


def _bullets(items: Iterable[str]) -> list[str]:
    lines: list[str] = []
    for item in items:
        lines.extend(textwrap.wrap(item, WIDTH, initial_indent="  - ", subsequent_indent="    ",
                                   break_on_hyphens=False, break_long_words=False))
    return lines


def _id_lines(ids: Sequence[str], name_of) -> list[str]:
    if not ids:
        return []
    width = max(len(i) for i in ids)
    return [f"  {i.ljust(width)}  {name_of(i)}" for i in ids]
