"""report.sarif: SARIF 2.1.0 for code-scanning dashboards (GitHub, Azure DevOps, IDEs).

One run; one rule per check that ran. Results:

- a ``vulnerable`` finding is a ``kind: "fail"`` result whose level follows the bug bar
  (Critical/Important -> error, Moderate -> warning, Low or unrated -> note);
- an ``error`` finding is a ``kind: "review"`` result with level ``none`` (SARIF requires
  ``none`` for any kind but ``fail``): the check could not decide, so a person should look.
  The same failure is also listed as a tool execution notification, and the invocation is
  marked unsuccessful;
- an ``inconclusive`` finding is a ``kind: "open"`` result (SARIF's "could not determine
  whether this passes or fails") with level ``none`` and the reason in its message: the
  check ran but its sample or budget could not decide, which is not a pass;
- passing and not-applicable checks produce no result; the run's ``properties`` carry the
  coverage of all 17 failure modes so that gap stays visible.
"""
from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC
from pathlib import Path, PurePath
from typing import Any

from ..findings import Finding, Status
from ..severity import Severity
from ..util.safe_text import document_text
from .formatting import key_metrics, parse_time, tool_identity
from .model import Report
from .modes import mode_info

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FINGERPRINT_KEY = "redlineFindingId/v1"

_LEVELS = {
    Severity.CRITICAL: "error",
    Severity.IMPORTANT: "error",
    Severity.MODERATE: "warning",
    Severity.LOW: "note",
    Severity.NONE: "note",
}
# GitHub code scanning ranks security alerts by this CVSS-like score on the rule.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.IMPORTANT: "8.0",
    Severity.MODERATE: "5.5",
    Severity.LOW: "3.0",
}
_MODEL_FILE_SCHEMES = ("onnx", "sklearn", "skops", "torch", "file")


def level_for(severity: Severity) -> str:
    return _LEVELS[severity]


def render(report: Report, base_dir: Path | None = None) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def to_sarif(report: Report) -> dict[str, Any]:
    name, version = tool_identity(report.tool)
    rules, rule_index = _rules(report.findings)
    location = _target_location(str(report.target.get("spec", "")))
    results = []
    notifications = []
    for f in report.findings:
        if f.status is Status.VULNERABLE:
            results.append(_result(f, rule_index[f.check], location, kind="fail", level=level_for(f.severity)))
        elif f.status is Status.INCONCLUSIVE:
            results.append(_result(f, rule_index[f.check], location, kind="open", level="none"))
        elif f.status is Status.ERROR:
            results.append(_result(f, rule_index[f.check], location, kind="review", level="none"))
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": f"{f.check} did not complete: {f.reason or 'unknown error'}"},
                    "associatedRule": {"id": f.check, "index": rule_index[f.check]},
                }
            )
    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    for key, stamp in (("startTimeUtc", report.started_at), ("endTimeUtc", report.finished_at)):
        utc = _utc(stamp)
        if utc:
            invocation[key] = utc
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run = {
        "tool": {
            "driver": {
                "name": name,
                "version": version,
                "semanticVersion": version,
                "rules": rules,
            }
        },
        "invocations": [invocation],
        "results": results,
        "properties": {
            "schema": report.schema,
            "target": report.target,
            "data": report.data,
            "coverage": report.coverage,
        },
    }
    return _clean({"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]})


def _rules(findings: list[Finding]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One rule per check id, in order of first appearance."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for f in findings:
        if f.check in index:
            continue
        index[f.check] = len(rules)
        info = mode_info(f.mode)
        tags = ["security", "machine-learning", f.mode]
        if info.bug_bar_threat and info.bug_bar_threat not in tags:
            tags.append(info.bug_bar_threat)
        properties: dict[str, Any] = {"mode": f.mode, "mode_name": info.name, "tags": tags}
        if info.bug_bar_threat:
            properties["bug_bar_threat"] = info.bug_bar_threat
        worst = max(
            (g.severity for g in findings if g.check == f.check and g.status is Status.VULNERABLE), default=None
        )
        if worst in _SECURITY_SEVERITY:
            properties["security-severity"] = _SECURITY_SEVERITY[worst]
        description = f"{f.mode} {info.name}" if info.name != f.mode else f.mode
        if info.summary:
            description += f": {info.summary}"
        rule = {
            "id": f.check,
            "name": _rule_name(f),
            "shortDescription": {"text": f.title or f.check},
            "fullDescription": {"text": description},
            "defaultConfiguration": {"level": level_for(worst) if worst is not None else "warning"},
            "properties": properties,
        }
        help_ = _help(findings, f.check, info)
        if help_:
            rule["help"] = help_
        rules.append(rule)
    return rules, index


def _help(findings: list[Finding], check: str, info: Any) -> dict[str, str] | None:
    """The rule's help: the remediation of its worst vulnerable finding, else the mode's mitigations."""
    from .formatting import action_items, remediation_parts

    ranked = action_items(g for g in findings if g.check == check and g.remediation)
    if ranked:
        steps, also, retest = remediation_parts(ranked[0])
        lines = steps + [f"Also: {m}" for m in also]
        text = " ".join(lines) + (f" Re-test after the fix: {retest}" if retest else "")
        markdown = "\n".join(f"- {line}" for line in lines)
        if retest:
            markdown += f"\n\nRe-test after the fix:\n\n```\n{retest}\n```"
        return {"text": text, "markdown": markdown}
    try:
        from ..catalog import get_mode

        mitigations = list(get_mode(info.code).mitigations)
    except Exception:  # a report from another catalog version: no help rather than no SARIF
        mitigations = []
    if not mitigations:
        return None
    return {"text": " ".join(mitigations), "markdown": "\n".join(f"- {m}" for m in mitigations)}


def _rule_name(f: Finding) -> str:
    """SARIF rule names are opaque identifiers; build a PascalCase one from the title."""
    words = re.findall(r"[A-Za-z0-9]+", f.title) or re.findall(r"[A-Za-z0-9]+", f.check)
    return "".join(w[:1].upper() + w[1:] for w in words)


def _result(f: Finding, index: int, location: dict[str, Any], *, kind: str, level: str) -> dict[str, Any]:
    return {
        "ruleId": f.check,
        "ruleIndex": index,
        "kind": kind,
        "level": level,
        "message": {"text": document_text(_message(f))},  # shown by code-scanning UIs: no raw controls or bidi
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: f.id},
        "properties": {
            "status": f.status.value,
            "severity": f.severity.label,
            "mode": f.mode,
            "metrics": f.to_dict()["metrics"],  # NaN/Inf become null, as in report.json
            "params": f.to_dict()["params"],
            "seed": f.seed,
            "queries": f.queries,
            "evaluation_queries": f.evaluation_queries,
            "seconds": round(float(f.seconds), 3),
            "remediation": f.remediation,
        },
    }


def _message(f: Finding) -> str:
    if f.status is Status.ERROR:
        return f"{f.title}: the check could not complete ({f.reason or 'unknown error'})."
    if f.status is Status.INCONCLUSIVE:
        return f"{f.title}: inconclusive ({f.reason or 'the run could not decide'})."
    parts = [f"{f.title}: {f.severity.label} severity ({f.mode})."]
    if f.rationale:
        parts.append(f.rationale.strip())
    metrics = ", ".join(f"{k}={v}" for k, v in key_metrics(f, 4))
    if metrics:
        parts.append(f"Key metrics: {metrics}.")
    if f.remediation:
        parts.append(f"What to do: {f.remediation.splitlines()[0]} (full remediation in the rule's help).")
    return " ".join(parts)


def _target_location(spec: str) -> dict[str, Any]:
    """Where results point: the model file when the target is one, else a path derived from the spec.

    Code-scanning services accept repository-relative paths (or file: URIs) but reject other
    schemes, so ``zoo:NAME`` becomes ``zoo/NAME`` and ``https://host:8080/predict`` becomes
    ``host_8080/predict``; the spec itself is kept in the location's message. GitHub also
    wants a region, so the first line is named.
    """
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.lower()
    if sep and scheme in _MODEL_FILE_SCHEMES and rest and not rest.startswith("//"):
        uri = _path_uri(rest)
    elif scheme in ("http", "https") and rest.startswith("//"):
        # Host, port and path only: user:password@ and query strings may hold secrets.
        parts = urllib.parse.urlsplit(spec)
        host = parts.hostname or "endpoint"
        try:
            port = f"{parts.port}" if parts.port else ""
        except ValueError:  # a malformed port is not worth failing the report over
            port = ""
        uri = urllib.parse.quote((host + (f"_{port}" if port else "") + parts.path).rstrip("/"))
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        spec = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    elif sep and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) and rest:
        uri = f"{scheme}/{urllib.parse.quote(rest.lstrip('/'), safe='/')}"
    else:
        uri = _path_uri(spec or "target")
    return {
        "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}},
        "message": {"text": f"target {spec}"},
    }


def _path_uri(path: str) -> str:
    pure = PurePath(path)
    return Path(path).as_uri() if pure.is_absolute() else urllib.parse.quote(pure.as_posix())


def _utc(stamp: str) -> str | None:
    """SARIF times are UTC; naive timestamps are taken as UTC."""
    moment = parse_time(stamp)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _clean(obj: Any) -> Any:
    """Plain JSON: numpy values to Python, NaN/Inf to null (SARIF property bags are JSON)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


__all__ = ["FINGERPRINT_KEY", "SARIF_SCHEMA", "SARIF_VERSION", "level_for", "render", "to_sarif"]
