"""Zoo models built on another entry's trained model instead of training the same network twice."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline import zoo
from redline.zoo import build
from redline.zoo.hardened import SqueezedCnnRecipe
from redline.zoo.malicious import ExfiltratingMlpRecipe
from redline.zoo.recipes import CnnRecipe, MlpRecipe, TransferHeadRecipe

TINY_CNN = {"n_classes": 10, "channels": (4, 8), "hidden": 16, "epochs": 2, "batch_size": 64}
TINY_MLP = {"n_classes": 10, "hidden": (32,), "epochs": 40, "lr": 1e-3, "weight_decay": 0.0}


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_the_zoo_finds_the_entry_each_derived_recipe_starts_from():
    found = {e.name: getattr(build.base_entry(e), "name", None) for e in zoo.entries.ENTRIES}
    assert found["mnist_cnn_squeezed"] == "mnist_cnn"
    assert found["digits_transfer_head"] == "digits_mlp_overfit"
    assert found["digits_mlp_malicious_lsb"] == "digits_mlp_overfit"
    # Penalised encodings, adversarial or augmented training change every update: trained in full.
    for name in ("digits_mlp_malicious_corr", "digits_mlp_malicious_sign", "mnist_cnn_robust",
                 "mnist_cnn_augmented", "mnist_cnn_backdoor", "mnist_cnn"):
        assert found[name] is None, name


@pytest.fixture(scope="module")
def digits():
    return zoo.load_data_for("digits_mlp_overfit")


@pytest.fixture(scope="module")
def mnist():
    return zoo.load_data_for("mnist_cnn")


def test_a_squeezed_cnn_derived_from_the_plain_one_is_the_trained_one(mnist):
    x, y = mnist.x_train[:256], mnist.y_train[:256]
    recipe = SqueezedCnnRecipe(**TINY_CNN)
    assert recipe.base_recipe() == CnnRecipe(**TINY_CNN)
    _same(recipe.derive(CnnRecipe(**TINY_CNN).train(x, y, 3), x, y, 3), recipe.train(x, y, 3))


def test_transfer_head_and_lsb_models_derived_from_the_honest_mlp_are_the_trained_ones(digits):
    x, y = digits.x_train, digits.y_train
    honest = MlpRecipe(**TINY_MLP).train(x, y, 1)
    before = {k: v.clone() for k, v in honest.state_dict().items()}
    for recipe in (TransferHeadRecipe(**TINY_MLP), ExfiltratingMlpRecipe(**TINY_MLP, encoding="lsb", lsb_bits=8)):
        assert recipe.base_recipe() == MlpRecipe(**TINY_MLP)
        _same(recipe.derive(honest, x, y, 1), recipe.train(x, y, 1))
    for k, v in honest.state_dict().items():  # deriving copies: the base model is left as it was
        assert torch.equal(v, before[k]), k
    assert ExfiltratingMlpRecipe(**TINY_MLP, encoding="sign").base_recipe() is None
    with pytest.raises(NotImplementedError):
        ExfiltratingMlpRecipe(**TINY_MLP, encoding="sign").derive(honest, x, y, 1)


def test_a_derived_zoo_entry_is_built_from_its_base_without_training(tmp_path, monkeypatch, digits):
    from redline.zoo import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    trained = []
    original = MlpRecipe.train

    def counting(self, x, y, seed):
        trained.append(type(self).__name__)
        return original(self, x, y, seed)

    monkeypatch.setattr(MlpRecipe, "train", counting)
    lsb = zoo.load_target("digits_mlp_malicious_lsb")
    assert trained == ["MlpRecipe"]  # the honest base, once; the LSB model itself is not trained
    honest = zoo.load_target("digits_mlp_overfit")  # now from the cache
    assert trained == ["MlpRecipe"]
    x = digits.x_test[:50]
    assert np.array_equal(lsb.predict_labels(x), honest.predict_labels(x))
    assert zoo.describe("digits_mlp_malicious_lsb")["build"]["test_accuracy"] > 0.9
