"""The corruption-augmented CNN twin (FM16 negative control) and its batch corruptions."""
from __future__ import annotations


import pytest

from redline import zoo

torch = pytest.importorskip("torch")


def test_registered_as_the_fm16_negative_control():
    facts = zoo.describe("mnist_cnn_augmented")
    assert facts["control"] == "negative" and list(facts["modes"]) == ["FM16"]
    assert zoo.entry("mnist_cnn_augmented").recipe.epochs == 15


def test_everyday_corruptions_are_seeded_in_range_and_change_most_images():
    from redline.zoo.augmented import everyday_corruptions

    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = everyday_corruptions(x, torch.Generator().manual_seed(1))
    b = everyday_corruptions(x, torch.Generator().manual_seed(1))
    c = everyday_corruptions(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    changed = (a - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.7 <= float(changed.float().mean()) < 1.0  # one kind in eight leaves the image as it is


@pytest.mark.slow
def test_augmented_twin_has_a_clearly_lower_mce_than_mnist_cnn():
    from redline.checks.robustness.fm16_corruption import CommonCorruption
    from redline.data import load_data

    data = load_data("builtin:mnist")
    check = CommonCorruption(n_inputs=300, reference="zoo:mnist_cnn")
    finding = check(zoo.load_target("mnist_cnn_augmented"), data, budget=100_000, seed=0)
    m = finding.metrics
    assert finding.status.value == "not_vulnerable", finding.summary  # the negative control passes
    assert m["clean_accuracy"] >= 0.93
    assert m["mce"] <= 0.75 and m["relative_mce"] <= 0.6, (m["mce"], m["relative_mce"])
