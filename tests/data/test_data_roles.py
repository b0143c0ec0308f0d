"""Data sets with any subset of roles, one file per role, unlabelled rows, attacker/evaluation halves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from redline.data import Dataset, as_dataset, load_data
from redline.errors import DataError


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_test_only_and_test_plus_pool_bundles_load(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    np.savez(tmp_path / "t.npz", x_test=x, y_test=np.arange(50) % 2)
    ds = load_data(f"npz:{tmp_path / 't.npz'}")
    assert ds.roles == ("test",) and ds.x_train is None and ds.x_pool is None
    assert ds.n_classes == 2 and ds.shape == (3,) and ds.bounds == (float(x.min()), float(x.max()))
    described = ds.describe()
    assert described["roles"] == ["test"] and described["rows"] == {"train": 0, "test": 50, "pool": 0}

    np.savez(tmp_path / "tp.npz", x_test=x, y_test=np.arange(50) % 2, x_pool=x[:20])
    ds = load_data(f"npz:{tmp_path / 'tp.npz'}")
    assert ds.roles == ("test", "pool") and ds.unlabelled_roles == ("pool",)
    assert ds.describe()["unlabelled"] == ["pool"] and "labels from the target" in ds.describe()["labels"]


def test_a_data_set_needs_rows_and_consistent_roles():
    with pytest.raises(DataError, match="holds no rows"):
        Dataset("empty")
    with pytest.raises(DataError, match="y_test is given without x_test"):
        Dataset("odd", y_test=np.zeros(3))
    with pytest.raises(DataError, match="differ"):
        Dataset("odd", x_train=np.zeros((3, 2)), x_test=np.zeros((3, 4)))
    # An empty role is an absent role.
    ds = Dataset("d", x_test=np.zeros((4, 2)), y_test=np.zeros(4, dtype=int), x_pool=np.zeros((0, 2)))
    assert ds.roles == ("test",) and ds.x_pool is None


def test_unlabelled_data_has_no_class_count():
    ds = as_dataset({"x_test": np.zeros((5, 2))})
    assert ds.roles == ("test",) and ds.y_test is None and ds.n_classes is None


def test_without_a_pool_attacker_and_evaluation_rows_are_disjoint_halves():
    x = np.arange(41, dtype=np.float64).reshape(-1, 1)
    ds = Dataset("d", x_test=x, y_test=np.arange(41) % 3)
    (xa, ya), (xe, ye) = ds.attacker_data(), ds.evaluation_data()
    assert len(xa) + len(xe) == 41 and not set(xa[:, 0]) & set(xe[:, 0])
    assert np.array_equal(ya, xa[:, 0].astype(int) % 3) and np.array_equal(ye, xe[:, 0].astype(int) % 3)
    assert np.array_equal(ds.attacker_data()[0], xa)  # the same halves every time
    assert "half of the test rows (20" in ds.attacker_note()
    whole, _ = ds.attacker_data(disjoint=False)
    assert len(whole) == 41
    with_pool = Dataset("p", x_test=x, y_test=np.zeros(41, dtype=int), x_pool=x[:5], y_pool=np.zeros(5, dtype=int))
    assert len(with_pool.attacker_data()[0]) == 5 and len(with_pool.evaluation_data()[0]) == 41
    assert with_pool.attacker_note() is None
    only_train = Dataset("t", x_train=x, y_train=np.zeros(41, dtype=int))
    assert only_train.attacker_data() == (None, None) and only_train.evaluation_data() == (None, None)


def test_one_csv_per_role_with_text_labels_numbered_together(tmp_path):
    train = _csv(tmp_path / "train.csv", ["a,b,kind"] + [f"{i},{i % 5},{'cat' if i % 2 else 'dog'}" for i in range(30)])
    # The test file has a class the training file lacks: numbering must be shared, not per file.
    test = _csv(tmp_path / "test.csv", ["a,b,kind"] + [f"{i},{i % 5},{['dog', 'eel'][i % 2]}" for i in range(10)])
    ds = load_data(f"train=csv:{train}#label=kind,test=csv:{test}#label=kind")
    assert ds.roles == ("train", "test") and ds.class_names == ["cat", "dog", "eel"]
    assert ds.split is None and ds.feature_names == ["a", "b"]
    assert [ds.class_names[c] for c in ds.y_train[:2]] == ["dog", "cat"]
    assert [ds.class_names[c] for c in ds.y_test[:2]] == ["dog", "eel"]
    assert np.array_equal(ds.x_train[:, 0], np.arange(30))


def test_per_role_npz_files_and_unlabelled_csv(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "t.npz", x=rng.normal(size=(12, 2)), y=np.arange(12) % 2)
    pool = _csv(tmp_path / "pool.csv", ["u,v"] + [f"{i},{-i}" for i in range(8)])
    ds = load_data(f"test=npz:{tmp_path / 't.npz'}, pool=csv:{pool}#unlabelled=true")
    assert ds.roles == ("test", "pool") and ds.unlabelled_roles == ("pool",)
    assert np.array_equal(ds.x_pool[:, 1], -np.arange(8))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("test=npz:{d}/t.npz,test=npz:{d}/t.npz", "given twice"),
        ("train=builtin:digits", "holds the roles train, test, pool"),
        ("test=", "needs one data spec"),
        ("test=csv:{d}/a.csv#label=y,pool=csv:{d}/b.csv#label=y", "pool file's columns \\(b\\) differ from another's \\(a\\)"),
        ("test=csv:{d}/a.csv#label=y,pool=npz:{d}/t.npz", "shape"),
    ],
)
def test_bad_per_role_specs(tmp_path, spec, message):
    np.savez(tmp_path / "t.npz", x=np.zeros((4, 3)), y=np.zeros(4))
    _csv(tmp_path / "a.csv", ["a,y", "1,0", "2,1"])
    _csv(tmp_path / "b.csv", ["b,y", "1,0", "2,1"])
    with pytest.raises(DataError, match=message):
        load_data(spec.format(d=tmp_path))


def test_builtins_record_their_split():
    split = load_data("builtin:digits").describe()["split"]
    assert split == {"seed": 0, "fractions": {"train": 0.2, "test": 0.3, "pool": 0.5}, "stratified": True}
