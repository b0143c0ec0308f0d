"""The deployment context applied to a scan: what the attacks see, and what triage assumes.

A context that says the service answers with labels only, or with rounded probabilities,
is a fact about what a real attacker receives, so the checks query the target through the
same hardening (the :mod:`~redline.defences.labels_only` and
:mod:`~redline.defences.rounding` defences). A rate limit changes no answer, only how long
an attack takes, so each finding records that time instead of the scan sleeping through it.
"""
from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..triage.context import DeploymentContext, assume_for_target

# Rounded probabilities keep this many decimals when the context does not say how many.
DEFAULT_DECIMALS = 2


def as_deployed(target: Any, context: DeploymentContext | None) -> Any:
    """``target`` wrapped so it answers as the stated deployment does; unchanged otherwise."""
    from ..defences import DefendedTarget
    from ..defences.labels_only import LabelsOnly
    from ..defences.rounding import Rounding

    if context is None or "outputs" not in context.stated:
        return target
    if target.capabilities.outputs != "probabilities":
        return target  # already labels only: nothing left to coarsen
    if context.outputs == "labels":
        return DefendedTarget(target, [LabelsOnly()])
    if context.outputs == "rounded_probabilities":
        decimals = context.output_decimals if context.output_decimals is not None else DEFAULT_DECIMALS
        return DefendedTarget(target, [Rounding(decimals)])
    return target


def deployment_context(context: DeploymentContext | None, target: Any) -> DeploymentContext:
    """The context triage uses: stated facts, plus defaults chosen for this kind of target.

    ``target`` None means a model file that was never loaded (refused by the static scan).
    """
    if target is None:
        return assume_for_target(context, remote=False)
    caps = target.capabilities
    return assume_for_target(context, remote=caps.remote, outputs=caps.outputs)


def note_rate_limit(finding: Finding, context: DeploymentContext) -> None:
    """Add how many hours the attack's queries take at the stated rate limit."""
    rate = context.rate_limit_per_second
    if rate and finding.queries:
        finding.metrics["hours_at_rate_limit"] = round(finding.queries / rate / 3600.0, 3)
