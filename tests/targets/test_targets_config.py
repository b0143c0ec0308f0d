from __future__ import annotations

import pytest

from redline.errors import UsageError
from redline.targets import (
    FeatureConstraints,
    InputSpec,
    TargetConfig,
    load_target_config,
)

FULL = """
headers: {X-Api-Key: "${REDLINE_CFG_KEY}", X-Static: plain}
auth: {basic: {username: ann, password: "${REDLINE_CFG_PW}"}}
timeout: 5
retries: 0
backoff: 0.1
rate_limit: 2.5
max_batch: 16
request: {inputs_key: payload.rows, fields: {model: v2}}
response: {probabilities_key: result.scores, labels_key: result.label}
outputs: labels
input: {shape: [3], dtype: float64, lower: -1, upper: 2}
n_classes: 2
feature_names: [age, income, children]
constraints:
  immutable: [age]
  integer: [children]
  categorical: {children: [0, 1, 2, 3]}
  ranges: {income: [0, 1000]}
train: mymodule:train
"""


def write(tmp_path, text):
    path = tmp_path / "target.yaml"
    path.write_text(text)
    return path


def test_full_config_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("REDLINE_CFG_KEY", "key-1")
    monkeypatch.setenv("REDLINE_CFG_PW", "pw-2")
    cfg = load_target_config(write(tmp_path, FULL))
    assert cfg.headers == {"X-Api-Key": "key-1", "X-Static": "plain"}
    assert cfg.request_headers()["Authorization"] == "Basic YW5uOnB3LTI="  # ann:pw-2
    assert (cfg.timeout, cfg.retries, cfg.backoff, cfg.rate_limit, cfg.max_batch) == (5.0, 0, 0.1, 2.5, 16)
    assert (cfg.inputs_key, dict(cfg.request_fields)) == ("payload.rows", {"model": "v2"})
    assert (cfg.probabilities_key, cfg.labels_key) == ("result.scores", "result.label")
    assert cfg.outputs == "labels" and cfg.n_classes == 2 and cfg.train == "mymodule:train"
    assert cfg.base_dir == tmp_path.resolve()
    spec = cfg.apply_input(None)
    assert spec.shape == (3,) and spec.dtype == "float64" and (spec.lower, spec.upper) == (-1.0, 2.0)
    assert spec.constraints == FeatureConstraints(
        immutable=(0,), integer=(2,), categorical=((2, (0.0, 1.0, 2.0, 3.0)),), ranges=((1, 0.0, 1000.0),)
    )
    assert "pw-2" not in repr(cfg) and "key-1" not in repr(cfg)  # secrets stay out of logs


def test_empty_file_gives_defaults(tmp_path):
    cfg = load_target_config(write(tmp_path, ""))
    assert cfg.retries == 3 and cfg.inputs_key == "inputs" and cfg.outputs is None
    assert cfg.request_headers() == {}


def test_bearer_auth():
    cfg = TargetConfig.from_mapping({"auth": {"bearer": "abc"}})
    assert cfg.request_headers() == {"Authorization": "Bearer abc"}


def test_apply_input_keeps_what_the_config_does_not_say():
    base = InputSpec(shape=(4,), dtype="float32", lower=0.0, upper=1.0)
    spec = TargetConfig.from_mapping({"input": {"upper": 255}}).apply_input(base)
    assert spec == InputSpec(shape=(4,), dtype="float32", lower=0.0, upper=255.0)


@pytest.mark.parametrize(
    "text, key",
    [
        ("colour: red", "colour: unknown key"),
        ("timeout: fast", "timeout: must be a number"),
        ("timeout: 0", "timeout: must be above 0"),
        ("retries: 1.5", "retries: must be an integer"),
        ("retries: true", "retries: must be an integer"),
        ("max_batch: 0", "max_batch: must be at least 1"),
        ("headers: [a, b]", "headers: must be a mapping"),
        ("headers: {A: [1]}", "headers.A: must be a string"),
        ("auth: {token: x}", "auth: must be {bearer"),
        ("auth: {basic: {username: u}}", "auth.basic: needs both"),
        ("request: {inputs: x}", "request.inputs: unknown key"),
        ("response: {probabilities_key: 'a..b'}", "response.probabilities_key: must be a key"),
        ("outputs: logits", "outputs: must be 'probabilities' or 'labels'"),
        ("input: {shape: [0]}", "input.shape: must be a non-empty list"),
        ("input: {dtype: int8}", "input.dtype: must be float32 or float64"),
        ("input: {lower: 2, upper: 1}", "input: lower"),
        ("n_classes: 1", "n_classes: must be at least 2"),
        ("feature_names: a", "feature_names: must be a list"),
        ("constraints: {frozen: [1]}", "constraints.frozen: unknown key"),
        ("constraints: {ranges: {0: [3, 1]}}", "constraints.ranges.0: must be"),
        ("constraints: {categorical: {1: []}}", "constraints.categorical.1: must be"),
        ("feature_names: [a]\nconstraints: {immutable: [b]}", "constraints:.*unknown feature 'b'"),
        ("train: not-a-reference", "train: must name a function"),
        ("headers: {A: '${REDLINE_SURELY_UNSET_VAR}'}", r"headers.A: refers to \$\{REDLINE_SURELY_UNSET_VAR\}"),
        ("- a list", "must be a mapping"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, key):
    with pytest.raises(UsageError, match=key) as err:
        load_target_config(write(tmp_path, text))
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_target_config(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match=r"not valid YAML \(line \d"):
        load_target_config(write(tmp_path, "a: 1\nb: [unclosed\n"))


def test_response_limit_and_redirect_policy(tmp_path):
    from redline.targets.config import DEFAULT_MAX_RESPONSE_BYTES

    assert TargetConfig().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024
    assert TargetConfig().redirects == "same_origin"
    parsed = TargetConfig.from_mapping({"max_response_bytes": 1000, "redirects": "cross_origin"})
    assert (parsed.max_response_bytes, parsed.redirects) == (1000, "cross_origin")
    with pytest.raises(UsageError, match="redirects: must be one of none, same_origin, cross_origin"):
        TargetConfig.from_mapping({"redirects": "anywhere"})
    with pytest.raises(UsageError, match="max_response_bytes: must be at least 1"):
        TargetConfig.from_mapping({"max_response_bytes": 0})
