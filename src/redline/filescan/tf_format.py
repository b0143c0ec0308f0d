"""TensorFlow SavedModel (``saved_model.pb``): list the ops of every graph and function and
flag those that touch files or run Python."""
from __future__ import annotations

from collections.abc import Callable

from .buffer import Buf
from .protobuf import WireError, check_shape, text

Sink = Callable[[str, str, str], None]

SAVED_MODEL = {1: 0, 2: 2}
META_GRAPH = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2}
GRAPH_DEF = {1: 2, 2: 2, 4: 2}
NODE_DEF = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
LIBRARY = {1: 2, 2: 2}
FUNCTION_DEF = {1: 2, 3: 2}

# op name -> (severity, why). SaveV2/RestoreV2 are normal checkpoint plumbing and not listed.
DANGEROUS_OPS: dict[str, tuple[str, str]] = {
    "PyFunc": ("Critical", "calls a Python function"),
    "PyFuncStateless": ("Critical", "calls a Python function"),
    "EagerPyFunc": ("Critical", "calls a Python function"),
    "ReadFile": ("High", "reads an arbitrary file"),
    "WriteFile": ("High", "writes an arbitrary file"),
    "MatchingFiles": ("High", "lists files on the host"),
    "ImmutableConst": ("High", "memory-maps a file"),
    "DebugIdentityV2": ("High", "writes debug dumps to a path"),
    "DebugIdentityV3": ("High", "writes debug dumps to a path"),
    "WholeFileReader": ("High", "reads whole files"),
    "WholeFileReaderV2": ("High", "reads whole files"),
    "TextLineDataset": ("High", "reads files"),
    "FixedLengthRecordDataset": ("High", "reads files"),
    "FixedLengthRecordDatasetV2": ("High", "reads files"),
    "TFRecordDataset": ("High", "reads files"),
    "TFRecordDatasetV2": ("High", "reads files"),
    "DatasetToTFRecord": ("High", "writes files"),
    "ExperimentalDatasetToTFRecord": ("High", "writes files"),
    "PrintV2": ("Medium", "can print to a file named by the graph"),
    "LoadAndRemapMatrix": ("High", "reads a checkpoint file named by the graph"),
}


def looks_like_saved_model(buf: Buf) -> bool:
    try:
        top = check_shape(buf, SAVED_MODEL)
        if 2 not in top:
            return False
        meta = check_shape(top[2][0], META_GRAPH)
        return 2 in meta or 1 in meta
    except WireError:
        return False


def scan_saved_model(buf: Buf, sink: Sink) -> set[str]:
    """Flag dangerous ops; returns every op name seen."""
    ops: set[str] = set()

    def nodes(node_bufs: list) -> None:
        for nb in node_bufs:
            node = check_shape(nb, NODE_DEF)
            if 2 not in node:
                continue
            op = text(node[2][0])
            ops.add(op)
            if op in DANGEROUS_OPS:
                severity, why = DANGEROUS_OPS[op]
                name = text(node[1][0]) if 1 in node else "?"
                sink(severity, "dangerous-op", f"graph op {op} (node {name!r}) {why}")

    try:
        for mg in check_shape(buf, SAVED_MODEL).get(2, []):
            meta = check_shape(mg, META_GRAPH)
            for gd in meta.get(2, []):
                graph = check_shape(gd, GRAPH_DEF)
                nodes(graph.get(1, []))
                for lib in graph.get(2, []):
                    for fd in check_shape(lib, LIBRARY).get(1, []):
                        nodes(check_shape(fd, FUNCTION_DEF).get(3, []))
    except WireError as exc:
        sink("High", "parse-error", f"SavedModel protobuf is malformed: {exc}")
    return ops
