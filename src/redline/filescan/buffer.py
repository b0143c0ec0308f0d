"""A window on bytes held in memory or memory-mapped, read without copying large parts."""
from __future__ import annotations

import mmap
import os
import stat
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


class NotRegularFile(OSError):
    """The path is a FIFO, device, socket or folder: its content is not a file's bytes."""


_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
               (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def map_file(path: str | os.PathLike, *, follow_links: bool = True) -> tuple[Buf, object]:
    """Memory-map ``path`` read-only (small and empty files are read); returns the buffer and a closer.

    Only regular files are read. The type is checked before opening (opening some devices
    has effects) and again on the open descriptor; the open never blocks (a FIFO would wait
    for a writer) and reads exactly the size the file states (files in /proc state 0 and
    never end)."""
    info = os.stat(path, follow_symlinks=follow_links)
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise NotRegularFile(kind)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        kind = kind_of(info.st_mode)
        if kind is not None:
            raise NotRegularFile(kind)
        size = info.st_size
        if size < 1 << 16:
            chunks = []
            left = size
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return Buf.of(b"".join(chunks)), None
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    return Buf.of(mapped), mapped
