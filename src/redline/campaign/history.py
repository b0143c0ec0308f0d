"""Runs of one campaign over time, and what changed between two of them.

Running a campaign again into an --out whose last run finished (without ``--resume``)
starts a new run there: the finished one is moved whole, journal included, into
``--out/runs/<number>-<started>/`` and becomes the *previous run*. The new run's summary says
which findings are new, fixed or regressed against it. ``--compare DIR`` names another
campaign folder (a run kept elsewhere, e.g. last night's --out) to compare with instead.

A finding is matched across runs by (target, check, seed): within one campaign that is its
id, and across two campaign files it still pairs the same test when a parameter changed.
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..findings import target_digest
from ..severity import Severity
from ..util.urls import redact_url
from .journal import JOURNAL_FILE

RUNS_FOLDER = "runs"
VULNERABLE = "vulnerable"
# The order the summary lists changes in: the ones to act on first.
CHANGES = ("new", "regressed", "fixed", "improved", "unconfirmed")


def read_journal(path: Path) -> tuple[dict[str, str], list[tuple]]:
    """A journal's meta values and job rows (key, target, check, seed, result json), read only."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            rows = db.execute("SELECT key, target, check_id, seed, result FROM jobs").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path} is not a campaign journal ({exc})") from None
    return meta, rows


def archive_finished_run(out: Path) -> Path | None:
    """Move the finished run in ``out`` (if its journal says it finished) into ``out/runs/``.

    Idempotent: a driver killed half-way through leaves the journal in place (it moves last),
    so the next start moves the rest into the same folder. Returns the archive, or None when
    there was nothing finished to move (an unfinished run stays for ``--resume``)."""
    journal = out / JOURNAL_FILE
    if not journal.is_file():
        return None
    try:
        meta, _ = read_journal(journal)
    except UsageError:  # empty or not a journal: opening it as this run's journal says which
        return None
    if meta.get("complete") != "1":
        return None
    stamp = re.sub(r"[^0-9A-Za-z]+", "-", meta.get("started_at", "run")).strip("-")
    archive = out / RUNS_FOLDER / f"{int(meta.get('run_number', 0)):04d}-{stamp}"
    archive.mkdir(parents=True, exist_ok=True)
    journal_files = {JOURNAL_FILE, JOURNAL_FILE + "-wal", JOURNAL_FILE + "-shm"}
    # Reports, job folders and index first: a job folder left behind would let the new run
    # resume the old run's finished check from its event log.
    for entry in sorted(out.iterdir()):
        if entry.name != RUNS_FOLDER and entry.name not in journal_files:
            entry.rename(archive / entry.name)
    for name in sorted(journal_files, key=len, reverse=True):  # the -wal/-shm before the main file
        if (out / name).exists():
            (out / name).rename(archive / name)
    return archive


def previous_run(out: Path, compare: str | Path | None = None) -> Path | None:
    """The journal to compare this run with: ``compare``'s (a campaign folder or its journal),
    else the newest run archived in ``out/runs``, else None (a first run)."""
    if compare is not None:
        path = Path(compare)
        journal = path / JOURNAL_FILE if path.is_dir() else path
        if not journal.is_file():
            raise UsageError(f"--compare {compare}: no campaign journal ({JOURNAL_FILE}) there")
        return journal
    runs = out / RUNS_FOLDER
    if not runs.is_dir():
        return None
    kept = [p for p in runs.iterdir() if (p / JOURNAL_FILE).is_file()]
    return max(kept, key=_run_number) / JOURNAL_FILE if kept else None


def _run_number(archive: Path) -> int:
    head = archive.name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def next_run_number(out: Path) -> int:
    """Runs are numbered in order (the start time, to the second, can tie between two quick runs)."""
    runs = out / RUNS_FOLDER
    return 1 + max((_run_number(p) for p in runs.iterdir()), default=0) if runs.is_dir() else 1


def _state(finding: dict[str, Any]) -> dict[str, Any]:
    return {"id": finding.get("id"), "status": finding.get("status"), "severity": finding.get("severity", "None")}


def journal_findings(rows: Iterable[tuple]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Every finding a journal holds, by (target, check, seed): the job's own finding, the
    static file scan that came with it, and an ``error`` for a job that produced none."""
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for key, target, check, seed, result_json in rows:
        result = json.loads(result_json)
        shown = redact_url(target)
        digest = target_digest(target)
        if digest:  # two URLs shown alike (a query value apart) are still two targets
            shown = f"{shown} ({digest})"
        for other in result.get("other_findings", []):
            found.setdefault((shown, other["check"], int(other.get("seed", 0))), _state(other))
        own = result.get("finding")
        found[(shown, check, int(seed))] = (_state(own) if own is not None
                                           else {"id": key, "status": "error", "severity": "None"})
    return found


def compare_runs(before: dict, after: dict) -> dict[str, list[dict[str, Any]]]:
    """What changed from ``before`` to ``after`` (both from :func:`journal_findings`).

    new: vulnerable now, not in the previous run. regressed: vulnerable now, and before it
    was not (or was less severe). fixed: vulnerable before, not vulnerable now. improved:
    still vulnerable, less severe. unconfirmed: vulnerable before, and now neither confirmed
    nor refuted (inconclusive, error, not applicable or not run): not called fixed on no evidence.
    """
    changes: dict[str, list[dict[str, Any]]] = {name: [] for name in CHANGES}
    unchanged = 0
    for where in sorted(set(before) | set(after)):
        old, new = before.get(where), after.get(where)
        was = old is not None and old["status"] == VULNERABLE
        now = new is not None and new["status"] == VULNERABLE
        kind = None
        if now and old is None:
            kind = "new"
        elif now and not was:
            kind = "regressed"
        elif now and was:
            rise = Severity.parse(new["severity"]) - Severity.parse(old["severity"])
            kind = "regressed" if rise > 0 else "improved" if rise < 0 else None
        elif was and new is not None and new["status"] == "not_vulnerable":
            kind = "fixed"
        elif was:
            kind = "unconfirmed"
        if kind is None:
            unchanged += old is not None and new is not None
            continue
        target, check, seed = where
        changes[kind].append({"target": target, "check": check, "seed": seed,
                              "id": (new or old)["id"], "before": old, "after": new})
    return {**changes, "unchanged": unchanged}


def comparison(journal_now: Path, journal_before: Path, out: Path) -> dict[str, Any]:
    """The comparison record of index.json: which run, counts, and each change."""
    meta_before, rows_before = read_journal(journal_before)
    _, rows_now = read_journal(journal_now)
    changes = compare_runs(journal_findings(rows_before), journal_findings(rows_now))
    try:
        folder = str(journal_before.parent.resolve().relative_to(out.resolve()))
    except ValueError:
        folder = str(journal_before.parent.resolve())
    return {
        "previous": {"started_at": meta_before.get("started_at", ""), "folder": folder,
                     "fingerprint": meta_before.get("fingerprint", "")},
        "counts": {**{name: len(changes[name]) for name in CHANGES}, "unchanged": changes["unchanged"]},
        **{name: changes[name] for name in CHANGES},
    }


def describe(change: dict[str, Any]) -> str:
    """One line per change, as the CLI and the index show it."""
    def state(s: dict[str, Any] | None) -> str:
        if s is None:
            return "not run"
        return s["status"].replace("_", " ") + (f" ({s['severity']})" if s["status"] == VULNERABLE else "")

    return f"{change['target']} {change['check']} seed {change['seed']}: {state(change['before'])} -> {state(change['after'])}"


def prepare_run(out: Path, *, resume: bool, compare: str | Path | None) -> Path | None:
    """Before a run opens its journal: check ``--compare``, move a finished previous run out of
    the way (a new run, not ``--resume``), and return the journal to compare with."""
    chosen = previous_run(out, compare) if compare is not None else None
    if not resume:
        archive_finished_run(out)
    return chosen if compare is not None else previous_run(out)


def longest_first(todo: list, journal: Path | None) -> list:
    """The jobs in the order that ends soonest on several workers: longest first, by how long
    each took in the previous run (jobs it did not have keep the campaign's order, at the
    front: their cost is unknown). Order never changes a result: every job seeds itself."""
    if journal is None:
        return todo
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=30)
        try:
            took = dict(db.execute("SELECT key, seconds FROM jobs").fetchall())
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return todo  # an unreadable previous run only costs the ordering
    order = {job.key: i for i, job in enumerate(todo)}
    return sorted(todo, key=lambda job: (job.key in took, -took.get(job.key, 0.0), order[job.key]))
