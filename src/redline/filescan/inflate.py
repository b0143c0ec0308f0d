"""Decompression in bounded steps, charged to the file's ``Budget``.

Output is produced a chunk at a time from input fed a chunk at a time, so a bomb is stopped
after at most one chunk past a limit instead of after it has filled memory. A member whose
content needs only its first bytes to be judged (a numeric ``.npy`` array: the header says
everything, the rest is numbers) is streamed: counted and CRC-checked but never held.
"""
from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .limits import Budget, LimitExceeded

IN_CHUNK = 1 << 16
OUT_CHUNK = 1 << 18


class Inflater:
    """Iterate ``(output chunk, input bytes consumed so far)``; ``irregular`` is set at the end
    when the stream was unfinished or followed by other bytes."""

    def __init__(self, kind: str, raw: memoryview) -> None:
        self.kind = kind
        self.raw = raw
        self.irregular = False

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        if self.kind in ("deflate", "zlib", "gzip"):
            yield from self._zlib({"deflate": -15, "zlib": 15, "gzip": 31}[self.kind])
        elif self.kind in ("bz2", "xz", "lzma"):
            yield from self._needs_input(self._decompressor())
        else:
            raise ValueError(f"unknown compression {self.kind}")

    def _decompressor(self):
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        if self.kind == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_AUTO)
        # a zip member with method 14: version (2), properties size (2), properties, raw LZMA1
        psize = struct.unpack_from("<H", self.raw, 2)[0]
        filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, bytes(self.raw[4 : 4 + psize]))
        self.raw = self.raw[4 + psize :]
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])

    def _zlib(self, wbits: int) -> Iterator[tuple[bytes, int]]:
        d = zlib.decompressobj(wbits)
        raw, n = self.raw, len(self.raw)
        pos = 0
        while pos < n and not d.eof:
            piece = raw[pos : pos + IN_CHUNK]
            pos += len(piece)
            data: bytes | memoryview = piece
            while data and not d.eof:
                before = len(data)
                out = d.decompress(data, OUT_CHUNK)
                data = d.unconsumed_tail
                if out:
                    yield out, pos - len(data)
                elif len(data) == before:  # no progress possible: stop, irregular
                    self.irregular = True
                    return
        if not d.eof:
            rest = d.flush()
            if rest:
                yield rest, pos
        self.irregular = (not d.eof) or bool(d.unused_data) or pos < n

    def _needs_input(self, d) -> Iterator[tuple[bytes, int]]:
        raw, n = self.raw, len(self.raw)
        pos = 0
        while pos < n and not d.eof:
            piece = raw[pos : pos + IN_CHUNK]
            pos += len(piece)
            out = d.decompress(piece, OUT_CHUNK)
            if out:
                yield out, pos
            while not d.eof and not d.needs_input:
                out = d.decompress(b"", OUT_CHUNK)
                if not out:
                    break
                yield out, pos
        self.irregular = (not d.eof) or bool(d.unused_data) or pos < n


@dataclass
class Inflated:
    data: bytes | bytearray  # everything, or only the head of a streamed member
    size: int  # the full decompressed size
    crc: int
    irregular: bool
    streamed: bool  # True when ``data`` is only the head


def inflate(kind: str, raw: memoryview, budget: Budget, *, stream_if: Callable[[bytes], bool] | None = None,
            head_bytes: int = 1 << 16) -> Inflated:
    """Decompress ``raw`` within ``budget``; raises LimitExceeded past a limit.

    ``stream_if(head)`` is asked once the first ``head_bytes`` are out: when it answers True
    the rest is counted and checked but not kept."""
    limits = budget.limits
    inflater = Inflater(kind, raw)
    held = bytearray()
    size = crc = 0
    streamed = False
    asked = stream_if is None
    for chunk, consumed in inflater:
        budget.spend_bytes(len(chunk))
        if (size + len(chunk)) >> 26 != size >> 26:  # every 64 MiB: memory and time
            budget.check()
        size += len(chunk)
        crc = zlib.crc32(chunk, crc)
        if streamed:
            continue
        held += chunk
        if not asked and len(held) >= head_bytes:
            asked = True
            if stream_if(bytes(held)):
                streamed = True
                continue
        if len(held) > limits.max_member_bytes:
            raise LimitExceeded("max_member_bytes", f"decompresses to more than {limits.max_member_bytes} bytes")
        if len(held) >= limits.ratio_floor and len(held) > limits.max_ratio * max(consumed, 1):
            raise LimitExceeded("max_ratio", f"expands more than {limits.max_ratio} times "
                                f"({consumed} compressed bytes gave {len(held)})")
    return Inflated(held, size, crc, inflater.irregular, streamed)
