"""Reading the float parameters out of a model, for :meth:`Target.parameter_arrays`.

PyTorch modules give ``parameters()`` in module order; scikit-learn estimators their
fitted float attributes; ONNX graphs their initializers (plus float tensors and float
lists stored as node attributes, where ``ai.onnx.ml`` operators keep their coefficients). Each array
keeps its own dtype, since casting float32 to float64 would hide the low bits a payload
may hide in.

ONNX initializers are taken in the order the graph's nodes first use them, which for an
exported network is layer order. A dense layer's weight is returned as (outputs, inputs),
PyTorch's layout: ``Gemm`` with ``transB=1`` stores it that way already, while ``MatMul``
and ``Gemm`` with ``transB=0`` store the transpose, which is turned back. A payload laid
out by training code in that layout then reads the same from the ``.onnx`` file as from
the module. Subgraphs (``If``, ``Loop``) are not read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError


def torch_parameter_arrays(module: Any) -> list[np.ndarray]:
    """Float parameters of a torch module (or TorchScript module), flattened, in module order."""
    return [p.detach().cpu().reshape(-1).numpy() for p in module.parameters() if p.is_floating_point()]


def sklearn_parameter_arrays(estimator: Any) -> list[np.ndarray]:
    """Fitted float arrays of a scikit-learn estimator (the last step of a Pipeline)."""
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    arrays = []
    # Fitted scikit-learn attributes end in "_"; the learned weights are their float arrays.
    for name in sorted(vars(estimator)):
        value = getattr(estimator, name)
        if not name.endswith("_") or name.startswith("_"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, np.ndarray) and item.dtype.kind == "f":
                arrays.append(item.reshape(-1))
    return arrays


def onnx_parameter_arrays(source: str | Path | bytes, spec: str = "onnx") -> list[np.ndarray]:
    """Float initializers and float node attributes of an ONNX model, flattened, in first-use order."""
    import onnx
    from onnx import numpy_helper

    try:
        if isinstance(source, bytes):
            model = onnx.load_from_string(source)
            base_dir = ""
        else:
            model = onnx.load(str(source))  # resolves external data next to the file
            base_dir = str(Path(source).parent)
    except Exception as exc:  # protobuf and file errors: a damaged or missing file
        raise TargetError(f"{spec}: cannot read the ONNX file's parameters ({type(exc).__name__}: {exc})") from None
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    seen: set[str] = set()
    arrays: list[np.ndarray] = []

    def take(name: str, transpose: bool) -> None:
        if name in seen or name not in initializers:
            return
        seen.add(name)
        value = numpy_helper.to_array(initializers[name], base_dir=base_dir)
        if value.dtype.kind == "f":
            arrays.append(np.ascontiguousarray(value.T if transpose and value.ndim == 2 else value).reshape(-1))

    for node in graph.node:
        for position, name in enumerate(node.input):
            take(name, transpose=position == 1 and _stores_input_major(node))
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                value = numpy_helper.to_array(attribute.t)
                if value.dtype.kind == "f":
                    arrays.append(value.reshape(-1))
            elif attribute.type == onnx.AttributeProto.FLOATS and len(attribute.floats) > 1:
                # protobuf keeps repeated floats as float32, so their low bits survive.
                arrays.append(np.asarray(attribute.floats, dtype=np.float32))
    for name in initializers:  # initializers no node reads still ship with the model
        take(name, transpose=False)
    return arrays


def _stores_input_major(node: Any) -> bool:
    """True when the node's second input is a dense weight stored as (inputs, outputs)."""
    if node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "MatMul":
        return True
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return trans_b == 0
    return False
