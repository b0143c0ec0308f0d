"""report.html: one self-contained page (inline CSS, images as data URIs, no scripts).

Finding fields can carry attacker-chosen text (an endpoint's error message, a file name), so
every value is escaped, only relative paths inside the report folder are linked or embedded,
and a Content-Security-Policy forbids scripts and remote resources as a second line of defence.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..findings import Finding, Status
from ..severity import Severity
from ..util.safe_text import document_text
from .formatting import (
    COVERAGE_LABELS,
    action_items,
    context_lines,
    data_series_note,
    remediation_parts,
    STATUS_LABELS,
    artifact_path,
    duration_seconds,
    findings_by_mode,
    format_seconds,
    format_value,
    is_image_path,
    key_metrics,
    ordered,
    severity_counts,
    status_counts,
    tool_identity,
)
from .model import MODE_CODES, Report
from .modes import mode_name

MAX_IMAGE_BYTES = 4_000_000  # larger images are linked instead of embedded

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--line:#e3e7ec;--bg:#f5f6f8;--card:#fff;
--crit:#7f1d1d;--imp:#c81e1e;--mod:#e08a00;--low:#2563eb;--none:#94a3b8;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
html{color-scheme:light}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",
Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
.wrap{max-width:1120px;margin:0 auto;padding:0 24px}
header.top{background:#111827;color:#f9fafb;padding:26px 0 22px}
header.top .brand{font-weight:700;letter-spacing:.08em;text-transform:uppercase;font-size:12px;color:#f87171}
header.top h1{margin:2px 0 14px;font-size:26px;font-weight:600;word-break:break-all}
.meta{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:6px 24px;margin:0}
.meta div{min-width:0}
.meta dt{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#9ca3af}
.meta dd{margin:0;font-size:14px;overflow-wrap:anywhere}
main{padding:8px 0 40px}
h2{font-size:19px;margin:30px 0 12px;font-weight:600}
h4{margin:16px 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
code,.mono{font-family:var(--mono);font-size:.9em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:12px;margin-top:22px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .n{font-size:26px;font-weight:650;line-height:1.2}
.card .l{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.card.worst{border-top:4px solid var(--sev,var(--none))}
.panels{display:grid;grid-template-columns:minmax(240px,1fr) 2fr;gap:16px}
@media (max-width:980px){.panels{grid-template-columns:1fr}}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:6px 14px 12px;overflow-x:auto}
.panel h3{font-size:14px;margin:8px 0}
.sevbar{display:flex;align-items:center;gap:10px;margin:7px 0}
.sevbar .track{flex:1;height:8px;background:#eef1f4;border-radius:4px;overflow:hidden}
.sevbar .fill{height:100%;background:var(--sev)}
.sevbar .badge{width:6.6em;min-width:0}
.sevbar .cnt{width:2.5em;text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;min-width:5.6em;text-align:center;padding:1px 8px;border-radius:4px;font-size:12px;
font-weight:600;color:#fff;background:var(--sev,var(--none));white-space:nowrap}
.sev-critical{--sev:var(--crit)}.sev-important{--sev:var(--imp)}.sev-moderate{--sev:var(--mod)}
.sev-low{--sev:var(--low)}.sev-none{--sev:var(--none)}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap;
border:1px solid transparent}
.st-vulnerable{background:#fde8e8;color:#9b1c1c;border-color:#f8b4b4}
.st-not_vulnerable,.cov-tested{background:#def7ec;color:#03543f;border-color:#84e1bc}
.st-not_applicable,.cov-not_applicable{background:#f1f3f5;color:#4b5563;border-color:#d1d5db}
.st-error{background:#f3e8ff;color:#6b21a8;border-color:#d8b4fe}
.st-inconclusive,.cov-inconclusive{background:#fef9c3;color:#854d0e;border-color:#fde047}
.cov-not_covered{background:#fff7ed;color:#9a3412;border-color:#fdba74}
table{border-collapse:collapse;width:100%;background:var(--card)}
table.grid{border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);background:#fafbfc;font-weight:600}
tr:last-child td{border-bottom:0}
th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:var(--mono);font-size:13px}
.panel table td,.panel table th{padding:5px 6px}
a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
details.finding{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--accent,#cbd5e1);
border-radius:8px;margin:10px 0}
details.finding>summary{cursor:pointer;list-style:none;padding:11px 14px;display:flex;flex-wrap:wrap;gap:8px 12px;
align-items:center}
details.finding>summary::-webkit-details-marker{display:none}
details.finding>summary::before{content:"\\25B8";color:var(--muted);width:10px}
details.finding[open]>summary::before{content:"\\25BE"}
details.finding[open]>summary{border-bottom:1px solid var(--line)}
.finding .check{font-family:var(--mono);font-size:13px;color:var(--muted)}
.finding .ttl{font-weight:600;flex:1 1 260px;min-width:0;overflow-wrap:anywhere}
.finding .km{font-family:var(--mono);font-size:12px;color:var(--muted)}
.f-vulnerable{--accent:var(--sev)}.f-error{--accent:#9333ea}.f-not_vulnerable{--accent:#31c48d}
.f-not_applicable{--accent:#cbd5e1}.f-inconclusive{--accent:#eab308}
.fbody{padding:4px 18px 16px}
.fbody p{margin:10px 0;overflow-wrap:anywhere}
.fbody .lead{font-size:15.5px}
.note{border-radius:6px;padding:8px 12px;margin:10px 0;overflow-wrap:anywhere}
.note.reason{background:#f1f3f5;color:#374151}.note.err{background:#faf5ff;color:#581c87}
.note.undecided{background:#fefce8;color:#713f12}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
@media (max-width:760px){.cols{grid-template-columns:1fr}}
table.kv{font-size:13.5px}
table.kv th{width:42%;text-transform:none;letter-spacing:0;font-size:13px;background:none;color:var(--fg);
font-weight:500;font-family:var(--mono);overflow-wrap:anywhere}
table.kv td{overflow-wrap:anywhere;font-family:var(--mono);font-size:13px;font-variant-numeric:tabular-nums}
table.kv th,table.kv td{padding:4px 8px}
.plots{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px;max-width:100%}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:12px;color:var(--muted);margin-top:4px;font-family:var(--mono);overflow-wrap:anywhere}
details.tb{margin-top:10px}details.tb summary{cursor:pointer;color:#6b21a8;font-weight:600;font-size:13px}
pre{background:#0f172a;color:#e2e8f0;padding:12px;border-radius:6px;overflow:auto;font:12.5px/1.45 var(--mono);
white-space:pre-wrap;overflow-wrap:anywhere}
.muted{color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:18px 0 30px;border-top:1px solid var(--line)}
@media print{body{background:#fff}details.finding>summary::before{content:none}}
"""


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute. Control and bidi characters
    (ANSI colour codes, NUL, U+202E) are shown as visible escapes; newlines and tabs stay for <pre>."""
    return html.escape(document_text(value), quote=True)


def _sev_class(severity: Severity) -> str:
    return f"sev-{severity.label.lower()}"


def _badge(severity: Severity) -> str:
    return f'<span class="badge {_sev_class(severity)}">{e(severity.label)}</span>'


def _status_pill(status: Status) -> str:
    return f'<span class="pill st-{status.value}">{e(STATUS_LABELS[status])}</span>'


def _coverage_pill(value: str) -> str:
    cls = value if value in COVERAGE_LABELS else "not_covered"
    return f'<span class="pill cov-{cls}">{e(COVERAGE_LABELS.get(value, value))}</span>'


def render(report: Report, base_dir: Path | None = None) -> str:
    findings = ordered(report.findings)
    spec = report.target.get("spec", "?")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="redline">',
        f"<title>redline report: {e(spec)}</title>",
        f"<style>{_CSS}{_ACTION_CSS}</style></head><body>",
        _header(report),
        '<main class="wrap">',
        _incomplete_banner(report),
        _actions(findings),
        _cards(report),
        _summary_panels(report),
        _index(findings),
        '<h2 id="details">Findings in detail</h2>' if findings else "",
        *(_finding(i, f, base_dir) for i, f in enumerate(findings, 1)),
        _coverage(report),
        "</main>",
        _footer(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _header(report: Report) -> str:
    name, version = tool_identity(report.tool)
    caps = report.target.get("capabilities") or {}
    access = []
    if caps:
        access.append(str(caps.get("outputs", "?")))
        access.append("gradients" if caps.get("gradients") else "no gradients")
        if caps.get("remote"):
            access.append("remote")
    elapsed = format_seconds(duration_seconds(report.started_at, report.finished_at))
    items = [
        ("Data", report.data.get("spec") or "none"),
        ("Target access", ", ".join(access) or "n/a"),
        ("Started", report.started_at),
        ("Duration", elapsed),
        ("Tool", f"{name} {version}"),
    ]
    stated, assumed = context_lines(report.context, report.context_assumed)
    if stated:
        items.append(("Deployment context", stated))
    if assumed:
        items.append(("Assumed (not stated)", assumed))
    meta = "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in items)
    return (
        '<header class="top"><div class="wrap">'
        '<div class="brand">redline scan report</div>'
        f'<h1 class="mono">{e(report.target.get("spec", "?"))}</h1>'
        f'<dl class="meta">{meta}</dl></div></header>'
    )


def _cards(report: Report) -> str:
    counts = status_counts(report.findings)
    worst = report.worst_severity
    tested = sum(1 for v in report.coverage.values() if v == "tested")
    cards = [
        f'<div class="card worst {_sev_class(worst)}"><div class="n">{e(worst.label)}</div>'
        '<div class="l">Worst severity</div></div>'
    ]
    for status in (Status.VULNERABLE, Status.NOT_VULNERABLE, Status.INCONCLUSIVE, Status.NOT_APPLICABLE, Status.ERROR):
        cards.append(
            f'<div class="card"><div class="n">{counts[status]}</div>'
            f'<div class="l">{e(STATUS_LABELS[status])}</div></div>'
        )
    cards.append(
        f'<div class="card"><div class="n">{tested}<span class="muted" style="font-size:16px"> / '
        f'{len(MODE_CODES)}</span></div><div class="l">Modes tested</div></div>'
    )
    return f'<section class="cards">{"".join(cards)}</section>'


def _summary_panels(report: Report) -> str:
    severities = severity_counts(report.findings)
    total = max(1, sum(severities.values()))
    bars = []
    for sev, n in severities.items():
        if sev is Severity.NONE and not n:
            continue
        bars.append(
            f'<div class="sevbar {_sev_class(sev)}">{_badge(sev)}<div class="track">'
            f'<div class="fill" style="width:{100 * n / total:.0f}%"></div></div><span class="cnt">{n}</span></div>'
        )
    rows = []
    for code, items in findings_by_mode(report.findings).items():
        counts = status_counts(items)
        vulnerable = [f for f in items if f.status is Status.VULNERABLE]
        worst = _badge(max(f.severity for f in vulnerable)) if vulnerable else '<span class="muted">–</span>'
        rows.append(
            f"<tr><td class='mono'>{e(code)}</td><td>{e(mode_name(code))}</td>"
            + "".join(f'<td class="num">{counts[s]}</td>' for s in STATUS_LABELS)
            + f"<td>{worst}</td></tr>"
        )
    head = "".join(f'<th class="num">{e(STATUS_LABELS[s])}</th>' for s in STATUS_LABELS)
    by_mode = (
        f"<table><tr><th>Mode</th><th>Name</th>{head}<th>Worst</th></tr>{''.join(rows)}</table>"
        if rows
        else '<p class="muted">No checks ran.</p>'
    )
    return (
        '<h2 id="summary">Summary</h2><div class="panels">'
        f'<div class="panel"><h3>Vulnerable findings by severity</h3>{"".join(bars)}</div>'
        f'<div class="panel"><h3>Findings by failure mode</h3>{by_mode}</div></div>'
    )


def _index(findings: list[Finding]) -> str:
    if not findings:
        return '<h2 id="findings">Findings</h2><p class="muted">No checks ran.</p>'
    rows = []
    for i, f in enumerate(findings, 1):
        metrics = ", ".join(f"{k} {v}" for k, v in key_metrics(f)) or f.reason
        if f.status is Status.INCONCLUSIVE and f.reason:
            metrics = f"could not decide: {f.reason}"
        rows.append(
            f'<tr><td class="num"><a href="#finding-{i}">{i}</a></td>'
            f"<td>{_severity_cell(f)}</td><td>{_status_pill(f.status)}</td>"
            f'<td class="mono">{e(f.check)}</td><td>{e(f.title)}</td>'
            f'<td class="mono" style="font-size:12px">{e(format_value(metrics, 120))}</td></tr>'
        )
    return (
        '<h2 id="findings">Findings</h2><table class="grid"><tr><th>#</th><th>Severity</th><th>Status</th>'
        f"<th>Check</th><th>Title</th><th>Key metrics</th></tr>{''.join(rows)}</table>"
    )


def _severity_cell(f: Finding) -> str:
    return _badge(f.severity) if f.status is Status.VULNERABLE else '<span class="muted">–</span>'


def _finding(i: int, f: Finding, base_dir: Path | None) -> str:
    sev_cls = _sev_class(f.severity) if f.status is Status.VULNERABLE else ""
    is_open = " open" if f.status in (Status.VULNERABLE, Status.ERROR, Status.INCONCLUSIVE) else ""
    km = " · ".join(f"{k} {v}" for k, v in key_metrics(f, 2))
    summary = (
        f"<summary>{_severity_cell(f)}{_status_pill(f.status)}"
        f'<span class="check">{e(f.check)}</span><span class="ttl">{e(f.title)}</span>'
        f'<span class="km">{e(km)}</span></summary>'
    )
    body = ['<div class="fbody">']
    name = mode_name(f.mode)
    body.append(f'<p class="muted">{e(f.mode)}{" · " + e(name) if name != f.mode else ""}</p>')
    if f.rationale:
        body.append(f'<p class="lead"><strong>Rationale.</strong> {e(f.rationale)}</p>')
    body.append(_remediation(f))
    if f.summary:
        body.append(f"<p>{e(f.summary)}</p>")
    if f.reason:
        kind, label = {Status.ERROR: ("err", "Error"), Status.INCONCLUSIVE: ("undecided", "Inconclusive")}.get(
            f.status, ("reason", "Not applicable"))
        body.append(f'<div class="note {kind}"><strong>{label}:</strong> {e(f.reason)}</div>')
    run = {
        "seed": f.seed,
        "queries": f.queries,
        "evaluation_queries": f.evaluation_queries,
        "seconds": format_seconds(f.seconds),
        "finding id": f.id,
    }
    facts = f"<h4>Run</h4>{_kv(run)}" + (f"<h4>Parameters</h4>{_kv(f.params)}" if f.params else "")
    columns = [f"<h4>Metrics</h4>{_kv(f.metrics)}", facts] if f.metrics else [facts]
    body.append('<div class="cols">' + "".join(f"<div>{c}</div>" for c in columns) + "</div>")
    body.append(_evidence(f.evidence, base_dir))
    body.append("</div>")
    return (
        f'<details class="finding f-{f.status.value} {sev_cls}" id="finding-{i}"{is_open}>'
        + summary
        + "".join(body)
        + "</details>"
    )


def _kv(mapping: dict[str, Any]) -> str:
    rows = []
    for key, value in mapping.items():
        rows.append(f"<tr><th>{e(key)}</th><td>{e(format_value(value, 400))}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>'


def _evidence(evidence: dict[str, Any], base_dir: Path | None) -> str:
    if not evidence:
        return ""
    figures: list[str] = []
    rows: list[str] = []
    for key, value in evidence.items():
        if key == "traceback":
            continue
        values = value if isinstance(value, list) else [value]
        if key == "plots" or (values and all(is_image_path(v) for v in values)):
            for v in values:
                figures.append(_figure(v, base_dir))
            continue
        if values and all(artifact_path(v) for v in values):
            links = ", ".join(f'<a href="{e(v)}">{e(v)}</a>' for v in values)
            rows.append(f"<tr><th>{e(key)}</th><td>{links}</td></tr>")
        elif data_series_note(value):
            rows.append(f'<tr><th>{e(key)}</th><td class="muted">{e(data_series_note(value))}</td></tr>')
        else:
            rows.append(f"<tr><th>{e(key)}</th><td>{e(format_value(value, 600))}</td></tr>")
    out = []
    if figures or rows:
        out.append("<h4>Evidence</h4>")
    if figures:
        out.append(f'<div class="plots">{"".join(figures)}</div>')
    if rows:
        out.append(f'<table class="kv">{"".join(rows)}</table>')
    if isinstance(evidence.get("traceback"), str):
        out.append(f'<details class="tb"><summary>Traceback</summary><pre>{e(evidence["traceback"])}</pre></details>')
    return "".join(out)


def _figure(value: Any, base_dir: Path | None) -> str:
    uri = image_data_uri(value, base_dir)
    caption = e(value)
    if uri is None:
        why = "image not embedded (missing, too large or outside the report folder)"
        return f"<figure><figcaption>{why}: {caption}</figcaption></figure>"
    return f'<figure><img src="{uri}" alt="{caption}" loading="lazy"><figcaption>{caption}</figcaption></figure>'


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_data_uri(value: Any, base_dir: Path | None) -> str | None:
    """A ``data:`` URI for an image inside ``base_dir``; None if it is not a safe, readable, known image."""
    rel = artifact_path(value)
    if rel is None or base_dir is None:
        return None
    root = Path(base_dir).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
        return None
    data = path.read_bytes()
    mime = next((m for sig, m in _SIGNATURES if data.startswith(sig)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None and path.suffix.lower() == ".svg" and b"<svg" in data[:4096]:
        mime = "image/svg+xml"  # scripts inside an SVG never run when it is shown through <img>
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _coverage(report: Report) -> str:
    by_mode = findings_by_mode(report.findings)
    rows = []
    for code in MODE_CODES:
        status = report.coverage.get(code, "not_covered")
        checks = ", ".join(e(f.check) for f in by_mode.get(code, [])) or '<span class="muted">–</span>'
        rows.append(
            f'<tr><td class="mono">{code}</td><td>{e(mode_name(code))}</td>'
            f'<td>{_coverage_pill(status)}</td><td class="mono" style="font-size:12.5px">{checks}</td></tr>'
        )
    return (
        '<h2 id="coverage">Coverage of the failure modes</h2>'
        '<table class="grid"><tr><th>Code</th><th>Failure mode</th><th>Coverage</th><th>Checks</th></tr>'
        f"{''.join(rows)}</table>"
    )


_ACTION_CSS = """
.banner{background:#fff4e5;border:1px solid #f59e0b;border-left:6px solid #d97706;border-radius:8px;
padding:12px 16px;margin:22px 0 0;color:#7c2d12}
.banner code{background:#fff;padding:1px 5px;border-radius:4px}
section.actions{margin-top:22px}
ol.actions{list-style:none;margin:0;padding:0;counter-reset:act}
ol.actions>li{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--sev,var(--none));
border-radius:8px;padding:10px 14px;margin:8px 0;counter-increment:act}
ol.actions .head{display:flex;flex-wrap:wrap;gap:6px 10px;align-items:center;margin-bottom:4px}
ol.actions .head::before{content:counter(act) ".";font-weight:700;color:var(--muted)}
ol.actions p{margin:4px 0;overflow-wrap:anywhere}
code.retest{display:block;background:#0f172a;color:#e2e8f0;padding:6px 10px;border-radius:6px;margin-top:6px;
font:12.5px/1.5 var(--mono);white-space:pre-wrap;overflow-wrap:anywhere}
.remedy{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:6px;padding:8px 14px;margin:10px 0}
.remedy ul{margin:4px 0 4px 18px;padding:0}
"""


def _incomplete_banner(report: Report) -> str:
    if report.complete:
        return ""
    pending = ", ".join(report.pending_checks) or "none"
    return (
        '<div class="banner" role="alert"><strong>Incomplete report: the scan was interrupted.</strong> '
        f"{len(report.pending_checks)} selected checks did not run ({e(pending)}). Run the same command "
        "with <code>--resume</code> to finish; finished checks are kept.</div>"
    )


def _actions(findings: list[Finding]) -> str:
    """The prioritised action list: one item per vulnerable finding, what to do and how to re-test."""
    items = action_items(findings)
    if not items:
        return ""
    anchors = {id(f): i for i, f in enumerate(findings, 1)}
    rows = []
    for f in items:
        steps, _, retest = remediation_parts(f)
        advice = "".join(f"<p>{e(step)}</p>" for step in steps[:2])
        rerun = f'<code class="retest">{e(retest)}</code>' if retest else ""
        rows.append(
            f'<li class="{_sev_class(f.severity)}"><div class="head">{_badge(f.severity)}'
            f'<a class="mono" href="#finding-{anchors[id(f)]}">{e(f.check)}</a><span>{e(f.title)}</span></div>'
            f"{advice}{rerun}</li>"
        )
    return (
        '<section class="actions" id="actions"><h2>What to do first</h2>'
        f'<ol class="actions">{"".join(rows)}</ol></section>'
    )


def _remediation(f: Finding) -> str:
    if not f.remediation:
        return ""
    steps, also, retest = remediation_parts(f)
    parts = ['<div class="remedy"><strong>Remediation.</strong><ul>']
    parts += [f"<li>{e(step)}</li>" for step in steps]
    parts += [f"<li>Also: {e(item)}</li>" for item in also]
    parts.append("</ul>")
    if retest:
        parts.append(f'Re-test after the fix:<code class="retest">{e(retest)}</code>')
    parts.append("</div>")
    return "".join(parts)


def _footer(report: Report) -> str:
    name, version = tool_identity(report.tool)
    return (
        f'<footer><div class="wrap">Generated by {e(name)} {e(version)} · '
        f"schema {e(report.schema)} · finished {e(report.finished_at)}</div></footer>"
    )
