"""A window on bytes held in memory or memory-mapped, read without copying large parts."""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

Backing = bytes | bytearray | mmap.mmap


@dataclass(frozen=True)
class Buf:
    """Bytes ``data[start:end]``; offsets handed around are absolute positions in ``data``."""

    data: Backing
    start: int
    end: int

    @classmethod
    def of(cls, data: Backing) -> Buf:
        return cls(data, 0, len(data))

    def __len__(self) -> int:
        return self.end - self.start

    def head(self, n: int) -> bytes:
        return bytes(self.data[self.start : min(self.end, self.start + n)])

    def view(self) -> memoryview:
        return memoryview(self.data)[self.start : self.end]

    def sub(self, start: int, end: int) -> Buf:
        """A window given by absolute offsets (clipped to this window)."""
        start = max(self.start, min(start, self.end))
        return Buf(self.data, start, max(start, min(end, self.end)))

    def to_bytes(self) -> bytes:
        if isinstance(self.data, bytes) and self.start == 0 and self.end == len(self.data):
            return self.data
        return bytes(self.data[self.start : self.end])


def map_file(path: str | os.PathLike) -> tuple[Buf, object]:
    """Memory-map ``path`` read-only (small and empty files are read); returns the buffer and a closer."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if size < 1 << 16:
            data = handle.read()
            return Buf.of(data), None
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return Buf.of(mapped), mapped
