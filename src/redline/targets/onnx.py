"""ONNX models as targets, run by onnxruntime; white-box where the graph converts to PyTorch.

The adapter reads what it can from the graph: the input shape (a dynamic batch axis is
expected), the input dtype, and which output holds the scores. Classifier graphs from
skl2onnx carry a label output and a probability output (a tensor, or a ZipMap list of
dicts); the probabilities are preferred. A score tensor is taken as probabilities when its
rows are non-negative and sum to one, and as logits otherwise; that is decided once, on
the first run, and kept. Gradients come from :mod:`redline.targets.onnx_torch`, and are
only claimed after the converted graph matched onnxruntime on random inputs at load time.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError
from ._common import (
    check_labels,
    check_probabilities,
    first_line,
    is_probability_rows,
    random_inputs,
    softmax,
)
from .base import Capabilities, InputSpec, Target
from .gate import require_safe

_TENSOR_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}
_SCORE_TYPES = ("tensor(float)", "tensor(double)")
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)")
# Agreement needed between the converted torch graph and onnxruntime before gradients are claimed.
_WHITEBOX_TOLERANCE = 1e-4
_VERIFY_ROWS = 8


class OnnxTarget(Target):
    """An ONNX classifier. ``source`` is a file path (external data resolves beside it) or bytes.

    ``n_classes`` must agree with the graph; ``n_classes_hint`` (e.g. from data) is only used
    when the graph does not tell, as for a graph that answers labels only.

    ``whitebox_reason`` is None when gradients are available, else why they are not.
    """

    def __init__(
        self,
        source: str | Path | bytes,
        *,
        spec: str = "onnx",
        input_spec: InputSpec | None = None,
        n_classes: int | None = None,
        n_classes_hint: int | None = None,
    ):
        super().__init__()
        import onnxruntime as ort

        self.spec = spec
        self._source = source
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's warnings are not the user's business
        try:
            self._session = ort.InferenceSession(
                source if isinstance(source, bytes) else str(source), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise TargetError(f"{spec}: onnxruntime cannot load the model ({first_line(exc)})") from None
        self._input_name, self._fixed_batch, self.input_spec = self._read_input(input_spec)
        self._output, self._output_type = self._pick_output()
        # How raw outputs become probabilities: decided from the graph or on the first run.
        self._mode: str | None = {"labels": "labels", "zipmap": "zipmap"}.get(self._output_type)
        self._mode_lock = threading.Lock()
        self.n_classes = self._count_classes(n_classes, n_classes_hint)
        self._torch_module: Any = None
        self._torch_output_is_logits = False
        self.whitebox_reason = self._try_whitebox()
        self.capabilities = Capabilities(
            outputs="labels" if self._mode == "labels" else "probabilities",
            gradients=self.whitebox_reason is None,
            trainable=False,
            remote=False,
        )

    # -- queries -----------------------------------------------------------------------

    @property
    def source(self):
        """The file path or bytes the model was loaded from (its parameters are read from it)."""
        return self._source
    def _predict(self, x: np.ndarray) -> np.ndarray:
        raw = self._run(x)
        if self._mode == "labels":
            return check_labels(raw, len(x), self.n_classes, self.spec)
        return check_probabilities(self._to_probabilities(raw), len(x), self.n_classes, self.spec)

    def _predict_raw(self, x: Any) -> Any:
        # onnxruntime takes only numeric tensors; its own shape and type checks (raised as
        # TargetError by ``_run``) are the model's validation. The raw output is unchecked.
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TargetError(f"{self.spec}: an ONNX graph takes numeric tensors, not {arr.dtype} arrays")
        return self._run(arr)

    def parameter_arrays(self) -> list[np.ndarray]:
        from .parameters import onnx_parameter_arrays

        return onnx_parameter_arrays(self._source, spec=self.spec)

    def _torch_logits(self, x: Any) -> Any:
        import torch

        if self._fixed_batch == 1:  # a graph exported for one row at a time
            out = torch.cat([self._torch_module(x[i : i + 1]) for i in range(x.shape[0])], dim=0)
        else:
            out = self._torch_module(x)
        out = out.reshape(out.shape[0], -1)
        if self._torch_output_is_logits:  # the input of the graph's final Softmax
            return torch.log_softmax(out, dim=1)  # = log of what the graph answers, computed stably
        if self._mode == "logits":
            return out if out.shape[1] > 1 else torch.cat([torch.zeros_like(out), out], dim=1)
        # Probabilities: their logarithm is a valid set of logits.
        if out.shape[1] == 1:
            out = torch.cat([1 - out, out], dim=1)
        return torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))

    # -- onnxruntime -------------------------------------------------------------------
    def _run(self, x: np.ndarray) -> Any:
        x = np.ascontiguousarray(x, dtype=self.input_spec.dtype)
        if self._fixed_batch is not None and len(x) != self._fixed_batch:
            if self._fixed_batch != 1:
                raise TargetError(f"{self.spec}: the graph only accepts batches of exactly {self._fixed_batch} rows")
            rows = [self._run(x[i : i + 1]) for i in range(len(x))]
            return [d for r in rows for d in r] if self._mode == "zipmap" else np.concatenate(rows, axis=0)
        try:
            (out,) = self._session.run([self._output], {self._input_name: x})
        except Exception as exc:  # onnxruntime's errors (bad shapes, kernels) in one line
            raise TargetError(f"{self.spec}: onnxruntime failed ({first_line(exc)})") from None
        return out

    def _to_probabilities(self, raw: Any) -> np.ndarray:
        if self._mode == "zipmap":
            return _zipmap_to_array(raw, self.n_classes, self.spec)
        scores = np.asarray(raw, dtype=np.float64)
        scores = scores.reshape(len(scores), -1)
        with self._mode_lock:
            if self._mode is None:
                self._mode = _score_mode(scores)
        if scores.shape[1] == 1:  # one score per row: the probability or logit of class 1
            s = scores[:, 0]
            p = s if self._mode == "probabilities" else np.exp(-np.logaddexp(0.0, -s))  # a sigmoid that never overflows
            return np.stack([1.0 - p, p], axis=1)
        return scores if self._mode == "probabilities" else softmax(scores)

    # -- reading the graph ---------------------------------------------------------------
    def _read_input(self, given: InputSpec | None) -> tuple[str, int | None, InputSpec]:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise TargetError(f"{self.spec}: the model takes {len(inputs)} inputs ({names}); only one is supported")
        inp = inputs[0]
        dtype = _TENSOR_DTYPES.get(inp.type)
        if dtype is None:
            raise TargetError(f"{self.spec}: unsupported input type {inp.type}")
        dims = list(inp.shape)
        if not dims:
            raise TargetError(f"{self.spec}: the model input has no batch axis")
        batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        row = dims[1:]
        static = all(isinstance(d, int) and d > 0 for d in row)
        if given is not None:
            if static and tuple(row) != tuple(given.shape):
                raise TargetError(
                    f"{self.spec}: the model takes rows shaped {tuple(row)}, the input spec says {given.shape}"
                )
            return inp.name, batch, dataclasses.replace(given, dtype=dtype)
        if not static:
            raise TargetError(
                f"{self.spec}: the model's input shape {dims} has dynamic axes; "
                "give data or input.shape in the target config"
            )
        return inp.name, batch, InputSpec(tuple(row), dtype)

    def _pick_output(self) -> tuple[str, str]:
        """The output to read: a score tensor, else a ZipMap, else class labels."""
        outputs = self._session.get_outputs()
        scores = [o for o in outputs if o.type in _SCORE_TYPES]
        if scores:
            named = [o for o in scores if "prob" in o.name.lower()]
            return (named or scores)[0].name, "scores"
        maps = [o for o in outputs if o.type.startswith("seq(map(")]
        if maps:
            return maps[0].name, "zipmap"
        labels = [o for o in outputs if o.type in _LABEL_TYPES]
        if labels:
            return labels[0].name, "labels"
        kinds = ", ".join(f"{o.name}: {o.type}" for o in outputs)
        raise TargetError(f"{self.spec}: no output holds class scores or labels ({kinds})")

    def _count_classes(self, given: int | None, hint: int | None) -> int:
        width = self._static_width()
        if width is None and self._mode != "labels":
            probe = self._run(random_inputs(self.input_spec, 1))
            width = len(probe[0]) if self._mode == "zipmap" else int(np.prod(np.shape(probe)[1:]))
        if width is not None and width <= 1:
            width = 2  # a single score per row is a binary classifier
        if given is not None and width is not None and given != width:
            raise TargetError(f"{self.spec}: the model answers {width} classes, but n_classes is {given}")
        n = given if given is not None else width if width is not None else hint
        if n is None:
            raise TargetError(
                f"{self.spec}: the model answers labels only; give n_classes in the target config or data"
            )
        return int(n)

    def _static_width(self) -> int | None:
        if self._output_type != "scores":
            return None
        out = next(o for o in self._session.get_outputs() if o.name == self._output)
        dims = list(out.shape)[1:]
        if all(isinstance(d, int) and d > 0 for d in dims):
            return int(np.prod(dims)) if dims else 1
        return None

    # -- white box ---------------------------------------------------------------------
    def _try_whitebox(self) -> str | None:
        """Convert the graph to torch and check it against onnxruntime; None on success."""
        if self._output_type != "scores":
            return "the model answers labels or a ZipMap, which only onnxruntime evaluates"
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed"
        import onnx
        import torch

        from .onnx_torch import UnsupportedGraph, convert

        model = onnx.load(self._source) if not isinstance(self._source, bytes) else onnx.load_from_string(self._source)
        softmax_input = _softmax_input(model, self._output)
        try:
            module = convert(model, softmax_input or self._output)
        except UnsupportedGraph as exc:
            return f"the graph does not convert to PyTorch: {exc}"
        if softmax_input:  # the graph itself says its output is probabilities
            with self._mode_lock:
                self._mode = "probabilities"
        x = random_inputs(self.input_spec, _VERIFY_ROWS, seed=0)
        raw = self._run(x)
        probabilities = self._to_probabilities(raw)  # also settles logits vs probabilities
        reference = probabilities if softmax_input else np.asarray(raw, dtype=np.float64)
        try:
            with torch.no_grad():
                if self._fixed_batch == 1:
                    rows = [module(torch.from_numpy(x[i : i + 1])) for i in range(len(x))]
                else:
                    rows = [module(torch.from_numpy(x))]
                mine = torch.cat([r.reshape(r.shape[0], -1) for r in rows], dim=0).to(torch.float64).numpy()
        except Exception as exc:  # an operator variant the converter mishandles at run time
            return f"the converted graph fails in PyTorch ({type(exc).__name__}: {first_line(exc)})"
        mine = mine.reshape(len(x), -1)
        if softmax_input:
            mine = softmax(mine)
        reference = reference.reshape(len(x), -1)
        if mine.shape != reference.shape or not np.allclose(
            mine, reference, rtol=_WHITEBOX_TOLERANCE, atol=_WHITEBOX_TOLERANCE
        ):
            gap = (
                np.abs(mine - reference).max()
                if mine.shape == reference.shape
                else f"shape {mine.shape} vs {reference.shape}"
            )
            return f"the converted graph disagrees with onnxruntime (max difference {gap})"
        self._torch_module = module
        self._torch_output_is_logits = softmax_input is not None
        return None


def load_onnx(
    path: str | Path,
    *,
    spec: str | None = None,
    input_spec: InputSpec | None = None,
    n_classes: int | None = None,
    n_classes_hint: int | None = None,
) -> OnnxTarget:
    """Load an ONNX file after the static scan passes."""
    path = Path(path)
    require_safe(path)
    return OnnxTarget(
        path, spec=spec or f"onnx:{path}", input_spec=input_spec, n_classes=n_classes, n_classes_hint=n_classes_hint
    )


def _softmax_input(model: Any, output: str) -> str | None:
    """If ``output`` is a Softmax over the class axis, the name of its input (the logits)."""
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    for node in model.graph.node:
        if output in node.output and node.op_type == "Softmax" and node.domain in ("", "ai.onnx"):
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
            rank = _rank_of(model, output)
            if axis == -1 or (rank is not None and axis == rank - 1):
                return node.input[0]
    return None


def _rank_of(model: Any, name: str) -> int | None:
    for value in list(model.graph.output) + list(model.graph.value_info):
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return len(value.type.tensor_type.shape.dim)
    return None


def _score_mode(scores: np.ndarray) -> str:
    if scores.shape[1] == 1:
        return "probabilities" if np.all((scores >= 0) & (scores <= 1)) else "logits"
    return "probabilities" if is_probability_rows(scores) else "logits"


def _zipmap_to_array(rows: list[dict[Any, float]], n_classes: int, spec: str) -> np.ndarray:
    """skl2onnx's ZipMap output (one {class: probability} dict per row) as an array."""
    if not rows:
        return np.zeros((0, n_classes))
    keys = sorted(rows[0])
    columns = [int(k) for k in keys] if all(isinstance(k, (int, np.integer)) for k in keys) else list(range(len(keys)))
    if max(columns) >= n_classes:
        raise TargetError(f"{spec}: the model answers class {max(columns)}, but n_classes is {n_classes}")
    out = np.zeros((len(rows), n_classes))
    for i, row in enumerate(rows):
        out[i, columns] = [row[k] for k in keys]
    return out


def open_file(path: Path, request: Any) -> OnnxTarget:
    """The adapter table's loader for ``onnx:PATH`` and ONNX files."""
    return load_onnx(
        path,
        spec=request.spec,
        input_spec=request.input_spec,
        n_classes=request.n_classes,
        n_classes_hint=request.n_classes_hint,
    )
