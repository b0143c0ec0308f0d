"""``redline replay REPORT.json FINDING_ID``: run one finding again from its record and say
whether its verdict and metrics reproduce.

The record gives the check, its parameters, the seed and the budget; the report gives the
target and data specs (either can be overridden, e.g. when the model file moved). Before
anything runs, the finding id is recomputed from what will be replayed: the id hashes the
check, target spec, parameters, seed and budget, so a mismatch means the replay would not
be the same experiment, and it is refused rather than compared.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["MetricComparison", "ReplayResult", "compare_metrics", "load_finding", "replay"]

DEFAULT_TOLERANCE = 1e-6  # relative; a fixed seed on the same software should give the same numbers


@dataclasses.dataclass
class MetricComparison:
    name: str
    recorded: Any
    replayed: Any
    equal: bool


@dataclasses.dataclass
class ReplayResult:
    finding_id: str
    check: str
    recorded_status: str
    replayed_status: str
    metrics: list[MetricComparison]
    reason: str = ""

    @property
    def reproduced(self) -> bool:
        return self.recorded_status == self.replayed_status and all(m.equal for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        from ..findings import _jsonable

        return _jsonable({
            "finding": self.finding_id, "check": self.check, "reproduced": self.reproduced,
            "status": {"recorded": self.recorded_status, "replayed": self.replayed_status},
            "metrics": [dataclasses.asdict(m) for m in self.metrics],
            "reason": self.reason,
        })

    def render(self) -> str:
        from ..findings import _jsonable

        head = "reproduced" if self.reproduced else "NOT reproduced"
        lines = [f"replay of {self.finding_id} ({self.check}): {head}",
                 f"  status: recorded {self.recorded_status}, replayed {self.replayed_status}"
                 + ("" if self.recorded_status == self.replayed_status else "  <- differs")]
        if self.reason:
            lines.append(f"  replay reason: {self.reason}")
        if self.metrics:
            width = max(len(m.name) for m in self.metrics)
            lines.append(f"  {'metric'.ljust(width)}  recorded / replayed")
            for m in self.metrics:
                mark = "equal" if m.equal else "DIFFERS"
                rec, rep = json.dumps(_jsonable(m.recorded)), json.dumps(_jsonable(m.replayed))
                lines.append(f"  {m.name.ljust(width)}  {_short(rec)} / {_short(rep)}  {mark}")
        return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _same(a: Any, b: Any, tolerance: float) -> bool:
    """Equal values, numbers within ``tolerance`` (relative, with a tiny absolute floor)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance * 1e-3)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b))
    return a == b


def compare_metrics(recorded: dict[str, Any], replayed: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> list[MetricComparison]:
    """One row per metric in either record; a metric only one side has is a difference."""
    from ..findings import _jsonable

    replayed = _jsonable(replayed)  # compare JSON to JSON (tuples, numpy scalars, NaN -> None)
    names = list(recorded) + [n for n in replayed if n not in recorded]
    return [MetricComparison(n, recorded.get(n), replayed.get(n),
                             n in recorded and n in replayed and _same(recorded[n], replayed[n], tolerance))
            for n in names]


def read_report_file(path: str | Path) -> Any:
    """The parsed JSON of a report file, or a one-line UsageError saying why it cannot be read."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"report {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read report {path}: {exc}") from None


def load_finding(report_path: str | Path, finding_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the report, the finding whose id is ``finding_id`` or starts with it, if unique)."""
    path = Path(report_path)
    report = read_report_file(path)
    if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
        raise UsageError(f"{path} is not a redline report.json (no findings list)")
    findings = [f for f in report["findings"] if isinstance(f, dict)]
    wanted = finding_id.strip().lower()
    matches = [f for f in findings if str(f.get("id", "")) == wanted]
    if not matches and len(wanted) >= 6:
        matches = [f for f in findings if str(f.get("id", "")).startswith(wanted)]
    if len(matches) != 1:
        listed = ", ".join(f"{f.get('id')} ({f.get('check')})" for f in findings[:20]) or "none"
        problem = "matches several findings" if matches else "is not in the report"
        raise UsageError(f"finding {finding_id!r} {problem} (findings: {listed})")
    return report, matches[0]


def replay(
    report_path: str | Path,
    finding_id: str,
    *,
    target: Any = None,
    data: Any = None,
    target_config: Any = None,
    tolerance: float = DEFAULT_TOLERANCE,
    defend: Any = None,
) -> ReplayResult:
    """Run the finding's check again with its parameters, seed and budget; compare.

    A finding of a ``scan --defend guard.yaml`` was made behind that policy's defences: its
    model (the report's baseline, or ``target``) is put behind the same policy again, found
    from the report (refused if the file changed since) or given as ``defend``."""
    from ..checks import CheckContext
    from ..checks.params import instantiate, normalise_params
    from ..findings import finding_id as make_id
    from ..targets import load_target
    from .runner import _resolve_data

    report, record = load_finding(report_path, finding_id)
    check_id = str(record.get("check", ""))
    if check_id.startswith("FM09."):
        raise UsageError(f"{check_id} is the static file scan; re-run it with `redline scan-files`")
    params = normalise_params({check_id: record.get("params") or {}})[check_id]
    from ..checks import get_check

    check = instantiate(get_check(check_id), params)
    seed = int(record.get("seed") or 0)
    budget = record.get("budget")
    target_arg = target if target is not None else (report.get("target") or {}).get("spec")
    recorded = _recorded_defences(report, record)
    defences = _replay_defences(recorded, Path(report_path), defend)
    if recorded is not None and target is None:
        target_arg = recorded.get("baseline") or target_arg
    if not target_arg:
        raise UsageError("the report names no target; give one with --target")
    # Recorded with its query values or user info redacted: the spec itself would reach another URL.
    evidence = record.get("evidence") if isinstance(record.get("evidence"), dict) else {}
    digest = evidence.get("target_digest") if isinstance(evidence.get("target_digest"), str) else None
    if target is None and digest:
        raise UsageError(f"{target_arg} is recorded without its query values or user info; "
                         "give the URL it was scanned at with --target")
    if target is None and str(target_arg).startswith("python:"):
        raise UsageError(f"the report's target was an object in memory ({target_arg}); "
                         "give a file or URL that serves the same model with --target")
    dataset = _replay_data(data, report, target_arg, _resolve_data)

    bare = loaded = load_target(target_arg, data=dataset, config=target_config)
    if defences is not None:
        from .defended import scanned

        loaded = scanned(bare, defences)
    try:
        if budget is None:  # reports before budgets were recorded: the check's default, if the id agrees
            budget = check.default_budget
        # The id hashes the recorded target spec (and the digest of its full URL, when that is
        # recorded redacted); an overriding --target is the user's call.
        recorded_spec = (report.get("target") or {}).get("spec") or loaded.spec
        expected = make_id(check.id, recorded_spec, check.get_params(), seed, budget, digest)
        if expected != record.get("id"):
            raise UsageError(
                f"finding {record.get('id')} cannot be replayed as recorded: its check, parameters, seed "
                f"or budget differ from what its id was made of"
                + (" (the report predates recorded budgets)" if record.get("budget") is None else ""))
        ctx = CheckContext(operating_conditions=_recorded_conditions(record))
        finding = check(loaded, dataset, budget=int(budget), seed=seed, ctx=ctx)
    finally:
        bare.close()
    return ReplayResult(
        finding_id=str(record["id"]), check=check_id,
        recorded_status=str(record.get("status")), replayed_status=finding.status.value,
        metrics=compare_metrics(record.get("metrics") or {}, finding.metrics, tolerance),
        reason=finding.reason,
    )


def _recorded_defences(report: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | None:
    """How the finding's model was defended in a ``scan --defend``: the policy's record
    (``policy``, ``policy_file``, ``policy_sha256``) and the bare model (``baseline``), from the
    report's ``defences`` section or else the finding's own ``evidence.defended_by`` (a
    registry case has no report around it). None without in-process defences (a guarded
    endpoint's own defences answer its replay)."""
    section = report.get("defences")
    if isinstance(section, dict):
        if not section.get("defences"):
            return None
        baseline = section.get("baseline")
        if baseline is not None and not isinstance(baseline, dict):
            raise UsageError(f"the report's record of the bare model behind the defences is damaged (baseline is "
                             f"a {type(baseline).__name__}, not a mapping); give the model with --target")
        return {**{k: section.get(k) for k in ("policy", "policy_file", "policy_sha256")},
                "baseline": (baseline or {}).get("spec")}
    carried = (record.get("evidence") or {}).get("defended_by") if isinstance(record.get("evidence"), dict) else None
    return carried if isinstance(carried, dict) and carried.get("policy") else None


def _replay_defences(recorded: dict[str, Any] | None, report_path: Path, defend: Any) -> list | None:
    """The defences to put the replayed model behind: ``defend`` if given, else the policy the
    scan recorded (None when it had none)."""
    from .defended import policy_defences, recorded_policy_defences

    if defend is not None:
        return policy_defences(defend)[0]
    if recorded is None:
        return None
    if not recorded.get("policy"):
        raise UsageError("the scan's defences were objects in memory, not a policy file; give the policy with --defend")
    return recorded_policy_defences(recorded, report_path.parent)


def _recorded_conditions(record: dict[str, Any]) -> Any:
    """The operating conditions an FM17 finding read from its scan's --context file, read again."""
    path = (record.get("evidence") or {}).get("conditions_file") if isinstance(record.get("evidence"), dict) else None
    if not path:
        return None
    from ..checks.robustness.conditions import load_conditions_file

    return load_conditions_file(path)


def _replay_data(data: Any, report: dict[str, Any], target_arg: Any, resolve) -> Any:
    """The override, else the data the report names; a zoo target's own data when that is it."""
    if data is not None:
        return resolve(data, target_arg)
    spec = (report.get("data") or {}).get("spec") or None
    own = resolve(None, target_arg) if isinstance(target_arg, str) and target_arg.startswith("zoo:") else None
    if own is not None and (spec is None or (own.spec or own.name) == spec):
        return own
    return resolve(spec, target_arg) if spec else None
