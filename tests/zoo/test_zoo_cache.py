"""The zoo cache: hits, rebuilds of damaged or stale files, atomic writes, its location."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from redline import zoo
from redline.zoo import build, cache
from redline.zoo.recipes import (
    CnnRecipe,
    DecisionTreeRecipe,
    DpMlpRecipe,
    InvalidModelFile,
    LogisticRegressionRecipe,
    MlpRecipe,
)


@pytest.fixture
def no_training(monkeypatch):
    """Make any training attempt fail, to prove a model came from the cache."""

    def refuse(self, x, y, seed):
        raise AssertionError(f"{type(self).__name__} trained although the cache should have answered")

    for recipe in (CnnRecipe, MlpRecipe, DpMlpRecipe, LogisticRegressionRecipe, DecisionTreeRecipe):
        monkeypatch.setattr(recipe, "train", refuse)


@pytest.fixture
def count_training(monkeypatch):
    trained = []
    for recipe in (DpMlpRecipe, DecisionTreeRecipe, LogisticRegressionRecipe):
        original = recipe.train

        def counting(self, x, y, seed, _original=original):
            trained.append(type(self).__name__)
            return _original(self, x, y, seed)

        monkeypatch.setattr(recipe, "train", counting)
    return trained


def _files(root, name):
    model = [p for p in (root / "zoo").glob(f"{name}-*") if p.suffix != ".json"]
    record = list((root / "zoo").glob(f"{name}-*.json"))
    assert len(model) == 1 and len(record) == 1
    return model[0], record[0]


def test_cache_hit_is_fast_and_identical(built_zoo, no_training):
    for name, original in built_zoo.targets.items():
        data = zoo.load_data_for(name)  # data loading is not what this measures
        start = time.perf_counter()
        again = zoo.load_target(name)
        assert time.perf_counter() - start < 3.0, name  # generous: the machine may be busy
        assert np.array_equal(again.predict(data.x_test), original.predict(data.x_test)), name


def test_cache_files_are_safetensors_and_skops_never_pickle(built_zoo):
    suffixes = {p.suffix for p in (built_zoo.root / "zoo").iterdir()}
    assert suffixes == {".safetensors", ".skops", ".json"}
    assert not list((built_zoo.root / "zoo").glob(".*.tmp"))  # no leftovers of atomic writes


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("digits_mlp_regularized", lambda model, record: model.write_bytes(b"garbage")),
        ("digits_mlp_regularized", lambda model, record: model.write_bytes(model.read_bytes()[:-100])),
        ("fair_tree", lambda model, record: model.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 2])),
        ("fair_tree", lambda model, record: record.unlink()),
        ("fair_tree", lambda model, record: record.write_text("{not json")),
        ("fair_tree", lambda model, record: model.unlink()),
    ],
)
def test_damaged_cache_is_rebuilt(built_zoo, private_cache, count_training, name, damage):
    data = zoo.load_data_for(name)
    expected = built_zoo.targets[name].predict(data.x_test)
    model, record = _files(private_cache, name)
    damage(model, record)
    rebuilt = zoo.load_target(name)
    assert count_training == [type(zoo.entry(name).recipe).__name__]
    assert np.array_equal(rebuilt.predict(data.x_test), expected)
    zoo.load_target(name)  # the repaired cache now answers without training
    assert len(count_training) == 1


def test_same_size_bit_flip_is_caught_by_the_digest(built_zoo, private_cache, count_training):
    model, _ = _files(private_cache, "digits_mlp_regularized")
    raw = bytearray(model.read_bytes())
    raw[-1] ^= 0xFF  # still parses as safetensors, but the weights changed
    model.write_bytes(bytes(raw))
    zoo.load_target("digits_mlp_regularized")
    assert count_training == ["DpMlpRecipe"]


def test_record_with_matching_digest_but_wrong_contents_is_rebuilt(built_zoo, private_cache, count_training, caplog):
    """A model file from another recipe (e.g. a hand-copied file) fails to load and is replaced."""
    tree_file, _ = _files(private_cache, "fair_tree")
    data = tree_file.read_bytes()
    with pytest.raises(InvalidModelFile, match="unexpected types"):
        LogisticRegressionRecipe().loads(data, (8,))
    key = build._cache_key(zoo.entry("fair_logreg"), zoo.load_data_for("fair_logreg"))
    cache.write("fair_logreg", key, "skops", data, {"entry": "fair_logreg"})
    zoo.load_target("fair_logreg")
    assert count_training == ["LogisticRegressionRecipe"]
    assert "cannot be loaded" in caplog.text


def test_stale_cache_key_when_redline_version_changes(built_zoo, private_cache, monkeypatch, count_training):
    monkeypatch.setattr(build, "__version__", "999.0")
    zoo.load_target("fair_tree")
    assert count_training == ["DecisionTreeRecipe"]
    assert len(list((private_cache / "zoo").glob("fair_tree-*.skops"))) == 2  # the old one is left alone


def test_recipe_changes_change_the_key(built_zoo):
    data = zoo.load_data_for("fair_tree")
    entry = zoo.entry("fair_tree")
    import dataclasses

    deeper = dataclasses.replace(entry, recipe=DecisionTreeRecipe(max_depth=6))
    assert build._cache_key(entry, data) != build._cache_key(deeper, data)
    assert build._cache_key(entry, data) == build._cache_key(entry, zoo.load_data_for("fair_tree"))


def test_unwritable_cache_still_serves_the_model(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("REDLINE_CACHE_DIR", str(blocker))
    target = zoo.load_target("fair_tree")
    assert target.predict(zoo.load_data_for("fair_tree").x_test[:3]).shape == (3, 2)
    assert "could not write the zoo cache" in caplog.text


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("REDLINE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.zoo_dir() == tmp_path / "mine" / "zoo"
    monkeypatch.delenv("REDLINE_CACHE_DIR")
    from platformdirs import user_cache_dir

    assert cache.zoo_dir() == cache.Path(user_cache_dir("redline")) / "zoo"


def test_record_holds_digest_and_build_facts(built_zoo):
    _, record_path = _files(built_zoo.root, "mnist_cnn")
    record = json.loads(record_path.read_text())
    assert len(record["sha256"]) == 64 and record["entry"] == "mnist_cnn"
    assert record["recipe"]["recipe"] == "CnnRecipe" and record["redline"]


def test_loading_from_the_cache_leaves_the_torch_rng_alone(built_zoo, no_training):
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    zoo.load_target("digits_mlp_overfit")
    assert torch.equal(torch.rand(3), expected)
