"""Is a query a corner of the L-infinity ball around an earlier query?

Score-based L-infinity attacks (Square, Andriushchenko et al. 2020; SignHunter; Parsimonious)
search the corners of the ball: every query is ``clip(x + eps * s)`` for a sign pattern ``s``,
so it differs from the clean input ``x`` they asked about first by exactly ``eps`` in every
feature the bounds let move and sits on a bound wherever they did not. Their first queries
change most of the input at once (Square starts from stripes of +-eps over the whole image),
so they look nothing like one another and a similarity detector sees them only later; by
then a fast attack on a weak model has won. Honest inputs are never such corners of one
another: noise and blur change features by varied amounts, a brightness change moves them
all the same way.

Given a new row ``q`` and an earlier row ``h`` (scaled to [0, 1] by the input bounds), with
``m`` the largest feature change, ``q`` is taken for a corner of ``h``'s ball when

* ``m`` is a plausible perturbation radius: at least ``smallest`` (0.01; below it float
  rounding and a +-1/255 dither look alike) and at most ``largest``, half the range (a larger
  one is a different input, and two images of {0, 1} pixels differ by exactly 1);
* every feature either moved by ``m`` (within ``tol``) or sits on a bound of ``q`` (a
  clipped move); ``allowed`` of them must, the rest may miss for rounding;
* at least ``least_moved`` of the features, and at least ``least_interior`` in number, moved
  by ``m`` to a value inside the bounds;
* at least ``least_inside`` of those moves start from a value inside the bounds (a value on
  a bound moves one way only and is on every grid), and fewer than ``lattice`` of them start
  from a multiple of ``m``: on data whose values are steps of one grid (counts, codes, k/16
  pixels) a move of exactly one step, or a few, is what honest edits make too. An attack
  whose radius is one step of the data's grid is left to the similarity test;
* the moves go both ways, the rarer direction at least one feature and at least
  ``least_minority`` of them (a brightness change is one-way);
* the direction does not follow the earlier value: among at least ``least_free`` moves from
  values free to go either way, the ones that went up do not all lie below (or all above)
  the ones that went down, as a contrast change would have them;
* ``q`` is not a tone curve of ``h``: when at least ``least_toned`` features share their
  value inside the bounds with another, equal values did not all stay equal (a fade or
  levels change of a scan with few tones keeps them equal; random signs send them apart).

These rules after the first three came from two red-team reviews, which found honest sparse
counts, faded binary and two-tone scans, and dither taken for corners by simpler versions;
``benchmarks/bench_guard_corners.py`` keeps those cases.

Only a fixed random subset of at most ``sample`` features is compared (the shares are
estimated on it), against the account's last ``memory`` rows, stored as float32 (as float16,
a value near 1 is off by 2.4e-4, which a hundredfold multiple turns into a whole step).
"""
from __future__ import annotations

import hashlib

import numpy as np

_ROUNDING = 6e-8  # the largest rounding of a value in [0, 1] stored as float32


class VertexTest:
    """Which earlier rows a new row is an L-infinity ball corner of (see the module doc)."""

    _CELLS = 1 << 20  # new rows x memory x features compared at once (4 MiB per float32 temporary)

    def __init__(self, lower: np.ndarray, upper: np.ndarray, sample: int = 256, tol: float = 2e-3,
                 smallest: float = 0.01, largest: float = 0.5, allowed: float = 0.97, least_moved: float = 0.3,
                 least_interior: int = 16, least_minority: float = 0.01, least_inside: int = 4,
                 least_free: int = 12, lattice: float = 0.9, least_toned: int = 8):
        lower = np.asarray(lower, np.float64)
        span = np.asarray(upper, np.float64) - lower
        width = len(lower)
        # A fixed seed: every worker and restart compares the same features.
        self.columns = np.sort(np.random.default_rng(0xC0E4).choice(width, size=min(sample, width), replace=False))
        self.lower = lower[self.columns]
        self.span = np.where(span[self.columns] > 0, span[self.columns], 1.0)
        self.tol, self.smallest, self.largest, self.allowed = tol, smallest, largest, allowed
        self.least_moved, self.least_interior, self.least_minority = least_moved, least_interior, least_minority
        self.least_inside, self.least_free, self.lattice = least_inside, least_free, lattice
        self.least_toned = least_toned
        #: names the compared layout (features and bounds), so a stored memory is only read back
        #: by a test that compares the same features
        self.tag = hashlib.blake2b(b"float32" + np.concatenate([self.columns.astype(np.float64), self.lower,
                                                                 self.span]).tobytes(), digest_size=6).hexdigest()

    @property
    def width(self) -> int:
        return len(self.columns)

    def scale(self, flat: np.ndarray) -> np.ndarray:
        """The compared features of each row, in [0, 1] of the bounds, as float32 (what is
        kept); NaN stays NaN and never matches."""
        z = (np.asarray(flat, np.float64)[:, self.columns] - self.lower) / self.span
        return np.clip(z, 0.0, 1.0).astype(np.float32)

    def corners(self, new: np.ndarray, earlier: np.ndarray, memory: int) -> np.ndarray:
        """For each row of ``new`` (scaled), the index into ``concat(earlier, new)`` of the
        first of its ``memory`` predecessors it is a corner of, or -1."""
        rows = np.concatenate([earlier, new]).astype(np.float32)
        found = np.full(len(new), -1)
        if not len(new) or len(rows) < 2:
            return found
        padded = np.concatenate([np.full((memory, rows.shape[1]), np.nan, np.float32), rows])
        start = len(padded) - len(new)
        # predecessors of new row i: padded[start + i - memory : start + i]
        windows = np.lib.stride_tricks.sliding_window_view(padded[start - memory:len(padded) - 1], memory, axis=0)
        before_all = np.moveaxis(windows, -1, 1)  # (n, memory, width): row i's predecessors, a view
        # In chunks, so a large batch costs time in proportion, not memory (each chunk's
        # temporaries are chunk x memory x width floats).
        chunk = max(1, self._CELLS // (memory * rows.shape[1]))
        for at in range(0, len(new), chunk):
            hit = self._hits(rows[-len(new):][at:at + chunk, None, :], before_all[at:at + chunk])
            for i in np.flatnonzero(hit.any(axis=1)):
                q = rows[len(earlier) + at + i]
                for j in np.flatnonzero(hit[i]):
                    if not self._tone_curve(q, before_all[at + i, j]):
                        found[at + i] = len(earlier) + at + i - memory + int(j)  # index into rows
                        break
        return found

    def _tone_curve(self, q: np.ndarray, before: np.ndarray) -> bool:
        """Whether ``q`` is a tone curve of ``before`` (a fade, contrast or levels change of a
        scan with few tones): equal values inside the bounds stayed equal, over at least
        ``least_toned`` features that share their value with another. A random sign pattern
        sends equal values apart."""
        inside = (before > self.tol) & (before < 1 - self.tol)
        levels, index, counts = np.unique(before[inside], return_inverse=True, return_counts=True)
        shared = counts[index] >= 2
        if shared.sum() < self.least_toned:
            return False  # too few repeated values to tell (anti-aliased images)
        after = q[inside]
        low = np.full(len(levels), np.inf)
        high = np.full(len(levels), -np.inf)
        np.minimum.at(low, index, after)
        np.maximum.at(high, index, after)
        return bool(np.all((high - low)[counts >= 2] <= self.tol))

    def _hits(self, q: np.ndarray, before: np.ndarray) -> np.ndarray:
        """(chunk, memory) booleans: new row i is a corner of predecessor j."""
        d = q - before
        a = np.abs(d)
        tol = self.tol
        with np.errstate(invalid="ignore"):
            m = np.where(np.isnan(a), -1.0, a).max(axis=2, keepdims=True)  # a NaN feature moved "-1"
            plausible = (m[..., 0] >= self.smallest) & (m[..., 0] <= self.largest)
            if not plausible.any():  # the usual case for honest traffic: other inputs differ by more
                return plausible
            at_m = np.abs(a - m) <= tol
            q_bound = (q <= tol) | (q >= 1 - tol)
            ok = (at_m | q_bound) & ~np.isnan(a)
            interior = at_m & ~q_bound
            up, down = interior & (d > 0), interior & (d < 0)
            ups, downs = up.sum(axis=2), down.sum(axis=2)
            moved = ups + downs
            # moves from a value inside the bounds: the evidence (a value on a bound is on
            # every lattice and moves one way only)
            inside = interior & (before > tol) & (before < 1 - tol)
            # ... that are steps of the data's own grid: the earlier value is a multiple of m.
            # m is taken as the mean of the moves by m (the largest move carries the rounding
            # of the stored values at its worst), and a multiple k of it is allowed k times
            # that rounding, but never more than a quarter step. (Stored as float16, a value
            # near 1 is off by up to 2.4e-4, which a hundredfold multiple turns into a step:
            # integer features of 100 levels moved by one unit looked off the grid.)
            step = (a * interior).sum(axis=2, keepdims=True) / np.maximum(moved[..., None], 1)
            step = np.where(step > 0, step, 1.0)
            multiple = np.round(before / step)
            slack = np.minimum(step / 4, tol + multiple * _ROUNDING)
            on_grid = inside & (np.abs(before - step * multiple) <= slack)
            # the direction follows the earlier value (all moves up below some level, all down
            # above it, or the reverse): a contrast change, not a random sign pattern. Judged
            # on features free to move either way (a value within m of a bound has only one
            # way that stays inside), and only when there are enough of them: k random signs
            # fall into two groups split by a level with probability 2(k + 1) / 2**k (50% at
            # k = 4, 0.6% at k = 12).
            free = inside & (before >= m - tol) & (before <= 1 - m + tol)
            up_free, down_free = up & free, down & free
            low_up = np.where(up_free, before, np.inf).min(axis=2)
            high_up = np.where(up_free, before, -np.inf).max(axis=2)
            low_down = np.where(down_free, before, np.inf).min(axis=2)
            high_down = np.where(down_free, before, -np.inf).max(axis=2)
        contrast = (free.sum(axis=2) >= self.least_free) & ((high_up < low_down) | (high_down < low_up))
        n_inside = inside.sum(axis=2)
        width = q.shape[-1]
        return (plausible & (ok.mean(axis=2) >= self.allowed)
                & (moved >= max(self.least_interior, self.least_moved * width))
                & (np.minimum(ups, downs) >= np.maximum(1, self.least_minority * moved))
                & (n_inside >= self.least_inside) & (on_grid.sum(axis=2) < self.lattice * n_inside)
                & ~contrast)
