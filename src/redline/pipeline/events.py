"""Append-only event log of a scan (``events.jsonl``), the basis of ``--resume``.

Each line is one JSON event, written and fsync'ed as it happens, so a scan killed at
any moment (even with SIGKILL), or stopped by a full disk, loses at most the check that
was running.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import UsageError
from ..util.atomic import output_error
from ..util.safe_paths import open_append_nofollow, open_read_nofollow

EVENTS_FILE = "events.jsonl"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._tail_checked = False

    def append(self, kind: str, **fields: Any) -> None:
        """Append one event. A write that fails (a full disk, a file-size limit) raises
        OutputError naming the log; the next append first ends the line it may have torn, so
        no later event is glued to the broken one."""
        record = {"event": kind, "time": now_iso(), **fields}
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        try:
            if not self._tail_checked:
                if self._torn():
                    line = "\n" + line
                self._tail_checked = True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open_append_nofollow(self.path) as fh:  # a planted link must not redirect the log
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._tail_checked = False
            raise output_error(self.path, exc) from None

    def _torn(self) -> bool:
        """Whether the log ends in the middle of a line (a write that failed or was killed)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False  # no log yet (or a link, which the append refuses)
        try:
            size = os.fstat(fd).st_size
            return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        finally:
            os.close(fd)

    def read(self) -> Iterator[dict[str, Any]]:
        """Events in order; a torn last line (the process died mid-write) is ignored."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        with open_read_nofollow(self.path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def reset(self) -> None:
        if self.path.exists() or self.path.is_symlink():  # a dangling link is removed too
            self.path.unlink()


def finished_findings(log: EventLog, fingerprint: str, inputs: dict[str, str] | None = None,
                      without_inputs: str | None = None) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Findings of a previous run with the same scan fingerprint, by finding id, and its start time.

    Raises UsageError when the folder holds a different scan, so --resume never mixes two.
    ``inputs`` (the digests of the files the scan reads, as the fingerprint hashed them) only
    make that message name the files that changed. ``without_inputs`` is the fingerprint
    without them, which a start recorded before redline hashed files (no ``inputs`` in its
    event) is held to, so such a scan can still be resumed.
    """
    done: dict[str, dict[str, Any]] = {}
    started_at = None
    seen_start = False
    for event in log.read():
        if event.get("event") == "scan_started":
            legacy = without_inputs is not None and "inputs" not in event
            if event.get("fingerprint") != fingerprint and not (legacy and event.get("fingerprint") == without_inputs):
                raise UsageError(
                    f"{log.path} belongs to a scan with other arguments or inputs{_changed_inputs(event, inputs)}; resume "
                    "with the same target, data, selection, budget, seed, context, target config and check "
                    "parameters, and unchanged files, or use another --out"
                )
            seen_start = True
            started_at = started_at or event.get("time")
        elif event.get("event") == "check_finished" and seen_start:
            finding = event.get("finding") or {}
            if "id" in finding:
                done[finding["id"]] = finding
    return done, started_at


def count_finished(log: EventLog) -> int:
    """How many checks the log records as finished (each once, however often it was resumed)."""
    try:
        return len({str((event.get("finding") or {}).get("id")) for event in log.read()
                    if event.get("event") == "check_finished"})
    except (OSError, ValueError, UsageError):
        return 0


def _changed_inputs(started: dict[str, Any], inputs: dict[str, str] | None) -> str:
    """``: the contents of data file d.npz changed since it started``, naming the files whose contents differ
    from what the earlier run recorded; empty when that cannot be told."""
    before = started.get("inputs")
    if not isinstance(before, dict) or inputs is None:
        return ""
    # A name in only one of them is an argument that changed, which the message says already.
    changed = sorted(name for name in set(before) & set(inputs) if before[name] != inputs[name])
    if not changed:
        return ""
    return f": the contents of {', '.join(changed)} changed since it started"
