"""Slice discovery and confirmation (checks/robustness/slices.py): a planted slice is found
and confirmed, chance slices found on one half are rejected on the other, and the family-wise
rate of false confirmations stays at the nominal 5%."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.robustness import slices
from redline.util.stats import clopper_pearson

pytest.importorskip("scipy")

NAMES = ["a", "b", "c", "d"]


def _rows(n, seed, planted=True):
    """Four features; errors at 10% everywhere, and at 80% where a >= 0.6 and d = 2 (when planted)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 4))
    x[:, 3] = rng.integers(0, 4, size=n)
    p = np.full(n, 0.1)
    if planted:
        p[(x[:, 0] >= 0.6) & (x[:, 3] == 2)] = 0.8
    return x, rng.uniform(size=n) < p


def test_vector_bounds_are_the_scalar_clopper_pearson():
    k, n = np.array([0, 3, 10, 20]), np.array([20, 20, 20, 20])
    low, high = slices.cp_bounds(k, n, 0.99)
    for i in range(4):
        assert (low[i], high[i]) == pytest.approx(clopper_pearson(int(k[i]), int(n[i]), 0.99))


def test_feature_conditions_read_as_they_select():
    x = np.array([[0.0, 1], [1, 2], [2, 3], [3, 3], [4, 1], [5, 2], [6, 3], [7, 1]], dtype=float)
    conditions = {c.text: c for c in slices.feature_conditions(x, ["age", "kids"], max_bins=2)}
    assert set(conditions) >= {"kids = 1", "kids >= 2", "kids <= 2", "age < 3.5", "age >= 3.5"}
    assert conditions["kids >= 2"].holds(x).tolist() == [False, True, True, True, False, True, True, False]
    assert conditions["age >= 3.5"].holds(x).sum() == 4


def test_a_planted_slice_is_discovered_and_confirmed():
    x_a, bad_a = _rows(1500, 1)
    x_b, bad_b = _rows(1500, 2)
    rules, rows, errors = slices.rule_candidates(x_a, bad_a, NAMES)
    found = slices.discover(rules, x_a, None, bad_a, min_rows=20, margin=0.2, most=5, rows=rows, errors=errors)
    assert found and "d = 2" in found[0].description and "a >=" in found[0].description, found[0].description
    tested = slices.confirm(found, x_b, None, bad_b, min_rows=20, margin=0.2)
    best = tested[0]
    assert best.confirmed and best.error_rate > 0.6 and best.rest_error_rate < 0.2
    inside = (x_b[:, 0] >= 0.6) & (x_b[:, 3] == 2)
    assert (best.mask & inside).sum() / best.mask.sum() > 0.8  # the rows it names are the planted ones


def test_chance_slices_found_on_one_half_are_rejected_on_the_other():
    x_a, bad_a = _rows(1000, 3, planted=False)
    x_b, bad_b = _rows(1000, 4, planted=False)
    rules, rows, errors = slices.rule_candidates(x_a, bad_a, NAMES)
    # A lenient screen so that discovery does return the best-looking chance slices.
    found = slices.discover(rules, x_a, None, bad_a, min_rows=20, margin=0.05, most=8, rows=rows, errors=errors)
    assert found, "the screen should let some chance slices through"
    tested = slices.confirm(found, x_b, None, bad_b, min_rows=20, margin=0.05)
    assert not any(t.confirmed for t in tested)


def test_false_confirmations_stay_at_the_nominal_rate():
    """100 data sets without any slice, a zero margin: at most 5% of runs may confirm a slice
    (Bonferroni over the tested candidates); allow sampling noise up to 10."""
    runs_with_a_false_slice = 0
    for seed in range(100):
        x_a, bad_a = _rows(400, 1000 + seed, planted=False)
        x_b, bad_b = _rows(400, 2000 + seed, planted=False)
        rules, rows, errors = slices.rule_candidates(x_a, bad_a, NAMES, max_conditions=1)
        found = slices.discover(rules, x_a, None, bad_a, min_rows=20, margin=0.0, most=8, rows=rows, errors=errors)
        tested = slices.confirm(found, x_b, None, bad_b, min_rows=20, margin=0.0)
        runs_with_a_false_slice += any(t.confirmed for t in tested)
    assert runs_with_a_false_slice <= 10


def test_clusters_of_one_class_find_the_look_that_fails():
    rng = np.random.default_rng(0)
    # Class 0 has two looks (centred at -3 and +3 on the first axis); the model fails the second.
    z = rng.normal(0, 1, size=(800, 5))
    y = rng.integers(0, 2, size=800)
    look = (y == 0) & (rng.uniform(size=800) < 0.4)
    z[look, 0] += 6
    z[y == 1, 1] += 6
    bad = np.where(look, rng.uniform(size=800) < 0.9, rng.uniform(size=800) < 0.05)
    first = np.arange(800) < 400
    candidates = slices.cluster_candidates(z[first], y[first], ks=(1, 2), min_rows=20, class_names=["cat", "dog"])
    found = slices.discover(candidates, z[first], y[first], bad[first], min_rows=20, margin=0.2, most=4)
    tested = slices.confirm(found, z[~first], y[~first], bad[~first], min_rows=20, margin=0.2)
    best = tested[0]
    assert best.confirmed and best.description.startswith("true class cat, look ") and best.description.endswith(" of 2")
    assert (best.mask & look[~first]).sum() / best.mask.sum() > 0.9


def test_could_confirm_says_when_rows_are_too_few():
    assert slices.could_confirm(1000, 0.1, min_rows=20, margin=0.2, tested=8)
    assert not slices.could_confirm(30, 0.1, min_rows=20, margin=0.2, tested=8)  # 10 rows outside
    assert not slices.could_confirm(1000, 0.9, min_rows=20, margin=0.2, tested=8)  # nothing to stand out from
