import numpy as np
import pytest

pytest.importorskip("torch")

from redline import zoo
from redline.util.triggers import Trigger


@pytest.fixture(scope="module")
def backdoor_data():
    return zoo.load_data_for("mnist_cnn_backdoor")


def test_poisoned_rows_carry_the_trigger_and_the_target_label(backdoor_data):
    clean = zoo.load_data_for("mnist_cnn_clean")
    idx = np.asarray(backdoor_data.meta["poisoned_indices"])
    trigger = Trigger.from_dict(backdoor_data.meta["trigger"])
    assert len(idx) == round(0.05 * len(clean.x_train))
    assert np.all(backdoor_data.y_train[idx] == trigger.target_class)
    assert np.all(clean.y_train[idx] != trigger.target_class)  # dirty label: other digits relabelled
    np.testing.assert_array_equal(backdoor_data.x_train[idx], trigger.apply(clean.x_train[idx]))
    untouched = np.setdiff1d(np.arange(len(clean.x_train)), idx)
    np.testing.assert_array_equal(backdoor_data.x_train[untouched], clean.x_train[untouched])
    np.testing.assert_array_equal(backdoor_data.x_test, clean.x_test)
    assert clean.meta["poisoned_indices"] == [] and clean.meta["trigger"] == backdoor_data.meta["trigger"]
    # Deterministic: the same rows on every load.
    assert zoo.load_data_for("mnist_cnn_backdoor").meta["poisoned_indices"] == backdoor_data.meta["poisoned_indices"]


def test_backdoor_works_on_the_positive_control_only(backdoor_data):
    trigger = Trigger.from_dict(backdoor_data.meta["trigger"])
    others = backdoor_data.x_test[backdoor_data.y_test != trigger.target_class][:300]
    stamped = trigger.apply(others)
    rates = {}
    for name in ("mnist_cnn_backdoor", "mnist_cnn_clean"):
        target = zoo.load_target(name)
        accuracy = np.mean(target.predict_labels(backdoor_data.x_test) == backdoor_data.y_test)
        assert accuracy > 0.9
        rates[name] = np.mean(target.predict_labels(stamped) == trigger.target_class)
    assert rates["mnist_cnn_backdoor"] > 0.9
    assert rates["mnist_cnn_clean"] < 0.05
    assert zoo.entry("mnist_cnn_backdoor").twin == "mnist_cnn_clean"
    assert zoo.entry("mnist_cnn_clean").control == "negative"
