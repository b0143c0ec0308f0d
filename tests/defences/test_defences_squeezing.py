"""Input squeezing: numpy and torch forms agree, and match the zoo's squeezed twin."""
from __future__ import annotations

import numpy as np
import pytest

from redline.defences import DefendedTarget
from redline.defences.squeezing import Squeezing, median_filter
from redline.errors import UsageError


class Watching(Squeezing):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = []

    def observe(self, x, answer):
        self.seen.append(x.copy())


def test_bit_depth_reduction_rounds_to_evenly_spaced_levels():
    x = np.array([[-0.2, 0.1, 0.2, 0.5, 0.74, 0.9, 1.3]], dtype=np.float32)
    np.testing.assert_array_equal(Squeezing(levels=2).transform_input(x), [[0, 0, 0, 0, 1, 1, 1]])
    squeezed = Squeezing(levels=5).transform_input(x)
    assert squeezed.dtype == np.float32
    np.testing.assert_allclose(squeezed, [[0, 0, 0.25, 0.5, 0.75, 1, 1]])
    assert Squeezing(levels=2).transform_output(x, x) is x


def test_median_filter_removes_isolated_pixels():
    img = np.zeros((1, 1, 5, 5), dtype=np.float32)
    img[0, 0, 2, 2] = 1.0
    assert median_filter(img, 3).max() == 0.0
    block = np.zeros((1, 1, 5, 5), dtype=np.float32)
    block[0, 0, 1:4, 1:4] = 1.0
    assert median_filter(block, 3)[0, 0, 2, 2] == 1.0


@pytest.mark.parametrize("levels, median", [(2, 1), (4, 2), (8, 3)])
def test_numpy_and_torch_forms_give_the_same_pixels(levels, median):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(levels).uniform(-0.1, 1.1, size=(3, 2, 9, 7)).astype(np.float32)
    defence = Squeezing(levels=levels, median=median)
    layer_out = defence.torch_layer()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(defence.transform_input(x), layer_out)


def test_the_torch_layer_masks_gradients():
    torch = pytest.importorskip("torch")
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    (grad,) = torch.autograd.grad(Squeezing(levels=2).torch_layer()(x).sum(), x)
    assert float(grad.abs().max()) == 0.0


def test_squeezing_in_front_of_mnist_cnn_answers_like_the_zoo_twin():
    pytest.importorskip("torch")
    from redline import zoo

    data = zoo.load_data_for("mnist_cnn")
    x = data.x_test[:64]
    watching = Watching(levels=2)
    defended = DefendedTarget(zoo.load_target("mnist_cnn"), [watching])
    twin = zoo.load_target("mnist_cnn_squeezed")
    np.testing.assert_allclose(defended.predict(x), twin.predict(x), atol=1e-6)
    assert len(watching.seen) == 1 and np.array_equal(watching.seen[0], x)
    assert defended.spec == "zoo:mnist_cnn+squeeze2" and not defended.capabilities.gradients


def test_bad_parameters_and_a_median_on_tables_are_refused(linear_target):
    with pytest.raises(UsageError, match="levels"):
        DefendedTarget(linear_target, [Squeezing(levels=1)])
    with pytest.raises(UsageError, match="median"):
        DefendedTarget(linear_target, [Squeezing(median=0)])
    with pytest.raises(UsageError, match="images"):
        DefendedTarget(linear_target, [Squeezing(median=3)])
