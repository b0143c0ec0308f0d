"""Scan files and the members of archives: detect each format from its bytes, hand it to the
reader for that format, and collect the issues into one ``FileReport`` per file."""
from __future__ import annotations

import bz2
import codecs
import io
import json
import lzma
import os
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import hdf5_format, keras_format, numpy_format, onnx_format, safetensors_format, tf_format, zipread
from .buffer import Buf, map_file
from .pickle_vm import OPCODE_BYTES
from .pickles import looks_like_pickle, scan_pickle
from .report import FileReport, Issue

_PICKLE_FORMATS = ("pickle",)  # formats already read as a pickle from their first byte

_TORCH_DATA = re.compile(r"^(?:(.*)/)?data\.pkl$")


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile file from exhausting the scanner."""

    max_depth: int = 6  # nested archives / compressed layers
    max_member_bytes: int = 4 << 30  # largest decompressed member held in memory
    max_json_bytes: int = 512 << 20


class _Scan:
    """The state of scanning one top-level file."""

    def __init__(self, report: FileReport, limits: Limits, path: str | None) -> None:
        self.report = report
        self.limits = limits
        self.path = path
        self._seen: set[tuple] = set()

    # -------------------------------------------------------------- issues
    def add(self, severity: str, kind: str, detail: str, member: str | None) -> None:
        key = (severity, kind, detail, member)
        if key not in self._seen:
            self._seen.add(key)
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
        fmt = detect(buf)
        handler = _HANDLERS.get(fmt)
        result = fmt
        if handler is None:
            if fmt == "unknown":
                self.add("High", "unknown-format", "content is not a model format the scanner can read", member)
        else:
            try:
                result = handler(self, buf, member, depth) or fmt
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
        reading gets anywhere, the file is scanned as a pickle as well."""
        if not len(buf) or buf.data[buf.start] not in OPCODE_BYTES:
            return
        trial = looks_like_pickle(buf)
        if trial.end is not None or trial.effects:
            self.add("High", "polyglot", "the file is also a pickle; pickle loaders would run it", member)
            self.pickle(buf, _child(member, "<as pickle>"), depth + 1)

    # -------------------------------------------------------------- formats
    def pickle(self, buf: Buf, member: str | None, depth: int, *, torch_context: bool = False,
               torchscript: bool = False):
        outcome = scan_pickle(buf, self.sink(member), torch_context=torch_context, torchscript=torchscript)
        ids = [pid for pid in outcome.persistent_ids][:5]
        if ids:
            where = f" in {member}" if member else ""
            self.note(f"persistent ids{where}: {len(outcome.persistent_ids)} (e.g. "
                      + ", ".join(_short(pid) for pid in ids) + ")")
        return outcome

    def scan_pickle_file(self, buf: Buf, member: str | None, depth: int) -> str:
        return self.pickle(buf, member, depth).format

    def npy(self, buf: Buf, member: str | None, depth: int) -> str:
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
        have = buf.end - header.data_offset
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
            # streaming readers still see the local entries: scan what they would see
            listing = zipread.Listing()
            zipread.scan_local_entries(buf, listing, buf.start, buf.end)
            for m in listing.members:
                content = self._extract(buf, m, member)
                if content is not None:
                    self.scan(content, _child(member, m.name), depth + 1)
            return "zip"
        for problem in listing.problems:
            self.add("High", "archive-integrity", problem, member)
        kind, prefix, torchscript = _zip_kind(listing)
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
        for m in members:
            if id(m) in handled:
                continue
            child = _child(member, m.name)
            spec = storages.get(m.name) if not m.hidden else None
            if spec is not None:  # raw tensor bytes: the loader never parses them
                self._check_storage(m, spec, child)
                continue
            content = self._extract(buf, m, member)
            if content is None:
                continue
            if kind == "skops" and m.name == "schema.json" and not m.hidden:
                self.skops_schema(content, child)
            elif m.name == "config.json" and not m.hidden:
                self.keras_config(content, child)  # load_model reads it whatever else is there
            elif m.name in raw_payloads and not m.hidden:
                self._also_pickle(content, child, depth + 1)  # raw tensor bytes of a .pt2 archive
            elif kind == "keras" and m.name == "model.weights.h5" and detect(content) == "hdf5":
                pass  # weights only: Keras reads its datasets into variables, no config or code
            else:
                self.scan(content, child, depth + 1)
        return kind

    def keras_config(self, buf: Buf, member: str) -> None:
        if len(buf) > self.limits.max_json_bytes:
            self.add("High", "too-large", "config.json too large to check", member)
            return
        try:
            doc = json.loads(buf.to_bytes())
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.add("High", "parse-error", f"config.json cannot be decoded as Keras would: {exc}", member)
            return
        keras_format.check_config(doc, self.sink(member))

    def _pt2_payloads(self, buf: Buf, members: list, prefix: str, member: str | None) -> set[str]:
        """Members a torch.export archive's payload configs name as raw tensor bytes."""
        raw: set[str] = set()
        for folder in ("weights", "constants"):
            for m in members:
                if m.hidden or not (m.name.startswith(f"{prefix}data/{folder}/") and m.name.endswith("_config.json")):
                    continue
                content = self._extract(buf, m, member)
                try:
                    config = json.loads(content.to_bytes()) if content is not None else {}
                except (UnicodeDecodeError, ValueError, RecursionError):
                    continue  # scanned (and reported) as a plain member
                entries = config.get("config") if isinstance(config, dict) else None
                for entry in (entries.values() if isinstance(entries, dict) else ()):
                    if isinstance(entry, dict) and entry.get("use_pickle") is False and isinstance(entry.get("path_name"), str):
                        raw.add(f"{prefix}data/{folder}/{entry['path_name']}")
        return raw

    def skops_schema(self, buf: Buf, member: str) -> None:
        from . import skops_format

        try:
            schema = json.loads(buf.to_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.add("High", "parse-error", f"skops schema cannot be decoded: {exc}", member)
            return
        skops_format.check_schema(schema, self.sink(member))

    def _extract(self, buf: Buf, m: zipread.Member, member: str | None) -> Buf | None:
        got = zipread.extract(buf, m, self.limits.max_member_bytes)
        for problem in got.problems:
            kind = "encrypted" if "encrypted" in problem else (
                "unsupported" if "compression method" in problem else (
                    "too-large" if "expands beyond" in problem else "archive-integrity"))
            self.add("High", kind, problem, member)
        return got.content

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
            data, irregular = _decompress(kind, buf, self.limits.max_member_bytes)
        except _TooLarge:
            self.add("High", "too-large", f"{kind} stream expands beyond {self.limits.max_member_bytes} bytes", member)
            return kind
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            self.add("High", "parse-error", f"{kind} stream cannot be decompressed: {exc}", member)
            return kind
        if irregular:
            self.add("High", "parse-error", f"{kind} stream is truncated or followed by other bytes", member)
        inner = self.scan(Buf.of(data), _child(member, f"<{kind}>"), depth + 1)
        return f"{inner} ({kind})"

    def tar(self, buf: Buf, member: str | None, depth: int) -> str:
        try:
            with tarfile.open(fileobj=_Reader(buf), mode="r:") as archive:
                entries = archive.getmembers()
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
        configs, problems = hdf5_format.find_configs(buf, path)
        for problem in problems:
            self.add("High", "parse-error", problem, member)
        for name, config in configs:
            keras_format.check_config(config, self.sink(member), name)
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
            keras_format.check_config(doc, self.sink(member))
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


def _mentions_modules(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("config"), dict) and "class_name" in doc.get("config", {})


def _child(member: str | None, name: str) -> str:
    return name if member is None else f"{member}!{name}"


def _short(pid: object) -> str:
    from .values import preview

    return preview(pid, 60)


def _zip_kind(listing: zipread.Listing) -> tuple[str, str, bool]:
    """(kind, torch archive prefix, is TorchScript) from the member names."""
    names = [m.name for m in listing.members if not m.hidden]
    nameset = set(names)
    for name in names:
        match = _TORCH_DATA.match(name)
        if match is None:
            continue
        prefix = f"{match.group(1)}/" if match.group(1) is not None else ""
        if f"{prefix}version" in nameset or f"{prefix}.data/version" in nameset or f"{prefix}byteorder" in nameset:
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
def detect(buf: Buf) -> str:
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
        trial = looks_like_pickle(buf)
        if trial.end is not None or trial.effects:
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


class _TooLarge(Exception):
    pass


def _decompress(kind: str, buf: Buf, limit: int) -> tuple[bytes, bool]:
    raw = buf.view()
    if kind in ("gzip", "zlib"):
        d = zlib.decompressobj(31 if kind == "gzip" else 15)
        out = d.decompress(raw, limit + 1)
        irregular = not d.eof or bool(d.unused_data)
    elif kind == "bz2":
        d = bz2.BZ2Decompressor()
        out = d.decompress(raw, limit + 1)
        irregular = not d.eof or bool(d.unused_data)
    else:
        d = lzma.LZMADecompressor(lzma.FORMAT_AUTO)
        out = d.decompress(raw, limit + 1)
        irregular = not d.eof or bool(d.unused_data)
    if len(out) > limit:
        raise _TooLarge
    return out, irregular


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
def _scan_file(path: Path, limits: Limits) -> FileReport:
    report = FileReport(path=str(path), format="unknown")
    try:
        buf, closer = map_file(path)
    except OSError as exc:
        report.issues.append(Issue("High", "parse-error", f"cannot read the file: {exc.strerror or exc}"))
        return report
    try:
        scan = _Scan(report, limits, str(path))
        report.format = scan.scan(buf, None, 0)
        if report.format not in ("zip", "npz", "pytorch", "keras", "skops", "pt2"):
            _check_appended_zip(scan, buf)
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
    """Scan one file without importing or running anything it contains."""
    return _scan_file(Path(path), limits or Limits())


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterable[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield path


def scan_paths(paths: Iterable[str | os.PathLike], limits: Limits | None = None) -> list[FileReport]:
    """Scan files; directories are walked recursively (symbolic links to files are followed)."""
    return adopt_external_data([scan_path(p, limits) for p in iter_files(paths)])


def adopt_external_data(reports: list[FileReport]) -> list[FileReport]:
    """Raw tensor files an ONNX model scanned in the same run names as its external data are
    read by ONNX Runtime as plain bytes: they are not an unknown format. Only a file whose sole
    issue is being unrecognisable is adopted (the pickle reading of it found nothing)."""
    named: set[str] = set()
    for report in reports:
        if report.format != "onnx":
            continue
        try:
            buf, closer = map_file(report.path)
        except OSError:
            continue
        try:
            folder = os.path.dirname(os.path.realpath(report.path))
            for location in onnx_format.scan_onnx(buf, lambda *_: None):
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
    return reports
