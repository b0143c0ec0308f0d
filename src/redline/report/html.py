"""report.html: one self-contained page (the shared theme's inline CSS, images as data URIs, no scripts).

Finding fields can carry attacker-chosen text (an endpoint's error message, a file name), so
every value is escaped, only relative paths inside the report folder are linked or embedded,
and a Content-Security-Policy forbids scripts and remote resources as a second line of defence.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..findings import Finding, Status
from ..severity import Severity
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
from .defences import html as defences_section
from .model import MODE_CODES, Report
from .modes import mode_name
from .theme import badge, e, page, pill, severity_class

MAX_IMAGE_BYTES = 4_000_000  # larger images are linked instead of embedded


def _status_pill(status: Status) -> str:
    return pill("st", status.value, STATUS_LABELS[status])


def _coverage_pill(value: str) -> str:
    cls = value if value in COVERAGE_LABELS else "not_covered"
    return pill("cov", cls, COVERAGE_LABELS.get(value, value))


def render(report: Report, base_dir: Path | None = None) -> str:
    findings = ordered(report.findings)
    spec = report.target.get("spec", "?")
    parts = [
        _incomplete_banner(report),
        _actions(findings),
        _cards(report),
        _summary_panels(report),
        _index(findings),
        defences_section(report),  # only when the scan compared a bare and a defended model
        '<h2 id="details">Findings in detail</h2>' if findings else "",
        *(_finding(i, f, base_dir) for i, f in enumerate(findings, 1)),
        _coverage(report),
    ]
    return page(
        title=f"redline report: {spec}",
        brand="redline scan report",
        heading=str(spec),
        heading_class="mono",
        header=_header(report),
        body="\n".join(p for p in parts if p),
        footer=_footer(report),
    )


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
    return f'<dl class="meta">{meta}</dl>'


def _cards(report: Report) -> str:
    counts = status_counts(report.findings)
    worst = report.worst_severity
    tested = sum(1 for v in report.coverage.values() if v == "tested")
    cards = [
        f'<div class="card worst {severity_class(worst)}"><div class="n">{e(worst.label)}</div>'
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
            f'<div class="sevbar {severity_class(sev)}">{badge(sev)}<div class="track">'
            f'<div class="fill" style="width:{100 * n / total:.0f}%"></div></div><span class="cnt">{n}</span></div>'
        )
    rows = []
    for code, items in findings_by_mode(report.findings).items():
        counts = status_counts(items)
        vulnerable = [f for f in items if f.status is Status.VULNERABLE]
        worst = badge(max(f.severity for f in vulnerable)) if vulnerable else '<span class="muted">–</span>'
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
    return badge(f.severity) if f.status is Status.VULNERABLE else '<span class="muted">–</span>'


def _finding(i: int, f: Finding, base_dir: Path | None) -> str:
    sev_cls = severity_class(f.severity) if f.status is Status.VULNERABLE else ""
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


def raster_image_type(data: bytes) -> str | None:
    """The media type of PNG, JPEG, GIF or WebP bytes, read from their signature; else None."""
    mime = next((m for sig, m in _SIGNATURES if data.startswith(sig)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    return mime


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
    mime = raster_image_type(data)
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
            f'<li class="{severity_class(f.severity)}"><div class="head">{badge(f.severity)}'
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
