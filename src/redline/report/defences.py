"""The "What the defences buy" section of report.md and report.html (the report's ``defences``
field: the same checks against the bare and the defended model; see redline.pipeline.defended)."""
from __future__ import annotations

from typing import Any

from .formatting import format_value
from .model import Report

TITLE = "What the defences buy"
# What each effect word means, for the reader of the table.
EFFECTS = {
    "stopped": "vulnerable bare, not vulnerable (or not applicable) defended",
    "not stopped": "vulnerable either way; compare the metric and the queries",
    "worse": "not vulnerable bare, vulnerable defended",
    "no change": "the same verdict either way",
    "refused": "the defences refused the attack's requests, so it could not finish",
    "undecided": "one of the two runs ended inconclusive or in error",
    "not compared": "the check did not run against both",
}


def rows(report: Report) -> list[dict[str, str]]:
    """One row of display strings per compared check."""
    out = []
    for row in report.defences["checks"] if report.defences else []:
        metric = row.get("metric")
        cells = {"check": row["check"], "metric": metric or "-", "effect": row["effect"]}
        for side in ("bare", "defended"):
            result: dict[str, Any] | None = row.get(side)
            if result is None:
                cells.update({f"{side}_status": "-", f"{side}_value": "-", f"{side}_queries": "-"})
                continue
            status = result["status"] + (f" ({result['severity']})" if result["status"] == "vulnerable" else "")
            if result["status"] in ("error", "inconclusive") and result.get("reason"):
                status += ": " + _short(result["reason"])
            cells[f"{side}_status"] = status
            cells[f"{side}_value"] = format_value(result.get("value"), 40) if metric else "-"
            cells[f"{side}_queries"] = str(result.get("queries", 0)) + (
                f" ({result['refusals']} refused)" if result.get("refusals") else "")
        out.append(cells)
    return out


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


COLUMNS = (("check", "Check"), ("bare_status", "Bare"), ("defended_status", "Defended"), ("metric", "Metric"),
           ("bare_value", "Bare value"), ("defended_value", "Defended value"), ("bare_queries", "Bare queries"),
           ("defended_queries", "Defended queries"), ("effect", "Effect"))


def intro(report: Report) -> str:
    """One sentence: what was compared with what."""
    d = report.defences or {}
    names = ", ".join(d.get("defences") or []) or "the guard in front of the model"
    where = f" from {d['policy']}" if d.get("policy") else ""
    return (f"The same checks against the bare model ({d.get('baseline', {}).get('spec', '?')}) and behind "
            f"{names}{where} ({d.get('defended', {}).get('spec', '?')}).")


def markdown(report: Report) -> list[str]:
    """The section as Markdown lines (empty when the scan compared nothing)."""
    if not report.defences:
        return []
    from .markdown import code, table, text

    cells = [[code(r[k]) if k == "check" else text(r[k]) for k, _ in COLUMNS] for r in rows(report)]
    used = sorted({r["effect"] for r in rows(report)})
    legend = [f"- {text(word)}: {text(EFFECTS[word])}" for word in used if word in EFFECTS]
    return [f"## {TITLE}", "", text(intro(report)), ""] + table([h for _, h in COLUMNS], cells) + [""] + legend + [""]


def html(report: Report) -> str:
    """The section as HTML (empty when the scan compared nothing); every value escaped."""
    if not report.defences:
        return ""
    from .theme import e

    head = "".join(f"<th>{e(h)}</th>" for _, h in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f'<td class="mono">{e(r[k])}</td>' if k == "check" else f"<td>{e(r[k])}</td>"
                         for k, _ in COLUMNS) + "</tr>"
        for r in rows(report)
    )
    used = sorted({r["effect"] for r in rows(report)})
    legend = "".join(f"<li><b>{e(w)}</b>: {e(EFFECTS[w])}</li>" for w in used if w in EFFECTS)
    return (f'<h2 id="defences">{e(TITLE)}</h2><p>{e(intro(report))}</p>'
            f'<table class="grid"><tr>{head}</tr>{body}</table><ul class="muted">{legend}</ul>')
