"""A minimal protobuf wire-format reader (enough to walk ONNX and TensorFlow messages)."""
from __future__ import annotations

from collections.abc import Iterator

from .buffer import Buf


class WireError(Exception):
    pass


def _varint(data, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: Buf) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value): an int for varint/fixed, a Buf for length-delimited."""
    data, pos, end = buf.data, buf.start, buf.end
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos, end)
            yield number, wire, value
        elif wire == 1:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            yield number, wire, int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos, end)
            if pos + size > end:
                raise WireError("length-delimited field runs past its message")
            yield number, wire, Buf(data, pos, pos + size)
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            yield number, wire, int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:  # groups (3/4) are long deprecated and absent from ONNX/TF files
            raise WireError(f"unsupported wire type {wire}")


def text(value: object) -> str:
    if not isinstance(value, Buf):
        raise WireError("expected a string field")
    try:
        return value.to_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("string field is not UTF-8") from exc


def check_shape(buf: Buf, schema: dict[int, int]) -> dict[int, list]:
    """Parse one message, requiring the wire types in ``schema`` for the fields it lists."""
    out: dict[int, list] = {}
    for number, wire, value in fields(buf):
        want = schema.get(number)
        if want is not None and want != wire and not (want == 0 and wire == 2):  # packed repeated
            raise WireError(f"field {number} has wire type {wire}, expected {want}")
        out.setdefault(number, []).append(value)
    return out
