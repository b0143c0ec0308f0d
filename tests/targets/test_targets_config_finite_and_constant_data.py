"""Numbers in a target config must be finite (a timeout of .nan had failed every request,
exit 3, instead of a usage error), and data whose every column is constant gets a unit range
as a local model does, not an error blaming a target config nobody gave."""
from __future__ import annotations

import numpy as np
import pytest

from redline.cli import main
from redline.data import as_dataset
from redline.errors import UsageError
from redline.targets import load_target
from redline.targets.config import TargetConfig, load_target_config


@pytest.mark.parametrize("text, key", [
    ("timeout: .nan\n", "timeout"),
    ("timeout: .inf\n", "timeout"),
    ("backoff: .nan\n", "backoff"),
    ("rate_limit: .inf\n", "rate_limit"),
    ("timeout: 1" + "0" * 400 + "\n", "timeout"),  # an integer no float holds
    ("input: {lower: .nan}\n", "input.lower"),
    ("input: {upper: -.inf}\n", "input.upper"),
])
def test_a_number_that_is_not_finite_is_a_usage_error_naming_the_key(tmp_path, text, key):
    path = tmp_path / "target.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=rf"{key}: must be a finite number, got (nan|-?inf)$"):
        load_target_config(path)


def test_finite_numbers_still_read():
    config = TargetConfig.from_mapping({"timeout": 2.5, "backoff": 0, "rate_limit": 20, "input": {"lower": -1}})
    assert (config.timeout, config.backoff, config.rate_limit, config.lower) == (2.5, 0.0, 20.0, -1.0)


def test_cli_a_nan_timeout_is_exit_2_before_any_query(tmp_path, capsys):
    path = tmp_path / "nan.yaml"
    path.write_text("timeout: .nan\n")
    code = main(["scan", "http://127.0.0.1:9/predict", "--data", "builtin:breast_cancer", "--select",
                 "FM17.test_adequacy", "--target-config", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "timeout: must be a finite number, got nan" in err and len(err.strip().splitlines()) == 1


def test_constant_data_without_a_target_config_gets_a_unit_range_not_a_config_error():
    data = as_dataset(dict(x_train=np.ones((6, 3)), y_train=np.array([0, 1] * 3),
                           x_test=np.ones((4, 3)), y_test=np.array([0, 1] * 2)))
    target = load_target("http://127.0.0.1:9/predict", data=data)  # builds the target, sends nothing
    spec = target.input_spec
    assert (spec.lower, spec.upper) == (1.0, 2.0) and spec.feature_lower == (1.0,) * 3
    assert spec.feature_upper == (2.0,) * 3
