"""Builders for files that attack the scanner itself (issue 22): they are small on disk and
describe exponential or gigabyte-sized work. Nothing here is ever unpickled or extracted by
the test process; the scans run in a child process under a memory cap and a time limit."""
from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from filescan_asm import POP, PROTO, REDUCE, STOP, TUPLE1, TUPLE2, binget, binput, glob

import redline

MEMORY_CAP = 1 << 30  # address space of the scanning process
TIME_LIMIT = 30.0  # seconds of wall time for one scan: most end in 2-10 s; margin for a loaded machine
SRC = str(Path(redline.__file__).resolve().parents[1])


# ------------------------------------------------------------------ pickles
def preview_bomb(levels: int = 120) -> bytes:
    """os.system((t, t)) where t = (u, u), u = ... : 2**levels leaves, a few hundred bytes."""
    out = PROTO(2) + glob("os", "system") + b")" + binput(0) + POP
    for i in range(levels):
        out += binget(i % 256) + binget(i % 256) + TUPLE2 + binput((i + 1) % 256) + POP
    return out + binget(levels % 256) + TUPLE1 + REDUCE + STOP


def mark_bomb(size: int = 20 << 20, proto: bool = True) -> bytes:
    """MARK opcodes, then None and STOP: the stack of stacks grows by one list per byte."""
    return (PROTO(2) if proto else b"") + b"(" * size + b"N" + STOP


def list_bomb(size: int = 20 << 20) -> bytes:
    """EMPTY_LIST opcodes: one list per byte held on the stack."""
    return PROTO(2) + b"]" * size + STOP


def dict_append_bomb(count: int = 8_000_000) -> bytes:
    """One list, then (empty dict, APPEND) pairs: nothing stays on the stack, memory grows."""
    return PROTO(2) + b"]" + b"}a" * count + STOP


def memo_bomb(count: int = 2_500_000) -> bytes:
    """None stored under millions of memo keys."""
    body = b"N" + b"".join(b"r" + struct.pack("<I", i) for i in range(count))
    return PROTO(2) + body + STOP


# ------------------------------------------------------------------ zips
def _deflate_zeros(size: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """Raw deflate of ``size`` zero bytes (a multiple of ``chunk``), built in milliseconds:
    one fully flushed block repeated (a full flush leaves no reference across blocks) and an
    empty final block. The CRC is not computed (0): a bomb never gets that far."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    return block * (size // chunk) + b"\x03\x00", 0


def _local(name: bytes, method: int, crc: int, csize: int, usize: int) -> bytes:
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, csize, usize, len(name), 0) + name


def _central(name: bytes, method: int, crc: int, csize: int, usize: int, offset: int) -> bytes:
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize, usize,
                       len(name), 0, 0, 0, 0, 0, offset) + name


def _end(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def big_member_zip(usize: int = 1 << 30, name: str = "model/data.pkl") -> bytes:
    """One deflated member of ``usize`` zero bytes (about 1 MB on disk for 1 GiB)."""
    data, crc = _deflate_zeros(usize)
    raw = name.encode()
    local = _local(raw, 8, crc, len(data), usize)
    central = _central(raw, 8, crc, len(data), usize, 0)
    body = local + data
    return body + central + _end(1, len(central), len(body))


def overlapping_zip(entries: int = 200, kernel_size: int = 256 << 20) -> bytes:
    """Fifield's overlapping-entry bomb: each local header is quoted by the previous entry's
    stored deflate block, so every entry decompresses through all later headers into one
    shared kernel of zeros. A few hundred KB describe entries x kernel_size bytes."""
    kernel, _crc = _deflate_zeros(kernel_size)
    names = [f"f{i:03d}".encode() for i in range(entries)]
    # built back to front: each entry's data = a stored block quoting the next local header
    tail = kernel
    headers: list[bytes] = []
    for i in reversed(range(entries)):
        local = _local(names[i], 8, 0, len(tail), 0)
        headers.append(local)
        if i:
            quote = b"\x00" + struct.pack("<HH", len(local), len(local) ^ 0xFFFF)
            tail = quote + local + tail
    headers.reverse()
    # lay out: local_0, quote_0, local_1, quote_1, ..., local_n-1, kernel
    body = b""
    offsets = []
    for i, local in enumerate(headers):
        offsets.append(len(body))
        body += local
        if i + 1 < entries:
            nxt = headers[i + 1]
            body += b"\x00" + struct.pack("<HH", len(nxt), len(nxt) ^ 0xFFFF)
    body += kernel
    central = b""
    for i, local in enumerate(headers):
        data_start = offsets[i] + len(local)
        central += _central(names[i], 8, 0, len(body) - data_start, 0, offsets[i])
    return body + central + _end(entries, len(central), len(body))


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def nested_zip(width: int = 16, levels: int = 5) -> bytes:
    """A zip of ``width`` copies of a zip of ``width`` copies of ... (width**levels leaves)."""
    inner = zip_of({f"leaf{i}.pkl": b"\x80\x04N." for i in range(width)})
    for _ in range(levels - 1):
        inner = zip_of({f"z{i}.zip": inner for i in range(width)})
    return inner


def keras_path_bomb(depth: int = 800, key: int = 200, width: int = 60_000) -> bytes:
    """A .keras archive whose config nests ``depth`` dicts under long keys, then a wide list:
    naming every node by its full path costs depth x key x width bytes."""
    leaf: object = [0] * width
    for i in range(depth):
        leaf = {("k%d" % i).ljust(key, "x"): leaf}
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [leaf]}}
    return zip_of({"config.json": json.dumps(config).encode(), "metadata.json": b'{"keras_version": "3.0"}'})


# ------------------------------------------------------------------ running a scan under ceilings
@dataclass
class Outcome:
    returncode: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict:
        return json.loads(self.stdout)

    def verdicts(self) -> dict[str, str]:
        return {Path(f["path"]).name: f["verdict"] for f in self.doc["files"]}

    def kinds(self) -> set[str]:
        return {i["kind"] for f in self.doc["files"] for i in f["issues"]}


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(args: list[str], timeout: float = TIME_LIMIT, env: dict | None = None,
               script: str | None = None) -> Outcome:
    """Run ``redline ARGS`` (or a Python ``script``) in a child limited to MEMORY_CAP bytes of
    address space; fails the test if it does not end within ``timeout`` seconds."""
    code = script or "import sys; from redline.cli import main; sys.exit(main(sys.argv[1:]))"
    child_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                 "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_cap_memory, env=child_env)
    return Outcome(proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr)


def h5_search_bomb(blocks: int = 2000, depth: int = 500, name: str = "model.weights.h5") -> bytes:
    """A .keras archive whose HDF5 member ``name`` is read without h5py: an HDF5 signature, then
    chains of unfinished '{"class_name":' objects. Every occurrence starts a JSON decode that
    runs to the end of its chain: (blocks x depth**2) characters without a work limit."""
    chain = b'{"class_name":' * depth + b"0 "
    member = b"\x89HDF\r\n\x1a\n" + chain * blocks
    return zip_of({"config.json": b'{"class_name": "Sequential", "config": {"layers": []}}',
                   "metadata.json": b'{"keras_version": "3.0"}', name: member},
                  method=zipfile.ZIP_STORED)


def joblib_dtype_bomb(levels: int = 60) -> bytes:
    """A joblib array whose structured dtype has two fields of the same sub-dtype at every
    level (shared through the memo): 2**levels fields when read without remembering them."""
    from filescan_asm import BUILD, EMPTY_TUPLE, MARK, NEWOBJ, POP, TUPLE, call, ustr

    def dtype(kind: str, fields: bytes, size: int) -> bytes:
        names = ustr("a") + ustr("b") + TUPLE2 if fields != b"N" else b"N"
        return (call(glob("numpy", "dtype"), ustr(kind), b"\x89", b"\x88")
                + MARK + b"K\x03" + ustr("|") + b"N" + names + fields + b"J" + struct.pack("<i", size)
                + b"J" + struct.pack("<i", 1) + b"K\x00" + TUPLE + BUILD)

    out = PROTO(2) + dtype("f8", b"N", -1) + binput(0) + POP
    for k in range(1, levels + 1):
        fields = (b"}" + MARK + ustr("a") + binget(k - 1) + b"K\x00" + TUPLE2
                  + ustr("b") + binget(k - 1) + b"K\x08" + TUPLE2 + b"u")
        out += dtype("V16", fields, 16) + binput(k) + POP
    state = (b"}" + MARK + ustr("subclass") + glob("numpy", "ndarray") + ustr("shape") + b"K\x01\x85"
             + ustr("order") + ustr("C") + ustr("dtype") + binget(levels) + ustr("allow_mmap") + b"\x89"
             + ustr("numpy_array_alignment_bytes") + b"K\x10" + b"u")
    wrapper = glob("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    return out + wrapper + b"\x00" + bytes(16) + STOP
