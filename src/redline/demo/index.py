"""The demo's index page and ``summary.json``.

The page opens on a summary that fits one screen: what was scanned, how long it took, and
per failure mode the verdict and severity each check reached on each zoo entry, each a
link to the finding in that entry's report. Below it, every entry's expectations beside
what was found.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..findings import Status

KIND_TITLES = {
    "tour": "Tour: each family of checks on the demo model that shows it best, at demo budgets",
    "full": "Full run: every demo model with every check of the modes it is a control for, at default budgets",
    "every check": "Every check on every demo model, at default budgets",
}


def write_index(out: Path, rows: list[tuple[Any, dict[str, Any], Any]], *, kind: str, timing: dict[str, float]) -> Path:
    """Write ``index.html`` and ``summary.json`` into ``out``; ``rows`` are (stop, entry facts, report)."""
    from .. import zoo
    from ..zoo.expected import compare

    index = out / "index.html"
    index.write_text(_index_html(rows, kind, timing), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(
        [{"target": f"zoo:{stop.target}", "run": kind, "shows": list(stop.shows),
          "worst_severity": r.worst_severity.label,
          "findings": [{"check": f.check, "mode": f.mode, "status": f.status.value, "severity": f.severity.label,
                        "budget": f.budget, "seconds": round(float(f.seconds), 2)} for f in r.findings],
          "expected": [c.to_dict() for c in compare(zoo.entry(stop.target).expected, r.findings)]}
         for stop, _, r in rows], indent=2), encoding="utf-8")
    (out / "timing.json").write_text(json.dumps({"run": kind, **timing}, indent=2), encoding="utf-8")
    return index


def _anchor(report: Any, finding: Any) -> str:
    """The id of ``finding`` in its report page (the report numbers findings worst first)."""
    from ..report.formatting import ordered

    for i, f in enumerate(ordered(report.findings), start=1):
        if f is finding:
            return f"finding-{i}"
    return "findings"


def _summary(rows, kind: str, timing: dict[str, float]) -> str:
    """The one-screen summary: what was scanned, then one line per failure mode."""
    from .. import zoo
    from ..report.modes import mode_name
    from ..report.theme import badge, e
    from ..util.wording import count
    from ..zoo.expected import finding_note

    by_mode: dict[str, list[str]] = {}
    n_findings = 0
    for stop, _, report in rows:
        expectations = zoo.entry(stop.target).expected
        for f in report.findings:
            n_findings += 1
            note, agrees = finding_note(expectations, f)
            if f.status is Status.VULNERABLE:
                verdict = badge(f.severity)
            else:
                verdict = f"<span class='muted'>{e(f.status.value.replace('_', ' '))}</span>"
            mark = (" <span class='agrees' title='as expected'>&#10003;</span>" if agrees or _passes_as_expected(expectations, f)
                    else " <span class='differs' title='differs from the expectation'>&#10007;</span>" if agrees is False
                    else "")
            link = f"{e(stop.target)}/report.html#{_anchor(report, f)}"
            by_mode.setdefault(f.mode, []).append(
                f"<a href='{link}'>zoo:{e(stop.target)}</a> <span class='mono'>{e(f.check.split('.', 1)[-1])}</span> "
                f"{verdict}{mark}")
    lines = "".join(
        f"<tr><td class='mono'>{e(code)}</td><td>{e(mode_name(code))}</td><td>{' &middot; '.join(cells)}</td></tr>"
        for code, cells in sorted(by_mode.items()))
    scanned = ", ".join(f"<a href='{e(stop.target)}/report.html'>zoo:{e(stop.target)}</a>" for stop, _, _ in rows)
    minutes = timing.get("wall_seconds", 0.0) / 60
    took = (f"Took {minutes:.1f} minutes ({timing.get('cpu_seconds', 0.0) / 60:.1f} CPU-minutes)."
            if timing else "")
    reduced = (" Findings ran with small demo budgets, and each says which settings differ from the check's "
               "defaults; <code>redline demo --full</code> runs every check of every control at default budgets."
               if kind == "tour" else "")
    return (f"<section id='summary'><p><b>{e(KIND_TITLES.get(kind, kind))}.</b> Scanned "
            f"{count(len(rows), 'demo model')} with {count(n_findings, 'check')}: {scanned}. {took}{reduced}</p>"
            "<table class='grid'><tr><th>mode</th><th>failure mode</th>"
            "<th>verdicts (&#10003; as the zoo expects, &#10007; differs; each links to its finding)</th></tr>"
            f"{lines}</table></section>")


def _passes_as_expected(expectations, finding) -> bool:
    """A passing (or not applicable) verdict that matches its expectation: ``finding_note``
    only annotates vulnerable findings, the summary marks passes too."""
    from ..zoo.expected import explaining

    expectation = explaining(expectations, finding.check)
    return (expectation is not None and finding.status is not Status.VULNERABLE
            and expectation.verdict == finding.status.value)


def _index_html(rows, kind: str, timing: dict[str, float]) -> str:
    from .. import zoo
    from ..report.theme import badge, e, page
    from ..util.wording import count
    from ..zoo.expected import KIND_WORDS, compare, finding_note

    body = []
    differ_total = 0
    for stop, info, report in rows:
        name = stop.target
        expectations = zoo.entry(name).expected
        comparisons = [c for c in compare(expectations, report.findings) if c.found != "not run" or kind != "tour"]
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
        shows = "".join(f"<br><small>tour: {e(s)}</small>" for s in stop.shows) if kind == "tour" else ""
        body.append(
            f"<tr class='{'differs-row' if differ else ''}'><td><a href='{e(name)}/report.html'>zoo:{e(name)}</a></td>"
            f"<td>{e(str(info.get('description', '')))}<br><small>weakness: {e(str(info.get('weakness', '')))}</small>"
            f"{shows}</td>"
            f"<td>{badge(report.worst_severity)}<br>{verdict}</td>"
            f"<td>{'<br>'.join(expected_cells) or '<small>none stated</small>'}</td>"
            f"<td>{'<br>'.join(cells)}</td></tr>"
        )
    verb = "differs" if differ_total == 1 else "differ"
    headline = (f"<p class='differs'><b>{count(differ_total, 'expectation')} {verb} from what was found</b>: see the rows "
                "marked &#10007;.</p>" if differ_total else "<p class='agrees'><b>Every expectation was met.</b></p>")
    scope = ("The tour runs the checks named in each row; expectations about checks it does not run are left out "
             "here (<code>--full</code> runs them all)." if kind == "tour" else
             "Every target is scanned with the checks of the failure modes it is a control for, plus input fuzzing.")
    intro = f"""<h2 id="expectations">Expected vs found</h2><p>Each zoo target has a known weakness or is the
hardened twin of one: together they are the positive and negative controls of redline's checks. {scope} The
<i>expected</i> column says what each scan should find and why: a <i>planted weakness</i>, an <i>honest known
weakness</i> of an ordinary model (an undefended CNN is evadable), or a <i>hardened</i> twin whose defence should
hold; &#10003; marks agreement, &#10007; a difference. Open a target for its full report.</p>"""
    table = ("<table class='grid'><tr><th>target</th><th>what it is</th><th>worst severity</th>"
             f"<th>expected vs found</th><th>findings</th></tr>\n{''.join(body)}</table>")
    return page(title="redline demo", brand="redline demo index", heading="redline demo",
                body="\n".join((_summary(rows, kind, timing), headline, intro, table)))
