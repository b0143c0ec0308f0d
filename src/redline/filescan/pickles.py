"""Pickle files and the layouts built from pickles: stacked pickles, legacy PyTorch files and
joblib files with inline arrays."""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import policy
from .buffer import Buf
from .limits import Budget, Limits
from .pickle_vm import TORCH_MAGIC, Finding, Mode, PickleError, PickleLimit, RunResult, run_pickle
from .report import ERROR_KINDS
from .values import Persistent, Ref, preview

Sink = Callable[[str, str, str], None]  # (severity, kind, detail)


@dataclass
class PickleOutcome:
    format: str
    storages: dict[str, tuple[int | None, int]] = field(default_factory=dict)  # key -> (elem size, numel)
    persistent_ids: list = field(default_factory=list)
    value: Any = None


def _sink_findings(sink: Sink, keep_errors: bool = True) -> tuple[Callable[[Finding], None], list[Finding]]:
    held: list[Finding] = []

    def report(f: Finding) -> None:
        if keep_errors or f.kind not in ERROR_KINDS:
            sink(f.severity, f.kind, f.detail)
        else:
            held.append(f)

    return report, held


MAX_MODULE_LOOKUPS = 256  # distinct module names looked up per joblib file (~0.1 ms each)


def _plain_noise(f: Finding, looked_up: dict[str, bool]) -> bool:
    """A finding of the plain reading of a joblib file, past its first inline array, that
    cannot be acted on: an unknown global whose top-level module exists nowhere here, so the
    import fails and the plain loader stops (names the nested pickle spelled against the
    outer memo look like that). Denied and dynamic findings always stand, and so does every
    finding past MAX_MODULE_LOOKUPS distinct names (``looked_up`` caches the answers): a file
    naming millions of modules would otherwise cost minutes of file-system lookups."""
    if f.kind not in ("unknown-global", "unknown-call"):
        return False
    name = f.detail.split(" ", 2)[1] if f.detail.count(" ") >= 1 else ""
    top = name.split(".", 1)[0]
    if not top:
        return False
    if top not in looked_up:
        if len(looked_up) >= MAX_MODULE_LOOKUPS:
            return False
        looked_up[top] = module_exists(top)
    return not looked_up[top]


def module_exists(top: str) -> bool:
    import importlib.util
    import sys

    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return False


def _release(sink: Sink, found: list[Finding], keep_errors: bool) -> None:
    for f in found:
        if keep_errors or f.kind not in ERROR_KINDS:
            sink(f.severity, f.kind, f.detail)


def _broken(sink: Sink, run: RunResult, base: int, what: str = "pickle stream") -> None:
    err = run.error
    assert err is not None
    at = err.pos - base if err.pos >= 0 else "?"
    if isinstance(err, PickleLimit):  # the scanner gave up, the stream may be fine
        sink("High", "too-large", f"{what} not scanned past offset {at}: {err}")
        return
    sink("High", "parse-error", f"{what} cannot be loaded past offset {at}: {err}")


def storage_map(pids: list, sink: Sink) -> dict[str, tuple[int | None, int]]:
    """Storage key -> (bytes per element, element count) from torch persistent ids."""
    out: dict[str, tuple[int | None, int]] = {}
    for pid in pids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            continue
        _kind, stype, key, _location, numel = pid[:5]
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            sink("High", "parse-error", f"malformed storage id {preview(pid)}")
            continue
        out[key] = (policy.storage_element_size(stype), numel)
    return out


def scan_pickle(buf: Buf, sink: Sink, *, torch_context: bool = False, torchscript: bool = False,
                strict_end: bool = True, budget: Any = None) -> PickleOutcome:
    """Scan the pickle stream(s) in ``buf``; everything found is passed to ``sink``."""
    mode = Mode(persistent="torch" if torch_context else "any", torchscript=torchscript)
    # Integrity findings of this first, plain run are held back: in a joblib file the plain
    # reading goes astray at the first inline array, which is expected.
    found: list[Finding] = []
    first = run_pickle(buf.data, buf.start, buf.end, mode, found.append, budget)
    if first.error is None and first.value == TORCH_MAGIC and not torch_context:
        _release(sink, found, keep_errors=False)
        return _legacy_torch(buf, first, sink, budget)
    if first.saw_joblib_wrapper:
        # Past the first inline array a plain unpickler reads array bytes (or the nested
        # object pickle, against the outer memo) as opcodes: what it finds there is noise for
        # a joblib file, except a denied global, which plain pickle.load would import and run.
        cut = first.findings_before_wrapper if first.findings_before_wrapper is not None else len(found)
        _release(sink, found[:cut], keep_errors=False)
        looked_up: dict[str, bool] = {}
        _release(sink, [f for f in found[cut:] if not _plain_noise(f, looked_up)], keep_errors=False)
        return _joblib(buf, sink, mode, budget)
    _release(sink, found, keep_errors=True)
    outcome = PickleOutcome("pickle", persistent_ids=first.persistent_ids, value=first.value)
    if torch_context:
        outcome.storages = storage_map(first.persistent_ids, sink)
    if first.error is not None:
        _broken(sink, first, buf.start)
        return outcome
    if strict_end and first.end < buf.end:
        _trailing(buf, first.end, sink, mode, budget)
    return outcome


def _trailing(buf: Buf, pos: int, sink: Sink, mode: Mode, budget: Any = None) -> None:
    """Bytes after STOP: scan them as further pickles (some loaders read several), then report."""
    count = 0
    while pos < buf.end:
        report, _ = _sink_findings(sink)
        run = run_pickle(buf.data, pos, buf.end, mode, report, budget)
        if run.error is not None:
            if isinstance(run.error, PickleLimit):
                _broken(sink, run, buf.start, "data after the first pickle")
                return
            if run.effects:
                _broken(sink, run, buf.start, "data after the first pickle")
            sink("High", "trailing-data", f"{buf.end - pos} bytes follow the end of the pickle at offset {pos - buf.start}")
            return
        count += 1
        if count == 1:
            sink("High", "trailing-data",
                 f"another pickle starts at offset {pos - buf.start}; loaders that read several pickles would run it")
        pos = run.end


def _joblib(buf: Buf, sink: Sink, mode: Mode, budget: Any = None) -> PickleOutcome:
    """joblib files: scan as joblib reads them (the plain run's security findings stand too,
    since plain ``pickle.load`` would act on them)."""
    jmode = Mode(persistent=mode.persistent, torchscript=mode.torchscript, joblib=True)
    report, _ = _sink_findings(sink)
    run = run_pickle(buf.data, buf.start, buf.end, jmode, report, budget)
    outcome = PickleOutcome("joblib", persistent_ids=run.persistent_ids)
    if run.error is not None:
        _broken(sink, run, buf.start, "joblib stream")
    elif run.end < buf.end:
        _trailing(buf, run.end, sink, jmode, budget)
    return outcome


def _legacy_torch(buf: Buf, magic: RunResult, sink: Sink, budget: Any = None) -> PickleOutcome:
    """torch.save(..., _use_new_zipfile_serialization=False): magic, protocol, sys info, the
    object (with persistent storage ids), the storage keys, then each storage's raw bytes."""
    outcome = PickleOutcome("pytorch-legacy")
    pos = magic.end
    steps = (("protocol version", Mode()), ("system info", Mode()),
             ("model", Mode(persistent="torch")), ("storage keys", Mode()))
    runs = {}
    for what, mode in steps:
        report, _ = _sink_findings(sink)
        run = run_pickle(buf.data, pos, buf.end, mode, report, budget)
        if run.error is not None:
            _broken(sink, run, buf.start, f"legacy PyTorch {what} pickle")
            return outcome
        runs[what] = run
        pos = run.end
    if runs["protocol version"].value != 1001:
        sink("High", "parse-error", f"legacy PyTorch protocol version {preview(runs['protocol version'].value)} is not 1001")
    outcome.persistent_ids = runs["model"].persistent_ids
    storages = storage_map(outcome.persistent_ids, sink)
    outcome.storages = storages
    keys = runs["storage keys"].value
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        sink("High", "parse-error", "legacy PyTorch storage key list is not a list of strings")
        return outcome
    for key in keys:
        if key not in storages:
            sink("High", "parse-error", f"legacy PyTorch storage {key!r} is not referenced by the model pickle")
            return outcome
        size, numel = storages[key]
        if size is None:
            sink("High", "parse-error", f"legacy PyTorch storage {key!r} has an unknown element type")
            return outcome
        if pos + 8 > buf.end:
            sink("High", "parse-error", f"legacy PyTorch storage {key!r} is truncated")
            return outcome
        (count,) = struct.unpack_from("<q", buf.data, pos)
        if count != numel:
            sink("High", "parse-error", f"legacy PyTorch storage {key!r} holds {count} elements, the model says {numel}")
            return outcome
        pos += 8 + count * size
        if pos > buf.end:
            sink("High", "parse-error", f"legacy PyTorch storage {key!r} is truncated")
            return outcome
    if pos < buf.end:
        sink("High", "trailing-data", f"{buf.end - pos} bytes follow the last legacy PyTorch storage")
    return outcome


def looks_like_pickle(buf: Buf, limits: Limits | None = None, clock: Budget | None = None) -> RunResult:
    """A trial load used to recognise protocol 0/1 pickles, which have no magic bytes.
    It runs under the file's limits but on its own opcode tally (the real scan pays again);
    with ``clock`` (the file's Budget) its time and memory count against the file's, so
    trials repeated over many archive members cannot outrun ``max_seconds``.
    A trial stopped by a limit proves nothing either way: callers treat it as a pickle."""
    tally = Budget(limits or Limits())
    if clock is not None:
        tally.started, tally.memory_start = clock.started, clock.memory_start
    return run_pickle(buf.data, buf.start, buf.end, Mode(), lambda f: None, tally)


def stopped_by_limit(run: RunResult) -> bool:
    return isinstance(run.error, PickleLimit)


__all__ = ["Persistent", "PickleError", "PickleOutcome", "Ref", "looks_like_pickle", "scan_pickle"]
