"""``redline registry replay ID``: a recorded case run again as a regression test.

The case keeps what ``redline replay`` needs (check, parameters, seed, budget, target and
data specs, the recorded metrics), so the pipeline's own replay runs it, from a one-finding
report written to a temporary folder. The outcome follows from the replayed verdict and the
case's status: not vulnerable any more is ``fixed``; vulnerable again after a fix is
``regressed``, and otherwise ``still-failing``; a replay that could not decide (inconclusive,
error, not applicable) is ``error`` and changes nothing.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import RedlineError, UsageError
from .case import CaseStatus, FailureCase


@dataclasses.dataclass(frozen=True)
class CaseReplay:
    case_id: str
    outcome: str  # fixed | regressed | still-failing | error
    replayed_status: str
    target: str
    data: str
    metrics: dict[str, Any]
    reason: str
    replay_id: int
    reproduced: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def outcome_of(case_status: CaseStatus, replayed_status: str) -> str:
    if replayed_status == "not_vulnerable":
        return "fixed"
    if replayed_status == "vulnerable":
        return "regressed" if case_status is CaseStatus.FIXED else "still-failing"
    return "error"


def finding_record(case: FailureCase) -> dict[str, Any]:
    """The case as the finding of a report.json, as the pipeline's replay reads it."""
    return {
        "id": case.finding_id, "mode": case.mode, "check": case.check, "title": case.title,
        "status": "vulnerable", "severity": case.severity, "metrics": case.metrics, "evidence": case.evidence,
        "params": case.params, "seed": case.seed if case.seed is not None else 0, "budget": case.budget,
    }


def replay_case(registry: Any, case_id: str, *, target: str | None = None, data: str | None = None,
                target_config: str | None = None, by: str = "") -> CaseReplay:
    """Re-run the case's finding and record the outcome in ``registry``."""
    from ..pipeline.replay import replay

    case = registry.get(case_id)
    if not case.check or not case.finding_id:
        raise UsageError(f"case {case.id} came from {case.source}, not from a check, so there is nothing to re-run; "
                         "scan the system and add the report instead")
    if not (target or case.target):
        raise UsageError(f"case {case.id} names no target; give one with --target")
    report = {"schema": "redline.report/1", "target": {"spec": case.target}, "data": {"spec": case.data},
              "findings": [finding_record(case)]}
    replayed_status, metrics, reason, reproduced = "error", {}, "", False
    with tempfile.TemporaryDirectory(prefix="redline-case-replay-") as folder:
        path = Path(folder) / "report.json"
        path.write_text(json.dumps(report), encoding="utf-8")
        try:
            result = replay(path, case.finding_id, target=target, data=data, target_config=target_config)
        except UsageError:
            raise  # the case cannot be replayed as asked: say so, record nothing
        except RedlineError as exc:  # the target or data could not be reached: a replay that decided nothing
            reason = str(exc)
        else:
            replayed_status, reason, reproduced = result.replayed_status, result.reason, result.reproduced
            metrics = {m.name: m.replayed for m in result.metrics if m.replayed is not None}
    outcome = outcome_of(CaseStatus(case.status), replayed_status)
    from ..util.urls import redact_url

    used_target = redact_url(target) if target else case.target  # recorded and shown: no key of a --target URL
    used_data = data or case.data
    replay_id = registry.record_replay(case.id, outcome, target=used_target, data=used_data,
                                       replayed_status=replayed_status, metrics=metrics, reason=reason, by=by)
    return CaseReplay(case.id, outcome, replayed_status, used_target, used_data, metrics, reason, replay_id, reproduced)
