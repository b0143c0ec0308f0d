"""The gate every model file passes before it is loaded: a static scan (FM09, supply chain).

The scanner (``redline.filescan``) refuses anything it does not call safe. Where it is
replaced (tests of the allowlist on its own), only formats that cannot run code while loading get through, judged from their
content: the formats ``adapters.FILE_FORMATS`` calls code-free, i.e. ONNX (whose
external-data paths must stay beside the model), skops (its loader adds its own
trusted-type check) and safetensors. Pickles and TorchScript are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import TargetError, UnsafeModelError
from . import adapters, formats


def require_safe(path: str | Path) -> None:
    """Raise UnsafeModelError unless the file at ``path`` is safe to load."""
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"{path}: no such model file")
    scanner = _scanner()
    if scanner is not None:
        _require_scanner_verdict(scanner, path)
    else:
        _require_code_free_format(path)


def _scanner() -> ModuleType | None:
    """The static scanner. It lives in a higher layer (it also writes findings and SARIF), so the
    adapter table names it and it is loaded by that name, like the zoo's loader. Tests replace
    this function to exercise the code-free allowlist on its own."""
    return adapters.load_module(adapters.SCANNER)


def _require_scanner_verdict(scanner: ModuleType, path: Path) -> None:
    report = scanner.scan_path(path)
    if report.verdict != "safe":
        detail = report.issues[0].detail if report.issues else "no detail given"
        raise UnsafeModelError(f"{path}: refused to load ({report.format}, scan verdict {report.verdict}): {detail}")


def _require_code_free_format(path: Path) -> None:
    kind = formats.detect_format(path)
    code_free = adapters.code_free_formats()
    if kind not in [f.name for f in code_free]:
        raise UnsafeModelError(
            f"{path}: refused to load a {kind} file: the static model scanner (redline.filescan) is "
            f"unavailable, and without it only {adapters.either([f.title for f in code_free], 'and')} files are accepted"
        )
    if kind == formats.ONNX:
        escaping = _onnx_external_data_outside(path)
        if escaping:
            raise UnsafeModelError(
                f"{path}: refused to load: ONNX external data points outside its folder ({escaping})"
            )


def _onnx_external_data_outside(path: Path) -> str | None:
    """The first external-data location that leaves the model's folder, or None."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    folder = path.resolve().parent
    for tensor in _tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key != "location":
                continue
            location = Path(entry.value)
            if location.is_absolute() or not (folder / location).resolve().is_relative_to(folder):
                return entry.value
    return None


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)
