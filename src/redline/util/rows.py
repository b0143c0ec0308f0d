"""Telling rows apart: repeated rows are one piece of evidence, not many."""
from __future__ import annotations

import hashlib

import numpy as np


def row_keys(x: np.ndarray, y: np.ndarray | None = None) -> list[bytes]:
    """A digest per row of its values (and its label, when given)."""
    flat = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))
    labels = None if y is None else np.asarray(y).reshape(-1)
    keys = []
    for i, row in enumerate(flat):
        digest = hashlib.blake2b(row.tobytes(), digest_size=16)
        if labels is not None:
            digest.update(np.asarray(labels[i], dtype=np.float64).tobytes())
        keys.append(digest.digest())
    return keys


def first_occurrences(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Indices of the first copy of every distinct row (with its label), in order."""
    seen: set[bytes] = set()
    keep = []
    for i, key in enumerate(row_keys(x, y)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def rows_in(x: np.ndarray, among: np.ndarray) -> np.ndarray:
    """For each row of ``x``, whether the same values are a row of ``among`` (labels aside)."""
    if among is None or not len(among):
        return np.zeros(len(x), dtype=bool)
    if np.asarray(x).reshape(len(x), -1).shape[1] != np.asarray(among).reshape(len(among), -1).shape[1]:
        return np.zeros(len(x), dtype=bool)
    other = set(row_keys(np.asarray(among, dtype=np.asarray(x).dtype)))
    return np.array([k in other for k in row_keys(x)], dtype=bool)


def repeat_share(x: np.ndarray) -> float:
    """The share of rows that equal another row of ``x`` (0 for continuous measurements;
    large for tables of a few categorical features, where equal rows are honest draws)."""
    if x is None or len(x) < 2:
        return 0.0
    keys = row_keys(x)
    counts: dict[bytes, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return float(sum(c for c in counts.values() if c > 1) / len(keys))


def repeats_can_be_chance(x: np.ndarray) -> bool:
    """Whether equal rows can be honest draws: the rows' space (the product over features of
    the distinct values each takes) is within 100 times the square of the number of rows,
    where by the birthday bound chance collisions are expected. Tables of a few categorical
    features are; measurements and images (each feature with many values) are not, and
    there an equal row is a copy."""
    flat = np.asarray(x).reshape(len(x), -1)
    if len(flat) < 2:
        return False
    log_space = sum(np.log(len(np.unique(col))) for col in flat.T)
    return bool(log_space <= np.log(100.0) + 2 * np.log(len(flat)))


def distinct_unless_chance(x: np.ndarray, y: np.ndarray | None, *others: np.ndarray | None) -> np.ndarray:
    """Indices of the rows of ``x`` to count as evidence: the first copy of each distinct row,
    unless equal rows can be chance draws (:func:`repeats_can_be_chance`, judged on ``x``
    with the ``others`` rows), when every row counts."""
    pooled = np.concatenate([np.asarray(a).reshape(len(a), -1) for a in (x, *others) if a is not None and len(a)])
    if repeats_can_be_chance(pooled):
        return np.arange(len(x))
    return first_occurrences(x, y)
