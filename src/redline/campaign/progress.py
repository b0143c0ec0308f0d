"""Overall progress of a campaign on a terminal: jobs done of total, and an ETA from the
pace of the jobs run so far. Silent when the stream is not a terminal (logs, CI)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from ..pipeline.progress import _fmt_seconds


class CampaignProgress:
    def __init__(self, total: int, already: int, stream: TextIO | None = None, enabled: bool = True, width: int = 24):
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = total
        self.done = already
        self.already = already  # finished before this run (resumed): not part of the pace
        self.width = width
        self._start = time.monotonic()

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.draw(note)

    def draw(self, note: str = "") -> None:
        if not self.tty:
            return
        self.stream.write(self.line(time.monotonic() - self._start, note)[:200] + "\x1b[K")
        self.stream.flush()

    def line(self, elapsed: float, note: str = "") -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        ran = self.done - self.already
        eta = elapsed / ran * (self.total - self.done) if ran else None
        eta_text = f"eta {_fmt_seconds(eta)}" if eta is not None else "eta --:--"
        return f"\rcampaign [{bar}] {self.done}/{self.total} jobs {eta_text}" + (f"  {note}" if note else "")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
