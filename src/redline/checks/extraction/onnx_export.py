"""Writing stolen or recovered models as ONNX files (onnx imported lazily)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_linear_softmax(path: str | Path, weights: np.ndarray, bias: np.ndarray, input_shape: tuple[int, ...]) -> Path:
    """A model computing softmax(flatten(x) @ W + b): inputs of ``input_shape`` per row,
    output ``probabilities`` of shape (n, k)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.asarray(weights, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    d, k = weights.shape
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "redline_stolen_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", *input_shape])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", k])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="redline")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path
