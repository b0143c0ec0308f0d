"""report.md: a readable summary for pull requests, tickets and terminals."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..catalog import MODE_CODES
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
from .defences import markdown as defences_section
from .model import Report
from .modes import mode_name

# Characters that Markdown would interpret inline (emphasis, links, code, tables, strikethrough);
# <, > and & become entities so raw HTML in a finding can never render.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _visible(value: Any) -> str:
    """Control and bidi characters (ANSI codes in an error message, U+202E in a name) shown as
    escapes such as ``\\x1b``: a document neither runs them nor hides that they were there."""
    return document_text(value)


def text(value: Any) -> str:
    """Inline-safe text: one line, Markdown syntax and HTML tags neutralised."""
    s = " ".join(_visible(value).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def code(value: Any) -> str:
    """A code span that cannot be broken out of, whatever backticks ``value`` holds.

    Pipes are escaped because GitHub splits table cells on them even inside code spans.
    """
    s = " ".join(_visible(value).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def fenced(value: str) -> list[str]:
    value = _visible(value)
    longest = max((len(run) for run in re.findall(r"`{3,}", value)), default=2)
    fence = "`" * (longest + 1)
    return [fence, value.rstrip("\n"), fence]


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """A pipe table; cells must already be escaped."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _anchor(i: int) -> str:
    return f"finding-{i}"


def render(report: Report, base_dir: Path | None = None) -> str:
    findings = ordered(report.findings)
    out: list[str] = []
    out += _header(report)
    out += _incomplete_banner(report)
    out += _actions(findings)
    out += _summary(report)
    out += _findings_table(findings)
    out += defences_section(report)  # only when the scan compared a bare and a defended model
    for i, finding in enumerate(findings, 1):
        out += _finding_section(i, finding)
    out += _coverage(report)
    return "\n".join(out).rstrip() + "\n"


def _header(report: Report) -> list[str]:
    name, version = tool_identity(report.tool)
    elapsed = format_seconds(duration_seconds(report.started_at, report.finished_at))
    caps = report.target.get("capabilities") or {}
    caps_text = ", ".join(f"{k}: {format_value(v)}" for k, v in caps.items()) or "n/a"
    rows = [
        ("Target", code(report.target.get("spec", "?"))),
        ("Target capabilities", text(caps_text)),
        ("Data", code(report.data.get("spec")) if report.data.get("spec") else "none"),
        ("Started", text(report.started_at)),
        ("Finished", text(f"{report.finished_at} ({elapsed})")),
        ("Tool", text(f"{name} {version}")),
        ("Worst severity", f"**{report.worst_severity.label}**"),
    ]
    stated, assumed = context_lines(report.context, report.context_assumed)
    if stated:
        rows.append(("Deployment context", text(stated)))
    if assumed:
        rows.append(("Assumed (not stated)", text(assumed)))
    return [f"# redline report: {text(report.target.get('spec', '?'))}", ""] + table(["", ""], rows) + [""]


def _summary(report: Report) -> list[str]:
    statuses = status_counts(report.findings)
    severities = severity_counts(report.findings)
    tested = sum(1 for v in report.coverage.values() if v == "tested")
    out = ["## Summary", ""]
    out += [f"{len(report.findings)} checks ran; {tested} of {len(MODE_CODES)} failure modes were tested.", ""]
    out += table(["Status", "Findings"], [(STATUS_LABELS[s], str(n)) for s, n in statuses.items()])
    out += ["", "Vulnerable findings by severity:", ""]
    out += table(["Severity", "Findings"], [(s.label, str(n)) for s, n in severities.items() if s or n])
    return out + [""]


def _findings_table(findings: list[Finding]) -> list[str]:
    out = ["## Findings", ""]
    if not findings:
        return out + ["No checks ran.", ""]
    rows = []
    for i, f in enumerate(findings, 1):
        metrics = ", ".join(f"{text(k)} = {text(v)}" for k, v in key_metrics(f))
        rows.append(
            (
                f"[{i}](#{_anchor(i)})",
                code(f.check),
                _status(f),
                _severity(f),
                text(f.title),
                _inconclusive_reason(f) or metrics or (text(f.reason) if f.reason else ""),
            )
        )
    return out + table(["#", "Check", "Status", "Severity", "Title", "Key metrics"], rows) + [""]


def _status(f: Finding) -> str:
    # Inconclusive is bold so that it is not read as a pass.
    label = text(STATUS_LABELS[f.status])
    return f"**{label}**" if f.status is Status.INCONCLUSIVE else label


def _inconclusive_reason(f: Finding) -> str:
    return text(f"could not decide: {f.reason}") if f.status is Status.INCONCLUSIVE and f.reason else ""


def _severity(f: Finding) -> str:
    if f.status is not Status.VULNERABLE:
        return "–"
    return f"**{f.severity.label}**" if f.severity >= Severity.IMPORTANT else f.severity.label


def _finding_section(i: int, f: Finding) -> list[str]:
    out = [f'<a id="{_anchor(i)}"></a>', "", f"### {i}. {text(f.check)}: {text(f.title)}", ""]
    facts = [
        ("Mode", text(f"{f.mode} {mode_name(f.mode)}" if mode_name(f.mode) != f.mode else f.mode)),
        ("Status", _status(f)),
        ("Severity", _severity(f)),
        ("Seed", str(f.seed)),
        ("Attack queries", str(f.queries)),
        ("Evaluation queries", str(f.evaluation_queries)),
        ("Time", text(format_seconds(f.seconds))),
        ("Finding id", code(f.id)),
    ]
    out += [f"- **{name}:** {value}" for name, value in facts] + [""]
    if f.rationale:
        out += [f"**Rationale.** {text(f.rationale)}", ""]
    out += _remediation(f)
    if f.summary:
        out += [f"**Summary.** {text(f.summary)}", ""]
    if f.reason:
        label = {Status.ERROR: "Error", Status.INCONCLUSIVE: "Why inconclusive"}.get(f.status, "Reason")
        out += [f"**{label}.** {text(f.reason)}", ""]
    if f.metrics:
        out += ["**Metrics**", ""]
        out += table(["Metric", "Value"], [(text(k), text(format_value(v))) for k, v in f.metrics.items()]) + [""]
    if f.params:
        out += ["**Parameters**", ""]
        out += table(["Parameter", "Value"], [(text(k), text(format_value(v))) for k, v in f.params.items()]) + [""]
    out += _evidence(f.evidence)
    return out


def _evidence(evidence: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if any(key != "traceback" for key in evidence):
        out += ["**Evidence**", ""]
    for key, value in evidence.items():
        if key == "traceback":
            continue
        values = value if isinstance(value, list) and value and all(artifact_path(v) for v in value) else None
        if values is not None:
            out.append(f"- {text(key)}:")
            for v in values:
                link = f"![{text(v)}](<{v}>)" if is_image_path(v) else f"[{text(v)}](<{v}>)"
                out.append(f"  - {link}")
        elif artifact_path(value):
            out.append(f"- {text(key)}: [{text(value)}](<{value}>)")
        elif data_series_note(value):
            out.append(f"- {text(key)}: {text(data_series_note(value))}")
        else:
            out.append(f"- {text(key)}: {text(format_value(value, 300))}")
    if out:
        out.append("")
    if isinstance(evidence.get("traceback"), str):
        out += ["<details><summary>Traceback</summary>", ""] + fenced(evidence["traceback"]) + ["", "</details>", ""]
    return out


def _incomplete_banner(report: Report) -> list[str]:
    if report.complete:
        return []
    pending = ", ".join(code(c) for c in report.pending_checks) or "none"
    return [
        f"> **Incomplete report: the scan was interrupted.** {len(report.pending_checks)} selected checks "
        f"did not run ({pending}). Run the same command with `--resume` to finish; finished checks are kept.",
        "",
    ]


def _actions(findings: list[Finding]) -> list[str]:
    """The prioritised action list: worst severity first, then the strongest measured attack."""
    items = action_items(findings)
    if not items:
        return []
    anchors = {id(f): i for i, f in enumerate(findings, 1)}
    out = ["## What to do first", ""]
    for n, f in enumerate(items, 1):
        steps, _, retest = remediation_parts(f)
        out.append(f"{n}. **{f.severity.label}** [{text(f.check)}](#{_anchor(anchors[id(f)])}): {text(f.title)}")
        out.append("")
        for step in steps[:2]:
            out += [f"   {text(step)}", ""]
        if retest:
            out += [f"   Re-test: {code(retest)}", ""]
    return out


def _remediation(f: Finding) -> list[str]:
    if not f.remediation:
        return []
    steps, also, retest = remediation_parts(f)
    out = ["**Remediation.**", ""]
    out += [f"- {text(step)}" for step in steps]
    out += [f"- Also: {text(item)}" for item in also]
    if retest:
        out += ["", "Re-test after the fix:", ""] + fenced(retest)
    return out + [""]


def _coverage(report: Report) -> list[str]:
    by_mode = findings_by_mode(report.findings)
    rows = []
    for code_ in MODE_CODES:
        status = report.coverage.get(code_, "not_covered")
        checks = ", ".join(code(f.check) for f in by_mode.get(code_, []))
        rows.append((code_, text(mode_name(code_)), text(COVERAGE_LABELS.get(status, status)), checks))
    return ["## Coverage of the failure modes", ""] + table(["Code", "Failure mode", "Coverage", "Checks"], rows) + [""]
