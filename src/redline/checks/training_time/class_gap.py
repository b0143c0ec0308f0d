"""Which classes a per-class backdoor statistic sets apart: the gap below (or above) the top few.

Detectors that score every class (FM10.max_margin's largest margin, FM10.neural_cleanse's
smallest trigger) look for target classes at one end of the scores. One median absolute
deviation (MAD) index over all classes lets several target classes hide each other: they
inflate the deviation they are measured against (a CNN with triggers for 7 and 2: margins
87.3 and 83.7 against at most 43.0 for the other classes, indices 2.37 and 2.27, under the
cut-off 2.5). Here the classes are sorted from the suspicious end, and for each k up to
``max_k`` the first k are set apart from the rest:

- ``gap``: how many times the k-th value is beyond the (k+1)-th, the nearest class left in
  the rest (a ratio, >= 1);
- ``index``: the k-th value's anomaly index against the median and MAD of the rest only
  (leave-k-out), or against all classes' if that is larger, on the log scale unless
  ``log_scale`` is false. Either can be the smaller one: set-apart classes inflate the
  deviation of all classes, and an extreme value in the rest inflates the rest's (a
  backdoored MLP whose honest classes' margins fell in two groups, 24-36 and 49-52: index
  2.1 against the rest, 2.7 against all);
- ``rest_gap``: the widest gap between neighbouring classes in the half of the rest nearest
  the split. Where the classes' values are spread in a staircase, gaps as wide as the
  split's occur between honest classes too (an honest MNIST CNN with global average
  pooling: margins 34, 26, 15, 8.7, 7.7, ...; a gap of 1.7 after the second class, 1.8
  after the third), so a gap says something only when it is wider than those.

These are what the checks decide on; :func:`splits` gives every k.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .outliers import MAD_CONSISTENCY


@dataclasses.dataclass(frozen=True)
class Split:
    """The first ``k`` classes from the suspicious end, set apart from the rest."""

    classes: tuple[int, ...]  # positions in the input, most extreme first
    gap: float  # the weakest set-apart value beyond the nearest other one, as a ratio >= 1
    index: float  # the weakest set-apart value's anomaly index (against the rest or all, the larger)
    rest_gap: float  # the widest gap between neighbours in the half of the rest next to the split
    indices: np.ndarray  # every class's anomaly index against the rest's median and MAD

    def stands_out(self, min_gap: float, min_index: float = -np.inf) -> bool:
        """The split's gap reaches ``min_gap`` and is wider than any in the rest next to
        it, and its index exceeds ``min_index``."""
        return self.gap >= min_gap and self.gap > self.rest_gap and self.index > min_index

    @property
    def k(self) -> int:
        return len(self.classes)


def default_max_k(n: int) -> int:
    """How many classes may be set apart by default: a fifth of them (2 of 10), at least one.

    With three of ten, an honest CNN whose margins fall in a staircase (34, 26, 15, 8.7,
    7.7, ...) showed a 1.8-2.0x gap after its third class at every seed."""
    return max(1, int(n) // 5)


def splits(values, *, larger: bool, max_k: int | None = None, log_scale: bool = True) -> list[Split]:
    """The splits for k = 1 .. ``max_k`` (default :func:`default_max_k`) of positive ``values``.

    ``larger``: the suspicious end is the large values (margins), else the small ones
    (trigger sizes). Anomaly indices are signed towards that end.
    """
    values = np.maximum(np.asarray(values, dtype=np.float64), 1e-12)
    n = values.size
    if n < 3:
        raise ValueError("comparing classes needs at least 3")
    max_k = min(default_max_k(n) if max_k is None else int(max_k), n - 2)
    order = np.argsort(-values if larger else values, kind="stable")
    scale = np.log(values) if log_scale else values
    sign = 1.0 if larger else -1.0
    ordered = values[order]
    neighbours = ordered[:-1] / ordered[1:] if larger else ordered[1:] / ordered[:-1]  # gap after each position
    overall = _signed_index(scale, scale, sign)
    out = []
    for k in range(1, max_k + 1):
        apart, rest = order[:k], order[k:]
        indices = _signed_index(scale, scale[rest], sign)
        near = (len(rest) + 1) // 2  # the half of the rest next to the split, and its inner gaps
        rest_gap = float(neighbours[k : k + near - 1].max()) if near > 1 else 1.0
        index = max(float(indices[apart[-1]]), float(overall[apart[-1]]))
        out.append(Split(tuple(int(c) for c in apart), float(neighbours[k - 1]), index, rest_gap, indices))
    return out


def _signed_index(values: np.ndarray, reference: np.ndarray, sign: float) -> np.ndarray:
    """Anomaly index of ``values`` against the median and MAD of ``reference``, signed
    towards the suspicious end (the deviation floored as in :func:`outliers.mad_anomaly_index`)."""
    median = np.median(reference)
    mad = MAD_CONSISTENCY * np.median(np.abs(reference - median))
    return sign * (values - median) / max(mad, 1e-6 * abs(median), 1e-12)


def widest(candidates: list[Split]) -> Split:
    """The split with the largest gap (the fewest classes on a tie)."""
    return max(candidates, key=lambda s: (s.gap, -s.k))
