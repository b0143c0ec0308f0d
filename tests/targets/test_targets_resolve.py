"""load_target: one entry point for names, files, URLs and in-memory models."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from redline.data.base import Dataset
from redline.defences.labels_only import LabelOnlyTarget
from redline.errors import TargetError, UnsafeModelError, UsageError
from redline.targets import (
    InputSpec,
    TargetConfig,
    load_target,
)
from redline.targets.callable import CallableTarget
from redline.targets.http import HttpTarget
from redline.targets.onnx import OnnxTarget
from redline.targets.sklearn import SklearnTarget
from redline.targets.torch import TorchTarget


@pytest.fixture
def data(tabular):
    x, y = tabular
    return Dataset("blobs", x[:160], y[:160], x[160:], y[160:], feature_names=[f"f{i}" for i in range(6)])


@pytest.fixture
def fitted(data):
    return LogisticRegression(max_iter=500).fit(data.x_train, data.y_train)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


# -- in-memory objects ---------------------------------------------------------------------------


def test_existing_target_is_returned_as_is(fitted, data):
    target = SklearnTarget(fitted, input_spec=InputSpec(shape=(6,)))
    assert load_target(target) is target


def test_sklearn_estimator_uses_data_for_bounds(fitted, data):
    target = load_target(fitted, data=data)
    assert isinstance(target, SklearnTarget) and target.spec == "python:LogisticRegression"
    assert target.input_spec.shape == (6,)
    assert (target.input_spec.lower, target.input_spec.upper) == data.bounds
    assert target.capabilities.gradients and target.capabilities.trainable
    np.testing.assert_allclose(target.predict(data.x_test[:3]), fitted.predict_proba(data.x_test[:3]))


def test_sklearn_estimator_without_data_uses_its_feature_count(fitted):
    target = load_target(fitted)
    assert target.input_spec.shape == (6,) and target.n_classes == 3


def test_sklearn_estimator_fitted_on_fewer_classes_than_the_data(data):
    keep = data.y_train < 2
    lr = LogisticRegression(max_iter=500).fit(data.x_train[keep], data.y_train[keep])
    target = load_target(lr, data=data)
    assert target.n_classes == 3 and target.predict(data.x_test[:2]).shape == (2, 3)


def test_torch_module_needs_a_shape_and_infers_classes(data):
    with pytest.raises(UsageError, match="does not state its input shape"):
        load_target(mlp())
    target = load_target(mlp(), data=data)
    assert isinstance(target, TorchTarget) and target.n_classes == 3
    assert target.input_spec.dtype == "float64"  # the data's dtype; the adapter casts to float32
    assert target.predict(data.x_test[:4]).shape == (4, 3)


def test_callable_probabilities_and_labels(data):
    def proba(x):
        z = x[:, :3]
        return np.exp(z) / np.exp(z).sum(1, keepdims=True)

    target = load_target(proba, data=data)
    assert isinstance(target, CallableTarget) and target.capabilities.outputs == "probabilities"
    assert target.n_classes == 3

    labels = load_target(lambda x: (x[:, 0] > 0).astype(int), data=data)
    assert labels.capabilities.outputs == "labels" and labels.n_classes == 3  # from the data
    np.testing.assert_array_equal(labels.predict(data.x_test[:5]), (data.x_test[:5, 0] > 0).astype(int))


def test_callable_answering_labels_needs_a_class_count():
    cfg = TargetConfig(input_shape=(2,))
    with pytest.raises(UsageError, match="answers labels; give data or n_classes"):
        load_target(lambda x: np.zeros(len(x), int), config=cfg)
    assert (
        load_target(lambda x: np.zeros(len(x), int), config=TargetConfig(input_shape=(2,), n_classes=4)).n_classes == 4
    )


def test_callable_output_is_validated():
    target = CallableTarget(lambda x: np.full((len(x), 3), 0.5), input_spec=InputSpec(shape=(2,)), n_classes=2)
    with pytest.raises(TargetError, match="2 probabilities per row, got 3"):
        target.predict(np.zeros((1, 2)))


def test_unknown_objects_are_refused():
    with pytest.raises(UsageError, match="cannot make a target from a int"):
        load_target(42)


# -- names and files -----------------------------------------------------------------------------


def test_onnx_file_by_scheme_and_by_content(tmp_path, onnx_export, data):
    path = tmp_path / "model.bin"
    path.write_bytes(onnx_export(mlp().float(), torch.zeros(1, 6)))
    by_scheme = load_target(f"onnx:{path}", data=data)
    by_content = load_target(str(path), data=data)
    for target in (by_scheme, by_content):
        assert isinstance(target, OnnxTarget) and target.capabilities.gradients
        assert target.input_spec.upper == data.bounds[1]  # bounds from the data, dtype from the graph
        assert target.input_spec.dtype == "float32"
    assert by_scheme.spec == f"onnx:{path}" and by_content.spec == f"onnx:{path}"


def test_skops_file(tmp_path, fitted, data):
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    target = load_target(f"sklearn:{path}", data=data)
    assert isinstance(target, SklearnTarget) and target.input_spec.lower == data.bounds[0]
    assert isinstance(load_target(path), SklearnTarget)  # a Path object, kind from the content


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file_goes_through_the_gate(tmp_path, data, fake_scanner):
    path = tmp_path / "model.pt"
    torch.jit.trace(mlp().eval(), torch.zeros(1, 6)).save(str(path))
    with pytest.raises(UsageError, match="does not state its input shape"):
        load_target(f"torch:{path}")
    scanned = fake_scanner("safe")
    target = load_target(f"torch:{path}", data=data)
    assert isinstance(target, TorchTarget) and target.n_classes == 3 and scanned == [path]


def test_pickle_paths_are_refused(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(UnsafeModelError, match="scanner"):
        load_target(str(path))


def test_pickle_cleared_by_the_scanner_is_still_not_loaded(tmp_path, fake_scanner):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    fake_scanner("safe")
    with pytest.raises(TargetError, match="pickled Python objects"):
        load_target(str(path))


def test_missing_file_unknown_scheme_and_unknown_kind(tmp_path):
    with pytest.raises(TargetError, match="no such model file"):
        load_target(f"onnx:{tmp_path / 'absent.onnx'}")
    with pytest.raises(TargetError, match="no such model file"):
        load_target(str(tmp_path / "absent.onnx"))
    with pytest.raises(UsageError, match="unknown target scheme 'ftp'"):
        load_target("ftp://example.invalid/model")
    with pytest.raises(UsageError, match="unknown target scheme 'pickle'"):
        load_target("pickle:model.pkl")
    odd = tmp_path / "model.dat"
    odd.write_text("hello")
    with pytest.raises(TargetError, match="cannot tell what kind of model"):
        load_target(str(odd))
    with pytest.raises(TargetError, match="not a file"):
        load_target(str(tmp_path))


def test_zoo_names_are_delegated(monkeypatch, fitted):
    from redline.zoo import build

    monkeypatch.setattr(build, "load_target",
                        lambda name: SklearnTarget(fitted, input_spec=InputSpec(shape=(6,)), spec=f"zoo:{name}"))
    assert load_target("zoo:tiny").spec == "zoo:tiny"


def test_urls_become_http_targets_lazily(data):
    target = load_target("http://127.0.0.1:9/predict", data=data)  # nothing is contacted yet
    assert isinstance(target, HttpTarget) and target.capabilities.remote
    assert target.input_spec.shape == (6,) and target.n_classes == 3
    with pytest.raises(UsageError, match="input shape is unknown"):
        load_target("https://127.0.0.1:9/predict")


# -- the config, applied after loading ----------------------------------------------------------


def test_config_outputs_labels_wraps_local_models(fitted, data):
    target = load_target(fitted, data=data, config=TargetConfig(outputs="labels"))
    assert isinstance(target, LabelOnlyTarget) and target.capabilities.outputs == "labels"
    assert not target.capabilities.gradients
    np.testing.assert_array_equal(target.predict(data.x_test[:6]), fitted.predict(data.x_test[:6]))


def test_config_bounds_and_named_constraints(fitted, data, tmp_path):
    cfg = tmp_path / "target.yaml"
    cfg.write_text("input: {lower: -10, upper: 10}\nconstraints: {immutable: [f0], integer: [f5]}\n")
    target = load_target(fitted, data=data, config=cfg)
    spec = target.input_spec
    assert (spec.lower, spec.upper) == (-10.0, 10.0)
    assert spec.constraints.immutable == (0,) and spec.constraints.integer == (5,)


def test_config_shape_must_agree_with_the_model(fitted):
    with pytest.raises(UsageError, match="does not match the model"):
        load_target(SklearnTarget(fitted, input_spec=InputSpec(shape=(6,))), config=TargetConfig(input_shape=(7,)))


def test_config_train_function_from_a_file(tmp_path, data, onnx_export):
    (tmp_path / "recipe.py").write_text(
        textwrap.dedent(
            """
            from sklearn.linear_model import LogisticRegression

            def train(x, y, seed=0):
                return LogisticRegression(max_iter=300, random_state=seed).fit(x, y)
            """
        )
    )
    cfg_path = tmp_path / "target.yaml"
    cfg_path.write_text("train: recipe.py:train\n")
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_export(mlp().float(), torch.zeros(1, 6)))
    target = load_target(f"onnx:{model}", data=data, config=cfg_path)
    assert target.capabilities.trainable and target.capabilities.gradients
    shadow = target.retrain(data.x_train, data.y_train, seed=1)
    assert isinstance(shadow, SklearnTarget) and shadow.estimator.random_state == 1
    assert shadow.input_spec == target.input_spec and shadow.capabilities.trainable


def test_config_train_file_may_define_dataclasses_and_a_failing_one_is_not_kept(tmp_path, data, fitted):
    # A recipe file with a dataclass (settings, a model wrapper) imports as a module would:
    # with postponed annotations, dataclasses look the module up in sys.modules.
    import sys

    (tmp_path / "dc_recipe.py").write_text(textwrap.dedent(
        """
        from __future__ import annotations

        import dataclasses
        from sklearn.linear_model import LogisticRegression

        @dataclasses.dataclass
        class Settings:
            max_iter: int = 300

        def train(x, y, seed=0):
            return LogisticRegression(max_iter=Settings().max_iter, random_state=seed).fit(x, y)
        """))
    target = load_target(fitted, data=data, config=TargetConfig(train="dc_recipe.py:train", base_dir=tmp_path))
    assert target.retrain(data.x_train, data.y_train, seed=2).estimator.random_state == 2
    (tmp_path / "broken_recipe.py").write_text("raise RuntimeError('no')\n")
    with pytest.raises(UsageError, match="RuntimeError: no"):
        load_target(fitted, config=TargetConfig(train="broken_recipe.py:train", base_dir=tmp_path))
    assert "redline_user_train_broken_recipe" not in sys.modules


def test_config_train_function_errors(tmp_path, fitted):
    bad_module = TargetConfig(train="redline_no_such_module:train")
    with pytest.raises(UsageError, match="cannot import 'redline_no_such_module'"):
        load_target(fitted, config=bad_module)
    with pytest.raises(UsageError, match="has no function 'nope'"):
        load_target(fitted, config=TargetConfig(train="json:nope"))
    with pytest.raises(UsageError, match="does not exist"):
        load_target(fitted, config=TargetConfig(train="missing.py:train", base_dir=tmp_path))


def test_train_function_without_seed_and_labels_config(data, fitted):
    module = types.ModuleType("redline_test_recipes")
    module.train = lambda x, y: LogisticRegression(max_iter=300).fit(x, y)
    sys.modules["redline_test_recipes"] = module
    try:
        target = load_target(
            fitted, data=data, config=TargetConfig(train="redline_test_recipes:train", outputs="labels")
        )
    finally:
        del sys.modules["redline_test_recipes"]
    shadow = target.retrain(data.x_train, data.y_train, 0)
    assert isinstance(shadow, LabelOnlyTarget) and shadow.capabilities.outputs == "labels"


def test_importing_targets_stays_light():
    code = (
        "import sys, redline.targets, redline.targets.resolve, redline.targets.config, redline.targets.gate;"
        "heavy = [m for m in ('torch', 'sklearn', 'onnxruntime', 'onnx', 'scipy', 'matplotlib') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
