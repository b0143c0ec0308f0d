"""How far an input lies from a model's domain, and a sequential test on how often an account leaves it.

Used by :mod:`~redline.defences.extraction_monitor`'s out-of-domain test (the helper holds no
defence of its own). Two parts:

* :class:`DomainScorer`: a row's score is its distance to the ``neighbours``-th nearest row
  of an in-domain reference sample, in a representation chosen so that the common
  corruptions of honest inputs barely move it. Images ``(c, h, w)`` / ``(h, w)`` are averaged
  over blocks down to at most 8 cells a side (sensor noise averages out, a blur changes
  little), then each row is centred and scaled to unit length (a brightness shift or a
  contrast change disappears); a distance is then ``sqrt(2 - 2 cos)`` of two layouts. Rows of
  one axis (tables) are standardised feature by feature with the reference's mean and spread.
  A row is *outside* when its score exceeds a threshold calibrated on held-in rows: the
  reference is cut in ``folds``, each fold (every row once as it is, once under a random
  common corruption: Gaussian noise, a box blur, a brightness shift or a contrast change)
  is scored against the other folds, and the threshold is the ``quantile`` of those
  scores. Queries are scored against the whole reference, whose neighbours are at least as
  near, so an in-domain row is outside at most about ``1 - quantile`` of the time.
* :func:`log_evidence`: an anytime-valid one-sided test of "this account's share of outside
  rows is at most ``share``". It is the log of a likelihood ratio mixed uniformly over the
  alternative shares ``[share, 1]``; under the null it is a non-negative supermartingale,
  so by Ville's inequality the chance that it *ever* reaches ``log(1/alpha)``, however long
  the account queries and however often it is tested, is at most ``alpha``. That is what
  makes it safe to test after every row.
"""
from __future__ import annotations

import math

import numpy as np

#: Largest side, in cells, of an image's block-averaged layout.
CELLS = 8


def is_image(shape: tuple[int, ...]) -> bool:
    """Rows of this input shape are images ((channels, height, width) or (height, width))."""
    return len(shape) in (2, 3) and min(shape[-2:]) >= 4


class DomainScorer:
    """Distance of rows to the ``neighbours``-th nearest reference row; outside above ``threshold_``."""

    def __init__(self, shape: tuple[int, ...], neighbours: int = 3, folds: int = 5):
        self.shape = tuple(int(s) for s in shape)
        self.neighbours = int(neighbours)
        self.folds = int(folds)

    # -- the representation ------------------------------------------------------------
    def represent(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, np.float64).reshape(len(rows), *self.shape)
        if not is_image(self.shape):
            return (x.reshape(len(x), -1) - self._mean) / self._spread
        if x.ndim == 3:
            x = x[:, None]
        n, c, h, w = x.shape
        f = max(1, math.ceil(max(h, w) / CELLS))
        if f > 1:  # average f x f blocks (the last partial block is dropped)
            hh, ww = h // f * f, w // f * f
            x = x[:, :, :hh, :ww].reshape(n, c, hh // f, f, ww // f, f).mean(axis=(3, 5))
        z = x.reshape(n, -1)
        z = z - z.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        return z / np.where(norm > 1e-9, norm, 1.0)  # a flat image stays the zero vector

    # -- fitting and calibration ---------------------------------------------------------
    def fit(self, rows: np.ndarray, quantile: float, lower: float, upper: float, seed: int = 0) -> DomainScorer:
        """Keep ``rows`` (the in-domain reference) and calibrate the threshold at ``quantile``
        of cross-fitted held-in scores, clean and corrupted. ``lower``/``upper`` bound the
        input's values (corruptions are clipped to them and scaled by their span)."""
        rows = np.asarray(rows, np.float64).reshape(len(rows), *self.shape)
        flat = rows.reshape(len(rows), -1)
        self._mean = flat.mean(axis=0)
        spread = flat.std(axis=0)
        self._spread = np.where(spread > 0, spread, 1.0)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(rows))
        held_scores, nearest = [], []
        for part in np.array_split(order, self.folds):
            rest = np.setdiff1d(order, part)
            held = rows[part]
            varied = corrupt(held, rng, lower, upper, image=is_image(self.shape))
            d2 = _squared_distances(self.represent(np.concatenate([held, varied])), self.represent(rows[rest]))
            k = min(self.neighbours, d2.shape[1])
            held_scores.append(np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1]))
            nearest.append(np.sqrt(d2[:len(part)].min(axis=1)))  # each clean held row to its nearest other-fold row
        scores = np.concatenate(held_scores)
        self.threshold_ = float(np.quantile(scores, quantile))
        # Near-copies: closer than half of what separates all but the nearest 5% of distinct
        # reference rows (each to its nearest row of the other folds) is one input sent
        # again, not new evidence.
        self.near_ = 0.5 * float(np.quantile(np.concatenate(nearest), 0.05))
        self.calibration_scores_ = scores
        self.reference_ = self.represent(rows)
        self._reference_sq = (self.reference_**2).sum(axis=1)  # every request compares with it
        return self

    @property
    def memory_dtype(self) -> type:
        """The precision a memory of layouts is compared in: float32 for images (unit-length
        layouts), float64 for tables (standardised values can lie far out, where float32
        merged distinct rows)."""
        return np.float32 if is_image(self.shape) else np.float64

    def distinct(self, reps: np.ndarray, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which rows, given by their representations ``reps`` (in order), are not near-copies
        (within ``near_`` in the layout) of a row of ``earlier`` (representations in
        :attr:`memory_dtype`) or of an earlier distinct row of the batch; and the
        representations of the distinct ones, to remember. A row with NaN or infinity is
        always distinct (it is outside, and has no place in the layout)."""
        keep = np.zeros(len(reps), bool)
        if not len(reps):
            return keep, np.zeros((0, self.reference_.shape[1]))
        finite = np.isfinite(reps).all(axis=1)
        reps = np.where(finite[:, None], reps, 0.0)
        near = self.near_**2
        # in the precision of the memory: one matrix product, no copy of it
        fresh = (~(_squared_distances(reps.astype(earlier.dtype), earlier) <= near).any(axis=1) if len(earlier)
                 else np.ones(len(reps), bool))
        within = _squared_distances(reps, reps) <= near
        for i in range(len(reps)):
            keep[i] = not finite[i] or (fresh[i] and not within[i, :i][keep[:i] & finite[:i]].any())
        return keep, reps[keep & finite]

    def score(self, rows: np.ndarray, reps: np.ndarray | None = None) -> np.ndarray:
        """Each row's distance to its ``neighbours``-th nearest reference row (``reps``: the
        rows' representations, when the caller has them already)."""
        queries = self.represent(rows) if reps is None else reps
        k = min(self.neighbours, len(self.reference_))
        d2 = _squared_distances(queries, self.reference_, self._reference_sq)
        return np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])

    def outside(self, rows: np.ndarray, reps: np.ndarray | None = None) -> np.ndarray:
        """Rows beyond the threshold; a row with a NaN or infinite value is outside too (its
        score is not a number, and no in-domain input has one)."""
        finite = np.isfinite(np.asarray(rows, np.float64).reshape(len(rows), -1)).all(axis=1)
        with np.errstate(invalid="ignore"):
            return ~(self.score(rows, reps) <= self.threshold_) | ~finite

    def informative(self, rows: np.ndarray) -> np.ndarray:
        """Rows that say anything about the domain: not a flat image (one value everywhere,
        the zero vector of the layout, equally far from every reference row). Non-finite
        rows count as informative, and outside."""
        x = np.asarray(rows, np.float64)
        if not is_image(self.shape):
            return np.ones(len(x), bool)
        with np.errstate(invalid="ignore"):
            flat = x.reshape(len(x), -1)
            return ~(np.nanmax(flat, axis=1) == np.nanmin(flat, axis=1)) | ~np.isfinite(flat).all(axis=1)


def _squared_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    b_sq = (b**2).sum(axis=1) if b_sq is None else b_sq
    return np.maximum((a**2).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * a @ b.T, 0.0)


def corrupt(rows: np.ndarray, rng: np.random.Generator, lower: float, upper: float, image: bool) -> np.ndarray:
    """One mild common corruption per row, clipped to [lower, upper]: for images Gaussian noise
    (2-8% of the span), a 3x3 box blur, a brightness shift (up to 20% of the span) or a
    contrast change (to 60-100% around the row's mean); for tables Gaussian noise of 2-8% of
    each feature's spread over ``rows``."""
    x = np.asarray(rows, np.float64).copy()
    span = float(upper - lower)
    if not image:
        spread = x.std(axis=0)
        return x + rng.normal(size=x.shape) * rng.uniform(0.02, 0.08, size=(len(x), 1)) * spread
    kinds = rng.integers(4, size=len(x))
    for i, kind in enumerate(kinds):
        row = x[i]
        if kind == 0:
            row = row + rng.normal(0.0, rng.uniform(0.02, 0.08) * span, row.shape)
        elif kind == 1:
            row = _box_blur(row)
        elif kind == 2:
            row = row + rng.uniform(-0.2, 0.2) * span
        else:
            row = row.mean() + rng.uniform(0.6, 1.0) * (row - row.mean())
        x[i] = np.clip(row, lower, upper)
    return x


def _box_blur(image: np.ndarray) -> np.ndarray:
    """A 3x3 mean over the last two axes (edges repeated)."""
    pad = [(0, 0)] * (image.ndim - 2) + [(1, 1), (1, 1)]
    padded = np.pad(image, pad, mode="edge")
    h, w = image.shape[-2:]
    return sum(padded[..., i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def log_evidence(rows, outside, share: float):
    """Log of the mixture likelihood ratio against "at most ``share`` of rows are outside",
    after ``outside`` of ``rows`` were (uniform mixture over the shares ``[share, 1]``).
    Element-wise for arrays of counts; a float for two numbers."""
    from scipy.special import betaincc, betaln

    n, k, p = np.asarray(rows, np.float64), np.asarray(outside, np.float64), float(share)
    with np.errstate(divide="ignore"):
        mixed = betaln(k + 1, n - k + 1) + np.log(betaincc(k + 1, n - k + 1, p)) - math.log1p(-p)
    null = k * math.log(p) + (n - k) * math.log1p(-p)
    out = np.where(n > 0, mixed - null, 0.0)
    return float(out) if out.ndim == 0 else out
