"""threat-model.html: one self-contained page (inline CSS and SVG, no scripts, nothing remote).

Names and descriptions come from a user's YAML, so every value is escaped, and a
Content-Security-Policy forbids scripts and remote resources as a second line of defence.
"""

from __future__ import annotations

import html

from ..version import __version__
from ..severity import Severity
from ..util.safe_text import document_text
from .assess import ModeAssessment, ThreatModel, display
from .render import PROPERTY_ORDER, _headline

__all__ = ["render_html"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--line:#e3e7ec;--bg:#f5f6f8;--card:#fff;
--crit:#7f1d1d;--imp:#c81e1e;--mod:#e08a00;--low:#2563eb;--none:#94a3b8;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
header{background:#111827;color:#f9fafb;padding:24px 0 20px}
header .brand{font-weight:700;letter-spacing:.08em;text-transform:uppercase;font-size:12px;color:#f87171}
header h1{margin:2px 0 6px;font-size:26px;font-weight:600}
header p{margin:0;color:#d1d5db;max-width:900px}
main{padding:6px 0 40px}
h2{font-size:19px;margin:30px 0 12px;font-weight:600}
h3{font-size:16px;margin:0}
h4{margin:14px 0 4px;font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
code{font-family:var(--mono);font-size:.88em;background:#eef1f5;padding:1px 4px;border-radius:4px;
overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px;margin-top:18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .n{font-size:26px;font-weight:700}
.card .l{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top;font-size:14px}
th{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.sev{display:inline-block;border-radius:10px;padding:0 9px;font-size:12px;font-weight:600;color:#fff}
.sev-critical{background:var(--crit)}.sev-important{background:var(--imp)}.sev-moderate{background:var(--mod)}
.sev-low{background:var(--low)}.sev-none{background:var(--none)}
details.mode{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:10px 16px}
details.mode summary{cursor:pointer;display:flex;gap:10px;align-items:center;list-style:none}
details.mode summary::-webkit-details-marker{display:none}
.muted{color:var(--muted)}
ul{margin:4px 0 8px;padding-left:20px}
li{margin:2px 0}
.cite{color:var(--muted);font-size:13px}
.done{color:#15803d}
.diagram{overflow-x:auto}
"""


def render_html(model: ThreatModel) -> str:
    system = model.system
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Threat model: {_e(system.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        '<header><div class="wrap"><div class="brand">redline threat model</div>',
        f"<h1>{_e(system.name)}</h1>",
    ]
    if system.description:
        parts.append(f"<p>{_e(system.description)}</p>")
    source = f" from <code>{_e(system.path)}</code>" if system.path else ""
    parts.append(f'<p class="muted">redline {_e(__version__)}{source}</p></div></header>')
    parts.append('<main><div class="wrap">')
    parts += _summary(model)
    parts += [
        "<h2>Data flow</h2>",
        '<p class="muted">Threats are marked, by mode code, where they enter the system.</p>',
        f'<div class="panel diagram">{model.diagram().svg()}</div>',
        '<details><summary class="muted">Mermaid source</summary>',
        f"<pre><code>{_e(model.diagram().mermaid())}</code></pre></details>",
    ]
    parts += _table(model)
    parts.append("<h2>Modes that apply</h2>")
    for a in sorted(model.applicable, key=lambda a: (-a.severity, a.code)):
        parts += _mode(a, open_=a.severity >= Severity.IMPORTANT)
    parts.append("<h2>Modes that do not apply</h2>")
    for a in model.modes:
        if not a.applicable:
            parts += _mode(a, open_=False)
    parts += _facts(model)
    parts.append("</div></main></body></html>")
    return "\n".join(parts) + "\n"


def _summary(model: ThreatModel) -> list[str]:
    counts = {s: 0 for s in reversed(Severity) if s is not Severity.NONE}
    for a in model.applicable:
        counts[a.severity] += 1
    cards = [
        (
            f'<div class="card"><div class="n">{len(model.applicable)}/{len(model.modes)}</div>'
            '<div class="l">modes apply</div></div>'
        )
    ]
    cards += [
        f'<div class="card"><div class="n">{n}</div><div class="l">{_badge(s)}</div></div>' for s, n in counts.items()
    ]
    out = ["<h2>Summary</h2>", f"<p>{_e(_headline(model))}</p>", f'<div class="cards">{"".join(cards)}</div>']
    if model.system.assumed:
        names = ", ".join(f"<code>{_e(n)}</code>" for n in model.system.assumed)
        out.append(f'<p class="muted">Assumed because the description does not state them: {names}.</p>')
    return out


def _table(model: ThreatModel) -> list[str]:
    out = [
        "<h2>All failure modes</h2>",
        "<table><thead><tr><th>Code</th><th>Mode</th><th>Applies</th><th>Severity</th><th>Why</th></tr></thead><tbody>",
    ]
    for a in model.modes:
        severity = _badge(a.severity) if a.applicable else '<span class="muted">-</span>'
        out.append(
            f'<tr><td><a href="#{a.code}">{a.code}</a></td><td>{_e(a.mode.name)}</td>'
            f"<td>{'yes' if a.applicable else 'no'}</td><td>{severity}</td><td>{_e(a.why)}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _mode(a: ModeAssessment, open_: bool) -> list[str]:
    bar = a.mode.bug_bar
    shown = a.severity if a.applicable else Severity.NONE
    out = [
        f'<details class="mode" id="{a.code}"{" open" if open_ else ""}>',
        (
            f"<summary>{_badge(shown)}<h3>{a.code} {_e(a.mode.name)}</h3>"
            f'<span class="muted">{_e(a.mode.kind)}</span></summary>'
        ),
    ]
    out.append("<h4>Why it applies</h4>" if a.applicable else "<h4>Why it does not apply</h4>")
    out.append("<ul>" + "".join(f"<li>{_e(r.text)}{_cites(r)}</li>" for r in a.reasons) + "</ul>")
    if a.notes:
        out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in a.notes) + "</ul>")
    out.append("<h4>Severity</h4>")
    out.append(f"<p>{_badge(shown)} bug-bar range {_e(bar.label)}. {_e(a.rationale)}</p>")
    if a.applicable:
        knowledge = ", ".join(k.replace("_", "-") for k in a.mode.knowledge) or "none (no attacker)"
        out.append("<h4>Attacker knowledge</h4>")
        out.append(f"<p>Taxonomy: {_e(knowledge)}. {_e(' '.join(a.knowledge))}</p>")
        out.append("<h4>Impact</h4><ul>")
        out += [
            f"<li><strong>{_e(p.capitalize())}</strong>: {_e(a.impact[p])}</li>"
            for p in PROPERTY_ORDER
            if a.impact.get(p)
        ]
        out.append("</ul>")
        out.append("<h4>How to test it</h4>")
        out.append(f"<p>{_e(a.coverage.note)}</p>")
        items = [
            f"<li><code>{_e(c.command)}</code>: {_e(c.title)}"
            + (f' <span class="cite">({_e(c.note)})</span>' if c.note else "")
            + "</li>"
            for c in a.coverage.checks
        ]
        items += [f"<li><code>{_e(t.command)}</code>: {_e(t.what)}</li>" for t in a.coverage.tools]
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
        out.append("<h4>Mitigations</h4><ul>")
        for m in a.mitigations:
            mark = ' <span class="done">(in place)</span>' if m.status == "in_place" else ""
            out.append(f"<li>{_e(m.action)}{mark}</li>")
        out.append("</ul>")
    out.append("</details>")
    return out


def _facts(model: ThreatModel) -> list[str]:
    out = [
        "<h2>Facts used</h2>",
        "<table><thead><tr><th>Fact</th><th>Value</th><th>From</th><th>Stated</th></tr></thead><tbody>",
    ]
    for name, fact in model.system.facts.items():
        out.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{_e(display(fact.value))}</td>"
            f"<td><code>{_e(fact.source)}</code></td><td>{'yes' if fact.stated else 'assumed'}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _cites(reason) -> str:
    if not reason.cites:
        return ""
    return f' <span class="cite">({_e("; ".join(c.text for c in reason.cites))})</span>'


def _badge(severity: Severity) -> str:
    return f'<span class="sev sev-{severity.label.lower()}">{severity.label}</span>'


def _e(value: object) -> str:
    return html.escape(document_text(value), quote=True)  # control and bidi characters shown as escapes
