"""The demo tour: which zoo entry shows each family of checks best, and with what budget.

The tour is data (``tour.yaml`` next to this module): one row per zoo entry and the checks
it shows, with the budget and parameters that keep the run short while the verdict still
means something (the positive control stays flagged, the negative control still passes).
A new family of checks joins the tour with one row. This module reads and checks the
table and turns it into one scan per zoo entry (:class:`Stop`), each check's finding
carrying a sentence that says the demo's reduced settings were used.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TOUR_FILE = Path(__file__).with_name("tour.yaml")
_ROW_KEYS = {"target", "checks", "budget", "params", "seconds", "shows"}
DEFAULT_CHECK_SECONDS = 5.0  # a row that states no cost weighs this much per check in the ETA
DEFAULT_BUILD_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class TourRow:
    """One row of the tour: checks run on one zoo entry."""

    target: str  # zoo entry name
    checks: tuple[str, ...]  # check ids
    shows: str  # what the row demonstrates, in a few words
    budget: int | None = None  # queries each of these checks may send (None: its default)
    params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    seconds: float | None = None  # typical CPU seconds of the row's checks, for the ETA only


@dataclasses.dataclass(frozen=True)
class Stop:
    """One scan of the tour: a zoo entry and every check the tour runs on it."""

    target: str
    checks: tuple[str, ...]
    budgets: dict[str, int]
    params: dict[str, dict[str, Any]]
    notes: dict[str, str]
    shows: tuple[str, ...]
    check_seconds: dict[str, float]  # ETA weights
    build_seconds: float

    @property
    def select(self) -> str:
        return ",".join(self.checks)


@dataclasses.dataclass(frozen=True)
class Tour:
    rows: tuple[TourRow, ...]
    build_seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def stops(self, names: Sequence[str] | None = None, *, budget: int | None = None) -> list[Stop]:
        """The tour's scans, one per zoo entry in order of first appearance (only ``names``
        when given). ``budget`` (the user's ``--budget``) replaces every row's budget."""
        from ..checks import get_check

        wanted = set(names) if names else None
        by_target: dict[str, list[TourRow]] = {}
        for row in self.rows:
            if wanted is None or row.target in wanted:
                by_target.setdefault(row.target, []).append(row)
        stops = []
        for target, rows in by_target.items():
            checks: list[str] = []
            budgets: dict[str, int] = {}
            params: dict[str, dict[str, Any]] = {}
            notes: dict[str, str] = {}
            seconds: dict[str, float] = {}
            for row in rows:
                per_check = (row.seconds if row.seconds is not None else DEFAULT_CHECK_SECONDS * len(row.checks))
                for check_id in row.checks:
                    if check_id in checks:
                        continue
                    checks.append(check_id)
                    used_budget = budget if budget is not None else row.budget
                    if used_budget is not None and budget is None:
                        budgets[check_id] = used_budget
                    if row.params.get(check_id):
                        params[check_id] = dict(row.params[check_id])
                    seconds[check_id] = per_check / len(row.checks)
                    note = demo_note(get_check(check_id), target, used_budget, params.get(check_id, {}),
                                     given=budget is not None)
                    if note:
                        notes[check_id] = note
            stops.append(Stop(target=target, checks=tuple(checks), budgets=budgets, params=params, notes=notes,
                              shows=tuple(r.shows for r in rows), check_seconds=seconds,
                              build_seconds=float(self.build_seconds.get(target, DEFAULT_BUILD_SECONDS))))
        return stops

    def modes(self) -> set[str]:
        """The failure-mode codes the tour has a row for."""
        return {check_id.split(".", 1)[0] for row in self.rows for check_id in row.checks}


def demo_note(check: Any, target: str, budget: int | None, params: Mapping[str, Any], *, given: bool = False) -> str:
    """The sentence a finding gets when the demo ran its check with less than the defaults."""
    from ..checks.params import param_specs

    changes = []
    if budget is not None and budget != check.default_budget:
        source = "--budget" if given else "demo budget"
        changes.append(f"{source} {budget:,} queries (default {check.default_budget:,})")
    defaults = {spec.name: spec.default for spec in param_specs(check)}
    for name, value in params.items():
        changes.append(f"{name}={_show(value)} (default {_show(defaults.get(name))})")
    if not changes:
        return ""
    return (f"Demo tour run: {'; '.join(changes)}. For the full check run "
            f"`redline scan zoo:{target} --select {check.id}`.")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value)
    return str(value)


def load_tour(path: str | Path | None = None) -> Tour:
    """The tour table from ``path`` (default: the one shipped with redline), checked."""
    import yaml

    from ..errors import UsageError

    path = Path(path) if path is not None else TOUR_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read the demo tour {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UsageError(f"the demo tour {path} needs a 'rows' list")
    builds = data.get("builds") or {}
    if not isinstance(builds, dict) or not all(isinstance(v, (int, float)) for v in builds.values()):
        raise UsageError(f"the demo tour {path}: 'builds' maps zoo names to seconds")
    rows = tuple(_row(raw, i, path) for i, raw in enumerate(data["rows"], start=1))
    return Tour(rows=rows, build_seconds={str(k): float(v) for k, v in builds.items()})


def _row(raw: Any, index: int, path: Path) -> TourRow:
    from ..errors import UsageError

    where = f"the demo tour {path}, row {index}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a row is a mapping")
    unknown = set(raw) - _ROW_KEYS
    if unknown or not {"target", "checks", "shows"} <= set(raw):
        raise UsageError(f"{where}: needs target, checks and shows (and optionally budget, params, seconds); "
                         f"unknown: {', '.join(sorted(unknown)) or 'none'}")
    checks = raw["checks"]
    if isinstance(checks, str):
        checks = [checks]
    if not isinstance(checks, list) or not checks or not all(isinstance(c, str) for c in checks):
        raise UsageError(f"{where}: checks is a list of check ids")
    budget = raw.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise UsageError(f"{where}: budget is a whole number of queries")
    params = raw.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise UsageError(f"{where}: params maps check ids to their parameters")
    stray = set(params) - set(checks)
    if stray:
        raise UsageError(f"{where}: params for {', '.join(sorted(stray))}, which the row does not run")
    seconds = raw.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
        raise UsageError(f"{where}: seconds is a number")
    return TourRow(target=str(raw["target"]), checks=tuple(checks), shows=str(raw["shows"]), budget=budget,
                   params={k: dict(v) for k, v in params.items()},
                   seconds=float(seconds) if seconds is not None else None)
