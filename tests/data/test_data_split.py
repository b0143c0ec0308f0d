"""Deterministic stratified splits."""
from __future__ import annotations

import numpy as np
import pytest

from redline.data.split import split_fractions, split_indices
from redline.errors import DataError


def test_parts_are_disjoint_cover_all_rows_and_follow_the_fractions():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    parts = split_indices(y, (0.5, 0.2, 0.3), seed=3)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(y)))
    assert [len(p) for p in parts] == [50, 20, 30]


def test_every_class_is_split_in_proportion():
    y = np.repeat(np.arange(3), [100, 60, 40])
    train, test = split_indices(y, (0.75, 0.25), seed=0)
    assert np.bincount(y[train]).tolist() == [75, 45, 30]
    assert np.bincount(y[test]).tolist() == [25, 15, 10]


def test_same_seed_same_split_other_seed_other_split():
    y = np.arange(200) % 5
    first = split_indices(y, (0.6, 0.4), seed=7)
    again = split_indices(y, (0.6, 0.4), seed=7)
    other = split_indices(y, (0.6, 0.4), seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_unstratified_split_ignores_labels():
    y = np.zeros(10)
    parts = split_indices(y, (0.5, 0.5), seed=0, stratify=False)
    assert [len(p) for p in parts] == [5, 5]


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (-0.1, 1.1), (0.3, 0.3)])
def test_fractions_must_sum_to_one(fractions):
    with pytest.raises(DataError, match="sum to 1"):
        split_indices(np.zeros(10), fractions, seed=0)


@pytest.mark.parametrize(("test", "pool", "message"), [(1.0, 0.0, "test fraction"), (0.2, -0.1, "pool fraction"), (0.6, 0.4, "no rows")])
def test_split_fractions_are_checked(test, pool, message):
    with pytest.raises(DataError, match=message):
        split_fractions(test, pool)
