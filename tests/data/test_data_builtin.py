"""The data sets that ship inside installed packages."""
from __future__ import annotations

import numpy as np
import pytest

from redline.data import BUILTIN_NAMES, load_data
from redline.data.builtin import _RAW_LOADERS, FRACTIONS
from redline.errors import DataError

EXPECTED = {
    # name: (row shape, modality, classes (None: regression), (train, test, pool) rows)
    "digits": ((1, 8, 8), "image", 10, (359, 540, 898)),
    "mnist": ((1, 28, 28), "image", 10, (2500, 1000, 1500)),
    "breast_cancer": ((30,), "tabular", 2, (228, 113, 228)),
    "fair": ((8,), "tabular", 2, (2546, 1274, 2546)),
    "diabetes": ((10,), "tabular", None, (177, 88, 177)),
}


def test_the_documented_names_are_the_known_ones():
    assert set(BUILTIN_NAMES) == set(EXPECTED) == set(FRACTIONS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_roles_and_bounds(name):
    shape, modality, n_classes, rows = EXPECTED[name]
    ds = load_data(f"builtin:{name}")
    assert ds.spec == f"builtin:{name}" and ds.name == name and ds.modality == modality
    assert (len(ds.x_train), len(ds.x_test), len(ds.x_pool)) == rows
    roles = ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test), (ds.x_pool, ds.y_pool))
    for x, _ in roles:
        assert x.shape[1:] == shape and x.dtype == np.float32
    if n_classes is None:
        assert ds.task == "regression" and ds.class_names is None
        assert all(y.dtype == np.float64 for _, y in roles)
    else:
        assert ds.task == "classification"
        assert ds.n_classes == n_classes and len(ds.class_names) == n_classes
        for _, y in roles:
            assert y.dtype == np.int64 and set(np.unique(y)) == set(range(n_classes))  # stratified: every class
    if name != "fair":
        assert ds.bounds == (0.0, 1.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_roles_partition_the_source_rows(name):
    """Train, test and pool together are exactly the source rows, each used once (duplicates included)."""
    raw = _RAW_LOADERS[name]()
    ds = load_data(f"builtin:{name}")
    x = np.concatenate([ds.x_train, ds.x_test, ds.x_pool]).reshape(len(raw["x"]), -1)
    y = np.concatenate([ds.y_train, ds.y_test, ds.y_pool])
    rows = np.column_stack([x, y])
    source = np.column_stack([raw["x"].reshape(len(raw["x"]), -1), raw["y"]])
    assert np.array_equal(np.unique(rows, axis=0, return_counts=True)[1], np.unique(source, axis=0, return_counts=True)[1])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(source, axis=0))


def test_splits_are_deterministic_and_calls_do_not_share_arrays():
    first, second = load_data("builtin:digits"), load_data("builtin:digits")
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_pool, second.y_pool)
    first.x_train[:] = 0
    assert load_data("builtin:digits").x_train.max() == 1.0


def test_class_proportions_match_across_roles():
    ds = load_data("builtin:fair")
    rates = [float(np.mean(y)) for y in (ds.y_train, ds.y_test, ds.y_pool)]
    assert max(rates) - min(rates) < 0.005


def test_fair_keeps_survey_codes_and_names_the_sensitive_attribute():
    ds = load_data("builtin:fair")
    assert ds.feature_names == [
        "rate_marriage", "age", "yrs_married", "children", "religious", "educ", "occupation", "occupation_husb",
    ]
    meta = ds.meta
    assert meta["sensitive_feature"] == "religious"
    assert ds.feature_names[meta["sensitive_index"]] == "religious"
    assert meta["sensitive_values"] == [1.0, 2.0, 3.0, 4.0]
    column = np.concatenate([ds.x_train, ds.x_test, ds.x_pool])[:, meta["sensitive_index"]]
    assert set(np.unique(column)) == set(meta["sensitive_values"])  # raw codes, not standardised
    for i, name in enumerate(ds.feature_names):
        assert set(np.unique(ds.x_train[:, i])) <= set(meta["feature_values"][name])
    assert ds.class_names == ["no_affair", "affair"]
    assert 0.3 < ds.y_train.mean() < 0.35  # about a third report an affair


def test_breast_cancer_is_min_max_scaled_over_all_rows():
    ds = load_data("builtin:breast_cancer")
    everything = np.concatenate([ds.x_train, ds.x_test, ds.x_pool])
    assert np.allclose(everything.min(axis=0), 0.0) and np.allclose(everything.max(axis=0), 1.0)
    assert ds.class_names == ["malignant", "benign"] and len(ds.feature_names) == 30


def test_mnist_pixels_are_scaled_images():
    ds = load_data("builtin:mnist")
    assert ds.x_train.max() == 1.0 and ds.x_train.min() == 0.0
    assert 0.08 < ds.x_train.mean() < 0.2  # mostly dark background, so not left in 0..255


def test_unknown_builtin_lists_the_known_ones():
    with pytest.raises(DataError, match=f"unknown built-in data set 'cifar'; known: {', '.join(BUILTIN_NAMES)}$"):
        load_data("builtin:cifar")


def test_missing_optional_package_is_a_data_error(monkeypatch):
    import builtins

    from redline.data import builtin

    real_import = builtins.__import__

    def no_statsmodels(name, *args, **kwargs):
        if name.startswith("statsmodels"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    builtin._fair.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    try:
        with pytest.raises(DataError, match="needs the statsmodels package"):
            load_data("builtin:fair")
    finally:
        builtin._fair.cache_clear()


def test_missing_scikit_learn_names_the_ml_extra(monkeypatch):
    import builtins

    from redline.data import builtin

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    builtin._digits.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    try:
        # scikit-learn comes with redline[ml]; redline[data] would not install it.
        with pytest.raises(DataError, match=r"needs the scikit-learn package \(pip install 'redline\[ml\]'\)"):
            load_data("builtin:digits")
    finally:
        builtin._digits.cache_clear()
