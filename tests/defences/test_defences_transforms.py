"""quantise and smooth: inputs coarsened in the model's own units; smoothing a table is refused."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget
from redline.defences.squeezing import median_filter
from redline.defences.transforms import Quantise, Smooth, mean_filter
from redline.errors import UsageError
from redline.targets.base import InputSpec


def table(lower=(0.0, 10.0), upper=(1.0, 20.0)):
    t = ArrayTarget(np.ones((2, 2)), np.zeros(2))
    t.input_spec = dataclasses.replace(t.input_spec, feature_lower=lower, feature_upper=upper)
    return t


def images():
    t = ArrayTarget(np.ones((1 * 6 * 6, 2)), np.zeros(2))
    t.input_spec = InputSpec(shape=(1, 6, 6))
    return t


def test_bits_snap_each_feature_to_its_own_grid_and_clip():
    q = Quantise(bits=1)  # two levels: each feature's lower or upper bound
    q.check(table())
    out = q.transform_input(np.array([[0.4, 16.0], [0.6, 14.0], [-3.0, 99.0]], np.float32))
    np.testing.assert_array_equal(out, [[0.0, 20.0], [1.0, 10.0], [0.0, 20.0]])
    assert out.dtype == np.float32
    q3 = Quantise(bits=2)  # levels 0, 1/3, 2/3, 1 of the range
    q3.check(table())
    np.testing.assert_allclose(q3.transform_input(np.array([[0.30, 13.0]])), [[1 / 3, 10 + 10 / 3]])


def test_step_snaps_to_multiples_from_the_lower_bound_and_small_changes_vanish():
    q = Quantise(step=0.25)
    q.check(table())
    x = np.array([[0.3, 10.6]])
    np.testing.assert_allclose(q.transform_input(x), [[0.25, 10.5]])
    np.testing.assert_array_equal(q.transform_input(x + 0.02), q.transform_input(x))
    t = table()
    assert DefendedTarget(t, [q]).predict(x).shape == (1, 2) and t.answered == 1


def test_smooth_filters_images_and_refuses_tables():
    x = np.random.default_rng(0).random((2, 1, 6, 6))
    med, mean = Smooth("median", 3), Smooth("mean", 3)
    med.check(images())
    mean.check(images())
    np.testing.assert_array_equal(med.transform_input(x), median_filter(x, 3))
    out = mean.transform_input(x)
    assert out[0, 0, 2, 2] == pytest.approx(x[0, 0, 1:4, 1:4].mean())
    assert out[0, 0, 0, 0] == pytest.approx(np.pad(x[0, 0], 1, mode="edge")[0:3, 0:3].mean())
    spike = np.zeros((1, 1, 6, 6))
    spike[0, 0, 3, 3] = 1.0
    assert med.transform_input(spike).max() == 0.0  # a one-pixel perturbation is gone
    np.testing.assert_array_equal(mean_filter(spike, 2).shape, spike.shape)
    with pytest.raises(UsageError, match="table has no neighbouring pixels"):
        Smooth().check(table())


@pytest.mark.parametrize("defence, match", [
    (Quantise(), "exactly one"),
    (Quantise(bits=2, step=0.1), "exactly one"),
    (Quantise(bits=0), "bits"),
    (Quantise(step=-1.0), "step"),
    (Smooth(kind="gauss"), "median or mean"),
    (Smooth(size=1), "size"),
    (Smooth(size=9), "larger than"),
])
def test_bad_settings(defence, match):
    with pytest.raises(UsageError, match=match):
        defence.check(images() if isinstance(defence, Smooth) else table())


def test_rows_of_another_shape_than_the_grid_are_refused():
    from redline.defences import InputRejected

    q = Quantise(step=0.5)
    q.check(table())
    with pytest.raises(InputRejected) as err:
        q.transform_input(np.zeros((1, 3)))
    assert err.value.reason == "shape"


def test_bits_need_finite_bounds():
    t = table(lower=(0.0, -np.inf), upper=(1.0, np.inf))
    with pytest.raises(UsageError, match="finite input bounds"):
        Quantise(bits=3).check(t)
    Quantise(step=0.5).check(t)
