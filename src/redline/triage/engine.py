"""Rate findings on the bug bar: evidence + deployment context -> severity + rationale.

For a vulnerable finding, the first matching rule of its mode rates the evidence, the
mode's context modifiers move that rating up or down, and the result is clamped into the
mode's range in the catalog. The rationale says all three in one or two sentences and
cites the numbers and facts it used; facts that were defaulted are marked "assumed".
Findings that are not vulnerable get ``Severity.NONE`` and a sentence saying why.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..catalog import FailureMode, get_mode
from ..findings import Finding, Status
from ..severity import Severity
from .context import FACTS, DeploymentContext
from .rules import FINDING_FIELDS, load_rules
from .vocabulary import metric_types

__all__ = ["apply", "rate", "rate_evidence"]


def rate(finding: Finding, context: DeploymentContext | None = None) -> tuple[Severity, str]:
    """The severity of ``finding`` in this deployment and a rationale for it.

    ``context`` None means nothing is known about the deployment; the conservative
    defaults of :class:`DeploymentContext` apply and the rationale says so.
    """
    status = Status(finding.status)
    if status is Status.NOT_VULNERABLE:
        detail = _clause(finding.summary)
        return Severity.NONE, f"No severity: {finding.check} ran and did not find the weakness{detail}."
    if status is Status.INCONCLUSIVE:
        detail = _clause(finding.reason)
        return Severity.NONE, f"No severity: {finding.check} ran but could not decide{detail}."
    if status is Status.NOT_APPLICABLE:
        detail = _clause(finding.reason, prefix=" because ")
        return Severity.NONE, f"No severity: {finding.check} did not run{detail or ' on this target'}."
    if status is Status.ERROR:
        detail = _clause(finding.reason, prefix=" (", suffix=")")
        return Severity.NONE, f"No severity: {finding.check} failed before reaching a verdict{detail}."
    return rate_evidence(
        finding.mode, finding.metrics, context,
        queries=finding.queries, evaluation_queries=finding.evaluation_queries,
    )


def rate_evidence(
    mode: str,
    metrics: Mapping[str, Any] | None = None,
    context: DeploymentContext | None = None,
    *,
    queries: int | None = None,
    evaluation_queries: int | None = None,
) -> tuple[Severity, str]:
    """Rate a weakness of ``mode`` shown by ``metrics`` (which may be empty) in ``context``.

    This is :func:`rate` without a Finding, for manually reported incidents and for the
    threat model, which asks what a mode would be rated in a deployment before any check
    has run (no metrics: the mode's default rule).
    """
    failure_mode = get_mode(mode)
    rules = load_rules().for_mode(failure_mode.code)
    ctx = context if context is not None else DeploymentContext()
    env = _environment(metrics or {}, ctx, queries, evaluation_queries)

    rule = rules.evidence_rule(env)
    base = rule.severity
    active = [m for m in rules.modifiers if m.when.holds(env)]
    raised: list[str] = []
    lowered: list[str] = []
    for modifier in active:
        reason = modifier.because.render(env)
        if modifier.facts - ctx.stated:
            reason += " (assumed)"
        (raised if modifier.raises else lowered).append(reason)
    # Steps add up before anything is clamped, so the order of modifiers never matters;
    # floors and ceilings come after the steps so that they always hold.
    steps = sum(m.shift for m in active)
    adjusted = Severity(min(max(base + steps, Severity.LOW), Severity.CRITICAL))
    for modifier in active:
        if modifier.at_least is not None:
            adjusted = max(adjusted, modifier.at_least)
        if modifier.at_most is not None:
            adjusted = min(adjusted, modifier.at_most)
    final = failure_mode.bug_bar.clamp(adjusted)
    return final, _rationale(rule.evidence.render(env), base, adjusted, final, raised, lowered, failure_mode)


def apply(findings: Iterable[Finding], context: DeploymentContext | None = None) -> list[Finding]:
    """Fill ``severity`` and ``rationale`` on each finding, in place; returns them as a list."""
    out = list(findings)
    for finding in out:
        finding.severity, finding.rationale = rate(finding, context)
    return out


# -- helpers ------------------------------------------------------------------------------------

def _environment(
    metrics: Mapping[str, Any], ctx: DeploymentContext, queries: Any, evaluation_queries: Any
) -> dict[str, Any]:
    """Names the rules may read: finding fields, then metrics (which win), then facts."""
    env: dict[str, Any] = {}
    for name, value in (("queries", queries), ("evaluation_queries", evaluation_queries)):
        env[name] = _number(value)
    types = metric_types()
    for name, value in metrics.items():
        kind = types.get(name) or FINDING_FIELDS.get(name)
        if kind == "list":
            env[name] = list(value.tolist() if hasattr(value, "tolist") else value) if _is_sequence(value) else None
        elif kind == "number":
            number = _number(value)
            if number is not None or name not in FINDING_FIELDS:
                env[name] = number
    env.update({name: getattr(ctx, name) for name in FACTS})
    return env


def _number(value: Any) -> float | int | None:
    """A finite real number, or None for anything else (missing, NaN, text...)."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        number = value.item() if hasattr(value, "item") else value
        if isinstance(number, bool):
            return int(number)
        if isinstance(number, int):
            return number
        number = float(number)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_sequence(value: Any) -> bool:
    return hasattr(value, "tolist") or isinstance(value, (list, tuple))


def _clause(text: str, prefix: str = ": ", suffix: str = "") -> str:
    """First line of ``text``, trimmed, without a final full stop, wrapped in prefix/suffix."""
    # The whole line: a rationale is read in full (tables shorten it at a word boundary).
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    line = line.rstrip(".")
    return f"{prefix}{line}{suffix}" if line else ""


def _join(reasons: list[str]) -> str:
    # Reasons can contain commas and "and", so semicolons keep them apart.
    return "; ".join(reasons)


def _lower_first(name: str) -> str:
    """``Perturbation attack`` -> ``perturbation attack``, but ``ML supply chain`` stays."""
    return name[:1].lower() + name[1:] if name[1:2].islower() else name


def _rationale(
    evidence: str,
    base: Severity,
    adjusted: Severity,
    final: Severity,
    raised: list[str],
    lowered: list[str],
    mode: FailureMode,
) -> str:
    evidence = evidence[:1].upper() + evidence[1:]
    if not raised and not lowered and final == base:
        return f"{evidence}, rated {base.label}."
    first = f"{evidence}, rated {base.label} on the evidence alone."
    joiner = ", but"
    if raised and lowered:
        direction = "Raised to" if adjusted > base else "Lowered to" if adjusted < base else "Kept at"
        second = f"{direction} {adjusted.label} (up because {_join(raised)}; down because {_join(lowered)})"
    elif raised or lowered:
        reasons = _join(raised or lowered)
        if adjusted != base:
            second = f"{'Raised' if raised else 'Lowered'} to {adjusted.label} because {reasons}"
        else:  # already at the end of the scale the modifiers push towards
            edge = "higher" if raised else "lower"
            limit = "the highest" if raised else "the lowest"
            second = f"It would go {edge} because {reasons}, but {adjusted.label} is {limit} step"
            joiner = ", and"
    else:
        second = ""
    if final != adjusted:
        bar = mode.bug_bar
        owner = "the bug bar's" if bar.rated else "redline's"
        clamp = f"{owner} range for {_lower_first(mode.name)} is {bar.label}, so it is {final.label}"
        second = f"{second}{joiner} {clamp}" if second else clamp[:1].upper() + clamp[1:]
    return f"{first} {second}."
