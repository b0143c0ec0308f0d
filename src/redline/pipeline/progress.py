"""Progress display for long checks: a bar with ETA on a terminal, plain lines otherwise.

Besides the bar of the check that runs, a terminal shows how far the whole job has come and
when it should end (:class:`Overall`): across the checks of one scan, or across every
target and check of ``redline demo``. That line is for people watching; piped output and
``--json`` runs stay as quiet as before.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from ..util.safe_text import one_line


def _fmt_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Overall:
    """Progress and time left across a whole job made of units of work (checks, model builds).

    Each unit has a weight: its expected cost relative to the others (1 each when nothing
    better is known). The ETA assumes the rest of the work goes at the pace measured so
    far, weight for weight: seconds spent on measured work divided by the weight it covered
    (the running unit counts with the share it reported done), times the weight left. Units
    skipped without work (a resumed scan's finished checks, a model already in the cache)
    count as done but stay out of the pace, so they neither stretch nor shrink the ETA.
    The units run in order; :meth:`seek` jumps to a unit when a stage ends early.
    """

    def __init__(self, weights: Sequence[float], clock: Callable[[], float] = time.monotonic):
        self.weights = [max(0.0, float(w)) for w in weights]
        self.clock = clock
        self.cursor = 0  # the unit that runs now, or runs next
        self._skipped = 0.0  # weight done without work
        self._measured_weight = 0.0  # weight of units finished with work
        self._measured_seconds = 0.0
        self._started_at: float | None = None  # when the running unit began
        self._share = 0.0  # share of the running unit done, 0..1

    @property
    def total(self) -> float:
        return sum(self.weights)

    def begin(self) -> None:
        """The unit at the cursor starts."""
        self._started_at = self.clock()
        self._share = 0.0

    def advance(self, done: int, total: int) -> None:
        """The running unit reports ``done`` of ``total`` steps."""
        if total > 0:
            self._share = min(1.0, max(0.0, done / total))

    def end(self) -> None:
        """The running unit finished (with work, so its time counts in the pace)."""
        if self._started_at is None:
            self.skip()
            return
        weight = self._weight(self.cursor)
        self._measured_seconds += self.clock() - self._started_at
        self._measured_weight += weight
        self._started_at, self._share = None, 0.0
        self.cursor += 1

    def skip(self) -> None:
        """The unit at the cursor is done without work."""
        self._skipped += self._weight(self.cursor)
        self._started_at, self._share = None, 0.0
        self.cursor += 1

    def seek(self, index: int) -> None:
        """Continue at unit ``index``: units passed over count as skipped."""
        while self.cursor < min(index, len(self.weights)):
            self.skip()

    def fraction(self) -> float:
        """Share of the whole job's weight done, 0..1."""
        total = self.total
        if total <= 0:
            return 1.0 if self.cursor >= len(self.weights) else 0.0
        running = self._share * self._weight(self.cursor) if self._started_at is not None else 0.0
        return min(1.0, (self._skipped + self._measured_weight + running) / total)

    def eta(self) -> float | None:
        """Seconds left, or None until some measured work gives a pace."""
        seconds, weight = self._measured_seconds, self._measured_weight
        if self._started_at is not None:
            seconds += self.clock() - self._started_at
            weight += self._share * self._weight(self.cursor)
        if weight <= 0 or seconds <= 0:
            return None
        left = max(0.0, self.total - self._skipped - weight)
        return left * seconds / weight

    def text(self) -> str:
        """A few words for the progress line, e.g. ``all 35% eta 2:10``."""
        eta = self.eta()
        return f"all {self.fraction():4.0%}" + (f" eta {_fmt_seconds(eta)}" if eta is not None else "")

    def _weight(self, index: int) -> float:
        return self.weights[index] if 0 <= index < len(self.weights) else 0.0


class Progress:
    """One line per check. ``update(done, total)`` redraws at most a few times a second.

    ``overall`` (an :class:`Overall`) adds the whole job's progress and ETA to the line on a
    terminal; a caller that plans several scans sets it, a single scan gets one unit per
    check from :meth:`expect`.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool = True, width: int = 24,
                 overall: Overall | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self.overall = overall
        self._label = ""
        self._start = 0.0
        self._last_draw = 0.0

    def expect(self, count: int) -> None:
        """A scan is about to run ``count`` checks: the overall count, unless a caller planned it."""
        if self.overall is None:
            self.overall = Overall([1.0] * count)

    def skip(self) -> None:
        """A planned check needs no work (its finding is kept from an earlier run)."""
        if self.overall is not None:
            self.overall.skip()

    def start(self, label: str, index: int, count: int) -> None:
        self._label = f"[{index}/{count}] {one_line(label)}"
        self._start = time.monotonic()
        self._last_draw = 0.0
        if self.overall is not None:
            self.overall.begin()
        if self.enabled and not self.tty:
            print(f"{self._label} ...", file=self.stream, flush=True)
        elif self.tty:
            self._draw(0, 0)

    def update(self, done: int, total: int) -> None:
        if self.overall is not None:
            self.overall.advance(done, total)
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
        if self.overall is not None:
            text += f" | {self.overall.text()}"
        self.stream.write(text[:200] + "\x1b[K")
        self.stream.flush()

    def finish(self, outcome: str) -> None:
        if self.overall is not None:
            self.overall.end()
        if not self.enabled:
            return
        outcome = one_line(outcome)  # an error reason may quote what an endpoint answered
        elapsed = _fmt_seconds(time.monotonic() - self._start)
        if self.tty:
            after = f" | {self.overall.text()}" if self.overall is not None else ""
            self.stream.write(f"\r{self._label} {outcome} ({elapsed}){after}\x1b[K\n")
            self.stream.flush()
        else:
            print(f"{self._label} {outcome} ({elapsed})", file=self.stream, flush=True)
