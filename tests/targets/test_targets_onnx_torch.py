"""The ONNX -> PyTorch converter against onnxruntime, one small graph per operator family."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from redline.targets.onnx_torch import UnsupportedGraph, convert

RNG = np.random.default_rng(0)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def graph(nodes, in_shape, out_shape, initializers=(), opset=17):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None if out_shape is None else ["n", *out_shape])],
        initializer=list(initializers),
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if out_shape is not None:  # the checker wants output shapes; onnxruntime does not
        onnx.checker.check_model(model)
    return model


def w(*shape):
    return RNG.normal(size=shape).astype(np.float32)


CASES = {
    "gemm": lambda: graph(
        [helper.make_node("Gemm", ["x", "W", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)],
        [4],
        [3],
        [const("W", w(3, 4)), const("C", w(3))],
    ),
    "gemm-transA": lambda: graph(
        [helper.make_node("Transpose", ["x"], ["t"]), helper.make_node("Gemm", ["t", "W"], ["y"], transA=1)],
        [4],
        [3],
        [const("W", w(4, 3))],
    ),
    "arithmetic": lambda: graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["a"]),
            helper.make_node("Add", ["a", "B"], ["b"]),
            helper.make_node("Sub", ["b", "B"], ["c"]),
            helper.make_node("Mul", ["c", "B"], ["d"]),
            helper.make_node("Div", ["d", "D"], ["y"]),
        ],
        [4],
        [3],
        [const("W", w(4, 3)), const("B", w(3)), const("D", np.full(3, 1.5, np.float32))],
    ),
    "activations": lambda: graph(
        [
            helper.make_node("LeakyRelu", ["x"], ["a"], alpha=0.2),
            helper.make_node("Sigmoid", ["a"], ["b"]),
            helper.make_node("Tanh", ["x"], ["c"]),
            helper.make_node("Relu", ["c"], ["d"]),
            helper.make_node("Concat", ["b", "d"], ["y"], axis=1),
        ],
        [4],
        [8],
    ),
    "clip-inputs": lambda: graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
        [5],
        [5],
        [const("lo", np.float32(-0.3)), const("hi", np.float32(0.4))],
        opset=13,
    ),
    "clip-attributes": lambda: graph([helper.make_node("Clip", ["x"], ["y"], min=-0.2, max=0.1)], [5], [5], opset=6),
    "softmax-opset11-coerced": lambda: graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        [2, 3],
        [2, 3],
        opset=11,
    ),
    "logsoftmax-last-axis": lambda: graph(
        [helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], [2, 3], [2, 3], opset=13
    ),
    "conv-asymmetric-pads": lambda: graph(
        [
            helper.make_node(
                "Conv", ["x", "W", "B"], ["y"], pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2], group=2
            )
        ],
        [2, 7, 7],
        None,
        [const("W", w(4, 1, 3, 3)), const("B", w(4))],
    ),
    "conv-same-upper": lambda: graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[3, 3])],
        [1, 7, 6],
        None,
        [const("W", w(2, 1, 3, 3))],
    ),
    "conv-1d": lambda: graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1])],
        [2, 9],
        None,
        [const("W", w(3, 2, 3))],
    ),
    "maxpool-pads-ceil": lambda: graph(
        [
            helper.make_node(
                "MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1
            )
        ],
        [2, 8, 8],
        None,
    ),
    "avgpool-exclude-pad": lambda: graph(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 2], pads=[1, 0, 1, 2])],
        [2, 6, 6],
        None,
    ),
    "avgpool-include-pad": lambda: graph(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
        [1, 5, 5],
        None,
    ),
    "global-pools": lambda: graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["a"]),
            helper.make_node("GlobalMaxPool", ["x"], ["b"]),
            helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
            helper.make_node("Flatten", ["c"], ["y"], axis=1),
        ],
        [3, 4, 4],
        None,
    ),
    "reshape-transpose": lambda: graph(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Reshape", ["t", "shape"], ["y"]),
        ],
        [3, 4],
        None,
        [const("shape", np.array([0, -1], np.int64))],
    ),
    "batchnorm-dropout-identity": lambda: graph(
        [
            helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["a"], epsilon=1e-3),
            helper.make_node("Dropout", ["a"], ["d"]),
            helper.make_node("Identity", ["d"], ["y"]),
        ],
        [3, 2, 2],
        None,
        [const("s", w(3)), const("b", w(3)), const("m", w(3)), const("v", np.abs(w(3)) + 0.5)],
    ),
    "constant-node": lambda: graph(
        [
            helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(w(4), "k")),
            helper.make_node("Mul", ["x", "k"], ["y"]),
        ],
        [4],
        [4],
    ),
    "unsqueeze-squeeze-attrs": lambda: graph(
        [
            helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1, -1]),
            helper.make_node("Squeeze", ["u"], ["y"], axes=[1]),
        ],
        [4],
        None,
        opset=11,
    ),
    "unsqueeze-squeeze-inputs": lambda: graph(
        [
            helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
            helper.make_node("Squeeze", ["u", "ax"], ["y"]),
        ],
        [4],
        None,
        [const("ax", np.array([1], np.int64))],
        opset=13,
    ),
    "pad-constant": lambda: graph(
        [helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode="constant")],
        [2, 3, 3],
        None,
        [const("pads", np.array([0, 0, 1, 2, 0, 1, 0, 1], np.int64)), const("value", np.float32(0.7))],
        opset=13,
    ),
    "pad-reflect": lambda: graph(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")],
        [1, 4, 4],
        None,
        [const("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))],
        opset=13,
    ),
    "shape-gather-slice": lambda: graph(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
            helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["sl"]),
            helper.make_node("Reshape", ["sl", "shape"], ["y"]),
        ],
        [3, 6],
        None,
        [
            const("zero", np.array(0, np.int64)),
            const("ax", np.array([0], np.int64)),
            const("minus1", np.array([-1], np.int64)),
            const("starts", np.array([-1, 1], np.int64)),
            const("ends", np.array([-(2**62), 6], np.int64)),
            const("axes", np.array([2, 1], np.int64)),
            const("steps", np.array([-2, 1], np.int64)),
        ],
        opset=13,
    ),
    "constant-of-shape": lambda: graph(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node(
                "ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.array([0.25], np.float32))
            ),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        [3],
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_graph_matches_onnxruntime(name):
    model = CASES[name]()
    x = RNG.uniform(-1, 1, size=(3, *[d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]))
    x = x.astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["y"], {"x": x})

    module = convert(model)
    xt = torch.from_numpy(x).requires_grad_()
    out = module(xt)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert xt.grad is not None and torch.isfinite(xt.grad).all()


def test_unsupported_operators_are_all_named():
    model = graph(
        [
            helper.make_node("Sin", ["x"], ["a"]),
            helper.make_node("Cos", ["a"], ["b"]),
            helper.make_node("Relu", ["b"], ["y"]),
        ],
        [3],
        [3],
    )
    with pytest.raises(UnsupportedGraph, match="Sin.*Cos"):
        convert(model)


def test_only_nodes_feeding_the_output_must_convert():
    model = graph([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sin", ["x"], ["unused"])], [3], [3])
    module = convert(model, "y")
    np.testing.assert_allclose(module(torch.tensor([[-1.0, 0.5, 2.0]])).numpy(), [[0.0, 0.5, 2.0]])


def test_used_secondary_outputs_are_refused():
    model = graph(
        [
            helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2]),
            helper.make_node("Cast", ["idx"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["p", "f"], ["y"]),
        ],
        [1, 4],
        None,
    )
    with pytest.raises(UnsupportedGraph, match="idx"):
        convert(model)


def test_training_mode_batchnorm_is_refused():
    model = graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)],
        [2],
        None,
        [const(n, np.ones(2, np.float32)) for n in "sbmv"],
        opset=15,
    )
    with pytest.raises(UnsupportedGraph, match="training mode"):
        convert(model)
