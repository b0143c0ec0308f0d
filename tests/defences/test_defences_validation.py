"""validate: the first broken rule refuses the batch with its reason word; good batches pass untouched."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget, InputRejected
from redline.defences.validation import Validation
from redline.errors import UsageError
from redline.targets.base import FeatureConstraints


def target(constraints=None):
    t = ArrayTarget(np.random.default_rng(0).normal(size=(4, 3)), np.zeros(3))
    t.input_spec = dataclasses.replace(t.input_spec, lower=0.0, upper=1.0, constraints=constraints or FeatureConstraints(),
                                       feature_lower=(0.0, 0.0, 0.0, -5.0), feature_upper=(1.0, 1.0, 1.0, 5.0))
    return t


def rejected(defence, x):
    with pytest.raises(InputRejected) as err:
        defence.transform_input(np.asarray(x))
    assert err.value.status == 422
    return err.value


def test_a_batch_inside_every_rule_passes_unchanged():
    v = Validation(shape=[4], dtype="float32", min=0.0, max=[1, 1, 1, 5], max_batch=3)
    v.check(target())
    x = np.array([[0.0, 0.5, 1.0, 4.0], [0.2, 0.2, 0.2, 0.0]])
    assert v.transform_input(x) is x


def test_each_rule_has_its_reason_and_a_message_without_the_bounds():
    v = Validation(min=0.0, max=1.0, max_batch=2, dtype="float32")
    v.check(target())
    assert rejected(v, np.zeros((3, 4))).reason == "batch_size"
    assert rejected(v, np.zeros((1, 5))).reason == "shape"
    assert rejected(v, [["a", "b", "c", "d"]]).reason == "malformed"
    assert rejected(v, [[0.0, np.nan, 0.0, 0.0]]).reason == "not_finite"
    assert rejected(v, [[0.0, 0.0, 0.0, 1e300]]).reason == "dtype"
    err = rejected(v, [[0.0, 0.0, 0.0, 0.5], [0.0, 1.5, 0.0, 0.0]])
    assert err.reason == "range" and "row 1, feature 1" in str(err) and "1.5" not in str(err)
    assert err.detail["upper"] == 1.0 and err.detail["value"] == 1.5


def test_bounds_from_target_use_the_per_feature_range():
    v = Validation(bounds="from_target")
    v.check(target())
    v.transform_input(np.array([[0.0, 0.0, 0.0, -5.0]]))  # feature 3 may go to -5
    assert rejected(v, [[0.0, 0.0, 0.0, -6.0]]).detail["lower"] == -5.0
    assert rejected(v, [[1.1, 0.0, 0.0, 0.0]]).reason == "range"


def test_integer_and_categorical_constraints_of_the_input_spec():
    cons = FeatureConstraints(integer=(3,), categorical=((0, (0.0, 1.0)),))
    v = Validation()
    v.check(target(cons))
    v.transform_input(np.array([[1.0, 0.3, 0.3, 2.0]]))
    assert rejected(v, [[1.0, 0.3, 0.3, 2.5]]).reason == "constraint"
    assert rejected(v, [[0.5, 0.3, 0.3, 2.0]]).reason == "constraint"
    off = Validation(constraints=False)
    off.check(target(cons))
    off.transform_input(np.array([[0.5, 0.3, 0.3, 2.5]]))


def test_integer_dtype_and_a_defended_target_refuses_before_the_model():
    v = Validation(dtype="int16")
    t = target()
    defended = DefendedTarget(t, [v])
    assert rejected(v, [[0.0, 1.0, 2.0, 0.5]]).reason == "dtype"
    with pytest.raises(InputRejected):
        defended.predict(np.full((2, 4), 0.5))
    assert t.answered == 0 and defended.ledger.total == 0
    assert defended.predict(np.ones((2, 4))).shape == (2, 3)


@pytest.mark.parametrize("params, match", [
    ({"shape": [3], "bounds": "from_target"}, "bounds for 4 features and rows have 3"),
    ({"min": [0, 1]}, "2 values for 4 features"),
    ({"min": 2.0, "max": 1.0}, "above max"),
    ({"bounds": "from_data"}, "from_target"),
    ({"bounds": "from_target", "min": 0}, "not both"),
    ({"dtype": "complex64"}, "real number"),
    ({"dtype": "float99"}, "unknown dtype"),
    ({"max_batch": 0}, "max_batch"),
    ({"finite": "yes"}, "finite"),
])
def test_bad_settings_are_usage_errors_from_check(params, match):
    v = Validation(**params)  # the constructor takes anything, as a policy file gives it
    assert v.get_params()["min"] == params.get("min")
    with pytest.raises(UsageError, match=match):
        v.check(target())
