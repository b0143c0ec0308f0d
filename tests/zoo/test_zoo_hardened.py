"""The hardened MNIST twins: adversarial training and input squeezing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline import zoo
from redline.zoo.hardened import AdversarialCnnRecipe, SqueezedCnnRecipe, pgd_linf
from redline.zoo.recipes import CnnRecipe

TINY = {"n_classes": 10, "channels": (8, 16), "hidden": 32, "epochs": 4, "batch_size": 64}


@pytest.fixture(scope="module")
def mnist():
    return zoo.load_data_for("mnist_cnn")


def test_twins_are_registered_as_negative_controls():
    assert zoo.describe("mnist_cnn")["twin"] == "mnist_cnn_robust"
    assert zoo.describe("mnist_cnn_robust")["twin"] == "mnist_cnn"
    for name in ("mnist_cnn_robust", "mnist_cnn_labels", "mnist_cnn_squeezed"):
        assert zoo.describe(name)["control"] == "negative"
    assert zoo.describe("mnist_cnn_labels")["outputs"] == "labels"


def _robust_accuracy(model, x, y, eps):
    x_adv = pgd_linf(model, x, y, eps, 10, torch.Generator().manual_seed(5))
    return float((model(x_adv).argmax(1) == y).float().mean())


def test_adversarial_training_makes_a_small_cnn_more_robust(mnist):
    x = torch.from_numpy(mnist.x_train[:800])
    y = torch.from_numpy(mnist.y_train[:800].astype(np.int64))
    xt = torch.from_numpy(mnist.x_test[:300])
    yt = torch.from_numpy(mnist.y_test[:300].astype(np.int64))
    plain = CnnRecipe(**TINY).train(x.numpy(), y.numpy(), 0)
    # A weaker stand-in for the zoo twin (epsilon 0.1, few epochs) keeps this test quick.
    robust = AdversarialCnnRecipe(**{**TINY, "epochs": 6}, epsilon=0.1, attack_steps=3, warmup_epochs=2).train(
        x.numpy(), y.numpy(), 0)
    assert float((robust(xt).argmax(1) == yt).float().mean()) >= 0.7
    assert _robust_accuracy(robust, xt, yt, 0.1) >= _robust_accuracy(plain, xt, yt, 0.1) + 0.1


def test_squeezed_twin_has_the_plain_weights_and_masks_gradients(mnist):
    x, y = mnist.x_train[:300], mnist.y_train[:300]
    plain = CnnRecipe(**TINY).train(x, y, 0)
    squeezed = SqueezedCnnRecipe(**TINY).train(x, y, 0)
    for (k, a), (_, b) in zip(plain.state_dict().items(), squeezed[1].state_dict().items()):
        assert torch.equal(a, b), k
    inputs = torch.from_numpy(mnist.x_test[:8]).requires_grad_(True)
    assert set(torch.unique(squeezed[0](inputs)).tolist()) <= {0.0, 1.0}
    (grad,) = torch.autograd.grad(squeezed(inputs).sum(), inputs)
    assert grad.abs().sum() == 0  # why naive white-box attacks stall on it


def test_squeezed_recipe_round_trips_through_safetensors(mnist):
    recipe = SqueezedCnnRecipe(**{**TINY, "epochs": 1})
    model = recipe.train(mnist.x_train[:100], mnist.y_train[:100], 0)
    back = recipe.loads(recipe.dumps(model), (1, 28, 28))
    x = torch.from_numpy(mnist.x_test[:20])
    assert torch.equal(model(x), back(x))


@pytest.mark.slow
def test_zoo_robust_twin_keeps_accuracy_and_resists_pgd(mnist):
    robust = zoo.load_target("mnist_cnn_robust")
    plain = zoo.load_target("mnist_cnn")
    record = zoo.describe("mnist_cnn_robust")["build"]
    assert record["test_accuracy"] >= 0.93
    xt = torch.from_numpy(mnist.x_test[:300])
    yt = torch.from_numpy(mnist.y_test[:300].astype(np.int64))
    assert _robust_accuracy(robust.module, xt, yt, 0.2) >= 0.6
    assert _robust_accuracy(plain.module, xt, yt, 0.2) <= 0.3
