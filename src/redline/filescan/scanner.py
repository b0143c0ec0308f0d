"""Scan files and the members of archives: detect each format from its bytes, hand it to the
reader for that format, and collect the issues into one ``FileReport`` per file."""
from __future__ import annotations

import codecs
import hashlib
import io
import json
import lzma
import os
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import hdf5_format, keras_format, numpy_format, onnx_format, safetensors_format, tf_format, zipread
from .buffer import Buf, NotRegularFile, map_file
from .inflate import inflate
from .limits import Budget, LimitExceeded, Limits
from .pickle_vm import OPCODE_BYTES
from .pickles import looks_like_pickle, scan_pickle, stopped_by_limit
from .report import FileReport, Issue

_PICKLE_FORMATS = ("pickle",)  # formats already read as a pickle from their first byte

_TORCH_DATA = re.compile(r"^(?:(.*)/)?data\.pkl$")
MAX_ISSUES = 1000  # per file; past it only the first issue of each (severity, kind) is kept
# reaching one of these ends the scan of the whole file, not just of the member at hand
_GLOBAL_LIMITS = ("max_total_bytes", "max_entries", "max_memory_bytes", "max_seconds")


class _Scan:
    """The state of scanning one top-level file."""

    def __init__(self, report: FileReport, limits: Limits, path: str | None) -> None:
        self.report = report
        self.limits = limits
        self.path = path
        self.budget = Budget(limits)
        self._seen: set[tuple] = set()
        self._kinds: set[tuple] = set()
        self.suppressed = 0
        self._digests: dict[bytes, str] = {}  # content already scanned -> the member it was in
        self.formats: set[str] = set()  # every format met, nested ones included
        self.limited = False  # the last member extraction stopped at a member limit

    # -------------------------------------------------------------- issues
    def add(self, severity: str, kind: str, detail: str, member: str | None) -> None:
        key = (severity, kind, detail, member)
        if key in self._seen:
            return
        if len(self.report.issues) >= MAX_ISSUES and (severity, kind) in self._kinds:
            self.suppressed += 1
            return
        self._seen.add(key)
        self._kinds.add((severity, kind))
        self.report.issues.append(Issue(severity, kind, detail, member))

    def sink(self, member: str | None) -> Callable[[str, str, str], None]:
        return lambda severity, kind, detail: self.add(severity, kind, detail, member)

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    # -------------------------------------------------------------- dispatch
    def scan(self, buf: Buf, member: str | None, depth: int) -> str:
        if depth > self.limits.max_depth:
            self.add("High", "depth-limit", f"nested deeper than {self.limits.max_depth} levels; not scanned", member)
            return "nested"
        fmt = detect(buf, self.limits, self.budget)
        self.formats.add(fmt)
        handler = _HANDLERS.get(fmt)
        result = fmt
        if handler is None:
            if fmt == "unknown":
                self.add("High", "unknown-format", "content is not a model format the scanner can read", member)
        else:
            try:
                result = handler(self, buf, member, depth) or fmt
                if " (" not in result:  # what the reader made of it: "keras-config", "pytorch", "skops"...
                    self.formats.add(result)
            except LimitExceeded as exc:
                self.add("High", "too-large", f"{fmt} content not fully scanned: {exc}", member)
                if exc.name in _GLOBAL_LIMITS:
                    if depth > 0:
                        raise
                    return result  # the file's budget is spent: no further reading of it
            except RecursionError:
                self.add("High", "parse-error", "structure nested too deeply to read", member)
            except (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error, MemoryError) as exc:
                # a reader met input it did not expect: fail closed instead of guessing
                self.add("High", "parse-error", f"{fmt} content cannot be read ({type(exc).__name__}: {exc})", member)
        if fmt not in _PICKLE_FORMATS:
            self._also_pickle(buf, member, depth)
        return result

    def _also_pickle(self, buf: Buf, member: str | None, depth: int) -> None:
        """Whatever format the bytes were recognised as, ``pickle.load`` (and numpy, joblib and
        legacy torch loaders, which fall back to it) reads them from the first byte: if that
        reading gets anywhere, the file is scanned as a pickle as well. A trial read stopped
        by a limit proves nothing either way, so it counts as a pickle (fail closed)."""
        if not len(buf) or buf.data[buf.start] not in OPCODE_BYTES:
            return
        trial = looks_like_pickle(buf, self.limits, self.budget)
        if trial.end is not None or trial.effects:
            self.add("High", "polyglot", "the file is also a pickle; pickle loaders would run it", member)
        elif stopped_by_limit(trial):
            # no proof either way: not called a polyglot, but scanned as a pickle, whose limit
            # then makes the verdict error
            self.note(f"{member or 'the file'} may also be a pickle: a trial reading stopped at a limit")
        else:
            return
        self.pickle(buf, _child(member, "<as pickle>"), depth + 1)

    # -------------------------------------------------------------- formats
    def pickle(self, buf: Buf, member: str | None, depth: int, *, torch_context: bool = False,
               torchscript: bool = False):
        outcome = scan_pickle(buf, self.sink(member), torch_context=torch_context, torchscript=torchscript,
                              budget=self.budget)
        ids = [pid for pid in outcome.persistent_ids][:5]
        if ids:
            where = f" in {member}" if member else ""
            self.note(f"persistent ids{where}: {len(outcome.persistent_ids)} (e.g. "
                      + ", ".join(_short(pid) for pid in ids) + ")")
        return outcome

    def scan_pickle_file(self, buf: Buf, member: str | None, depth: int) -> str:
        return self.pickle(buf, member, depth).format

    def npy(self, buf: Buf, member: str | None, depth: int, size: int | None = None) -> str:
        """``size`` is the member's full size when ``buf`` holds only its streamed head."""
        sink = self.sink(member)
        try:
            header = numpy_format.read_header(buf)
        except numpy_format.NpyError as exc:
            sink("High", "parse-error", f"npy header: {exc}")
            return "npy"
        if header.has_objects:
            sink("Low", "object-array", "object array: numpy.load(allow_pickle=True) unpickles its data")
            self.pickle(buf.sub(header.data_offset, buf.end), member, depth)
            return "npy"
        count = 1
        for n in header.shape:
            count *= n
        expected = count * header.itemsize
        have = (buf.end if size is None else buf.start + size) - header.data_offset
        if have < expected:
            sink("High", "parse-error", f"array data truncated: {have} of {expected} bytes")
        elif have > expected:
            sink("High", "trailing-data", f"{have - expected} bytes follow the array data")
        return "npy"

    def zip(self, buf: Buf, member: str | None, depth: int) -> str:
        try:
            listing = zipread.read_listing(buf)
        except zipread.NotAZip as exc:
            self.add("High", "parse-error", f"zip archive cannot be read: {exc}", member)
            # streaming readers still see the local entries: with no central directory they
            # are the whole archive, so they are scanned as its members (a truncated PyTorch
            # file is still read with PyTorch's rules)
            listing = zipread.Listing()
            zipread.scan_local_entries(buf, listing, buf.start, buf.end)
            for m in listing.members:
                m.hidden = False
            listing.problems = [p for p in listing.problems if "(hidden member)" not in p]
            truncated = True
        else:
            truncated = False
        for problem in listing.problems:
            self.add("High", "archive-integrity", problem, member)
        kind, prefix, torchscript = _zip_kind(listing, truncated=truncated)
        members = sorted(listing.members, key=lambda m: m.header_offset)
        storages: dict[str, tuple[int | None, int]] = {}
        handled: set[int] = set()
        raw_payloads = self._pt2_payloads(buf, members, prefix, member) if kind == "pt2" else set()
        if kind == "pytorch":
            for pickled in (f"{prefix}data.pkl", f"{prefix}constants.pkl"):
                m = next((m for m in members if m.name == pickled and not m.hidden), None)
                if m is None:
                    continue
                handled.add(id(m))
                self.budget.spend_entry()
                content = self._extract(buf, m, member)
                if content is not None:
                    outcome = self.pickle(content, _child(member, m.name), depth + 1, torch_context=True,
                                          torchscript=torchscript)
                    folder = "data/" if pickled.endswith("data.pkl") else "constants/"
                    for key, spec in outcome.storages.items():
                        storages[f"{prefix}{folder}{key}"] = spec
                        if torchscript:  # TorchScript constants may share the data folder
                            storages.setdefault(f"{prefix}data/{key}", spec)
            names = {m.name for m in members}
            for name in sorted(storages):
                if name not in names and name.startswith(f"{prefix}data/"):
                    self.add("High", "parse-error", f"storage {name} named by data.pkl is missing", member)
        extents: dict[tuple, str] = {}
        overlapping = _overlapping(members)
        held_back = 0
        for m in members:
            if id(m) in handled:
                continue
            self.budget.spend_entry()
            if id(m) in overlapping and overlapping[id(m)]:
                held_back += 1  # another overlapping entry already passed a limit: same bytes, same bomb
                continue
            child = _child(member, m.name)
            spec = storages.get(m.name) if not m.hidden else None
            if spec is not None:  # raw tensor bytes: the loader never parses them
                self._check_storage(m, spec, child)
                continue
            role = _member_role(kind, m, raw_payloads)
            extent = (m.data_offset, m.csize, m.method)
            if (extent, role) in extents and not m.flags & 0x1000_0000:  # overlapping entries: read once
                self.note(f"{child} shares its bytes with {extents[extent, role]}; scanned once")
                continue
            extents[extent, role] = child
            if role == "skops-schema":
                content = self._extract(buf, m, member)
                if content is not None:
                    self.skops_schema(content, child)
                continue
            got = self._extract_member(buf, m, member, stream=role == "scan")
            if got is None:
                if self.limited and id(m) in overlapping:
                    overlapping.update((key, True) for key in overlapping)
                continue
            content = got.content
            if got.streamed:
                self.npy(content, child, depth + 1, size=got.size)
            elif role == "keras-config":
                self.keras_config(content, child)  # load_model reads it whatever else is there
            elif role == "raw":
                self._also_pickle(content, child, depth + 1)  # raw tensor bytes of a .pt2 archive
            elif role == "keras-weights" and detect(content, self.limits, self.budget) == "hdf5":
                self.formats.add("hdf5")  # weights only: Keras reads its datasets into variables, no config or code
            elif not self._seen_content(content, child):
                self.scan(content, child, depth + 1)
        if held_back:
            self.add("High", "too-large", f"{held_back} overlapping entries not read: an entry overlapping them "
                     "passed a limit", member)
        return kind

    def keras_config(self, buf: Buf, member: str) -> None:
        self.formats.add("keras-config")
        if len(buf) > self.limits.max_json_bytes:
            self.add("High", "too-large", f"config.json not checked: larger than {self.limits.max_json_bytes} bytes "
                     "(limit max_json_bytes)", member)
            return
        try:
            doc = json.loads(buf.to_bytes())
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.add("High", "parse-error", f"config.json cannot be decoded as Keras would: {exc}", member)
            return
        keras_format.check_config(doc, self.sink(member), budget=self.budget)

    def _pt2_payloads(self, buf: Buf, members: list, prefix: str, member: str | None) -> set[str]:
        """Members a torch.export archive's payload configs name as raw tensor bytes."""
        raw: set[str] = set()
        for folder in ("weights", "constants"):
            for m in members:
                if m.hidden or not (m.name.startswith(f"{prefix}data/{folder}/") and m.name.endswith("_config.json")):
                    continue
                if m.usize > self.limits.max_json_bytes:
                    continue  # scanned (and reported too large) as a plain member
                content = self._extract(buf, m, member)
                if content is not None and len(content) > self.limits.max_json_bytes:
                    continue
                try:
                    config = json.loads(content.to_bytes()) if content is not None else {}
                except (UnicodeDecodeError, ValueError, RecursionError):
                    continue  # scanned (and reported) as a plain member
                entries = config.get("config") if isinstance(config, dict) else None
                for entry in (entries.values() if isinstance(entries, dict) else ()):
                    if isinstance(entry, dict) and entry.get("use_pickle") is False and isinstance(entry.get("path_name"), str):
                        raw.add(f"{prefix}data/{folder}/{entry['path_name']}")
        return raw

    def _seen_content(self, content: Buf, child: str) -> bool:
        """True (and a note) when the same bytes were already scanned in this file: a nested
        bomb repeats one archive many times, and its verdict cannot differ between copies."""
        if len(content) < 64:
            return False
        digest = hashlib.blake2b(content.view(), digest_size=20).digest()
        first = self._digests.get(digest)
        if first is None:
            self._digests[digest] = child
            return False
        self.note(f"{child} repeats the content of {first}; scanned once")
        return True

    def skops_schema(self, buf: Buf, member: str) -> None:
        from . import skops_format

        if len(buf) > self.limits.max_json_bytes:
            raise LimitExceeded("max_json_bytes", f"skops schema larger than {self.limits.max_json_bytes} bytes")
        try:
            schema = json.loads(buf.to_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.add("High", "parse-error", f"skops schema cannot be decoded: {exc}", member)
            return
        skops_format.check_schema(schema, self.sink(member))

    def _extract(self, buf: Buf, m: zipread.Member, member: str | None) -> Buf | None:
        got = self._extract_member(buf, m, member, stream=False)
        return None if got is None else got.content

    def _extract_member(self, buf: Buf, m: zipread.Member, member: str | None,
                        stream: bool = True) -> zipread.Extracted | None:
        """The member's content (or, for a numeric .npy member, its streamed head), or None
        (``self.limited`` then says whether a member limit was the reason)."""
        self.limited = False
        try:
            got = zipread.extract(buf, m, self.budget, stream_if=_numeric_npy if stream else None)
        except LimitExceeded as exc:
            if exc.name in _GLOBAL_LIMITS:
                raise
            self.add("High", "too-large", f"{m.name}: not scanned: {exc}", member)
            self.limited = True
            return None
        for problem in got.problems:
            kind = "encrypted" if "encrypted" in problem else (
                "unsupported" if "compression method" in problem else (
                    "too-large" if "expands beyond" in problem else "archive-integrity"))
            self.add("High", kind, problem, member)
        return got if got.content is not None else None

    def _check_storage(self, m: zipread.Member, spec: tuple[int | None, int], child: str) -> None:
        size, numel = spec
        if m.encrypted or m.method not in (0, 8):
            self.add("High", "archive-integrity", f"storage {m.name} is encrypted or oddly compressed", child)
        elif size is not None and m.usize != size * numel:
            self.add("High", "parse-error",
                     f"storage holds {m.usize} bytes but the pickle describes {numel} x {size}", child)

    def compressed(self, buf: Buf, member: str | None, depth: int) -> str:
        kind = _compression(buf)
        try:
            out = inflate(kind, buf.view(), self.budget)
        except LimitExceeded as exc:
            if exc.name in _GLOBAL_LIMITS:
                raise
            self.add("High", "too-large", f"{kind} stream not scanned: {exc}", member)
            return kind
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            self.add("High", "parse-error", f"{kind} stream cannot be decompressed: {exc}", member)
            return kind
        if out.irregular:
            self.add("High", "parse-error", f"{kind} stream is truncated or followed by other bytes", member)
        inner = self.scan(Buf.of(out.data), _child(member, f"<{kind}>"), depth + 1)
        return f"{inner} ({kind})"

    def tar(self, buf: Buf, member: str | None, depth: int) -> str:
        try:
            with tarfile.open(fileobj=_Reader(buf), mode="r:") as archive:
                entries = []
                for entry in archive:  # read lazily: a tar of millions of headers stops at the limit
                    self.budget.spend_entry()
                    entries.append(entry)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self.add("High", "parse-error", f"tar archive cannot be read: {exc}", member)
            return "tar"
        names = {e.name for e in entries}
        if {"pickle", "storages", "tensors"} <= names:
            self.add("High", "unsupported",
                     "legacy PyTorch tar layout: its storages/tensors members mix pickles and raw data", member)
        for entry in entries:
            child = _child(member, entry.name)
            if entry.issym() or entry.islnk():
                self.add("Medium", "link-member", f"link to {entry.linkname!r}", child)
                continue
            if not entry.isfile():
                continue
            if entry.sparse:
                self.add("High", "unsupported", "sparse tar member", child)
                continue
            start = buf.start + entry.offset_data
            self.scan(buf.sub(start, start + entry.size), child, depth + 1)
        return "tar"

    def safetensors(self, buf: Buf, member: str | None, depth: int) -> str:
        def embedded(blob: bytes, where: str) -> None:
            self.pickle(Buf.of(blob), _child(member, where), depth + 1)

        (header_size,) = struct.unpack_from("<Q", buf.data, buf.start)
        if header_size > self.limits.max_json_bytes:  # decoded JSON takes many times its size
            raise LimitExceeded("max_json_bytes", f"safetensors header of {header_size} bytes")
        safetensors_format.scan_safetensors(buf, self.sink(member), embedded)
        return "safetensors"

    def onnx(self, buf: Buf, member: str | None, depth: int) -> str:
        locations = onnx_format.scan_onnx(buf, self.sink(member))
        if locations:
            self.note(f"external data files: {', '.join(sorted(set(locations))[:5])}")
        return "onnx"

    def saved_model(self, buf: Buf, member: str | None, depth: int) -> str:
        tf_format.scan_saved_model(buf, self.sink(member))
        return "tf-savedmodel"

    def hdf5(self, buf: Buf, member: str | None, depth: int) -> str:
        path = self.path if member is None else None
        configs, problems = hdf5_format.find_configs(buf, path, max_work=2 * len(buf) + 4 * self.limits.max_json_bytes)
        for problem in problems:
            self.add("High", "parse-error", problem, member)
        for name, config in configs:
            keras_format.check_config(config, self.sink(member), name, budget=self.budget)
        return "hdf5"

    def json(self, buf: Buf, member: str | None, depth: int) -> str:
        if len(buf) > self.limits.max_json_bytes:
            self.add("High", "too-large", "JSON document too large to check", member)
            return "json"
        try:  # bytes, as Keras and most loaders pass them: BOMs and UTF-16/32 are accepted
            doc = json.loads(buf.to_bytes())
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.add("High", "parse-error", f"JSON cannot be decoded: {exc}", member)
            return "json"
        if keras_format.looks_like_keras(doc) or _mentions_modules(doc):
            keras_format.check_config(doc, self.sink(member), budget=self.budget)
            return "keras-config"
        return "json"


_HANDLERS: dict[str, Callable] = {
    "pickle": _Scan.scan_pickle_file,
    "npy": _Scan.npy,
    "zip": _Scan.zip,
    "tar": _Scan.tar,
    "gzip": _Scan.compressed, "bz2": _Scan.compressed, "xz": _Scan.compressed, "zlib": _Scan.compressed,
    "safetensors": _Scan.safetensors,
    "onnx": _Scan.onnx,
    "tf-savedmodel": _Scan.saved_model,
    "hdf5": _Scan.hdf5,
    "json": _Scan.json,
}


def _overlapping(members: list[zipread.Member]) -> dict[int, bool]:
    """id -> False for every member whose bytes overlap another's (members sorted by offset):
    the marker of an overlapping-entry bomb, where each entry re-reads the same expansion."""
    out: dict[int, bool] = {}
    reach, previous = -1, None
    for m in members:
        if m.header_offset < reach:
            out[id(m)] = False
            if previous is not None:
                out[id(previous)] = False
        if m.extent_end > reach:
            reach, previous = m.extent_end, m
    return out


def _member_role(kind: str, m: zipread.Member, raw_payloads: set[str]) -> str:
    """How the loader of a ``kind`` archive reads member ``m``, which its name decides: the
    same bytes under two names may be read two ways, so each way is scanned."""
    if m.hidden:
        return "scan"
    if kind == "skops" and m.name == "schema.json":
        return "skops-schema"
    if m.name == "config.json":
        return "keras-config"
    if m.name in raw_payloads:
        return "raw"
    if kind == "keras" and m.name == "model.weights.h5":
        return "keras-weights"
    return "scan"


def _mentions_modules(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("config"), dict) and "class_name" in doc.get("config", {})


def _child(member: str | None, name: str) -> str:
    return name if member is None else f"{member}!{name}"


def _short(pid: object) -> str:
    from .values import preview

    return preview(pid, 60)


def _zip_kind(listing: zipread.Listing, truncated: bool = False) -> tuple[str, str, bool]:
    """(kind, torch archive prefix, is TorchScript) from the member names. In a truncated
    archive the ``version`` record (written last) may be gone: the layout is enough there."""
    names = [m.name for m in listing.members if not m.hidden]
    nameset = set(names)
    for name in names:
        match = _TORCH_DATA.match(name)
        if match is None:
            continue
        prefix = f"{match.group(1)}/" if match.group(1) is not None else ""
        layout = truncated and any(n.startswith((f"{prefix}code/", f"{prefix}data/")) for n in names)
        if (f"{prefix}version" in nameset or f"{prefix}.data/version" in nameset or f"{prefix}byteorder" in nameset
                or layout):
            torchscript = f"{prefix}constants.pkl" in nameset or any(n.startswith(f"{prefix}code/") for n in names)
            return "pytorch", prefix, torchscript
    for name in names:
        if name.endswith("archive_format") and name.count("/") <= 1:
            prefix = name[: -len("archive_format")]
            if f"{prefix}data/weights/" in {n[: len(prefix) + 13] for n in names}:
                return "pt2", prefix, False
    if "config.json" in nameset and ("metadata.json" in nameset or "model.weights.h5" in nameset):
        return "keras", "", False
    if "schema.json" in nameset:
        return "skops", "", False
    if names and all(n.endswith(".npy") for n in names):
        return "npz", "", False
    return "zip", "", False


# ------------------------------------------------------------------ detection
def detect(buf: Buf, limits: Limits | None = None, clock: Budget | None = None) -> str:
    """The format of ``buf``, judged from its content only."""
    n = len(buf)
    if n == 0:
        return "empty"
    head = buf.head(16)
    if head.startswith((zipread.LOCAL, zipread.EOCD)):
        return "zip"
    if head.startswith(numpy_format.MAGIC):
        return "npy"
    if hdf5_format.find_superblock(buf) >= 0:
        return "hdf5"
    if safetensors_format.looks_like_safetensors(buf):
        return "safetensors"
    if head[0] == 0x80:
        return "pickle"
    compression = _compression(buf)
    if compression and compression != "zlib":
        return compression
    if _is_tar(buf):
        return "tar"
    if head[0] in OPCODE_BYTES:  # protocol 0/1 pickles have no magic: try one
        trial = looks_like_pickle(buf, limits, clock)
        if trial.end is not None or trial.effects or stopped_by_limit(trial):
            return "pickle"
    if compression == "zlib":  # a two-byte magic, weaker than a pickle that loads
        return compression
    if _is_json(buf):
        return "json"
    if onnx_format.looks_like_onnx(buf):
        return "onnx"
    if tf_format.looks_like_saved_model(buf):
        return "tf-savedmodel"
    if _is_text(buf):
        return "text"
    return "unknown"


def _compression(buf: Buf) -> str:
    head = buf.head(6)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith((b"\xfd7zXZ\x00", b"]\x00\x00")):
        return "xz"
    if len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return ""


def _numeric_npy(head: bytes) -> bool:
    """A .npy whose header parses and whose items are plain numbers: its data need not be held."""
    try:
        header = numpy_format.read_header(Buf.of(head))
    except (numpy_format.NpyError, ValueError, IndexError, struct.error):
        return False
    return not header.has_objects


def _is_tar(buf: Buf) -> bool:
    if len(buf) < 512:
        return False
    block = buf.head(512)
    try:
        stored = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == unsigned


def _is_json(buf: Buf) -> bool:
    """Starts like a JSON document under the encoding ``json.loads(bytes)`` would detect."""
    raw = buf.head(256)
    encoding = json.detect_encoding(raw)
    try:
        head = raw.decode(encoding, "ignore").lstrip("\ufeff \t\r\n")
    except LookupError:
        return False
    if head[:1] not in ("{", "["):
        return False
    return encoding != "utf-8" or _is_text(buf)


_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13)) + b"\x7f"


def _is_text(buf: Buf) -> bool:
    """UTF-8 without control characters (binary formats such as protobuf are full of them)."""
    sample = buf.head(1 << 20)
    if sample.translate(None, _CONTROL) != sample:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(buf) <= len(sample))
    except UnicodeDecodeError:
        return False
    return True


class _Reader(io.RawIOBase):
    """A read-only file over a Buf, for tarfile."""

    def __init__(self, buf: Buf) -> None:
        self.buf = buf
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: len(self.buf)}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b) -> int:  # type: ignore[override]
        start = self.buf.start + self.pos
        chunk = memoryview(self.buf.data)[start : min(self.buf.end, start + len(b))]
        b[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


# ------------------------------------------------------------------ public API
def _scan_file(path: Path, limits: Limits, *, follow_links: bool = True) -> FileReport:
    report = FileReport(path=str(path), format="unknown")
    try:
        buf, closer = map_file(path, follow_links=follow_links)
    except NotRegularFile as exc:
        report.format = "special"
        report.issues.append(Issue("High", "special-file", f"{exc} is not read: only regular files are scanned"))
        return report
    except OSError as exc:
        report.issues.append(Issue("High", "parse-error", f"cannot read the file: {exc.strerror or exc}"))
        return report
    try:
        scan = _Scan(report, limits, str(path))
        report.format = scan.scan(buf, None, 0)
        if report.format not in ("zip", "npz", "pytorch", "keras", "skops", "pt2"):
            try:
                _check_appended_zip(scan, buf)
            except LimitExceeded as exc:
                scan.add("High", "too-large", f"appended zip not fully scanned: {exc}", None)
            except (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error, MemoryError,
                    RecursionError) as exc:  # outside scan()'s guard: fail closed here too
                scan.add("High", "parse-error", f"appended zip cannot be read ({type(exc).__name__}: {exc})", None)
        if scan.suppressed:
            scan.note(f"{scan.suppressed} more issues of kinds already listed were not listed")
        report.contents = sorted(scan.formats)
    finally:
        del buf
        if closer is not None:
            try:
                closer.close()
            except BufferError:  # a view is still alive somewhere; let the GC close it
                pass
    return report


def _check_appended_zip(scan: _Scan, buf: Buf) -> None:
    """A file that starts as one format can still end with a ZIP directory that zip readers
    (Python's zipfile among them) would open: scan that view too."""
    eocd = zipread.find_end_record(buf)
    if eocd < 0:
        return
    try:
        listing = zipread.read_listing(buf)
    except zipread.NotAZip:
        return
    if not listing.members:
        return
    scan.add("High", "archive-integrity", "the file also contains a ZIP archive that zip readers would open", None)
    scan.zip(buf, "<appended zip>", 1)


def scan_path(path: str | os.PathLike, limits: Limits | None = None) -> FileReport:
    """Scan one file without importing or running anything it contains. Without ``limits``
    the defaults apply, as changed by the REDLINE_SCAN_LIMITS environment variable."""
    return _scan_file(Path(path), limits or Limits.from_env())


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterable[Path]:
    """The files ``scan_paths`` would look at (links out of a scanned folder excluded)."""
    for entry in walk(paths):
        if entry.skip is None:
            yield entry.path


def scan_paths(paths: Iterable[str | os.PathLike], limits: Limits | None = None) -> list[FileReport]:
    """Scan files; folders are walked recursively. Files found in a folder that are not
    model files are left out (see ``scan_tree`` for the list of what was skipped and why)."""
    return scan_tree(paths, limits).reports


def scan_tree(paths: Iterable[str | os.PathLike], limits: Limits | None = None, *, follow_links: bool = False,
              strict: bool = False) -> TreeScan:
    """Scan files and folders.

    A file named in ``paths`` is always reported. A file found by walking a folder is
    reported when its name or its content says it is a model file; anything else (images,
    logs, text, JSON that no model loader reads) is listed in ``skipped`` with the reason,
    unless ``strict`` asks for such files to be errors. Only regular files are read; symbolic
    links that lead out of the folder being walked are not followed unless ``follow_links``.
    """
    limits = limits or Limits.from_env()
    result = TreeScan()
    walked: list[tuple[WalkEntry, FileReport | None]] = []
    for entry in walk(paths, follow_links=follow_links):
        report = None if entry.skip is not None else _scan_file(entry.path, limits, follow_links=entry.follow)
        walked.append((entry, report))
    # ONNX external data is recognised only through the model naming it: all files first
    read = [(entry, report) for entry, report in walked if report is not None]
    adopt_external_data([report for _, report in read], [entry.follow for entry, _ in read])
    for entry, report in walked:
        if report is None:
            if strict:
                result.reports.append(_refused(entry.path, entry.skip))
            else:
                result.skipped.append({"path": str(entry.path), "reason": entry.skip})
            continue
        reason = None if entry.explicit else skip_reason(entry.path, report)
        if reason is None:
            result.reports.append(report)
        elif strict:
            report.issues.append(Issue("High", "unknown-format", f"{reason}; --strict makes it an error"))
            result.reports.append(report)
        else:
            result.skipped.append({"path": str(entry.path), "reason": reason})
    return result


@dataclass
class TreeScan:
    reports: list[FileReport] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}

    def counts(self) -> dict[str, int]:
        out = {"scanned": len(self.reports)}
        for verdict in ("safe", "unsafe", "error"):
            out[verdict] = sum(r.verdict == verdict for r in self.reports)
        out["skipped"] = len(self.skipped)
        return out


# Names that say "model file": such files are always reported, whatever their content.
MODEL_SUFFIXES = frozenset({
    ".pkl", ".pickle", ".pck", ".pt", ".pth", ".bin", ".ckpt", ".mar", ".joblib", ".jbl", ".sav", ".model",
    ".npy", ".npz", ".h5", ".hdf5", ".keras", ".onnx", ".safetensors", ".skops", ".pb", ".dill", ".tar",
})
# Content that no model loader would read. A file holding only these (possibly compressed
# or archived) and no security issue is not a model file; anything else the scanner
# recognised (a pickle anywhere, numpy, HDF5, a Keras config...) makes it one.
_NOT_MODEL = frozenset({"unknown", "text", "empty", "json"})
_CONTAINERS = frozenset({"zip", "tar", "gzip", "bz2", "xz", "zlib"})
_HARMLESS_KINDS = frozenset({"unknown-format", "parse-error"})


def skip_reason(path: Path, report: FileReport) -> str | None:
    """Why a file found in a folder is not a model file, or None when it must be reported."""
    if path.suffix.lower() in MODEL_SUFFIXES:
        return None
    seen = set(report.contents) or {report.format}
    if not seen <= _NOT_MODEL | _CONTAINERS:
        return None  # model content somewhere
    if not seen & _NOT_MODEL:
        return None  # archives with nothing read inside them
    if any(issue.kind not in _HARMLESS_KINDS for issue in report.issues):
        return None
    what = ", ".join(sorted(seen & _NOT_MODEL))
    return f"not a model file (content: {what})"


def _refused(path: Path, reason: str) -> FileReport:
    report = FileReport(path=str(path), format="not-scanned")
    report.issues.append(Issue("High", "not-followed", f"{reason}; --strict makes it an error"))
    return report


@dataclass(frozen=True)
class WalkEntry:
    path: Path
    explicit: bool  # named by the user, not found in a folder
    skip: str | None = None  # why it is not read at all
    follow: bool = True  # open through a symbolic link (False: a plain file must still be one when opened)


def walk(paths: Iterable[str | os.PathLike], *, follow_links: bool = False) -> Iterable[WalkEntry]:
    """Files named in ``paths`` and the files under the folders named in it."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk_folder(path, follow_links)
        else:
            yield WalkEntry(path, explicit=True)


def _walk_folder(top: Path, follow_links: bool) -> Iterable[WalkEntry]:
    root = os.path.realpath(top)
    visited = {root}
    unreadable: list[OSError] = []
    for folder, dirs, files in os.walk(top, followlinks=follow_links, onerror=unreadable.append):
        while unreadable:
            exc = unreadable.pop()
            yield WalkEntry(Path(exc.filename or folder), False, f"folder cannot be read ({exc.strerror or exc})")
        dirs.sort()
        keep = []
        for name in dirs:
            sub = os.path.join(folder, name)
            if os.path.islink(sub):
                target = os.path.realpath(sub)
                if target in visited or _inside(target, root) and not follow_links:
                    continue  # a loop, or a folder scanned anyway under its own name
                if not follow_links:
                    yield WalkEntry(Path(sub), False, "symbolic link to a folder outside the scanned folder "
                                    "(not followed; use --follow-links)")
                    continue
                visited.add(target)
            keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink():
                target = os.path.realpath(path)
                if not follow_links and not _inside(target, root):
                    yield WalkEntry(path, False, "symbolic link to a file outside the scanned folder "
                                    "(not followed; use --follow-links)")
                    continue
                yield WalkEntry(path, explicit=False)
                continue
            yield WalkEntry(path, explicit=False, follow=follow_links)  # O_NOFOLLOW: no link swapped in
    for exc in unreadable:
        yield WalkEntry(Path(exc.filename or top), False, f"folder cannot be read ({exc.strerror or exc})")


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def adopt_external_data(reports: list[FileReport], follow: list[bool] | None = None) -> list[FileReport]:
    """Raw tensor files an ONNX model scanned in the same run names as its external data are
    read by ONNX Runtime as plain bytes: they are not an unknown format. Only a file whose sole
    issue is being unrecognisable is adopted (the pickle reading of it found nothing).
    ``follow`` says, per report, whether its file may be opened through a symbolic link."""
    named: set[str] = set()
    for i, report in enumerate(reports):
        if report.format != "onnx":
            continue
        try:
            buf, closer = map_file(report.path, follow_links=True if follow is None else follow[i])
        except OSError:
            continue
        try:
            folder = os.path.dirname(os.path.realpath(report.path))
            try:
                locations = onnx_format.scan_onnx(buf, lambda *_: None)
            except (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error, RecursionError,
                    MemoryError):
                continue  # the scan of the model itself reported why it cannot be read
            for location in locations:
                if onnx_format.escapes_folder(location) is None:
                    named.add(os.path.realpath(os.path.join(folder, location)))
        finally:
            del buf
            if closer is not None:
                try:
                    closer.close()
                except BufferError:
                    pass
    for report in reports:
        if (os.path.realpath(report.path) in named and report.issues
                and all(i.kind == "unknown-format" and i.member is None for i in report.issues)):
            report.issues.clear()
            report.format = "onnx-external-data"
            report.contents = ["onnx-external-data"]  # model content: not skipped as an unknown file
    return reports
