"""Reading the float parameters out of a model, for :meth:`Target.parameter_arrays`.

PyTorch modules give ``parameters()`` in module order; scikit-learn estimators their
fitted float attributes that are learned weights; ONNX graphs their initializers (plus float tensors and float
lists stored as node attributes, where ``ai.onnx.ml`` operators keep their coefficients). Each array
keeps its own dtype, since casting float32 to float64 would hide the low bits a payload
may hide in.

ONNX initializers are taken in the order the graph's nodes first use them, which for an
exported network is layer order. A dense layer's weight is returned as (outputs, inputs),
PyTorch's layout: ``Gemm`` with ``transB=1`` stores it that way already, while ``MatMul``
and ``Gemm`` with ``transB=0`` store the transpose, which is turned back. A payload laid
out by training code in that layout then reads the same from the ``.onnx`` file as from
the module. Subgraphs (``If``, ``Loop``) are not read.

Some scikit-learn estimators store summaries of their training data as fitted attributes
(support vectors, class means and variances, counts). Those carry training data by design,
and their low bits are those of short fractions, not the noise of training, so a check
looking for a payload hidden by the provider would mistake them for one (a fitted SVC's
support vectors once read as an LSB payload at p = 0). They are listed apart
(:func:`sklearn_data_summaries`) and left out of the parameters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError


def torch_parameter_arrays(module: Any) -> list[np.ndarray]:
    """Float parameters of a torch module (or TorchScript module), flattened, in module order."""
    return [p.detach().cpu().reshape(-1).numpy() for p in module.parameters() if p.is_floating_point()]


# Fitted attributes of scikit-learn estimators that summarise or copy the training data
# rather than being fitted weights (naive Bayes, nearest centroid, discriminant analysis,
# SVMs, k-means, scalers).
SKLEARN_DATA_SUMMARIES = frozenset({
    "support_vectors_", "centroids_", "cluster_centers_", "theta_", "var_", "sigma_", "means_",
    "xbar_", "mean_", "scale_", "covariance_", "deviations_", "within_class_std_dev_",
    "class_count_", "class_prior_", "class_log_prior_", "priors_", "feature_count_",
    "feature_log_prob_", "explained_variance_ratio_", "class_weight_", "data_min_", "data_max_",
    "data_range_",
})


def _fitted_float_arrays(estimator: Any) -> dict[str, list[np.ndarray]]:
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    found: dict[str, list[np.ndarray]] = {}
    # Fitted scikit-learn attributes end in "_"; the learned values are their float arrays.
    for name in sorted(vars(estimator)):
        value = getattr(estimator, name)
        if not name.endswith("_") or name.startswith("_"):
            continue
        items = [item.reshape(-1) for item in (value if isinstance(value, list) else [value])
                 if isinstance(item, np.ndarray) and item.dtype.kind == "f"]
        if items:
            found[name] = items
    return found


def sklearn_parameter_arrays(estimator: Any) -> list[np.ndarray]:
    """Fitted float weights of a scikit-learn estimator (the last step of a Pipeline),
    without the attributes that summarise the training data."""
    return [a for name, items in _fitted_float_arrays(estimator).items()
            if name not in SKLEARN_DATA_SUMMARIES for a in items]


def sklearn_data_summaries(estimator: Any) -> dict[str, int]:
    """Fitted attributes that summarise or copy the training data: name -> number of values."""
    return {name: int(sum(a.size for a in items)) for name, items in _fitted_float_arrays(estimator).items()
            if name in SKLEARN_DATA_SUMMARIES}


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
