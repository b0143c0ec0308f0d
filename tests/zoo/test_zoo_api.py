"""The zoo's catalogue and loading API."""
from __future__ import annotations

import dataclasses

import pytest

from redline import zoo
from redline.errors import UsageError
from redline.zoo.entries import FAMILIES, ZooEntry

# The entries other parts of redline rely on by name.
REQUIRED = {"mnist_cnn", "digits_mlp_overfit", "digits_mlp_regularized", "fair_logreg", "fair_logreg_labels", "fair_tree"}



def test_catalogue_has_the_required_entries_and_consistent_twins():
    assert REQUIRED <= set(zoo.names())
    for name in zoo.names():
        facts = zoo.describe(name)
        assert facts["name"] == name and facts["spec"] == f"zoo:{name}"
        assert facts["family"] in FAMILIES
        assert facts["data"].startswith("builtin:")
        assert facts["description"] and facts["weakness"] and facts["modes"]
        if facts["twin"] is not None:
            assert zoo.describe(facts["twin"])["twin"] == name
            assert {facts["control"], zoo.describe(facts["twin"])["control"]} == {"positive", "negative"}


def test_documented_roles_of_the_controls():
    assert zoo.describe("digits_mlp_overfit")["control"] == "positive"
    assert zoo.describe("digits_mlp_regularized")["control"] == "negative"
    assert zoo.describe("fair_logreg_labels")["outputs"] == "labels"
    assert zoo.describe("mnist_cnn")["data"] == "builtin:mnist"


@pytest.mark.parametrize("call", [zoo.load_target, zoo.describe, zoo.load_data_for, zoo.entry])
def test_unknown_names_list_the_known_ones(call):
    with pytest.raises(UsageError, match="unknown zoo target 'resnet'; known: mnist_cnn, digits_mlp_overfit"):
        call("resnet")


def test_loaded_targets_name_their_spec_and_recipe(built_zoo):
    for name, target in built_zoo.targets.items():
        assert target.spec == f"zoo:{name}"
        assert target.trainer is not None and target.capabilities.trainable
        data = zoo.load_data_for(name)
        assert data.spec.startswith(zoo.describe(name)["data"])  # a data variant may add a suffix
        assert target.input_spec.shape == data.x_train.shape[1:]
        assert target.n_classes == data.n_classes


def test_describe_reports_the_measured_build(built_zoo):
    build = zoo.describe("mnist_cnn")["build"]
    assert build["test_accuracy"] >= 0.95 and build["train_seconds"] > 0
    assert zoo.describe("fair_logreg_labels")["build"] == zoo.describe("fair_logreg")["build"]


def test_build_all_reports_progress(built_zoo, monkeypatch):
    from redline.zoo import build

    core = list(built_zoo.targets)
    monkeypatch.setattr(build, "names", lambda: core)  # already built: this checks the bookkeeping
    calls = []
    seconds = zoo.build_all(progress=lambda name, done, total: calls.append((name, done, total)))
    assert [c[0] for c in calls] == core and calls[-1][1:] == (len(core), len(core))
    assert set(seconds) == set(core)


def test_load_target_through_the_target_resolver(built_zoo):
    from redline.targets.resolve import load_target

    assert load_target("zoo:fair_tree").spec == "zoo:fair_tree"


def test_catalogue_mistakes_fail_early():
    base = zoo.entry("fair_tree")
    with pytest.raises(ValueError, match="family must be one of"):
        dataclasses.replace(base, family="forest")
    with pytest.raises(ValueError, match="serves another entry"):
        dataclasses.replace(base, outputs="labels")
    assert isinstance(dataclasses.replace(base, name="copy"), ZooEntry)
