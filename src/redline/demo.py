"""``redline demo``: build the zoo, scan the zoo targets, and write an index page that
links each target's full report.

By default each target is scanned with the checks of the failure modes it is a control
for (its planted weakness, or the defence of a hardened twin), plus input fuzzing, so every
check runs against its positive and negative controls in minutes. ``full=True`` scans
every target with every check instead, which retrains CNNs many times over and takes
much longer.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .findings import Status


def run_demo(out: str | Path, *, budget: int | None = None, names: Sequence[str] | None = None,
             progress: bool = True, full: bool = False) -> Path:
    from . import zoo
    from .api import scan

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names) if names else zoo.names()
    known = set(zoo.names())
    for name in names:
        if name not in known:
            from .errors import UsageError

            raise UsageError(f"unknown zoo target {name!r} (known: {', '.join(sorted(known))})")
    from .zoo.expected import compare

    rows = []
    for i, name in enumerate(names, start=1):
        if progress:
            print(f"== [{i}/{len(names)}] zoo:{name}", file=sys.stderr, flush=True)
        select = None if full else demo_select(zoo.describe(name)["modes"])
        report = scan(f"zoo:{name}", select=select, budget=budget, out=out / name, formats=["json", "html", "md"],
                      resume=True, progress=progress)
        rows.append((name, zoo.describe(name), report))
    index = out / "index.html"
    index.write_text(_index_html(rows), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(
        [{"target": f"zoo:{n}", "worst_severity": r.worst_severity.label,
          "findings": [{"check": f.check, "status": f.status.value, "severity": f.severity.label} for f in r.findings],
          "expected": [c.to_dict() for c in compare(zoo.entry(n).expected, r.findings)]}
         for n, _, r in rows], indent=2), encoding="utf-8")
    return index


def demo_select(modes) -> str:
    """The ``--select`` for a zoo entry: the modes it is a control for that have checks (an
    entry may also be a control for modes no check tests yet), plus FM11."""
    from .checks import all_checks

    tested = {check.mode for check in all_checks().values()}
    return ",".join(sorted({m for m in modes if m in tested} | {"FM11"}))


def _index_html(rows) -> str:
    from . import zoo
    from .report.theme import badge, e, page
    from .zoo.expected import KIND_WORDS, compare, finding_note

    body = []
    differ_total = 0
    for name, info, report in rows:
        expectations = zoo.entry(name).expected
        comparisons = compare(expectations, report.findings)
        differ = sum(1 for c in comparisons if not c.agrees)
        differ_total += differ
        cells = []
        for f in report.findings:
            note, agrees = finding_note(expectations, f)
            if f.status is Status.VULNERABLE:
                text = f"{e(f.check)}: {badge(f.severity)}"
            else:
                text = f"{e(f.check)}: {e(f.status.value.replace('_', ' '))}"
            if note:
                cls = "agrees" if agrees else "differs" if agrees is False else "unstated"
                text += f" <small class='{cls}'>({e(note)})</small>"
            cells.append(text)
        expected_cells = []
        for c in comparisons:
            mark = "<span class='agrees'>&#10003;</span>" if c.agrees else "<span class='differs'>&#10007; differs</span>"
            ex = c.expectation
            expected_cells.append(
                f"{mark} {e(ex.selector)}: expected <b>{e(ex.verdict.replace('_', ' '))}</b> "
                f"({e(KIND_WORDS[ex.kind])}), found <b>{e(c.found.replace('_', ' '))}</b>"
                + (f"<br><small>{e(ex.why)}</small>" if ex.why else "")
            )
        verdict = ("<small class='agrees'>as expected</small>" if comparisons and not differ else
                   f"<small class='differs'>{differ} differ</small>" if differ else "<small>no expectation</small>")
        body.append(
            f"<tr class='{'differs-row' if differ else ''}'><td><a href='{e(name)}/report.html'>zoo:{e(name)}</a></td>"
            f"<td>{e(str(info.get('description', '')))}<br><small>weakness: {e(str(info.get('weakness', '')))}</small></td>"
            f"<td>{badge(report.worst_severity)}<br>{verdict}</td>"
            f"<td>{'<br>'.join(expected_cells) or '<small>none stated</small>'}</td>"
            f"<td>{'<br>'.join(cells)}</td></tr>"
        )
    from .util.wording import count

    verb = "differs" if differ_total == 1 else "differ"
    headline = (f"<p class='differs'><b>{count(differ_total, 'expectation')} {verb} from what was found</b>: see the rows "
                "marked &#10007;.</p>" if differ_total else "<p class='agrees'><b>Every expectation was met.</b></p>")
    intro = """<p>Each zoo target has a known weakness or is the hardened twin of one: together they
are the positive and negative controls of redline's checks. Every target is scanned with the checks of the failure
modes it is a control for, plus input fuzzing. The <i>expected</i> column says what each scan should find and why:
a <i>planted weakness</i>, an <i>honest known weakness</i> of an ordinary model (an undefended CNN is evadable), or a
<i>hardened</i> twin whose defence should hold; &#10003; marks agreement, &#10007; a difference. Open a target for its
full report.</p>"""
    table = ("<table class='grid'><tr><th>target</th><th>what it is</th><th>worst severity</th>"
             f"<th>expected vs found</th><th>findings</th></tr>\n{''.join(body)}</table>")
    return page(title="redline demo", brand="redline demo index", heading="redline demo",
                body="\n".join((intro, headline, table)))


def register(sub: Any) -> None:
    """The ``redline demo`` sub-command (the CLI lists this module in its COMMAND_MODULES)."""
    import argparse

    from .pipeline.commands import positive_int

    d = sub.add_parser(
        "demo",
        help="build the zoo and scan every zoo target with the checks it is a control for",
        description=("Build the demo models, scan each with the checks of the failure modes it is a positive or "
                     "negative control for (every check with --full), and write an HTML report."),
        epilog="example:\n  redline demo --out redline-demo/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--out", metavar="DIR", default="redline-demo", help="output folder (default redline-demo)")
    d.add_argument("--budget", metavar="N", type=positive_int, help="attack budget per check (default: each check's own)")
    d.add_argument("--targets", metavar="NAMES", help="comma-separated zoo names (default: all)")
    d.add_argument("--full", action="store_true",
                   help="scan every target with every check (much slower: retrains models many times)")
    d.add_argument("--no-progress", action="store_true", help="do not show progress on standard error")
    d.set_defaults(handler=demo_command)


def demo_command(args: Any) -> int:
    index = run_demo(args.out, budget=args.budget, names=args.targets.split(",") if args.targets else None,
                     progress=not args.no_progress, full=args.full)
    print(f"redline demo: report written to {index}")
    return 0
