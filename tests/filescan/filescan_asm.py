"""A tiny pickle assembler for the scanner tests: malicious streams are written opcode by
opcode and are never unpickled by the test process."""
from __future__ import annotations

import io
import struct
import zipfile

PROTO = lambda n: b"\x80" + bytes([n])
STOP = b"."
MARK = b"("
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
REDUCE = b"R"
BUILD = b"b"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
NEWOBJ = b"\x81"
SETITEM = b"s"
POP = b"0"


def glob(module: str, name: str) -> bytes:
    """Protocol 0 GLOBAL opcode."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sstr(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def ustr8(text: str) -> bytes:
    """BINUNICODE8."""
    raw = text.encode()
    return b"\x8d" + struct.pack("<Q", len(raw)) + raw


def ustr(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def string0(text: str) -> bytes:
    """Protocol 0 STRING (quoted, newline terminated)."""
    return b"S'" + text.encode() + b"'\n"


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def long_binget(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def long_binput(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


def stack_global(module: str, name: str) -> bytes:
    return sstr(module) + sstr(name) + STACK_GLOBAL


def call(callee: bytes, *args: bytes) -> bytes:
    """``callee(*args)`` via MARK ... TUPLE REDUCE."""
    return callee + MARK + b"".join(args) + TUPLE + REDUCE


def system(command: str, proto: int = 2) -> bytes:
    """os.system(command) as a complete pickle."""
    return PROTO(proto) + call(glob("os", "system"), ustr(command)) + STOP


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


# ---- ZIP surgery: edit the records of an archive written by zipfile ----

def _central_entries(data: bytes) -> list[tuple[int, int, bytes, int]]:
    """(offset of central entry, its length, name, local header offset) for each member."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _size, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    out, pos = [], cd_offset
    for _ in range(count):
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        local = struct.unpack_from("<I", data, pos + 42)[0]
        out.append((pos, 46 + nlen + xlen + clen, data[pos + 46 : pos + 46 + nlen], local))
        pos += 46 + nlen + xlen + clen
    return out


def patch_member(data: bytes, name: str, *, crc: int | None = None, flags_or: int = 0,
                 local_name: bytes | None = None) -> bytes:
    """Change the CRC, set flag bits (in both headers) or rename the local header only."""
    out = bytearray(data)
    for cpos, _clen, cname, local in _central_entries(data):
        if cname != name.encode():
            continue
        if crc is not None:
            struct.pack_into("<I", out, cpos + 16, crc)
            struct.pack_into("<I", out, local + 14, crc)
        if flags_or:
            out[cpos + 8] |= flags_or
            out[local + 6] |= flags_or
        if local_name is not None:
            assert len(local_name) == len(cname)
            out[local + 30 : local + 30 + len(cname)] = local_name
    return bytes(out)


def drop_from_central(data: bytes, name: str) -> bytes:
    """Remove ``name`` from the central directory, leaving its local entry in place (hidden)."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _size, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    kept = b"".join(data[p : p + n] for p, n, cname, _l in _central_entries(data) if cname != name.encode())
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHI", tail, 8, count - 1, count - 1, len(kept))
    return data[:cd_offset] + kept + bytes(tail)


def duplicate_central(data: bytes, name: str, new_name: bytes) -> bytes:
    """Add a second central entry for ``name``'s local header, under another name (overlap)."""
    eocd = data.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    entries = _central_entries(data)
    p, n, cname, _l = next(e for e in entries if e[2] == name.encode())
    entry = bytearray(data[p : p + n])
    assert len(new_name) == len(cname)
    entry[46 : 46 + len(cname)] = new_name
    central = data[cd_offset : cd_offset + cd_size] + bytes(entry)
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, count + 1, count + 1, len(central), cd_offset)
    return data[:cd_offset] + central + bytes(tail)


# ---- protobuf writer, for hand-made ONNX / TensorFlow messages ----

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(number: int, value) -> bytes:
    """One field: ints as varints, bytes/str as length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(raw)) + raw
