"""Tabular corruptions: shape and dtype kept, deterministic from the seed, inside the domain
(bounds, integer and categorical features, immutable ones), damage growing with severity."""
import itertools

import numpy as np
import pytest

from redline.checks.robustness.corruptions import families
from redline.checks.robustness.corruptions.tabular import (
    TABULAR_FAMILIES,
    TableReference,
    corrupt_table,
)
from redline.targets.base import FeatureConstraints, InputSpec

FAMILIES = sorted(TABULAR_FAMILIES)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n, d = 400, 12
    x = rng.normal(size=(n, d)) * np.linspace(0.01, 1000, d) + np.linspace(-5, 5000, d)
    x[:, 3] = rng.integers(0, 7, size=n)            # an integer count
    x[:, 4] = rng.choice([0.0, 1.0, 2.0], size=n)   # a category code
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def spec(table):
    constraints = FeatureConstraints(integer=(3,), categorical=((4, (0.0, 1.0, 2.0)),), immutable=(0,))
    return InputSpec.from_data(table, constraints)


@pytest.fixture(scope="module")
def reference(table, spec):
    return TableReference.fit(table, spec)


def _damage(x, changed, reference):
    """Mean absolute change per cell in units of each feature's spread."""
    return float(np.mean(np.abs(changed.astype(np.float64) - x) / np.where(reference.spread > 0, reference.spread, 1)))


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_dtype_domain_and_constraints(table, spec, reference, family):
    lo, hi = spec.feature_bounds()
    for severity in (1, 3, 5):
        out = corrupt_table(table, family, severity, np.random.default_rng(1), reference)
        assert out.shape == table.shape and out.dtype == table.dtype
        assert np.all(out >= lo.astype(np.float32) - 1e-3 * np.abs(lo)) and np.all(out <= hi.astype(np.float32) + 1e-3 * np.abs(hi))
        assert np.array_equal(out[:, 3], np.round(out[:, 3]))
        assert set(np.unique(out[:, 4])) <= {0.0, 1.0, 2.0}
        assert np.array_equal(out[:, 0], table[:, 0])  # immutable kept


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_from_the_seed(table, reference, family):
    a = corrupt_table(table, family, 4, np.random.default_rng(7), reference)
    b = corrupt_table(table, family, 4, np.random.default_rng(7), reference)
    c = corrupt_table(table, family, 4, np.random.default_rng(8), reference)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, table)
    if family != "rounding":  # rounding draws nothing: the same grid whatever the seed
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("family", FAMILIES)
def test_damage_grows_with_severity(table, reference, family):
    # averaged over seeds: the families that pick columns pick different ones per seed
    damage = [np.mean([_damage(table, corrupt_table(table, family, s, np.random.default_rng(seed), reference), reference)
                       for seed in range(8)]) for s in range(1, 6)]
    assert damage[0] > 0
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(damage)), damage
    assert damage[4] > 1.5 * damage[0], damage


def test_accuracy_falls_with_severity():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[::2], y[::2])
    xt, yt = x[1::2], y[1::2]
    reference = TableReference.fit(x[::2])
    clean = model.score(xt, yt)
    for family in ("gaussian_noise", "outliers", "scale_error", "stuck_columns"):
        acc = [np.mean([model.score(corrupt_table(xt, family, s, np.random.default_rng(k), reference), yt)
                        for k in range(3)]) for s in (1, 5)]
        assert acc[1] < acc[0] <= clean + 0.02, (family, clean, acc)


def test_bad_arguments(table, reference):
    with pytest.raises(ValueError, match="unknown tabular corruption"):
        corrupt_table(table, "fog", 1, np.random.default_rng(0), reference)
    with pytest.raises(ValueError, match="severity"):
        corrupt_table(table, "rounding", 6, np.random.default_rng(0), reference)
    with pytest.raises(ValueError, match="features"):
        corrupt_table(table[:, :5], "rounding", 1, np.random.default_rng(0), reference)


def test_registry_names_the_tabular_families():
    assert families("tabular") is TABULAR_FAMILIES
    assert len(TABULAR_FAMILIES) == 7
    with pytest.raises(ValueError):
        families("audio")
