"""What the defences buy: the same checks against the bare and the defended model, side by side.

Two ways in, one comparison:

* ``redline scan TARGET --defend guard.yaml`` (``ScanRequest.defend``): the guard's policy is
  loaded in process (:func:`redline.defences.policy.load_policy`, the loader the guard uses)
  and its defences wrap the target as a :class:`~redline.defences.DefendedTarget`; from
  Python, ``defend`` may also be a list of :class:`~redline.defences.Defence` objects.
  The scan's findings are the defended model's; the bare target is the baseline.
* a guarded endpoint, scanned over HTTP, whose target config names the bare model as
  ``baseline: SPEC`` (a ``zoo:`` name, a model file, the model's own URL): the endpoint is
  the defended model and ``SPEC`` the baseline.

Each selected check runs once more against the baseline (no artifacts, no event log, so a
resumed scan runs the baseline again) and the report gains a ``defences`` section: per
check, the status, severity, headline metric and queries of both runs, and in one word what
the defences changed (:func:`effect`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..findings import Finding, Status

# The client-side name a scan's in-process defences are bound to (per-client state such as
# a temporal stream or a query history is kept under it, in this process's memory).
SCAN_CLIENT = "redline-scan"

_STOPPED = (Status.NOT_VULNERABLE, Status.NOT_APPLICABLE)


def policy_defences(defend: Any) -> tuple[list[Any], dict[str, str] | None]:
    """(defences in :class:`~redline.defences.DefendedTarget` order, the policy's record or
    None) for ``defend``: a guard policy file, or a list of Defence objects. The record names
    the file as given, its absolute path and the SHA-256 of the bytes loaded (the policy's
    digest), so ``redline replay`` can put a finding's model behind the same defences again
    and notice a policy that changed since."""
    from ..defences import Defence, MemoryState

    if isinstance(defend, (str, Path)):
        path = Path(defend)
        if not path.is_file():
            raise UsageError(f"--defend {path}: no such policy file")
        from ..defences.policy import load_policy

        policy = load_policy(path)
        defences = list(policy.defences_for(SCAN_CLIENT, MemoryState()))
        if not defences:
            raise UsageError(f"--defend {path}: the policy lists no defences, so there is nothing to compare")
        return defences, {"policy": str(path), "policy_file": str(path.resolve()), "policy_sha256": policy.digest}
    if isinstance(defend, Sequence) and defend and all(isinstance(d, Defence) for d in defend):
        return list(defend), None
    raise UsageError("defend must be a guard policy file (guard.yaml) or a non-empty list of redline Defence objects")


def scanned(target: Any, defences: list[Any]) -> Any:
    """``target`` behind ``defences``, counting the requests they refuse (:meth:`take_refusals`),
    so the comparison can tell a check the defences refused from one that crashed."""
    from ..defences import DefendedTarget, Refusal

    class CountingDefendedTarget(DefendedTarget):
        refusals = 0

        def predict(self, x: Any) -> Any:
            try:
                return super().predict(x)
            except Refusal:
                self.refusals += 1
                raise

        def take_refusals(self) -> int:
            """Requests refused since the last call."""
            count, self.refusals = self.refusals, 0
            return count

    return CountingDefendedTarget(target, defences)


def load_baseline(spec: str, data: Any) -> Any:
    """The bare model a guarded endpoint fronts, named by the target config's ``baseline``.
    Loaded with the scan's data but not its target config (that config's headers and keys
    are the guard's, not the model's)."""
    from ..targets import load_target

    return load_target(spec, data=data)


def run_baseline(instances: list, baseline: Any, data: Any, request: Any, context: Any,
                 progress: Any, outcome: Any) -> list[Finding]:
    """Each check once more against ``baseline``, rated by the same triage; nothing is written.
    ``progress`` shows each run, ``outcome(finding)`` is the words it ends with."""
    from ..checks import CheckContext
    from ..triage.engine import apply as triage
    from .deployment import deployment_context

    findings = []
    for index, check in enumerate(instances, start=1):
        progress.start(f"{check.id} against the bare model", index, len(instances))
        ctx = CheckContext(None, progress.update)
        finding = check(baseline, data, budget=request.budget_for(check), seed=request.seed, ctx=ctx)
        triage([finding], deployment_context(context, baseline))
        findings.append(finding)
        progress.finish(outcome(finding))
    return findings


def headline(bare: Finding | None, defended: Finding | None) -> str | None:
    """The metric that sums both runs of a check up: the first headline metric either run
    reports (the order of the metric vocabulary), else the first number either reports."""
    from ..triage.vocabulary import HEADLINE_METRICS

    reported = [f.metrics for f in (bare, defended) if f is not None]
    for name in HEADLINE_METRICS:
        if any(_number(m.get(name)) is not None for m in reported):
            return name
    for metrics in reported:
        for name, value in metrics.items():
            if _number(value) is not None and not name.endswith("_ci"):
                return name
    return None


def effect(bare: Finding | None, defended: Finding | None, refusals: int = 0) -> str:
    """A word or two for what the defences changed about a check's verdict."""
    if bare is None or defended is None:
        return "not compared"
    if defended.status is Status.ERROR and refusals and bare.status is not Status.ERROR:
        return "refused"  # the defences turned the attack's queries away
    undecided = (Status.ERROR, Status.INCONCLUSIVE)
    if bare.status in undecided or defended.status in undecided:
        return "undecided"
    if bare.status is Status.VULNERABLE and defended.status in _STOPPED:
        return "stopped"
    if bare.status is Status.VULNERABLE and defended.status is Status.VULNERABLE:
        return "not stopped"
    if bare.status in _STOPPED and defended.status is Status.VULNERABLE:
        return "worse"
    return "no change"


def comparison(bare: list[Finding], defended: list[Finding], *, policy: dict[str, str] | None, defences: list[Any],
               baseline_spec: str, defended_spec: str, refusals: dict[str, int] | None = None) -> dict[str, Any]:
    """The report's ``defences`` section (see the module docstring); ``refusals`` counts by
    check id the requests the defences refused (in-process defences only)."""
    refusals = refusals or {}
    by_check = {f.check: f for f in bare}
    rows = []
    for finding in defended:
        before = by_check.get(finding.check)
        metric = headline(before, finding)
        rows.append({
            "check": finding.check,
            "mode": finding.mode,
            "metric": metric,
            "effect": effect(before, finding, refusals.get(finding.check, 0)),
            "bare": _side(before, metric),
            "defended": {**_side(finding, metric), **({"refusals": refusals[finding.check]}
                                                      if finding.check in refusals else {})},
        })
    return {
        "policy": None,
        **(policy or {}),  # policy, policy_file, policy_sha256
        # From the client inwards, the order a request meets them (the order of guard.yaml).
        "defences": [getattr(d, "name", type(d).__name__) for d in reversed(defences)],
        "baseline": {"spec": baseline_spec},
        "defended": {"spec": defended_spec},
        "checks": rows,
    }


def defended_by(policy: dict[str, str], baseline_spec: str) -> dict[str, str]:
    """A finding's ``evidence["defended_by"]`` in a ``scan --defend`` (a record that travels
    with the finding, into a registry case, say): the policy's record and the bare model."""
    return {**policy, "baseline": baseline_spec}


def recorded_policy_defences(recorded: dict[str, Any], report_dir: Path) -> list[Any]:
    """The defences of the policy a ``--defend`` scan used (``recorded``: its record), found
    again: its absolute path, or the path as given relative to the working folder or the
    report's folder; refused if its bytes changed since."""
    for key in ("policy", "policy_file", "policy_sha256"):  # a report is a file anyone can edit
        if recorded.get(key) is not None and not isinstance(recorded.get(key), str):
            raise UsageError(f"the report's record of the scan's guard policy is damaged: {key} must be "
                             f"{'a hex digest' if key == 'policy_sha256' else 'a path'}, "
                             f"not {type(recorded.get(key)).__name__}; give the policy with --defend")
    given = recorded.get("policy") or ""
    candidates = [Path(p) for p in (recorded.get("policy_file"), given) if p]
    candidates += [report_dir / given] if given and not Path(given).is_absolute() else []
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UsageError(f"the scan ran behind the guard policy {given!r}, which is not there any more; "
                         "give it with --defend")
    defences, now = policy_defences(found)  # loading reads at most the policy size limit
    if recorded.get("policy_sha256") and now["policy_sha256"] != recorded["policy_sha256"]:
        raise UsageError(f"the guard policy {found} changed since the scan (its SHA-256 differs), so the replay "
                         "would not be the same experiment; give the policy the scan used with --defend")
    return defences


def _side(finding: Finding | None, metric: str | None) -> dict[str, Any] | None:
    if finding is None:
        return None
    return {
        "status": finding.status.value,
        "severity": finding.severity.label,
        "value": _number(finding.metrics.get(metric)) if metric else None,
        "queries": finding.queries,
        **({"reason": finding.reason} if finding.reason else {}),
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
