"""The transfer-learning zoo entry: retraining keeps the pretrained layers, refits the head."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline import zoo
from redline.errors import TargetError


@pytest.fixture(scope="module")
def entry():
    return zoo.load_target("digits_transfer_head"), zoo.load_data_for("digits_transfer_head")


def test_it_is_the_overfit_mlp_with_a_refitted_head(entry):
    target, data = entry
    base = zoo.load_target("digits_mlp_overfit").module
    for mine, theirs in zip(target.module[:-1].parameters(), base[:-1].parameters()):
        assert torch.equal(mine, theirs)
    assert not torch.equal(target.module[-1].weight, base[-1].weight)
    assert np.mean(target.predict_labels(data.x_test) == data.y_test) > 0.93


def test_retraining_refits_only_the_last_layer(entry):
    target, data = entry
    half = np.random.default_rng(0).permutation(len(data.x_train))[:180]
    retrained = target.retrain(data.x_train[half], data.y_train[half], seed=1)
    for mine, theirs in zip(retrained.module[:-1].parameters(), target.module[:-1].parameters()):
        assert torch.equal(mine, theirs)
    assert not torch.equal(retrained.module[-1].weight, target.module[-1].weight)
    # The deployed model is untouched, and retraining again starts from it, not from the copy.
    again = retrained.retrain(data.x_train, data.y_train, seed=0)
    assert torch.equal(again.module[-1].weight, target.module[-1].weight)


def test_a_class_missing_from_the_retraining_data_is_never_predicted(entry):
    target, data = entry
    for kept in (5, 2):
        rows = data.y_train < kept
        retrained = target.retrain(data.x_train[rows], data.y_train[rows])
        assert set(np.unique(retrained.predict_labels(data.x_test))) == set(range(kept))
        test_rows = data.y_test < kept
        assert np.mean(retrained.predict_labels(data.x_test[test_rows]) == data.y_test[test_rows]) > 0.95


def test_one_class_is_refused_with_a_clear_error(entry):
    target, data = entry
    rows = data.y_train == 3
    with pytest.raises(TargetError, match="digits_transfer_head: retraining failed"):
        target.retrain(data.x_train[rows], data.y_train[rows])
