"""Progress display for long checks: a bar with ETA on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from ..util.safe_text import one_line


def _fmt_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """One line per check. ``update(done, total)`` redraws at most a few times a second."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True, width: int = 24):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self._label = ""
        self._start = 0.0
        self._last_draw = 0.0

    def start(self, label: str, index: int, count: int) -> None:
        self._label = f"[{index}/{count}] {one_line(label)}"
        self._start = time.monotonic()
        self._last_draw = 0.0
        if self.enabled and not self.tty:
            print(f"{self._label} ...", file=self.stream, flush=True)
        elif self.tty:
            self._draw(0, 0)

    def update(self, done: int, total: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.2 and done < total:
            return
        self._last_draw = now
        self._draw(done, total)

    def _draw(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._start
        if total > 0:
            frac = min(1.0, done / total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            text = f"\r{self._label} [{bar}] {frac:4.0%} {done}/{total} eta {_fmt_seconds(eta)}"
        else:
            text = f"\r{self._label} {_fmt_seconds(elapsed)}"
        self.stream.write(text[:200] + "\x1b[K")
        self.stream.flush()

    def finish(self, outcome: str) -> None:
        if not self.enabled:
            return
        outcome = one_line(outcome)  # an error reason may quote what an endpoint answered
        elapsed = _fmt_seconds(time.monotonic() - self._start)
        if self.tty:
            self.stream.write(f"\r{self._label} {outcome} ({elapsed})\x1b[K\n")
            self.stream.flush()
        else:
            print(f"{self._label} {outcome} ({elapsed})", file=self.stream, flush=True)
