"""A small ONNX -> PyTorch converter, so ONNX classifiers can be attacked with gradients.

The converted module interprets the graph node by node with differentiable torch ops. It
covers the operators small classifiers use (dense and convolutional layers, pooling,
normalisation, activations, shape plumbing). Any node outside that set, or outside the
default ONNX domain (e.g. the ``ai.onnx.ml`` operators of skl2onnx), makes
:func:`convert` raise :class:`UnsupportedGraph` naming every such operator. The caller
(``redline.targets.onnx``) still compares the result with onnxruntime before trusting it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

Op = Callable[..., tuple[torch.Tensor, ...]]

_DTYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.BOOL: torch.bool,
}


class UnsupportedGraph(Exception):
    """The graph uses something this converter does not handle; the message says what."""


class OnnxGraphModule(torch.nn.Module):
    """Evaluates the nodes an ONNX graph needs for one output, in topological order."""

    def __init__(
        self,
        input_name: str,
        input_dtype: torch.dtype,
        output_name: str,
        constants: dict[str, torch.Tensor],
        steps: list[tuple[str, Op, list[str], list[str]]],
    ):
        super().__init__()
        self.input_name = input_name
        self.input_dtype = input_dtype
        self.output_name = output_name
        # ONNX names may contain characters buffer names cannot, so buffers get index names.
        self._constant_slots = {}
        for i, (name, value) in enumerate(constants.items()):
            self.register_buffer(f"const{i}", value)
            self._constant_slots[name] = f"const{i}"
        self._steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor | None] = {"": None}  # "" marks an omitted optional input
        for name, slot in self._constant_slots.items():
            env[name] = getattr(self, slot)
        env[self.input_name] = x.to(self.input_dtype)
        for op_type, op, inputs, outputs in self._steps:
            try:
                results = op(*[env[name] for name in inputs])
            except Exception as exc:  # name the node, so a failed conversion explains itself
                raise RuntimeError(f"{op_type} node producing {outputs[0]!r}: {type(exc).__name__}: {exc}") from exc
            env.update(zip(outputs, results))
        return env[self.output_name]


def convert(model: onnx.ModelProto, output_name: str | None = None) -> OnnxGraphModule:
    """Build a torch module computing ``output_name`` (default: the first graph output)."""
    graph = model.graph
    opset = _default_opset(model)
    initializers = {t.name: _to_torch(numpy_helper.to_array(t)) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedGraph(f"the graph has {len(inputs)} inputs; only single-input graphs convert")
    elem_type = inputs[0].type.tensor_type.elem_type
    if elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise UnsupportedGraph(f"the graph input is {onnx.TensorProto.DataType.Name(elem_type)}, not a float tensor")
    output_name = output_name or graph.output[0].name

    nodes = _nodes_needed_for(graph, output_name)
    problems: list[str] = []
    constants = dict(initializers)
    steps: list[tuple[str, Op, list[str], list[str]]] = []
    used = {name for node in nodes for name in node.input} | {output_name}
    for node in nodes:
        try:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                constants[node.output[0]] = _constant_value(node)
                continue
            op, produced = _make_op(node, opset)
        except UnsupportedGraph as exc:
            problems.append(str(exc))
            continue
        unproduced = [o for o in node.output[produced:] if o and o in used]
        if unproduced:
            problems.append(f"{node.op_type} output {unproduced[0]!r} is not supported")
        steps.append((node.op_type, op, list(node.input), list(node.output[:produced])))
    if problems:
        raise UnsupportedGraph("; ".join(dict.fromkeys(problems)))
    return OnnxGraphModule(inputs[0].name, _DTYPES[elem_type], output_name, constants, steps).eval()


# -- graph helpers -------------------------------------------------------------------------


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _nodes_needed_for(graph: onnx.GraphProto, output_name: str) -> list[onnx.NodeProto]:
    """The nodes ``output_name`` depends on, in graph order (ONNX graphs are topologically sorted)."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    if output_name not in producer and output_name not in {i.name for i in graph.input}:
        raise UnsupportedGraph(f"no node produces output {output_name!r}")
    needed: set[int] = set()
    stack = [output_name]
    while stack:
        name = stack.pop()
        i = producer.get(name)
        if i is None or i in needed:
            continue
        needed.add(i)
        stack.extend(n for n in graph.node[i].input if n)
    return [graph.node[i] for i in sorted(needed)]


def _to_torch(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if a.dtype == np.uint64 or a.dtype == np.uint32 or a.dtype == np.uint16:
        a = a.astype(np.int64)
    return torch.from_numpy(np.array(a, copy=True))


def _constant_value(node: onnx.NodeProto) -> torch.Tensor:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "value" in attrs:
        return _to_torch(numpy_helper.to_array(attrs["value"]))
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return _to_torch(np.asarray(attrs[key], dtype=dtype))
    raise UnsupportedGraph(f"Constant with {', '.join(attrs) or 'no value'} is not supported")


def _ints(t: torch.Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


# -- operators -------------------------------------------------------------------------------


def _make_op(node: onnx.NodeProto, opset: int) -> tuple[Op, int]:
    """(a function of the node's inputs returning a tuple of outputs, how many outputs it makes)."""
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedGraph(f"operator {node.domain}.{node.op_type} is not supported")
    factory = _FACTORIES.get(node.op_type)
    if factory is None:
        raise UnsupportedGraph(f"operator {node.op_type} is not supported")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    return factory(attrs, opset), 1


def _single(fn: Callable[..., torch.Tensor]) -> Op:
    return lambda *args: (fn(*args),)


def _elementwise(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict, int], Op]:
    return lambda attrs, opset: _single(fn)


def _gemm(attrs: dict, opset: int) -> Op:
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))

    def gemm(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        y = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if alpha != 1.0:
            y = alpha * y
        if c is not None:
            y = y + (beta * c if beta != 1.0 else c)
        return y

    return _single(gemm)


def _div(attrs: dict, opset: int) -> Op:
    def div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.is_floating_point() or b.is_floating_point():
            return a / b
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates

    return _single(div)


def _leaky_relu(attrs: dict, opset: int) -> Op:
    alpha = float(attrs.get("alpha", 0.01))
    return _single(lambda x: F.leaky_relu(x, alpha))


def _softmax_like(fn: Callable[..., torch.Tensor]) -> Callable[[dict, int], Op]:
    def factory(attrs: dict, opset: int) -> Op:
        if opset >= 13:
            axis = int(attrs.get("axis", -1))
            return _single(lambda x: fn(x, dim=axis))
        # Before opset 13 the input is flattened to 2-D at ``axis`` and normalised per row.
        axis = int(attrs.get("axis", 1))

        def coerced(x: torch.Tensor) -> torch.Tensor:
            a = axis % x.ndim if x.ndim else 0
            rows = math.prod(x.shape[:a])
            return fn(x.reshape(rows, -1), dim=1).reshape(x.shape)

        return _single(coerced)

    return factory


def _spatial_pads(
    x: torch.Tensor, attrs: dict, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> list[int]:
    """Padding for F.pad (last spatial axis first), from explicit pads or auto_pad."""
    spatial = x.ndim - 2
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
    elif auto_pad == "VALID":
        begins = ends = [0] * spatial
    else:
        pads = list(attrs.get("pads", [0] * 2 * spatial))
        begins, ends = pads[:spatial], pads[spatial:]
    flat: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends)):
        flat += [int(b), int(e)]
    return flat


def _window(attrs: dict, spatial: int, kernel: Sequence[int] | None = None) -> tuple[list[int], list[int], list[int]]:
    kernel = list(kernel if kernel is not None else attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    return kernel, strides, dilations


def _conv(attrs: dict, opset: int) -> Op:
    group = int(attrs.get("group", 1))

    def conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        spatial = x.ndim - 2
        if spatial not in (1, 2):
            raise UnsupportedGraph(f"Conv over {spatial} spatial axes is not supported")
        kernel, strides, dilations = _window(attrs, spatial, attrs.get("kernel_shape", w.shape[2:]))
        pads = _spatial_pads(x, attrs, kernel, strides, dilations)
        if any(pads):
            x = F.pad(x, pads)
        fn = F.conv2d if spatial == 2 else F.conv1d
        return fn(x, w, b, stride=strides, dilation=dilations, groups=group)

    return _single(conv)


def _max_pool(attrs: dict, opset: int) -> Op:
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    if int(attrs.get("storage_order", 0)) != 0:
        raise UnsupportedGraph("MaxPool with storage_order=1 is not supported")

    def max_pool(x: torch.Tensor) -> torch.Tensor:
        spatial = x.ndim - 2
        kernel, strides, dilations = _window(attrs, spatial)
        pads = _spatial_pads(x, attrs, kernel, strides, dilations)
        if any(pads):
            x = F.pad(x, pads, value=-math.inf)
        fn = F.max_pool2d if spatial == 2 else F.max_pool1d
        return fn(x, kernel, strides, 0, dilations, ceil_mode=ceil_mode)

    return _single(max_pool)


def _average_pool(attrs: dict, opset: int) -> Op:
    if int(attrs.get("ceil_mode", 0)):
        raise UnsupportedGraph("AveragePool with ceil_mode=1 is not supported")
    if any(d != 1 for d in attrs.get("dilations", [])):
        raise UnsupportedGraph("AveragePool with dilations is not supported")
    include_pad = bool(attrs.get("count_include_pad", 0))

    def average_pool(x: torch.Tensor) -> torch.Tensor:
        spatial = x.ndim - 2
        kernel, strides, dilations = _window(attrs, spatial)
        pads = _spatial_pads(x, attrs, kernel, strides, dilations)
        fn = F.avg_pool2d if spatial == 2 else F.avg_pool1d
        mean = fn(F.pad(x, pads) if any(pads) else x, kernel, strides)
        if include_pad or not any(pads):
            return mean
        # Excluding the padding: divide by the share of real cells in each window.
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
        return mean / fn(F.pad(ones, pads), kernel, strides)

    return _single(average_pool)


def _global_pool(reduce: Callable[..., torch.Tensor]) -> Callable[[dict, int], Op]:
    return lambda attrs, opset: _single(lambda x: reduce(x, dim=tuple(range(2, x.ndim)), keepdim=True))


def _flatten(attrs: dict, opset: int) -> Op:
    axis = int(attrs.get("axis", 1))

    def flatten(x: torch.Tensor) -> torch.Tensor:
        a = axis % x.ndim if axis < 0 else axis
        return x.reshape(math.prod(x.shape[:a]), -1)

    return _single(flatten)


def _reshape(attrs: dict, opset: int) -> Op:
    allow_zero = bool(attrs.get("allowzero", 0))

    def reshape(x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        dims = _ints(shape)
        if not allow_zero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return x.reshape(dims)

    return _single(reshape)


def _transpose(attrs: dict, opset: int) -> Op:
    perm = attrs.get("perm")
    return _single(lambda x: x.permute(*(perm if perm is not None else reversed(range(x.ndim)))))


def _concat(attrs: dict, opset: int) -> Op:
    axis = int(attrs["axis"])
    return lambda *xs: (torch.cat([x for x in xs if x is not None], dim=axis),)


def _batch_norm(attrs: dict, opset: int) -> Op:
    if int(attrs.get("training_mode", 0)):
        raise UnsupportedGraph("BatchNormalization in training mode is not supported")
    eps = float(attrs.get("epsilon", 1e-5))

    def batch_norm(
        x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
    ) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = scale / torch.sqrt(var + eps)
        return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)

    return _single(batch_norm)


def _clip(attrs: dict, opset: int) -> Op:
    def clip(x: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> torch.Tensor:
        if opset < 11:  # bounds were attributes before opset 11
            lo_v, hi_v = attrs.get("min"), attrs.get("max")
        else:
            lo_v = None if lo is None else lo.item()
            hi_v = None if hi is None else hi.item()
        return torch.clamp(x, min=lo_v, max=hi_v)

    return _single(clip)


def _axes(attrs: dict, opset: int, given: torch.Tensor | None) -> list[int] | None:
    if opset >= 13:
        return None if given is None else _ints(given)
    axes = attrs.get("axes")
    return None if axes is None else list(axes)


def _unsqueeze(attrs: dict, opset: int) -> Op:
    def unsqueeze(x: torch.Tensor, axes_in: torch.Tensor | None = None) -> torch.Tensor:
        axes = _axes(attrs, opset, axes_in) or []
        rank = x.ndim + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x

    return _single(unsqueeze)


def _squeeze(attrs: dict, opset: int) -> Op:
    def squeeze(x: torch.Tensor, axes_in: torch.Tensor | None = None) -> torch.Tensor:
        axes = _axes(attrs, opset, axes_in)
        if axes is None:
            return x.squeeze()
        return x.squeeze(tuple(a % x.ndim for a in axes))

    return _single(squeeze)


def _pad(attrs: dict, opset: int) -> Op:
    mode = attrs.get("mode", "constant")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise UnsupportedGraph(f"Pad mode {mode!r} is not supported")

    def pad(
        x: torch.Tensor,
        pads_in: torch.Tensor | None = None,
        value_in: torch.Tensor | None = None,
        axes_in: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if opset < 11:
            pads, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
        else:
            pads, value = _ints(pads_in), 0.0 if value_in is None else value_in.item()
        axes = _ints(axes_in) if axes_in is not None else list(range(x.ndim))
        axes = [a % x.ndim for a in axes]
        begins, ends = [0] * x.ndim, [0] * x.ndim
        for i, a in enumerate(axes):
            begins[a], ends[a] = pads[i], pads[len(axes) + i]
        if torch_mode != "constant" and (any(begins[:2]) or any(ends[:2])):
            raise UnsupportedGraph(f"Pad mode {mode!r} on batch or channel axes is not supported")
        flat: list[int] = []
        for b, e in zip(reversed(begins), reversed(ends)):
            flat += [b, e]
        if torch_mode != "constant":
            flat = flat[: 2 * (x.ndim - 2)]
            return F.pad(x, flat, mode=torch_mode)
        return F.pad(x, flat, value=value)

    return _single(pad)


def _shape(attrs: dict, opset: int) -> Op:
    start, end = attrs.get("start", 0), attrs.get("end")
    return _single(lambda x: torch.tensor(list(x.shape)[start:end], dtype=torch.int64))


def _gather(attrs: dict, opset: int) -> Op:
    axis = int(attrs.get("axis", 0))

    def gather(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        a = axis % x.ndim
        idx = indices.to(torch.int64)
        idx = torch.where(idx < 0, idx + x.shape[a], idx)
        out = torch.index_select(x, a, idx.reshape(-1))
        return out.reshape((*x.shape[:a], *idx.shape, *x.shape[a + 1 :]))

    return _single(gather)


def _cast(attrs: dict, opset: int) -> Op:
    to = _DTYPES.get(int(attrs["to"]))
    if to is None:
        raise UnsupportedGraph(f"Cast to {onnx.TensorProto.DataType.Name(int(attrs['to']))} is not supported")
    return _single(lambda x: x.to(to))


def _constant_of_shape(attrs: dict, opset: int) -> Op:
    value = attrs.get("value")
    fill = _to_torch(numpy_helper.to_array(value)).reshape(-1) if value is not None else torch.zeros(1)

    def constant_of_shape(shape: torch.Tensor) -> torch.Tensor:
        return fill.expand(_ints(shape)).clone() if _ints(shape) else fill.reshape(()).clone()

    return _single(constant_of_shape)


def _slice(attrs: dict, opset: int) -> Op:
    def slice_(
        x: torch.Tensor,
        starts: torch.Tensor | None = None,
        ends: torch.Tensor | None = None,
        axes: torch.Tensor | None = None,
        steps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if opset < 10:  # starts/ends/axes were attributes before opset 10
            begin, stop = list(attrs["starts"]), list(attrs["ends"])
            axis_list = list(attrs.get("axes", range(len(begin))))
            step_list = [1] * len(begin)
        else:
            begin, stop = _ints(starts), _ints(ends)
            axis_list = _ints(axes) if axes is not None else list(range(len(begin)))
            step_list = _ints(steps) if steps is not None else [1] * len(begin)
        for b, e, a, st in zip(begin, stop, axis_list, step_list):
            a %= x.ndim
            # Python's slice clamping matches ONNX's, including huge sentinels and negative steps.
            index = torch.arange(*slice(b, e, st).indices(x.shape[a]), dtype=torch.int64)
            x = torch.index_select(x, a, index)
        return x

    return _single(slice_)


_FACTORIES: dict[str, Callable[[dict, int], Op]] = {
    "Gemm": _gemm,
    "MatMul": _elementwise(torch.matmul),
    "Add": _elementwise(torch.add),
    "Sub": _elementwise(torch.sub),
    "Mul": _elementwise(torch.mul),
    "Div": _div,
    "Relu": _elementwise(torch.relu),
    "LeakyRelu": _leaky_relu,
    "Sigmoid": _elementwise(torch.sigmoid),
    "Tanh": _elementwise(torch.tanh),
    "Softmax": _softmax_like(torch.softmax),
    "LogSoftmax": _softmax_like(torch.log_softmax),
    "Conv": _conv,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_pool(torch.mean),
    "GlobalMaxPool": _global_pool(torch.amax),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Concat": _concat,
    "BatchNormalization": _batch_norm,
    "Dropout": _elementwise(lambda x, *rest: x),  # inference: identity; a used mask is refused
    "Identity": _elementwise(lambda x: x),
    "Clip": _clip,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Pad": _pad,
    "Shape": _shape,
    "Gather": _gather,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
    "Slice": _slice,
}
