"""Capability hooks: what each adapter offers a check beyond its answers, and that checks ask
through the hooks instead of reaching into adapters."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from redline.checks.supply_chain.fm11_fuzz import InputFuzzing
from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.rounding import RoundedTarget
from redline.findings import Status
from redline.pipeline.deployment import as_deployed
from redline.targets import InputSpec, TargetConfig
from redline.targets.callable import CallableTarget
from redline.targets.http import HttpTarget
from redline.triage.context import DeploymentContext

SRC = Path(__file__).resolve().parents[2] / "src" / "redline"
HOOKS = ("torch_module", "parameter_arrays", "sklearn_estimator", "raw_transport", "wrapped")


def hooks(target) -> dict:
    return {name: getattr(target, name)() for name in HOOKS}


def test_torch_target_offers_its_module_and_parameters():
    import torch

    from redline.targets.torch import TorchTarget

    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    target = TorchTarget(net, input_spec=InputSpec(shape=(4,)), n_classes=3)
    offered = hooks(target)
    assert offered["torch_module"] is net
    assert [a.size for a in offered["parameter_arrays"]] == [12, 3]
    assert offered["parameter_arrays"][0].dtype == np.float32
    assert offered["sklearn_estimator"] is offered["raw_transport"] is offered["wrapped"] is None


def test_sklearn_targets_offer_the_estimator_but_not_their_gradient_mirror():
    from sklearn.linear_model import LogisticRegression, Ridge

    from redline.targets.regression import SklearnRegressorTarget
    from redline.targets.sklearn import SklearnTarget

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    model = LogisticRegression(max_iter=200).fit(x, y)
    target = SklearnTarget(model, input_spec=InputSpec(shape=(4,), dtype="float64"), n_classes=3)
    assert target.capabilities.gradients  # it has a torch mirror, which is not the model's own module
    offered = hooks(target)
    assert offered["sklearn_estimator"] is model and offered["torch_module"] is None
    assert sorted(a.size for a in offered["parameter_arrays"]) == [3, 12]
    regressor = Ridge().fit(x, x[:, 0])
    reg_target = SklearnRegressorTarget(regressor, input_spec=InputSpec(shape=(4,), dtype="float64"))
    assert reg_target.sklearn_estimator() is regressor
    assert sorted(a.size for a in reg_target.parameter_arrays()) == [4]


def test_onnx_target_offers_parameters_from_its_file_not_its_converted_graph(onnx_export):
    import torch

    from redline.targets.onnx import OnnxTarget

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    target = OnnxTarget(onnx_export(net, torch.zeros(2, 4)))
    assert target.capabilities.gradients  # through its converted graph, which has no layers to hook
    offered = hooks(target)
    assert offered["torch_module"] is None
    mine = np.concatenate(offered["parameter_arrays"])
    theirs = np.concatenate([p.detach().reshape(-1).numpy() for p in net.parameters()])
    np.testing.assert_array_equal(mine, theirs)


def test_callable_and_http_targets():
    fn = CallableTarget(lambda x: np.zeros(len(x), int), input_spec=InputSpec(shape=(2,)), n_classes=2,
                        outputs="labels")
    assert all(v is None for v in hooks(fn).values())
    http = HttpTarget("http://127.0.0.1:9/predict", input_spec=InputSpec(shape=(2,)), n_classes=2)
    offered = hooks(http)
    assert offered["raw_transport"] is http
    assert {k for k, v in offered.items() if v is not None} == {"raw_transport"}


@pytest.mark.parametrize("wrap", [LabelOnlyTarget, lambda t: RoundedTarget(t, 1)])
def test_output_hardening_wrappers_hide_every_hook_and_name_what_they_wrap(wrap):
    import torch

    from redline.targets.torch import TorchTarget

    inner = TorchTarget(torch.nn.Sequential(torch.nn.Linear(4, 3)), input_spec=InputSpec(shape=(4,)), n_classes=3)
    wrapper = wrap(inner)
    offered = hooks(wrapper)
    assert offered.pop("wrapped") is inner
    assert all(v is None for v in offered.values())  # no way past the hardening to the model


def test_deployment_context_wrapper_hides_the_endpoint_from_fuzzing():
    http = HttpTarget("http://127.0.0.1:9/predict", input_spec=InputSpec(shape=(2,)), n_classes=2,
                      config=TargetConfig(outputs="probabilities"))
    deployed = as_deployed(http, DeploymentContext.from_dict({"outputs": "labels"}))
    assert deployed.raw_transport() is None and deployed.wrapped() is http
    # FM11 refuses to fuzz an endpoint through a wrapper (every failure would look clean),
    # before it sends anything: port 9 has no server.
    finding = InputFuzzing()(deployed, None)
    assert finding.status is Status.NOT_APPLICABLE
    assert "wraps an HTTP endpoint" in finding.reason


# -- no reach-ins ----------------------------------------------------------------------------------

_REACH_INS = [
    # a private attribute of a target-like object: target._torch_module, model._source ...
    re.compile(r"\b(?:target|surrogate|victim|model|inner|oracle|wrapped)\._[A-Za-z]\w*"),
    # duck typing for what a hook offers: getattr(target, "module"), getattr(x, "_torch_module")
    re.compile(r"getattr\(\s*(?!self\b|cls\b)\w+\s*,\s*[\"'](?:_(?!_)\w+|module|estimator|inner|source|session)[\"']"),
    re.compile(r"\b(?:target|surrogate|victim|inner)\.(?:module|estimator|inner|source|session)\b"),
    # asking which adapter a target is instead of what it offers
    re.compile(r"isinstance\([^)]*\b(?:Http|Onnx|Torch|Sklearn|SklearnRegressor|Callable|LabelOnly|Rounded)Target\b"),
]


def reach_ins(text: str) -> list[str]:
    return [m.group(0) for pattern in _REACH_INS for m in pattern.finditer(text)]


def test_the_reach_in_scanner_catches_what_it_should():
    assert reach_ins('module = getattr(target, "_torch_module", None)')
    assert reach_ins("source = target._source")
    assert reach_ins('est = getattr(target, "estimator", None)')
    assert reach_ins("if isinstance(target, HttpTarget):")
    assert reach_ins("modules = dict(target.module.named_modules())")
    assert not reach_ins("module = target.torch_module()\nself._cache = {}\nest = target.sklearn_estimator()")


def test_checks_and_util_reach_into_no_target():
    found = {}
    for folder in ("checks", "util"):
        for path in sorted((SRC / folder).rglob("*.py")):
            hits = reach_ins(path.read_text(encoding="utf-8"))
            if hits:
                found[str(path.relative_to(SRC))] = hits
    assert not found, f"use the Target capability hooks instead: {found}"
