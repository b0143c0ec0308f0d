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

* ``m`` is a plausible perturbation radius: at least ``2 * tol`` and at most half the range
  (a larger one is a different input, and two images of {0, 1} pixels differ by exactly 1);
* every feature either moved by ``m`` (within ``tol``) or sits on a bound of ``q`` (a
  clipped move; this allows ``allowed`` of them to miss for rounding);
* at least ``least_moved`` of the features, and at least ``least_interior`` in number, moved
  by ``m`` to a value inside the bounds (so a row of a few coarse codes, whose every
  difference may be one step or a bound, cannot qualify, and a wide one almost never does);
* the moves by ``m`` go both ways, the rarer direction at least one feature and at least
  ``least_minority`` of them (a brightness change is one-way). Square's windows often give
  most of the image one sign, so one feature the other way must be enough; a corner with
  every move one way is a brightness change and is left to the similarity test.

Only a fixed random subset of at most ``sample`` features is compared (the shares are
estimated on it), against the account's last ``memory`` rows.
"""
from __future__ import annotations

import hashlib

import numpy as np


class VertexTest:
    """Which earlier rows a new row is an L-infinity ball corner of (see the module doc)."""

    _CELLS = 1 << 20  # new rows x memory x features compared at once (4 MiB per float32 temporary)

    def __init__(self, lower: np.ndarray, upper: np.ndarray, sample: int = 256, tol: float = 2e-3,
                 smallest: float = 0.01, largest: float = 0.5, allowed: float = 0.97, least_moved: float = 0.3,
                 least_interior: int = 16, least_minority: float = 0.01, least_inside: int = 4,
                 least_free: int = 12, lattice: float = 0.5):
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
        #: names the compared layout (features and bounds), so a stored memory is only read back
        #: by a test that compares the same features
        self.tag = hashlib.blake2b(np.concatenate([self.columns.astype(np.float64), self.lower, self.span]).tobytes(),
                                   digest_size=6).hexdigest()

    @property
    def width(self) -> int:
        return len(self.columns)

    def scale(self, flat: np.ndarray) -> np.ndarray:
        """The compared features of each row, in [0, 1] of the bounds, as float16 (what is
        kept); NaN stays NaN and never matches."""
        z = (np.asarray(flat, np.float64)[:, self.columns] - self.lower) / self.span
        return np.clip(z, 0.0, 1.0).astype(np.float16)

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
                j = int(np.flatnonzero(hit[i])[0])
                found[at + i] = len(earlier) + at + i - memory + j  # index into rows
        return found

    def _hits(self, q: np.ndarray, before: np.ndarray) -> np.ndarray:
        """(chunk, memory) booleans: new row i is a corner of predecessor j."""
        d = q - before
        a = np.abs(d)
        tol = self.tol
        with np.errstate(invalid="ignore"):
            m = np.nanmax(np.where(np.isnan(a), -1.0, a), axis=2, keepdims=True)
            plausible = (m[..., 0] >= self.smallest) & (m[..., 0] <= self.largest)
            if not plausible.any():  # the usual case for honest traffic: other inputs differ by more
                return plausible
            at_m = np.abs(a - m) <= tol
            q_bound = (q <= tol) | (q >= 1 - tol)
            ok = (at_m | q_bound) & ~np.isnan(a)
            interior = at_m & ~q_bound
            up, down = interior & (d > 0), interior & (d < 0)
            ups, downs = up.sum(axis=2), down.sum(axis=2)
            # moves from a value inside the bounds: the evidence (a value on a bound is on
            # every lattice and moves one way only)
            inside = interior & (before > tol) & (before < 1 - tol)
            # ... that are steps of the data's own grid: the earlier value is a multiple of m
            on_grid = inside & (np.abs(before - m * np.round(before / np.where(m > 0, m, 1.0))) <= tol)
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
        moved = interior.sum(axis=2)
        n_inside = inside.sum(axis=2)
        width = q.shape[-1]
        m = m[..., 0]
        return ((m >= self.smallest) & (m <= self.largest) & (ok.mean(axis=2) >= self.allowed)
                & (moved >= max(self.least_interior, self.least_moved * width))
                & (np.minimum(ups, downs) >= np.maximum(1, self.least_minority * moved))
                & (n_inside >= self.least_inside) & (on_grid.sum(axis=2) < self.lattice * n_inside)
                & ~contrast)
