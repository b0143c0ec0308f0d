"""SARIF 2.1.0 for code-scanning dashboards (GitHub, Azure DevOps, IDEs): redline's one SARIF writer.

:class:`SarifLog` builds the document (rules declared once and referenced by index, results,
locations with percent-encoded URIs, tool notifications) and checks the rules of the format
that are easy to break: a result names a declared rule, levels and kinds come from SARIF's
vocabulary, and any kind but ``fail`` has level ``none``. Producers only map their records
onto it: :func:`to_sarif` below for a scan report (``report.sarif``), and
``filescan.render.to_sarif`` for ``redline scan-files --format sarif``.

The scan report is one run with one rule per check that ran. Results:

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


LEVELS = ("none", "note", "warning", "error")
KINDS = ("notApplicable", "pass", "fail", "review", "open", "informational")


def artifact_uri(path: str) -> str:
    """A SARIF ``uri`` for a file path: a percent-encoded URI reference, ``file://`` for absolute
    paths (Windows drive paths included). Spaces, ``#``, ``%``, ``?`` and control characters are
    encoded, so no file name can change what the URI points at; a name that is not valid UTF-8
    (a surrogate-escaped str from the file system) keeps its raw bytes, percent-encoded."""
    posix = path.replace("\\", "/")

    def encode(text: str) -> str:
        return urllib.parse.quote(text, safe="/", errors="surrogateescape")

    if posix.startswith("/"):
        return "file://" + encode(posix)
    if re.match(r"^[A-Za-z]:/", posix):  # a Windows drive path
        return "file:///" + posix[:2] + encode(posix[2:])
    return encode(posix)


def location(uri: str, *, message: str | None = None, first_line: bool = False) -> dict[str, Any]:
    """A result location. ``first_line`` names line 1 as the region (GitHub code scanning wants a
    region to show an alert against a file); ``message`` says what the location stands for."""
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if first_line:
        physical["region"] = {"startLine": 1}
    out: dict[str, Any] = {"physicalLocation": physical}
    if message is not None:
        out["message"] = _text(message)
    return out


def _text(message: str) -> dict[str, str]:
    """A SARIF message: code-scanning UIs show it, so control and bidi characters become visible escapes."""
    return {"text": document_text(message)}


class SarifLog:
    """One SARIF run under construction: declare rules, add results, then :meth:`to_dict`."""

    def __init__(self, name: str, version: str):
        self.name = name
        self.version = version
        self.rules: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self._rule_index: dict[str, int] = {}
        self._invocation: dict[str, Any] | None = None

    def has_rule(self, rule_id: str) -> bool:
        return rule_id in self._rule_index

    def add_rule(self, rule_id: str, *, name: str, short: str, full: str | None = None,
                 default_level: str | None = None, guidance: dict[str, str] | None = None,
                 properties: dict[str, Any] | None = None) -> int:
        """Declare a rule once (later calls for the same id change nothing); returns its index.
        ``guidance`` is the rule's ``help`` (``text`` and ``markdown``): what to do about it."""
        if rule_id in self._rule_index:
            return self._rule_index[rule_id]
        rule: dict[str, Any] = {"id": rule_id, "name": name, "shortDescription": {"text": short}}
        if full is not None:
            rule["fullDescription"] = {"text": full}
        if default_level is not None:
            rule["defaultConfiguration"] = {"level": _checked_level(default_level)}
        if properties is not None:
            rule["properties"] = properties
        if guidance:
            rule["help"] = guidance
        self._rule_index[rule_id] = len(self.rules)
        self.rules.append(rule)
        return self._rule_index[rule_id]

    def add_result(self, rule_id: str, *, level: str, message: str, locations: list[dict[str, Any]],
                   kind: str = "fail", fingerprints: dict[str, str] | None = None,
                   properties: dict[str, Any] | None = None) -> None:
        if rule_id not in self._rule_index:
            raise ValueError(f"SARIF result for undeclared rule {rule_id!r}")
        if kind not in KINDS:
            raise ValueError(f"unknown SARIF result kind {kind!r}")
        if kind != "fail" and level != "none":
            raise ValueError(f"a SARIF result of kind {kind!r} must have level 'none', not {level!r}")
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "ruleIndex": self._rule_index[rule_id],
            "kind": kind,
            "level": _checked_level(level),
            "message": _text(message),
            "locations": locations,
        }
        if fingerprints:
            result["partialFingerprints"] = fingerprints
        if properties is not None:
            result["properties"] = properties
        self.results.append(result)

    def add_notification(self, rule_id: str, message: str, *, level: str = "error") -> None:
        """A tool execution notification (a check that could not run), tied to its rule."""
        self.notifications.append({
            "level": _checked_level(level),
            "message": _text(message),
            "associatedRule": {"id": rule_id, "index": self._rule_index[rule_id]},
        })

    def record_invocation(self, started: str | None = None, finished: str | None = None) -> None:
        """Add the run's invocation: successful unless an error notification was added, with its
        UTC start and end times where the stamps can be read."""
        self._invocation = {"started": started, "finished": finished}

    def to_dict(self, *, artifacts: list[str] | None = None, properties: dict[str, Any] | None = None) -> dict[str, Any]:
        driver = {"name": self.name, "version": self.version, "semanticVersion": self.version, "rules": self.rules}
        run: dict[str, Any] = {"tool": {"driver": driver}}
        if self._invocation is not None:
            failed = any(n["level"] == "error" for n in self.notifications)
            invocation: dict[str, Any] = {"executionSuccessful": not failed}
            for key, stamp in (("startTimeUtc", self._invocation["started"]),
                               ("endTimeUtc", self._invocation["finished"])):
                utc = _utc(stamp) if stamp else None
                if utc:
                    invocation[key] = utc
            if self.notifications:
                invocation["toolExecutionNotifications"] = self.notifications
            run["invocations"] = [invocation]
        run["results"] = self.results
        if artifacts is not None:
            run["artifacts"] = [{"location": {"uri": uri}} for uri in artifacts]
        if properties is not None:
            run["properties"] = properties
        return _clean({"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]})


def dumps(document: dict[str, Any]) -> str:
    """The SARIF text (no trailing newline): plain JSON, non-ASCII kept as is, NaN refused.

    A lone surrogate (Python's spelling of a file name that is not UTF-8, e.g. in a target spec)
    cannot be written as UTF-8, so it stays a ``\\uXXXX`` escape: the same JSON value, in a text
    that any file or terminal can take."""
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _checked_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown SARIF level {level!r}")
    return level


# ---- the scan report as SARIF

def render(report: Report, base_dir: Path | None = None) -> str:
    return dumps(to_sarif(report)) + "\n"


def to_sarif(report: Report) -> dict[str, Any]:
    name, version = tool_identity(report.tool)
    log = SarifLog(name, version)
    _rules(log, report.findings)
    where = [_target_location(str(report.target.get("spec", "")))]
    for f in report.findings:
        fingerprints = {FINGERPRINT_KEY: f.id}
        if f.status is Status.VULNERABLE:
            kind, level = "fail", level_for(f.severity)
        elif f.status is Status.INCONCLUSIVE:
            kind, level = "open", "none"
        elif f.status is Status.ERROR:
            kind, level = "review", "none"
        else:
            continue
        log.add_result(f.check, kind=kind, level=level, message=_message(f), locations=where,
                       fingerprints=fingerprints, properties=_properties(f))
        if f.status is Status.ERROR:
            log.add_notification(f.check, f"{f.check} did not complete: {f.reason or 'unknown error'}")
    log.record_invocation(report.started_at, report.finished_at)
    properties = {"schema": report.schema, "target": report.target, "data": report.data, "coverage": report.coverage}
    return log.to_dict(properties=properties)


def _rules(log: SarifLog, findings: list[Finding]) -> None:
    """One rule per check id, in order of first appearance."""
    for f in findings:
        if log.has_rule(f.check):
            continue
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
        log.add_rule(
            f.check,
            name=_rule_name(f),
            short=f.title or f.check,
            full=description,
            default_level=level_for(worst) if worst is not None else "warning",
            guidance=_help(findings, f.check, info),
            properties=properties,
        )


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


def _properties(f: Finding) -> dict[str, Any]:
    return {
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
        uri = _spec_path_uri(rest)
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
        uri = _spec_path_uri(spec or "target")
    return location(uri, message=f"target {spec}", first_line=True)


def _spec_path_uri(path: str) -> str:
    """A model file named in a target spec, normalised as a path (``./m.onnx`` is ``m.onnx``)."""
    return artifact_uri(PurePath(path.replace("\\", "/")).as_posix())


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


__all__ = [
    "FINGERPRINT_KEY",
    "KINDS",
    "LEVELS",
    "SARIF_SCHEMA",
    "SARIF_VERSION",
    "SarifLog",
    "artifact_uri",
    "dumps",
    "level_for",
    "location",
    "render",
    "to_sarif",
]
