from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from redline.errors import BudgetExceeded, TargetError, UnsafeModelError
from redline.targets import InputSpec, onnx_torch
from redline.targets.onnx import OnnxTarget, load_onnx


def mlp(out: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 12), torch.nn.Tanh(), torch.nn.Linear(12, out)).eval()


def cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
    )
    bn = model[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def torch_probabilities(module, x):
    with torch.no_grad():
        return torch.softmax(module(torch.tensor(x, dtype=torch.float32)), dim=1).numpy()


def helper_model(nodes, out_type=TensorProto.FLOAT, out_shape=("n", 3), initializers=(), in_shape=("n", 3)):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", out_type, list(out_shape))],
        initializer=list(initializers),
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("opset", [11, 17])
def test_cnn_export_is_white_box_and_matches_torch(onnx_export, opset):
    module = cnn()
    target = OnnxTarget(onnx_export(module, torch.zeros(1, 1, 8, 8), opset=opset))
    assert target.input_spec.shape == (1, 8, 8) and target.input_spec.dtype == "float32"
    assert target.n_classes == 5
    assert target.capabilities.gradients, target.whitebox_reason

    x = np.random.default_rng(0).uniform(size=(7, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(target.predict(x), torch_probabilities(module, x), atol=1e-5)
    xt = torch.from_numpy(x).requires_grad_()
    logits = target.logits(xt)
    with torch.no_grad():
        np.testing.assert_allclose(logits.detach().numpy(), module(torch.from_numpy(x)).numpy(), atol=1e-4)
    logits[:, 2].sum().backward()
    assert float(xt.grad.abs().sum()) > 0
    assert target.ledger.total == 14


def test_softmax_output_is_read_as_probabilities_and_logits_come_from_before_it(onnx_export):
    module = torch.nn.Sequential(mlp(), torch.nn.Softmax(dim=1)).eval()
    target = OnnxTarget(onnx_export(module, torch.zeros(1, 4)))
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    expected = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(target.predict(x), expected, atol=1e-6)  # not softmaxed twice
    assert target.capabilities.gradients
    log_p = target.logits(torch.from_numpy(x))
    np.testing.assert_allclose(torch.exp(log_p).detach().numpy(), expected, atol=1e-6)


def test_probabilities_behind_another_node_are_detected_from_values():
    # Softmax then Identity: the graph does not end in Softmax, the values still sum to one.
    weights = numpy_helper.from_array(np.random.default_rng(2).normal(size=(3, 3)).astype(np.float32), "W")
    raw = helper_model(
        [
            helper.make_node("MatMul", ["x", "W"], ["z"]),
            helper.make_node("Softmax", ["z"], ["p"], axis=-1),
            helper.make_node("Identity", ["p"], ["y"]),
        ],
        initializers=[weights],
    )
    target = OnnxTarget(raw)
    x = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    z = x @ numpy_helper.to_array(weights)
    expected = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(target.predict(x), expected, atol=1e-6)
    log_p = target.logits(torch.from_numpy(x))
    np.testing.assert_allclose(torch.exp(log_p).detach().numpy(), expected, atol=1e-6)


def test_single_score_output_is_a_binary_classifier(onnx_export):
    module = mlp(out=1)
    target = OnnxTarget(onnx_export(module, torch.zeros(1, 4)))
    assert target.n_classes == 2
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    with torch.no_grad():
        p1 = torch.sigmoid(module(torch.from_numpy(x)))[:, 0].numpy()
    np.testing.assert_allclose(target.predict(x), np.stack([1 - p1, p1], 1), atol=1e-6)
    log_p = target.logits(torch.from_numpy(x))
    np.testing.assert_allclose(torch.softmax(log_p, 1)[:, 1].detach().numpy(), p1, atol=1e-6)


def test_fixed_batch_graph_runs_row_by_row(onnx_export):
    module = mlp()
    target = OnnxTarget(onnx_export(module, torch.zeros(1, 4), dynamic=False))
    x = np.random.default_rng(5).normal(size=(9, 4)).astype(np.float32)
    np.testing.assert_allclose(target.predict(x), torch_probabilities(module, x), atol=1e-6)
    assert target.logits(torch.from_numpy(x)).shape == (9, 3)
    assert target.ledger.total == 18


def test_skl2onnx_zipmap_graph_is_black_box_with_probabilities(tabular):
    from skl2onnx import to_onnx

    x, y = tabular
    lr = LogisticRegression(max_iter=500).fit(x, y)
    target = OnnxTarget(to_onnx(lr, x[:1].astype(np.float32)).SerializeToString())
    assert not target.capabilities.gradients and "ZipMap" in target.whitebox_reason
    assert target.n_classes == 3 and target.capabilities.outputs == "probabilities"
    np.testing.assert_allclose(target.predict(x[:20]), lr.predict_proba(x[:20]), atol=1e-5)


def test_skl2onnx_probability_tensor_is_preferred_over_labels(tabular):
    from skl2onnx import to_onnx

    x, y = tabular
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    raw = to_onnx(tree, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()
    target = OnnxTarget(raw)
    assert "ai.onnx.ml" in target.whitebox_reason and not target.capabilities.gradients
    np.testing.assert_allclose(target.predict(x[:30]), tree.predict_proba(x[:30]), atol=1e-6)


def test_label_only_graph_needs_to_be_told_the_class_count():
    raw = helper_model([helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], TensorProto.INT64, ["n"])
    with pytest.raises(TargetError, match="labels only; give n_classes"):
        OnnxTarget(raw)
    target = OnnxTarget(raw, n_classes_hint=3)
    assert target.capabilities.outputs == "labels" and not target.capabilities.gradients
    x = np.array([[0, 5, 1], [9, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(target.predict(x), [1, 0])


def test_unsupported_operator_leaves_the_target_black_box():
    raw = helper_model([helper.make_node("Sin", ["x"], ["y"])])
    target = OnnxTarget(raw)
    assert not target.capabilities.gradients and "Sin" in target.whitebox_reason
    assert target.predict(np.zeros((2, 3))).shape == (2, 3)


def test_gradients_are_only_claimed_when_torch_agrees_with_onnxruntime(onnx_export, monkeypatch):
    # A converter bug (here: Tanh computed as a sigmoid) must be caught at load time.
    monkeypatch.setitem(onnx_torch._FACTORIES, "Tanh", onnx_torch._elementwise(torch.sigmoid))
    target = OnnxTarget(onnx_export(mlp(), torch.zeros(1, 4)))
    assert not target.capabilities.gradients
    assert "disagrees with onnxruntime" in target.whitebox_reason


def test_dynamic_row_shape_needs_an_input_spec():
    raw = helper_model([helper.make_node("Relu", ["x"], ["y"])], in_shape=("n", "d"), out_shape=("n", "d"))
    with pytest.raises(TargetError, match="dynamic axes"):
        OnnxTarget(raw)
    target = OnnxTarget(raw, input_spec=InputSpec(shape=(4,), dtype="float64", lower=-1, upper=1))
    assert target.input_spec.dtype == "float32"  # the graph decides the dtype
    assert target.n_classes == 4


def test_input_spec_must_match_a_static_graph(onnx_export):
    with pytest.raises(TargetError, match=r"rows shaped \(4,\)"):
        OnnxTarget(onnx_export(mlp(), torch.zeros(1, 4)), input_spec=InputSpec(shape=(5,)))


def test_n_classes_must_match_the_graph(onnx_export):
    with pytest.raises(TargetError, match="answers 3 classes, but n_classes is 4"):
        OnnxTarget(onnx_export(mlp(), torch.zeros(1, 4)), n_classes=4)


def test_budget_holds_for_predict_and_logits(onnx_export):
    target = OnnxTarget(onnx_export(mlp(), torch.zeros(1, 4)))
    target.ledger.budget = 5
    target.predict(np.zeros((5, 4)))
    with pytest.raises(BudgetExceeded):
        target.predict(np.zeros((1, 4)))
    with pytest.raises(BudgetExceeded):
        target.logits(torch.zeros(1, 4))
    assert target.ledger.attack == 5


def test_load_onnx_from_a_file_passes_the_gate(tmp_path, onnx_export):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_export(mlp(), torch.zeros(1, 4)))
    target = load_onnx(path)
    assert target.spec == f"onnx:{path}" and target.capabilities.gradients


def test_load_onnx_refuses_external_data_outside_its_folder(tmp_path):
    tensor = numpy_helper.from_array(np.ones((3, 3), np.float32), "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../etc/secret.bin")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[tensor],
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(UnsafeModelError, match="outside its folder"):
        load_onnx(path)


def test_garbage_bytes_are_a_clear_error():
    with pytest.raises(TargetError, match="onnxruntime cannot load"):
        OnnxTarget(b"definitely not a protobuf")
