"""safetensors: an 8-byte little-endian header length, a JSON header, then tensor bytes.
Every rule the format states is checked; anything else is an error."""
from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable

from .buffer import Buf

Sink = Callable[[str, str, str], None]
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def looks_like_safetensors(buf: Buf) -> bool:
    if len(buf) < 10:
        return False
    (n,) = struct.unpack_from("<Q", buf.data, buf.start)
    return 2 <= n <= len(buf) - 8 and buf.data[buf.start + 8] == ord("{")


def scan_safetensors(buf: Buf, sink: Sink, scan_embedded: Callable[[bytes, str], None]) -> None:
    (n,) = struct.unpack_from("<Q", buf.data, buf.start)
    if n > MAX_HEADER:
        sink("High", "parse-error", f"header length {n} exceeds the {MAX_HEADER}-byte limit")
        return
    if 8 + n > len(buf):
        sink("High", "parse-error", f"header length {n} runs past the end of the file")
        return
    raw = bytes(buf.data[buf.start + 8 : buf.start + 8 + n])
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        sink("High", "parse-error", f"header is not valid JSON: {exc}")
        return
    if not isinstance(header, dict):
        sink("High", "parse-error", "header is not a JSON object")
        return
    data_len = len(buf) - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info, sink, scan_embedded)
            continue
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            sink("High", "parse-error", f"tensor {name!r}: entry must have exactly dtype, shape and data_offsets")
            continue
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BITS:
            sink("High", "parse-error", f"tensor {name!r}: unknown dtype {dtype!r}")
            continue
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            sink("High", "parse-error", f"tensor {name!r}: shape is not a list of sizes")
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            sink("High", "parse-error", f"tensor {name!r}: data_offsets must be [begin, end]")
            continue
        count = 1
        for d in shape:
            count *= d
        bits = count * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
            sink("High", "parse-error", f"tensor {name!r}: {offsets[1] - offsets[0]} bytes do not hold {shape} {dtype}")
        if offsets[1] > data_len:
            sink("High", "parse-error", f"tensor {name!r}: data_offsets run past the end of the file")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            sink("High", "parse-error", f"tensor {name!r} overlaps another tensor")
        elif begin > cursor:
            sink("High", "parse-error", f"{begin - cursor} bytes before tensor {name!r} belong to no tensor")
        cursor = max(cursor, end)
    if cursor < data_len:
        sink("High", "trailing-data", f"{data_len - cursor} bytes after the last tensor belong to no tensor")


def _no_duplicates(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_metadata(meta: object, sink: Sink, scan_embedded: Callable[[bytes, str], None]) -> None:
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        sink("High", "parse-error", "__metadata__ must map strings to strings")
        return
    for key, value in meta.items():
        blob = _pickled(value)
        if blob is not None:
            sink("Medium", "pickled-metadata",
                 f"metadata {key!r} holds a pickle; code that unpickles it would run what it says")
            scan_embedded(blob, f"__metadata__.{key}")


def _pickled(value: str) -> bytes | None:
    """The bytes of a pickle hidden in a metadata string (raw latin-1 or base64), if any."""
    if value[:1] == "\x80" and len(value) > 2 and ord(value[1]) <= 5:
        return value.encode("latin-1", "replace")
    if len(value) >= 8:
        try:
            blob = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if blob[:1] == b"\x80" and len(blob) > 2 and blob[1] <= 5:
            return blob
    return None
