"""DATA specs: npz and CSV files, arrays by role, and every way they can be malformed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from redline.data import Dataset, as_dataset, load_data
from redline.errors import DataError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _roles(rng, n=(40, 20, 30), d=3):
    arrays = {}
    for role, rows in zip(("train", "test", "pool"), n):
        arrays[f"x_{role}"] = rng.normal(size=(rows, d)).astype(np.float32)
        arrays[f"y_{role}"] = np.arange(rows) % 2
    return arrays


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- npz ----------------------------------------------------------------------------


def test_npz_with_roles(tmp_path, rng):
    arrays = _roles(rng)
    np.savez(tmp_path / "d.npz", **arrays)
    ds = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert ds.name == "d" and ds.spec == f"npz:{tmp_path / 'd.npz'}"
    for key, value in arrays.items():
        assert np.array_equal(getattr(ds, key), value)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.modality == "tabular" and ds.n_classes == 2


def test_npz_pool_is_optional(tmp_path, rng):
    arrays = _roles(rng)
    del arrays["x_pool"], arrays["y_pool"]
    np.savez(tmp_path / "d.npz", **arrays)
    ds = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert ds.x_pool is None and ds.y_pool is None


def test_npz_images_and_names(tmp_path, rng):
    x = rng.uniform(size=(90, 1, 4, 4))
    y = np.arange(90) % 3
    np.savez(tmp_path / "img.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]))
    ds = load_data(f"npz:{tmp_path / 'img.npz'}")
    assert ds.modality == "image" and ds.roles == ("test",) and ds.x_test.shape[1:] == (1, 4, 4)
    assert ds.class_names == ["a", "b", "c"]


def test_npz_single_pair_is_the_test_role_unless_a_split_is_asked(tmp_path, rng):
    x = rng.normal(size=(200, 4))
    y = np.repeat([0, 1], [150, 50])
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    whole = load_data(f"npz:{tmp_path / 'xy.npz'}")
    assert whole.roles == ("test",) and np.array_equal(whole.x_test, x) and whole.split is None
    spec = f"npz:{tmp_path / 'xy.npz'}#split=train:0.5,test:0.25,pool:0.25"
    ds = load_data(spec)
    assert (len(ds.x_train), len(ds.x_test), len(ds.x_pool)) == (100, 50, 50)
    assert ds.describe()["split"] == {"seed": 0, "fractions": {"train": 0.5, "test": 0.25, "pool": 0.25},
                                      "stratified": True}
    assert [int(ds.y_test.sum()), int(ds.y_pool.sum())] == [12, 13] or [int(ds.y_test.sum()), int(ds.y_pool.sum())] == [13, 12]
    again = load_data(spec)
    assert np.array_equal(ds.x_train, again.x_train)
    rows = np.concatenate([ds.x_train, ds.x_test, ds.x_pool])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(x, axis=0))


def test_npz_split_options(tmp_path, rng):
    np.savez(tmp_path / "xy.npz", x=rng.normal(size=(100, 2)), y=np.arange(100) % 2)
    ds = load_data(f"npz:{tmp_path / 'xy.npz'}#test=0.3&pool=0&seed=5")
    assert (len(ds.x_train), len(ds.x_test), ds.x_pool) == (70, 30, None)
    other_seed = load_data(f"npz:{tmp_path / 'xy.npz'}#test=0.3&pool=0&seed=6")
    assert not np.array_equal(ds.x_test, other_seed.x_test)


def test_npz_regression_task(tmp_path, rng):
    np.savez(tmp_path / "r.npz", x=rng.normal(size=(40, 2)), y=rng.normal(size=40))
    ds = load_data(f"npz:{tmp_path / 'r.npz'}#task=regression")
    assert ds.task == "regression" and ds.y_test.dtype == np.float64 and ds.class_names is None


def test_npz_labels_that_are_not_class_indices_are_encoded(tmp_path, rng):
    arrays = _roles(rng)
    for role in ("train", "test", "pool"):
        arrays[f"y_{role}"] = np.where(arrays[f"y_{role}"] == 1, 1, -1)
    np.savez(tmp_path / "pm.npz", **arrays)
    ds = load_data(f"npz:{tmp_path / 'pm.npz'}")
    assert ds.class_names == ["-1", "1"]
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert np.array_equal(ds.y_test == 1, arrays["y_test"] == 1)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"z_train": np.zeros((3, 2))}, "expected arrays by role"),
        ({"y_train": np.zeros(3), "x_test": np.zeros((2, 2))}, "y_train is given without x_train"),
        ({"x": np.zeros((3, 2)), "x_test": np.zeros((2, 2))}, "not both"),
        ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(4), "x_test": np.zeros((2, 2)), "y_test": np.zeros(2)},
         "x_train has 3 rows but y_train has 4"),
        ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(3), "x_test": np.zeros((2, 5)), "y_test": np.zeros(2)},
         "x_test rows have shape \\(5,\\), x_train rows \\(2,\\)"),
        ({"x_train": np.array([[0.0, np.nan], [1, 1]]), "y_train": np.zeros(2), "x_test": np.zeros((2, 2)),
          "y_test": np.zeros(2)}, "x_train has NaN or infinite values in 1 rows"),
        ({"x": np.zeros(10), "y": np.zeros(10)}, "one row per sample"),
        ({"x": np.array([["a", "b"]] * 8), "y": np.zeros(8)}, "x must be numeric"),
        ({"x": np.zeros((10, 2)), "y": np.zeros(9)}, "x has 10 rows but y has 9"),
        ({"x": np.zeros((10, 2)), "y": np.zeros((10, 3))}, "one label per row"),
        ({"x": np.zeros((10, 2)), "y": np.array([0.0] * 9 + [np.nan])}, "NaN or infinite labels"),
        ({**_roles(np.random.default_rng(0)), "x_pool": np.zeros((3, 3))}, "x_pool has 3 rows but y_pool has 30"),
    ],
)
def test_malformed_npz_is_a_data_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="object arrays"):
        load_data(f"npz:{tmp_path / 'obj.npz'}")


def test_missing_and_damaged_npz(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(DataError, match="not an .npz archive"):
        load_data(f"npz:{tmp_path / 'junk.npz'}")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 and then the archive breaks off")
    with pytest.raises(DataError, match="not a readable .npz archive"):
        load_data(f"npz:{tmp_path / 'cut.npz'}")
    with pytest.raises(DataError, match="not a file"):
        load_data(f"npz:{tmp_path}")


# -- csv ----------------------------------------------------------------------------


def test_csv_with_string_labels(tmp_path):
    lines = ["height,weight,species"] + [f"{i},{2 * i + 1},{'cat' if i % 3 else 'dog'}" for i in range(60)]
    path = _write_csv(tmp_path / "pets.csv", "\n".join(lines) + "\n")
    ds = load_data(f"csv:{path}#label=species&split=train:0.5,test:0.25,pool:0.25&seed=3")
    assert ds.describe()["split"]["seed"] == 3
    assert ds.feature_names == ["height", "weight"]
    assert ds.class_names == ["cat", "dog"]
    assert ds.x_train.shape[1] == 2 and ds.x_train.dtype == np.float64
    rows = np.concatenate([ds.x_train, ds.x_test, ds.x_pool])
    labels = np.concatenate([ds.y_train, ds.y_test, ds.y_pool])
    assert np.array_equal(labels, np.where(rows[:, 0] % 3 == 0, 1, 0))  # labels follow their rows


def test_csv_label_column_anywhere_numeric_labels_and_options(tmp_path):
    lines = ["label, a ,b"] + [f"{i % 2},{i},{i * 0.5}" for i in range(40)] + [""]
    path = _write_csv(tmp_path / "n.csv", "\ufeff" + "\n".join(lines) + "\n")  # BOM, spaces, blank line
    ds = load_data(f"csv:{path}#label=label&test=0.5&pool=0&seed=1")
    assert ds.feature_names == ["a", "b"] and ds.class_names is None
    assert (len(ds.x_train), len(ds.x_test), ds.x_pool) == (20, 20, None)
    assert np.array_equal(ds.x_train[:, 1], ds.x_train[:, 0] * 0.5)
    assert np.array_equal(ds.y_train, ds.x_train[:, 0].astype(int) % 2)


def test_csv_regression(tmp_path):
    lines = ["x,price"] + [f"{i},{i * 1.5}" for i in range(20)]
    path = _write_csv(tmp_path / "r.csv", "\n".join(lines))
    ds = load_data(f"csv:{path}#label=price&task=regression")
    assert ds.task == "regression" and np.allclose(ds.y_test, ds.x_test[:, 0] * 1.5)


@pytest.mark.parametrize(
    ("text", "spec_tail", "message"),
    [
        ("a,b,y\n1,2,0\n1,2,1\n", "#label=z", "no column 'z' for the label; columns are a, b, y"),
        ("a,b,y\n1,red,0\n1,2,1\n", "#label=y", "feature column 'b' is not numeric \\(line 2: 'red'\\)"),
        ("a,b,y\n1,2,0\n1,,1\n", "#label=y", "feature column 'b' has a missing value on line 3"),
        ("a,b,y\n1,2,0\n1,NaN,1\n", "#label=y", "feature column 'b' has a missing value on line 3"),
        ("a,b,y\n1,2,0\n1,inf,1\n", "#label=y", "feature column 'b' has an infinite value on line 3"),
        ("a,b,y\n1,2,0\n1,2\n", "#label=y", "line 3 has 2 fields, the header has 3"),
        ("a,b,y\n1,2,\n1,2,1\n", "#label=y", "label column 'y' has a missing value on line 2"),
        ("a,a,y\n1,2,0\n", "#label=y", "duplicate column names a"),
        ("a,y\n", "#label=y", "no data rows"),
        ("", "#label=y", "the file is empty"),
        ("y\n1\n", "#label=y", "no feature columns"),
        ("a,y\n1,x\n2,y\n", "#label=y&task=regression", "must be numeric for regression"),
        ("a,y\n1,0\n", "", "csv data needs the label column"),
        ("a,y\n1,0\n", "#label=y&colour=red", "unknown csv option 'colour'; allowed: label, unlabelled, split, test, pool, seed, task"),
        ("a,y\n1,0\n", "#label=y&test=lots", "option test='lots' is not a number"),
        ("a,y\n1,0\n", "#label=y&test=0.7&pool=0.5", "leave no rows for training"),
        ("a,y\n1,0\n", "#label=y&task=ranking", "task must be one of classification, regression"),
        ("a,y\n1,0\n", "#label=y&label=a", "given twice"),
        ("a,y\n1,0\n", "#label=y&split=train:0.5,test:0.5", "too few to split"),
        ("a,y\n1,0\n", "#label=y&seed=2", "seed= sets the seed of a split"),
        ("a,y\n1,0\n", "#label=y&split=train:0.5,tset:0.5", "split takes ROLE:SHARE"),
        ("a,y\n1,0\n", "#label=y&split=train:0.5,test:0.4", "sum to 1"),
        ("a,y\n1,0\n", "#label=y&split=train:0.5,test:0.5&test=0.2", "not both"),
        ("a,y\n1,0\n", "#label=y&unlabelled=true", "exclude each other"),
    ],
)
def test_malformed_csv_is_a_one_line_data_error(tmp_path, text, spec_tail, message):
    path = _write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message) as info:
        load_data(f"csv:{path}{spec_tail}")
    assert "\n" not in str(info.value)


def test_csv_that_is_not_text(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"a,y\n\xff\xfe\x00\x01,1\n")
    with pytest.raises(DataError, match="not UTF-8 text"):
        load_data(f"csv:{path}#label=y")


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_data(f"csv:{tmp_path / 'none.csv'}#label=y")


def test_hash_in_a_path_without_options_stays_in_the_path(tmp_path):
    path = _write_csv(tmp_path / "run#1.csv", "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    assert len(load_data(f"csv:{path}#label=y").x_test) == 20


# -- specs and pass-through -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("digits", "unknown data spec 'digits': use builtin:NAME, npz:PATH, csv:PATH#label=COL or ROLE=SPEC"),
        ("parquet:x.parquet", "unknown data spec"),
        ("builtin:", "builtin: needs a name; known: breast_cancer, .*digits, fair, mnist"),
        ("npz:", "npz: needs a file path"),
        (42, "a data spec is a string"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(DataError, match=message):
        load_data(spec)


def test_as_dataset_passes_datasets_through(rng):
    ds = Dataset("mine", **{k: v for k, v in _roles(rng).items()})
    assert as_dataset(ds) is ds


def test_as_dataset_takes_arrays_by_role_and_specs(tmp_path, rng):
    arrays = _roles(rng)
    ds = as_dataset({**arrays, "feature_names": ["a", "b", "c"], "class_names": ["no", "yes"]}, name="dict")
    assert ds.name == "dict" and ds.feature_names == ["a", "b", "c"] and ds.class_names == ["no", "yes"]
    assert np.array_equal(ds.x_pool, arrays["x_pool"])
    assert as_dataset("builtin:digits").spec == "builtin:digits"
    np.savez(tmp_path / "p.npz", **arrays)
    assert np.array_equal(as_dataset(tmp_path / "p.npz").x_test, arrays["x_test"])


def test_as_dataset_splits_a_single_pair_only_when_asked(rng):
    pair = {"x": rng.normal(size=(80, 2)), "y": np.arange(80) % 4}
    assert as_dataset(pair).roles == ("test",)
    ds = as_dataset({**pair, "split": "train:0.5,test:0.25,pool:0.25"})
    assert (len(ds.x_train), len(ds.x_test), len(ds.x_pool)) == (40, 20, 20)
    assert as_dataset({**pair, "split": {"train": 0.5, "test": 0.5}, "seed": 4}).split["seed"] == 4


def test_as_dataset_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(DataError, match="cannot use a list as data"):
        as_dataset([1, 2, 3])
    with pytest.raises(DataError, match="cannot tell how to read"):
        as_dataset(tmp_path / "table.csv")
    with pytest.raises(DataError, match="feature names for 3 features"):
        as_dataset({**_roles(np.random.default_rng(0)), "feature_names": ["a"]})


def test_mixed_text_and_numeric_labels_are_refused(rng):
    arrays = _roles(rng)
    arrays["y_test"] = np.array(["a", "b"] * 10)
    with pytest.raises(DataError, match="text labels and others numeric"):
        as_dataset(arrays)


def test_importing_the_package_loads_no_ml_framework():
    import subprocess
    import sys

    code = (
        "import sys, redline.data, redline.zoo; "
        "heavy = [m for m in ('torch', 'sklearn', 'mlxtend', 'statsmodels', 'pandas', 'scipy', 'skops') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
