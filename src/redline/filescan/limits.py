"""How much work and memory the scanner may spend on one file, and the running tally.

A hostile file can be small and still describe gigabytes (a zip bomb), billions of steps (a
pickle of nested marks) or an exponential walk (a shared tuple tree). Every reader asks the
``Budget`` of the file it scans before it spends; when a limit is reached the scan stops
with a ``too-large`` issue, which makes the verdict ``error`` (fail closed) unless a payload
was already found. Users with legitimately huge files raise a limit with
``scan-files --limit NAME=VALUE`` or ``REDLINE_SCAN_LIMITS="NAME=VALUE,..."``.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, fields, replace

from ..errors import UsageError

ENV_VAR = "REDLINE_SCAN_LIMITS"
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile file from exhausting the scanner (per top-level file)."""

    max_depth: int = 6  # nested archives / compressed layers
    max_member_bytes: int = 512 << 20  # largest decompressed member held in memory to be parsed
    max_total_bytes: int = 4 << 30  # every byte decompressed for one file, streamed ones included
    max_ratio: int = 200  # decompressed/compressed size of a member held in memory ...
    ratio_floor: int = 1 << 20  # ... checked once it has produced this many bytes
    max_entries: int = 20_000  # archive members scanned in one file, nested archives included
    max_json_bytes: int = 16 << 20  # a JSON document (Keras config, skops schema) to decode
    max_json_nodes: int = 2_000_000  # objects and arrays walked in decoded JSON configs
    max_opcodes: int = 5_000_000  # pickle opcodes executed in one file (all its pickles)
    max_marks: int = 10_000  # open MARKs at once (Python's pickler never nests past ~1000)
    max_stack: int = 2_000_000  # values held on the pickle stack and under its marks
    max_memo: int = 2_000_000  # pickle memo entries
    max_memory_bytes: int = 512 << 20  # memory the scan of one file may add to the process
    max_seconds: int = 120  # wall time for one file: the last resort behind every other limit

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_settings(self, settings: list[str] | str | None, *, source: str = "--limit") -> Limits:
        """A copy with ``NAME=VALUE`` settings applied (a list, or one comma-separated string)."""
        if not settings:
            return self
        items = settings.split(",") if isinstance(settings, str) else list(settings)
        changes: dict[str, int] = {}
        for item in items:
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in self.names():
                raise UsageError(f"{source}: expected NAME=VALUE with NAME one of {', '.join(self.names())}; "
                                 f"got {item!r}")
            changes[name] = parse_size(value, f"{source} {name}")
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        text = (os.environ if environ is None else environ).get(ENV_VAR, "")
        return cls().with_settings(text, source=ENV_VAR)


def parse_size(text: str, what: str) -> int:
    """A positive integer, optionally with a binary unit: ``512M``, ``2G``, ``100000``."""
    match = _SIZE.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise UsageError(f"{what}: expected a positive number such as 100000, 512M or 2G; got {text.strip()!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


class LimitExceeded(Exception):
    """A limit of ``Limits`` was reached; the message names it and how to raise it."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{detail} (limit {name}; raise it with --limit {name}=N or {ENV_VAR})")
        self.name = name


def memory_in_use() -> int:
    """Bytes of private memory the process holds now (Linux), or its peak resident size
    elsewhere. File-backed pages (the memory-mapped file being scanned) are not counted."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            fields_ = handle.read().split()
        return (int(fields_[1]) - int(fields_[2])) * _PAGE
    except (OSError, IndexError, ValueError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Budget:
    """What one top-level file has spent so far, against its ``Limits``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.memory_start = memory_in_use()
        self.started = time.monotonic()
        self.opcodes = 0
        self.decompressed = 0
        self.entries = 0
        self.json_nodes = 0

    def spend_opcodes(self, n: int) -> None:
        self.opcodes += n

    def opcodes_left(self) -> int:
        return max(0, self.limits.max_opcodes - self.opcodes)

    def exceeded(self) -> str | None:
        """The memory or time limit this file's scan has passed, or None (cheap enough to
        ask every few thousand steps, not every step)."""
        if memory_in_use() - self.memory_start > self.limits.max_memory_bytes:
            return "max_memory_bytes"
        if time.monotonic() - self.started > self.limits.max_seconds:
            return "max_seconds"
        return None

    def check(self) -> None:
        name = self.exceeded()
        if name is not None:
            raise LimitExceeded(name, self.describe(name))

    def describe(self, name: str) -> str:
        if name == "max_memory_bytes":
            return f"scanning the file took more than {self.limits.max_memory_bytes} bytes of memory"
        return f"scanning the file took more than {self.limits.max_seconds} seconds"

    def spend_bytes(self, n: int) -> None:
        self.decompressed += n
        if self.decompressed > self.limits.max_total_bytes:
            raise LimitExceeded("max_total_bytes",
                                f"the file decompresses to more than {self.limits.max_total_bytes} bytes in all")

    def spend_entry(self) -> None:
        self.entries += 1
        if not self.entries & 63:
            self.check()
        if self.entries > self.limits.max_entries:
            raise LimitExceeded("max_entries", f"more than {self.limits.max_entries} archive members")

    def spend_json_nodes(self, n: int) -> None:
        self.json_nodes += n
        if self.json_nodes > self.limits.max_json_nodes:
            raise LimitExceeded("max_json_nodes", f"JSON configs hold more than {self.limits.max_json_nodes} objects")


DEFAULT = Limits()
