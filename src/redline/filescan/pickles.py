"""Pickle files and the layouts built from pickles: stacked pickles, legacy PyTorch files and
joblib files with inline arrays."""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import policy
from .buffer import Buf
from .pickle_vm import TORCH_MAGIC, Finding, Mode, PickleError, RunResult, run_pickle
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


def _plain_noise(f: Finding) -> bool:
    """A finding of the plain reading of a joblib file, past its first inline array, that
    cannot be acted on: an unknown global whose top-level module exists nowhere here, so the
    import fails and the plain loader stops (names the nested pickle spelled against the
    outer memo look like that). Denied and dynamic findings always stand."""
    if f.kind not in ("unknown-global", "unknown-call"):
        return False
    name = f.detail.split(" ", 2)[1] if f.detail.count(" ") >= 1 else ""
    top = name.split(".", 1)[0]
    return bool(top) and not module_exists(top)


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
                strict_end: bool = True) -> PickleOutcome:
    """Scan the pickle stream(s) in ``buf``; everything found is passed to ``sink``."""
    mode = Mode(persistent="torch" if torch_context else "any", torchscript=torchscript)
    # Integrity findings of this first, plain run are held back: in a joblib file the plain
    # reading goes astray at the first inline array, which is expected.
    found: list[Finding] = []
    first = run_pickle(buf.data, buf.start, buf.end, mode, found.append)
    if first.error is None and first.value == TORCH_MAGIC and not torch_context:
        _release(sink, found, keep_errors=False)
        return _legacy_torch(buf, first, sink)
    if first.saw_joblib_wrapper:
        # Past the first inline array a plain unpickler reads array bytes (or the nested
        # object pickle, against the outer memo) as opcodes: what it finds there is noise for
        # a joblib file, except a denied global, which plain pickle.load would import and run.
        cut = first.findings_before_wrapper if first.findings_before_wrapper is not None else len(found)
        _release(sink, found[:cut], keep_errors=False)
        _release(sink, [f for f in found[cut:] if not _plain_noise(f)], keep_errors=False)
        return _joblib(buf, sink, mode)
    _release(sink, found, keep_errors=True)
    outcome = PickleOutcome("pickle", persistent_ids=first.persistent_ids, value=first.value)
    if torch_context:
        outcome.storages = storage_map(first.persistent_ids, sink)
    if first.error is not None:
        _broken(sink, first, buf.start)
        return outcome
    if strict_end and first.end < buf.end:
        _trailing(buf, first.end, sink, mode)
    return outcome


def _trailing(buf: Buf, pos: int, sink: Sink, mode: Mode) -> None:
    """Bytes after STOP: scan them as further pickles (some loaders read several), then report."""
    count = 0
    while pos < buf.end:
        report, _ = _sink_findings(sink)
        run = run_pickle(buf.data, pos, buf.end, mode, report)
        if run.error is not None:
            if run.effects:
                _broken(sink, run, buf.start, "data after the first pickle")
            sink("High", "trailing-data", f"{buf.end - pos} bytes follow the end of the pickle at offset {pos - buf.start}")
            return
        count += 1
        if count == 1:
            sink("High", "trailing-data",
                 f"another pickle starts at offset {pos - buf.start}; loaders that read several pickles would run it")
        pos = run.end


def _joblib(buf: Buf, sink: Sink, mode: Mode) -> PickleOutcome:
    """joblib files: scan as joblib reads them (the plain run's security findings stand too,
    since plain ``pickle.load`` would act on them)."""
    jmode = Mode(persistent=mode.persistent, torchscript=mode.torchscript, joblib=True)
    report, _ = _sink_findings(sink)
    run = run_pickle(buf.data, buf.start, buf.end, jmode, report)
    outcome = PickleOutcome("joblib", persistent_ids=run.persistent_ids)
    if run.error is not None:
        _broken(sink, run, buf.start, "joblib stream")
    elif run.end < buf.end:
        _trailing(buf, run.end, sink, jmode)
    return outcome


def _legacy_torch(buf: Buf, magic: RunResult, sink: Sink) -> PickleOutcome:
    """torch.save(..., _use_new_zipfile_serialization=False): magic, protocol, sys info, the
    object (with persistent storage ids), the storage keys, then each storage's raw bytes."""
    outcome = PickleOutcome("pytorch-legacy")
    pos = magic.end
    steps = (("protocol version", Mode()), ("system info", Mode()),
             ("model", Mode(persistent="torch")), ("storage keys", Mode()))
    runs = {}
    for what, mode in steps:
        report, _ = _sink_findings(sink)
        run = run_pickle(buf.data, pos, buf.end, mode, report)
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


def looks_like_pickle(buf: Buf) -> RunResult:
    """A trial load used to recognise protocol 0/1 pickles, which have no magic bytes."""
    return run_pickle(buf.data, buf.start, buf.end, Mode(), lambda f: None)


__all__ = ["Persistent", "PickleError", "PickleOutcome", "Ref", "looks_like_pickle", "scan_pickle"]
