"""A small, strict ZIP reader: central directory and local headers, cross-checked.

Loaders disagree about ZIP files (Python's zipfile trusts the central directory, PyTorch's
reader ignores CRCs, streaming tools walk local headers), so the scanner reads both views,
decompresses members itself, and reports every disagreement as an integrity problem while
still handing the content over to be scanned.
"""
from __future__ import annotations

import lzma
import struct
import zlib
from dataclasses import dataclass, field

from .buffer import Buf
from .inflate import inflate
from .limits import Budget

EOCD = b"PK\x05\x06"
EOCD64_LOCATOR = b"PK\x06\x07"
EOCD64 = b"PK\x06\x06"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
DESCRIPTOR = b"PK\x07\x08"
METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")


class NotAZip(Exception):
    pass


@dataclass
class Member:
    name: str
    raw_name: bytes
    method: int
    flags: int
    crc: int
    csize: int
    usize: int
    header_offset: int  # absolute offset of the local header
    data_offset: int = 0
    extent_end: int = 0  # end of data (and data descriptor)
    hidden: bool = False  # found by walking local headers, absent from the central directory

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 0x41)


@dataclass
class Listing:
    members: list[Member] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # integrity problems, each one line
    comment: bytes = b""


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 0x0001:
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
        pos += 4 + size
    return usize, csize, offset


def _decode_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def find_end_record(buf: Buf) -> int:
    """Absolute offset of the last end-of-central-directory record, or -1."""
    lo = max(buf.start, buf.end - (22 + 0xFFFF))
    return buf.data.rfind(EOCD, lo, buf.end)


def read_listing(buf: Buf) -> Listing:
    """Parse the archive in ``buf``; raises NotAZip when no end record can be read."""
    data = buf.data
    listing = Listing()
    problems = listing.problems
    eocd = find_end_record(buf)
    if eocd < 0 or eocd + 22 > buf.end:
        raise NotAZip("no end-of-central-directory record")
    _sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len = _EOCD.unpack_from(data, eocd)
    listing.comment = bytes(data[eocd + 22 : eocd + 22 + comment_len])
    if eocd + 22 + comment_len != buf.end:
        problems.append(f"end record comment length ({comment_len}) disagrees with the file end")
    if disk or cd_disk or n_disk != n_total:
        problems.append("multi-disk archive")
    record_start = eocd
    loc = eocd - 20
    if loc >= buf.start and data[loc : loc + 4] == EOCD64_LOCATOR:
        # Python's zipfile reads the zip64 end record just before the locator; PyTorch's
        # reader (miniz) goes where the locator's offset field points. When the two could
        # yield different central directories, no single reading can be vouched for.
        guess = loc - 56
        pointed = buf.start + struct.unpack_from("<Q", data, loc + 8)[0]
        if guess >= buf.start and data[guess : guess + 4] == EOCD64:
            fields = _EOCD64.unpack_from(data, guess)
            wide = (fields[7], fields[8], fields[9])
            if pointed != guess:
                problems.append("zip64 locator points away from the zip64 end record zipfile reads: "
                                "PyTorch and Python would read different central directories")
            for narrow, value, full in ((n_total, wide[0], 0xFFFF), (cd_size, wide[1], 0xFFFFFFFF),
                                        (cd_offset, wide[2], 0xFFFFFFFF)):
                if narrow not in (value, full):
                    problems.append("zip64 end record disagrees with the end record: readers that use "
                                    "one or the other see different archives")
                    break
            n_total, cd_size, cd_offset = wide
            record_start = guess
        else:
            if pointed + 4 <= buf.end and data[pointed : pointed + 4] == EOCD64:
                problems.append("zip64 end record is only where the locator points: PyTorch would read it, "
                                "Python's zipfile would not")
            raise NotAZip("zip64 locator without a zip64 end record where zipfile looks for it")
    # Python's zipfile tolerates bytes prepended to an archive by shifting every offset.
    concat = record_start - buf.start - cd_size - cd_offset
    if concat < 0:
        raise NotAZip("central directory does not fit before its end record")
    base = buf.start + concat
    if concat:
        problems.append(f"{concat} bytes precede the archive (prepended data)")
    cd_start = base + cd_offset
    pos = cd_start
    seen: dict[bytes, int] = {}
    for _ in range(n_total):
        if pos + 46 > record_start or data[pos : pos + 4] != CENTRAL:
            problems.append("central directory entry count disagrees with its content")
            break
        (_s, _made, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen, clen, _disk, _ia, _ea,
         offset) = _CENTRAL.unpack_from(data, pos)
        raw = bytes(data[pos + 46 : pos + 46 + nlen])
        extra = bytes(data[pos + 46 + nlen : pos + 46 + nlen + xlen])
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        pos += 46 + nlen + xlen + clen
        if raw in seen:
            problems.append(f"duplicate member name {raw!r}")
        seen[raw] = 1
        listing.members.append(Member(_decode_name(raw, flags), raw, method, flags, crc, csize, usize,
                                      base + offset))
    if pos != cd_start + cd_size:
        problems.append("central directory size disagrees with its entries")
    for member in listing.members:
        _read_local(buf, member, problems, limit=cd_start)
    _check_layout(buf, listing, base, cd_start, record_start)
    return listing


def _read_local(buf: Buf, m: Member, problems: list[str], limit: int) -> None:
    data = buf.data
    h = m.header_offset
    if h < buf.start or h + 30 > limit or data[h : h + 4] != LOCAL:
        problems.append(f"{m.name}: no local header at its recorded offset")
        m.data_offset = m.extent_end = h
        m.flags |= 0x1000_0000  # unreadable
        return
    (_s, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack_from(data, h)
    raw = bytes(data[h + 30 : h + 30 + nlen])
    extra = bytes(data[h + 30 + nlen : h + 30 + nlen + xlen])
    usize, csize, _ = _zip64_extra(extra, usize, csize, 0)
    if raw != m.raw_name:
        problems.append(f"{m.name}: local header names it {raw!r}")
    if method != m.method:
        problems.append(f"{m.name}: local and central compression methods differ")
    if (flags ^ m.flags) & 0x49:
        problems.append(f"{m.name}: local and central flags differ")
    m.flags |= flags & 0x41
    m.data_offset = h + 30 + nlen + xlen
    end = m.data_offset + m.csize
    if flags & 0x08:  # sizes follow the data in a descriptor
        if end + 12 <= buf.end:
            d = end + 4 if data[end : end + 4] == DESCRIPTOR else end
            d_crc, d_csize, d_usize = struct.unpack_from("<III", data, d)
            wide = None
            if (d_csize, d_usize) != (m.csize & 0xFFFFFFFF, m.usize & 0xFFFFFFFF) and d + 20 <= buf.end:
                wide = struct.unpack_from("<IQQ", data, d)
            if d_crc != m.crc or ((d_csize, d_usize) != (m.csize & 0xFFFFFFFF, m.usize & 0xFFFFFFFF)
                                  and (wide is None or wide[1:] != (m.csize, m.usize))):
                problems.append(f"{m.name}: data descriptor disagrees with the central directory")
            end = d + (20 if wide is not None and wide[1:] == (m.csize, m.usize) else 12)
        else:
            problems.append(f"{m.name}: data descriptor missing")
    elif (crc, csize, usize) != (m.crc, m.csize, m.usize):
        problems.append(f"{m.name}: local header sizes or CRC disagree with the central directory")
    m.extent_end = end
    if end > limit:
        problems.append(f"{m.name}: data runs into the central directory")


def _check_layout(buf: Buf, listing: Listing, base: int, cd_start: int, record_start: int) -> None:
    """Members must not overlap, and every byte before the central directory must belong to one."""
    problems = listing.problems
    spans = sorted((m.header_offset, m.extent_end, m.name) for m in listing.members)
    cursor = base
    for start, end, name in spans:
        if start < cursor:
            problems.append(f"{name}: overlaps the previous member")
        elif start > cursor:
            _scan_gap(buf, listing, cursor, start)
        cursor = max(cursor, end)
    if cursor < cd_start:
        _scan_gap(buf, listing, cursor, cd_start)
    elif cursor > cd_start:
        problems.append("member data overlaps the central directory")


def _scan_gap(buf: Buf, listing: Listing, start: int, end: int) -> None:
    """Bytes no listed member accounts for: look for hidden local entries in them."""
    scan_local_entries(buf, listing, start, end)


def scan_local_entries(buf: Buf, listing: Listing, start: int, end: int) -> None:
    """Add the local entries found in ``[start, end)`` to ``listing`` as hidden members."""
    data = buf.data
    pos = data.find(LOCAL, start, end)
    if pos < 0:
        listing.problems.append(f"{end - start} bytes at offset {start - buf.start} belong to no member")
        return
    if pos > start:
        listing.problems.append(f"{pos - start} bytes at offset {start - buf.start} belong to no member")
    while pos >= 0 and pos + 30 <= end:
        (_s, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack_from(data, pos)
        raw = bytes(data[pos + 30 : pos + 30 + nlen])
        extra = bytes(data[pos + 30 + nlen : pos + 30 + nlen + xlen])
        usize, csize, _ = _zip64_extra(extra, usize, csize, 0)
        hidden = Member(_decode_name(raw, flags), raw, method, flags, crc, csize, usize, pos, hidden=True)
        hidden.data_offset = pos + 30 + nlen + xlen
        if flags & 0x08 and csize == 0:  # size only in a trailing descriptor: find the data's end
            hidden.csize = _streamed_size(buf, hidden, end)
        hidden.extent_end = min(end, hidden.data_offset + hidden.csize)
        listing.members.append(hidden)
        listing.problems.append(
            f"{hidden.name}: local entry not listed in the central directory (hidden member)")
        pos = data.find(LOCAL, max(hidden.extent_end, pos + 4), end)


STREAMED_SIZE_SCAN = 256 << 20  # output inflated to find where a hidden deflate stream ends


def _streamed_size(buf: Buf, m: Member, end: int) -> int:
    if m.method == 8:
        d = zlib.decompressobj(-15)
        raw = memoryview(buf.data)[m.data_offset:end]
        produced = 0
        try:
            while not d.eof and raw and produced <= STREAMED_SIZE_SCAN:
                piece = raw[: 1 << 16]
                produced += len(d.decompress(piece, 1 << 20))
                raw = raw[len(piece) - len(d.unconsumed_tail) :]
        except zlib.error:
            return 0
        return end - m.data_offset - len(d.unused_data) - len(raw) if d.eof else 0
    nxt = buf.data.find(DESCRIPTOR, m.data_offset, end)
    return max(0, nxt - m.data_offset) if nxt >= 0 else end - m.data_offset


@dataclass
class Extracted:
    content: Buf | None
    problems: list[str]
    size: int = 0  # decompressed size (the content may hold only the head of a streamed member)
    streamed: bool = False


_METHOD_KIND = {8: "deflate", 12: "bz2", 14: "lzma"}


def extract(buf: Buf, m: Member, budget: Budget, stream_if=None) -> Extracted:
    """Decompress ``m`` within ``budget`` (CRC checked but not enforced, like PyTorch's reader).

    Raises ``LimitExceeded`` when the member would pass a limit; ``stream_if`` is passed on to
    :func:`inflate.inflate` (members it accepts are checked without being held)."""
    problems: list[str] = []
    if m.encrypted:
        return Extracted(None, [f"{m.name}: encrypted member cannot be scanned"])
    if m.flags & 0x1000_0000:
        return Extracted(None, [])
    start = min(m.data_offset, buf.end)  # a local header can claim data past the end of the file
    stop = min(m.data_offset + m.csize, buf.end)
    if stop - start < m.csize:
        problems.append(f"{m.name}: compressed data is truncated")
    if m.method not in METHODS:
        return Extracted(None, problems + [f"{m.name}: unknown compression method {m.method}"])
    raw = memoryview(buf.data)[start:stop]
    streamed = False
    if m.method == 0:
        content = Buf(buf.data, start, stop)
        size, crc = stop - start, zlib.crc32(raw)
        if m.csize != m.usize:
            problems.append(f"{m.name}: stored member with different sizes")
    else:
        try:
            out = inflate(_METHOD_KIND[m.method], raw, budget, stream_if=stream_if)
        except (zlib.error, OSError, lzma.LZMAError, ValueError, EOFError, struct.error) as exc:
            return Extracted(None, problems + [f"{m.name}: cannot be decompressed ({exc})"])
        if out.irregular:
            problems.append(f"{m.name}: compressed stream ended early or has trailing bytes")
        content, size, crc, streamed = Buf.of(out.data), out.size, out.crc, out.streamed
        if size != m.usize:
            problems.append(f"{m.name}: expands to {size} bytes, not the recorded {m.usize}")
    if crc != m.crc:
        problems.append(f"{m.name}: CRC mismatch (PyTorch ignores it; content scanned anyway)")
    return Extracted(content, problems, size, streamed)
