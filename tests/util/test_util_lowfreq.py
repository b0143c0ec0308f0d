import builtins

import numpy as np
import pytest

from redline.checks.evasion.lowfreq import DirectionSampler, dct_matrix


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 12)])
def test_image_directions_are_unit_and_lie_in_the_low_frequency_subspace(shape):
    sampler = DirectionSampler(shape, ratio=0.5)
    u = sampler.sample(4, 6, np.random.default_rng(0))
    assert u.shape == (4, 6, int(np.prod(shape))) and u.dtype == np.float32
    u = u.astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(u, axis=2), 1.0, atol=1e-5)
    c, h, w = shape
    rows, cols = dct_matrix(h), dct_matrix(w)
    coefficients = np.einsum("kh,nmchw,lw->nmckl", rows, u.reshape(4, 6, c, h, w), cols)
    kh, kw = round(h * 0.5), round(w * 0.5)
    outside = coefficients.copy()
    outside[..., :kh, :kw] = 0
    assert np.abs(outside).max() < 1e-5  # nothing above the kept frequencies
    # Different draws are different directions.
    assert np.abs(u[0, 0] - u[0, 1]).max() > 0.01


def test_directions_do_not_depend_on_optional_frameworks(monkeypatch):
    sampler = DirectionSampler((2, 12, 10))
    first = sampler.sample(3, 5, np.random.default_rng(7))
    real_import = builtins.__import__

    def without_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("torch is an optional dependency")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_torch)
    # Bit for bit: a decision attack on an HTTP target must not change with what is installed.
    np.testing.assert_array_equal(sampler.sample(3, 5, np.random.default_rng(7)), first)


def test_non_image_inputs_get_full_space_gaussian_directions():
    sampler = DirectionSampler((30,))
    u = sampler.sample(2, 1000, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(u, axis=2), 1.0, atol=1e-5)
    assert abs(float(u.mean())) < 0.01 and not sampler.image
