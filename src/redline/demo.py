"""``redline demo``: build the zoo, scan the zoo targets, and write an index page that
links each target's full report.

By default each target is scanned with the checks of the failure modes it is a control
for (its planted weakness, or the defence of a hardened twin), plus input fuzzing, so every
check runs against its positive and negative controls in minutes. ``full=True`` scans
every target with every check instead, which retrains CNNs many times over and takes
much longer.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Sequence

from .findings import Status
from .pipeline.progress import Progress

_SEVERITY_COLOURS = {"Critical": "#7f1d1d", "Important": "#c2410c", "Moderate": "#b45309", "Low": "#4d7c0f", "None": "#475569"}


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
    rows = []
    for i, name in enumerate(names, start=1):
        if progress:
            print(f"== [{i}/{len(names)}] zoo:{name}", file=sys.stderr, flush=True)
        select = None if full else ",".join(sorted({*zoo.describe(name)["modes"], "FM11"}))
        report = scan(f"zoo:{name}", select=select, budget=budget, out=out / name, formats=["json", "html", "md"],
                      resume=True, progress=progress)
        rows.append((name, zoo.describe(name), report))
    index = out / "index.html"
    index.write_text(_index_html(rows), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(
        [{"target": f"zoo:{n}", "worst_severity": r.worst_severity.label,
          "findings": [{"check": f.check, "status": f.status.value, "severity": f.severity.label} for f in r.findings]}
         for n, _, r in rows], indent=2), encoding="utf-8")
    return index


def _index_html(rows) -> str:
    e = html.escape
    body = []
    for name, info, report in rows:
        worst = report.worst_severity.label
        cells = []
        for f in report.findings:
            if f.status is Status.VULNERABLE:
                text = f"{e(f.check)}: <b style='color:{_SEVERITY_COLOURS[f.severity.label]}'>{e(f.severity.label)}</b>"
            else:
                text = f"{e(f.check)}: {e(f.status.value.replace('_', ' '))}"
            cells.append(text)
        body.append(
            f"<tr><td><a href='{e(name)}/report.html'>zoo:{e(name)}</a></td>"
            f"<td>{e(str(info.get('description', '')))}<br><small>weakness: {e(str(info.get('weakness', '')))}</small></td>"
            f"<td><span class='sev' style='background:{_SEVERITY_COLOURS[worst]}'>{e(worst)}</span></td>"
            f"<td>{'<br>'.join(cells)}</td></tr>"
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>redline demo</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#0f172a}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e2e8f0;padding:.5rem;text-align:left;vertical-align:top}}
.sev{{color:#fff;border-radius:4px;padding:.1rem .5rem;font-weight:600}}small{{color:#64748b}}</style></head>
<body><h1>redline demo</h1><p>Each zoo target has a known weakness or is the hardened twin of one: together they
are the positive and negative controls of redline's checks. Every target is scanned with the checks of the failure
modes it is a control for, plus input fuzzing. Open a target for its full report.</p>
<table><tr><th>target</th><th>what it is</th><th>worst severity</th><th>findings</th></tr>
{''.join(body)}</table></body></html>"""
