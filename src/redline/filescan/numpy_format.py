"""numpy ``.npy`` files: a header, then raw element bytes or, for object arrays, a pickle."""
from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass

from .buffer import Buf

MAGIC = b"\x93NUMPY"
_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)(\[[A-Za-z0-9]+\])?$")


class NpyError(Exception):
    pass


@dataclass
class NpyHeader:
    data_offset: int  # absolute
    shape: tuple[int, ...]
    itemsize: int
    has_objects: bool


def _layout(descr: object) -> tuple[int, bool]:
    """(itemsize, has_objects) of a numpy ``descr``; raises NpyError when it cannot be read."""
    if isinstance(descr, str):
        m = _TYPESTR.match(descr)
        if m is None:
            raise NpyError(f"unknown dtype {descr!r}")
        kind, digits, _unit = m.groups()
        if kind == "O":
            return 8, True
        if not digits:
            raise NpyError(f"dtype {descr!r} has no size")
        size = int(digits)
        return (size * 4 if kind == "U" else size), False
    if isinstance(descr, list):
        total, objects = 0, False
        for field in descr:
            if not (isinstance(field, tuple) and len(field) in (2, 3)):
                raise NpyError("malformed structured dtype")
            size, has = _layout(field[1])
            count = 1
            if len(field) == 3:
                shape = field[2] if isinstance(field[2], tuple) else (field[2],)
                for n in shape:
                    if not isinstance(n, int) or n < 0:
                        raise NpyError("malformed field shape")
                    count *= n
            total += size * count
            objects = objects or has
        return total, objects
    raise NpyError("malformed dtype description")


def read_header(buf: Buf) -> NpyHeader:
    data = buf.data
    head = buf.head(12)
    if not head.startswith(MAGIC) or len(head) < 10:
        raise NpyError("not an npy file")
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, buf.start + 8)
        start = buf.start + 10
    elif major in (2, 3):
        if len(head) < 12:
            raise NpyError("truncated header")
        (hlen,) = struct.unpack_from("<I", data, buf.start + 8)
        start = buf.start + 12
    else:
        raise NpyError(f"unknown npy format version {major}")
    if start + hlen > buf.end:
        raise NpyError("truncated header")
    raw = bytes(data[start : start + hlen])
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)  # literals only; numpy parses it the same safe way
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise NpyError(f"header is not a literal dict ({exc.__class__.__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise NpyError("header must have exactly descr, fortran_order and shape")
    shape = header["shape"]
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise NpyError("shape is not a tuple of sizes")
    itemsize, objects = _layout(header["descr"])
    return NpyHeader(start + hlen, shape, itemsize, objects)
