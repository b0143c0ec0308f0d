"""What to do about a vulnerable finding: steps from remediation.yaml, filled with what was measured.

The steps (data, in ``remediation.yaml``) are chosen by check and mode and filtered by
conditions on the metrics and the deployment context, the catalog's mitigations for the
mode follow, and the last line is the exact command that re-tests the finding after a fix.
The result is plain text, one step per line, stored in ``Finding.remediation``.
"""
from __future__ import annotations

import dataclasses
import functools
import shlex
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..catalog import MODE_CODES, get_mode
from ..errors import RedlineError
from ..findings import Finding, Status
from .context import DeploymentContext
from .expr import Expr, ExprError, Template, compile_condition, compile_template
from .rules import RULE_NAMES

__all__ = ["RETEST_PREFIX", "RemediationError", "load_remediation", "remediate", "retest_command", "strength"]

SCHEMA_ID = "redline.remediation/1"
RETEST_PREFIX = "Re-test after the fix: "
ALSO_PREFIX = "Also: "


class RemediationError(RedlineError):
    """remediation.yaml is malformed."""


@dataclasses.dataclass(frozen=True)
class Step:
    when: Expr | None
    text: Template


@dataclasses.dataclass(frozen=True)
class Advice:
    steps: tuple[Step, ...] = ()
    mitigations: tuple[int, ...] = ()
    strength: str | None = None


@dataclasses.dataclass(frozen=True)
class RemediationBook:
    modes: Mapping[str, Advice]
    checks: Mapping[str, Advice]


@functools.lru_cache(maxsize=1)
def load_remediation() -> RemediationBook:
    import yaml

    text = resources.files(__package__).joinpath("remediation.yaml").read_text(encoding="utf-8")
    return parse_remediation(yaml.safe_load(text))


def parse_remediation(doc: Any) -> RemediationBook:
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA_ID:
        raise RemediationError(f"remediation.yaml must be a mapping with schema: {SCHEMA_ID}")
    unknown = set(doc) - {"schema", "modes", "checks"}
    if unknown:
        raise RemediationError(f"remediation.yaml has unknown section(s): {', '.join(sorted(unknown))}")
    modes = {str(code): _advice(spec, str(code), mode=str(code)) for code, spec in (doc.get("modes") or {}).items()}
    bad = sorted(set(modes) - set(MODE_CODES))
    if bad:
        raise RemediationError(f"remediation.yaml names unknown mode(s) {', '.join(bad)}")
    checks = {}
    for check_id, spec in (doc.get("checks") or {}).items():
        code = str(check_id).split(".", 1)[0]
        if code not in MODE_CODES:
            raise RemediationError(f"remediation.yaml: check {check_id} does not start with a mode code")
        checks[str(check_id)] = _advice(spec, str(check_id), mode=code)
    return RemediationBook(modes, checks)


def _advice(spec: Any, where: str, *, mode: str) -> Advice:
    if not isinstance(spec, Mapping) or set(spec) - {"steps", "mitigations", "strength"}:
        raise RemediationError(f"remediation.yaml: {where} takes steps, mitigations and strength")
    steps = []
    for i, step in enumerate(spec.get("steps") or [], 1):
        if not isinstance(step, Mapping) or "text" not in step or set(step) - {"text", "when"}:
            raise RemediationError(f"remediation.yaml: {where} step {i} needs text (and may have when)")
        try:
            when = compile_condition(step["when"], RULE_NAMES) if "when" in step else None
            text = compile_template(step["text"], RULE_NAMES)
        except ExprError as exc:
            raise RemediationError(f"remediation.yaml: {where} step {i}: {exc}") from None
        steps.append(Step(when, text))
    count = len(get_mode(mode).mitigations)
    picks = tuple(spec.get("mitigations") or ())
    for n in picks:
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= count:
            raise RemediationError(f"remediation.yaml: {where} mitigation {n!r} is not 1..{count} ({mode} has {count})")
    strength = spec.get("strength")
    if strength is not None and RULE_NAMES.get(strength) != "number":
        raise RemediationError(f"remediation.yaml: {where} strength {strength!r} is not a numeric metric")
    return Advice(tuple(steps), picks, strength)


def retest_command(finding: Finding, retest: Mapping[str, Any]) -> str:
    """The command that runs this one check again with the same seed and budget."""
    budget = (retest.get("budgets") or {}).get(finding.check)
    target = retest.get("target")
    if target is None:  # an in-memory model: the Python API is the way back
        args = [f"select={finding.check!r}", f"seed={finding.seed}"] + ([f"budget={budget}"] if budget else [])
        return f"redline.scan(model, data, {', '.join(args)})"
    words = ["redline", "scan", target]
    if retest.get("data"):
        words += ["--data", retest["data"]]
    words += ["--select", finding.check, "--seed", str(finding.seed)]
    if budget:
        words += ["--budget", str(budget)]
    for flag, key in (("--context", "context"), ("--target-config", "target_config")):
        if retest.get(key):
            words += [flag, retest[key]]
    words += ["--out", f"redline-retest-{finding.check}"]
    return shlex.join(words)


def remediate(finding: Finding, context: DeploymentContext | None, retest: Mapping[str, Any]) -> str:
    """Fill ``finding.remediation`` (vulnerable findings only) and return it."""
    if Status(finding.status) is not Status.VULNERABLE:
        finding.remediation = ""
        return ""
    from .engine import _environment

    book = load_remediation()
    ctx = context if context is not None else DeploymentContext()
    env = _environment(finding.metrics, ctx, finding.queries, finding.evaluation_queries)
    mode_steps = book.modes[finding.mode].steps if finding.mode in book.modes else ()
    check_steps = book.checks[finding.check].steps if finding.check in book.checks else ()
    # What was measured comes first, then the check's own advice, then the mode's other steps.
    steps = (*mode_steps[:1], *check_steps, *mode_steps[1:])
    lines = [s.text.render(env) for s in steps if s.when is None or s.when.evaluate(env) is True]
    advice = book.checks.get(finding.check) or book.modes.get(finding.mode)
    picks = (advice.mitigations if advice and advice.mitigations else
             book.modes[finding.mode].mitigations if finding.mode in book.modes else ())
    mitigations = get_mode(finding.mode).mitigations
    lines += [ALSO_PREFIX + mitigations[n - 1] for n in picks]
    lines.append(RETEST_PREFIX + retest_command(finding, retest))
    finding.remediation = "\n".join(lines)
    return finding.remediation


def strength(finding: Finding) -> float:
    """How strong the measured attack was, 0..1, for ordering findings of equal severity."""
    book = load_remediation()
    advice = book.checks.get(finding.check)
    name = (advice.strength if advice and advice.strength else None) or (
        book.modes[finding.mode].strength if finding.mode in book.modes else None
    )
    value = finding.metrics.get(name) if name else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(max(number, 0.0), 1.0) if number == number else 0.0
