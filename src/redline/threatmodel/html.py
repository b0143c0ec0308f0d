"""threat-model.html: one self-contained page in the shared report theme (inline CSS and SVG,
no scripts, nothing remote).

Names and descriptions come from a user's YAML, so every value is escaped (``report.theme.e``),
and the theme's Content-Security-Policy forbids scripts and remote resources as a second line
of defence.
"""

from __future__ import annotations

from ..report.theme import badge, e, page
from ..severity import Severity
from ..version import __version__
from .assess import ModeAssessment, ThreatModel, display
from .render import PROPERTY_ORDER, _headline

__all__ = ["render_html"]

def render_html(model: ThreatModel) -> str:
    system = model.system
    header = []
    if system.description:
        header.append(f"<p>{e(system.description)}</p>")
    source = f" from <code>{e(system.path)}</code>" if system.path else ""
    header.append(f'<p class="muted">redline {e(__version__)}{source}</p>')
    parts = _summary(model)
    parts += [
        "<h2>Data flow</h2>",
        '<p class="muted">Threats are marked, by mode code, where they enter the system.</p>',
        f'<div class="panel diagram">{model.diagram().svg()}</div>',
        '<details><summary class="muted">Mermaid source</summary>',
        f"<pre><code>{e(model.diagram().mermaid())}</code></pre></details>",
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
    return page(
        title=f"Threat model: {system.name}",
        brand="redline threat model",
        heading=str(system.name),
        header="\n".join(header),
        body="\n".join(parts),
    )


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
        f'<div class="card"><div class="n">{n}</div><div class="l">{badge(s)}</div></div>' for s, n in counts.items()
    ]
    out = ["<h2>Summary</h2>", f"<p>{e(_headline(model))}</p>", f'<div class="cards">{"".join(cards)}</div>']
    if model.system.assumed:
        names = ", ".join(f"<code>{e(n)}</code>" for n in model.system.assumed)
        out.append(f'<p class="muted">Assumed because the description does not state them: {names}.</p>')
    return out


def _table(model: ThreatModel) -> list[str]:
    out = [
        "<h2>All failure modes</h2>",
        '<table class="grid"><thead><tr><th>Code</th><th>Mode</th><th>Applies</th><th>Severity</th><th>Why</th></tr></thead><tbody>',
    ]
    for a in model.modes:
        severity = badge(a.severity) if a.applicable else '<span class="muted">-</span>'
        out.append(
            f'<tr><td><a href="#{a.code}">{a.code}</a></td><td>{e(a.mode.name)}</td>'
            f"<td>{'yes' if a.applicable else 'no'}</td><td>{severity}</td><td>{e(a.why)}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _mode(a: ModeAssessment, open_: bool) -> list[str]:
    bar = a.mode.bug_bar
    shown = a.severity if a.applicable else Severity.NONE
    out = [
        f'<details class="mode" id="{a.code}"{" open" if open_ else ""}>',
        (
            f"<summary>{badge(shown)}<h3>{a.code} {e(a.mode.name)}</h3>"
            f'<span class="muted">{e(a.mode.kind)}</span></summary>'
        ),
    ]
    out.append("<h4>Why it applies</h4>" if a.applicable else "<h4>Why it does not apply</h4>")
    out.append("<ul>" + "".join(f"<li>{e(r.text)}{_cites(r)}</li>" for r in a.reasons) + "</ul>")
    if a.notes:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in a.notes) + "</ul>")
    out.append("<h4>Severity</h4>")
    out.append(f"<p>{badge(shown)} bug-bar range {e(bar.label)}. {e(a.rationale)}</p>")
    if a.applicable:
        knowledge = ", ".join(k.replace("_", "-") for k in a.mode.knowledge) or "none (no attacker)"
        out.append("<h4>Attacker knowledge</h4>")
        out.append(f"<p>Taxonomy: {e(knowledge)}. {e(' '.join(a.knowledge))}</p>")
        out.append("<h4>Impact</h4><ul>")
        out += [
            f"<li><strong>{e(p.capitalize())}</strong>: {e(a.impact[p])}</li>"
            for p in PROPERTY_ORDER
            if a.impact.get(p)
        ]
        out.append("</ul>")
        out.append("<h4>How to test it</h4>")
        out.append(f"<p>{e(a.coverage.note)}</p>")
        items = [
            f"<li><code>{e(c.command)}</code>: {e(c.title)}"
            + (f' <span class="cite">({e(c.note)})</span>' if c.note else "")
            + "</li>"
            for c in a.coverage.checks
        ]
        items += [f"<li><code>{e(t.command)}</code>: {e(t.what)}</li>" for t in a.coverage.tools]
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
        out.append("<h4>Mitigations</h4><ul>")
        for m in a.mitigations:
            mark = ' <span class="done">(in place)</span>' if m.status == "in_place" else ""
            out.append(f"<li>{e(m.action)}{mark}</li>")
        out.append("</ul>")
    out.append("</details>")
    return out


def _facts(model: ThreatModel) -> list[str]:
    out = [
        "<h2>Facts used</h2>",
        '<table class="grid"><thead><tr><th>Fact</th><th>Value</th><th>From</th><th>Stated</th></tr></thead><tbody>',
    ]
    for name, fact in model.system.facts.items():
        out.append(
            f"<tr><td><code>{e(name)}</code></td><td>{e(display(fact.value))}</td>"
            f"<td><code>{e(fact.source)}</code></td><td>{'yes' if fact.stated else 'assumed'}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _cites(reason) -> str:
    if not reason.cites:
        return ""
    return f' <span class="cite">({e("; ".join(c.text for c in reason.cites))})</span>'
