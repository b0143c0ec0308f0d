"""The adapter table is the one place that knows the adapters: a new one is an entry there
plus its own module (and this kind of test), and everything else picks it up."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from redline.errors import TargetError, UsageError
from redline.pipeline import runner
from redline.targets import adapters, formats, gate, load_target
from redline.targets.base import Capabilities, InputSpec, Target

HOOKS = ("torch_module", "parameter_arrays", "sklearn_estimator", "raw_transport", "wrapped")


# -- a new file format and a new service, as a contributor would write them -------------------------
# (In the project this part is the adapter's module; the entries below are its table lines.)


class ToyTarget(Target):
    """A linear model stored as JSON: ``{"redline-toy": 1, "weights": [[...]], "bias": [...]}``."""

    def __init__(self, weights, bias, spec):
        super().__init__()
        self.weights, self.bias = np.asarray(weights, float), np.asarray(bias, float)
        self.spec = spec
        self.input_spec = InputSpec(shape=(self.weights.shape[0],), dtype="float64")
        self.n_classes = self.weights.shape[1]
        self.capabilities = Capabilities(outputs="labels")

    def _predict(self, x):
        return (x.reshape(len(x), -1) @ self.weights + self.bias).argmax(1)

    def parameter_arrays(self):
        return [self.weights.reshape(-1), self.bias]


def is_toy(probe) -> bool:
    return probe.zip_names is None and probe.head.startswith(b'{"redline-toy"')


def open_toy_file(path: Path, request) -> ToyTarget:
    model = json.loads(Path(path).read_text())
    return ToyTarget(model["weights"], model["bias"], request.spec)


def open_toy_service(url: str, request) -> ToyTarget:
    return ToyTarget([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], request.spec)


TOY_FORMAT = adapters.FileFormat("toy", "toy JSON", f"{__name__}:is_toy", code_free=True, as_file=".toy")
TOY_FILE = adapters.Adapter(
    "toy", "file", f"{__name__}:open_toy_file", "a toy JSON model", form="toy:PATH", scheme="toy",
    file_format="toy", suffixes=(".toy",), target_class=f"{__name__}:ToyTarget", hooks=("parameter_arrays",),
)
TOY_SERVICE = adapters.Adapter(
    "toy-service", "url", f"{__name__}:open_toy_service", "a toy in-process service",
    form="a toy+mem:// address", prefixes=("toy+mem://",), target_class=f"{__name__}:ToyTarget",
    hooks=("parameter_arrays",),
)


@pytest.fixture
def with_toy(monkeypatch):
    """The table with the two new entries (the only edit outside the adapter's module)."""
    monkeypatch.setattr(adapters, "ADAPTERS", (*adapters.ADAPTERS[:4], TOY_FILE, *adapters.ADAPTERS[4:], TOY_SERVICE))
    monkeypatch.setattr(adapters, "FILE_FORMATS", (TOY_FORMAT, *adapters.FILE_FORMATS))


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"redline-toy": 1, "weights": [[1.0, -1.0], [0.0, 2.0]], "bias": [0.5, 0.0]}))
    return path


def test_a_new_file_format_is_loaded_by_scheme_and_by_content(with_toy, toy_file):
    named = load_target(f"toy:{toy_file}")
    assert isinstance(named, ToyTarget) and named.spec == f"toy:{toy_file}"
    assert named.predict(np.array([[1.0, 0.0], [0.0, 1.0]])).tolist() == [0, 1]
    guessed = load_target(str(toy_file))  # a bare path: told apart by content, not its .json name
    assert isinstance(guessed, ToyTarget) and guessed.spec == f"toy:{toy_file}"
    assert formats.detect_format(toy_file) == "toy"
    by_suffix = toy_file.with_suffix(".toy")
    by_suffix.write_text("not json at all")
    with pytest.raises(json.JSONDecodeError):  # the suffix picked the toy loader, which then failed
        load_target(str(by_suffix))


def test_a_new_file_format_reaches_the_gate_the_pipeline_and_the_messages(with_toy, toy_file, monkeypatch, tmp_path):
    monkeypatch.setattr(gate, "_scanner", lambda: None)
    gate.require_safe(toy_file)  # code-free: loads without the static scanner
    assert runner._is_model_file(f"toy:{toy_file}")
    assert adapters.model_file_path(f"toy:{toy_file}") == toy_file
    assert "toy:PATH" in adapters.target_help()
    with pytest.raises(UsageError, match=r"use zoo:NAME, onnx:PATH, sklearn:PATH, torch:PATH, toy:PATH, "):
        load_target("nosuch:model")
    unknown = tmp_path / "weights.bin"
    unknown.write_bytes(b"\0" * 32)
    with pytest.raises(TargetError, match=r"name it as onnx:PATH, sklearn:PATH, torch:PATH or toy:PATH$"):
        load_target(str(unknown))


def test_a_new_service_is_reached_by_its_prefix(with_toy):
    target = load_target("toy+mem://model-a")
    assert isinstance(target, ToyTarget) and target.spec == "toy+mem://model-a"
    assert not runner._is_model_file("toy+mem://model-a")
    assert adapters.names_service("toy+mem://model-a") and not adapters.names_service("toy:model.json")
    assert adapters.model_file_path("toy+mem://model-a") is None
    assert adapters.target_help().endswith(", or a toy+mem:// address.")


def test_without_the_entries_nothing_knows_the_toy_format(toy_file):
    with pytest.raises(UsageError, match="unknown target scheme 'toy'"):
        load_target(f"toy:{toy_file}")
    assert formats.detect_format(toy_file) == formats.UNKNOWN


# -- the real table ------------------------------------------------------------------------------


def test_every_reference_in_the_table_resolves():
    for adapter in adapters.ADAPTERS:
        assert callable(adapters.load(adapter.loader)), adapter.name
        if adapter.accepts:
            assert callable(adapters.load(adapter.accepts)), adapter.name
        assert (adapter.kind == "object") == (adapter.accepts is not None), adapter.name
        assert (adapter.kind == "url") == bool(adapter.prefixes), adapter.name
    for file_format in adapters.FILE_FORMATS:
        assert callable(adapters.load(file_format.detect)), file_format.name
    for adapter in adapters.of_kind("file"):
        assert adapters.file_format(adapter.file_format) is not None, adapter.name


@pytest.mark.parametrize("adapter", [a for a in adapters.ADAPTERS if a.target_class], ids=lambda a: a.name)
def test_the_table_lists_the_hooks_each_target_class_offers(adapter):
    cls = adapters.load(adapter.target_class)
    offered = {hook for hook in HOOKS if getattr(cls, hook) is not getattr(Target, hook)}
    assert offered == set(adapter.hooks)


def test_the_messages_read_as_before():
    assert adapters.target_help() == (
        "TARGET: zoo:NAME, onnx:PATH, sklearn:PATH (.skops), torch:PATH (TorchScript), or an http(s) URL."
    )
    assert adapters.either(adapters.forms("file")) == "onnx:PATH, sklearn:PATH or torch:PATH"
    assert [f.title for f in adapters.code_free_formats()] == ["ONNX", "skops", "safetensors"]
    assert [f.as_file for f in adapters.loadable_formats()] == [".onnx", ".skops", "TorchScript"]


def test_reading_the_table_loads_no_framework():
    code = "import sys, redline.targets.adapters as a; a.target_help(); print(sorted(m for m in ('numpy', 'torch', 'sklearn', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_object_adapters_are_tried_in_table_order(monkeypatch):
    class Both:  # a callable that also looks like an estimator: the estimator entry comes first
        n_features_in_ = 2
        classes_ = np.array([0, 1])

        def fit(self, x, y):
            return self

        def predict(self, x):
            return np.zeros(len(x), int)

        def __call__(self, x):
            raise AssertionError("called as a function")

    reordered = tuple(sorted(adapters.ADAPTERS, key=lambda a: a.name != "callable"))
    monkeypatch.setattr(adapters, "ADAPTERS", reordered)
    with pytest.raises(TargetError, match="the function fails on a sample input"):
        load_target(Both(), config=_config_with_shape(2))
    monkeypatch.undo()
    assert type(load_target(Both(), config=_config_with_shape(2))).__name__ == "SklearnTarget"


def _config_with_shape(n: int):
    from redline.targets.config import TargetConfig

    return dataclasses.replace(TargetConfig(), input_shape=(n,), n_classes=2)
