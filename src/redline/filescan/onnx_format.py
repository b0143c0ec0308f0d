"""ONNX models: the protobuf is walked by hand to find tensors stored in external files and
flag locations that leave the model's folder (absolute paths, ``..``)."""
from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Callable

from .buffer import Buf
from .protobuf import WireError, check_shape, fields, text

Sink = Callable[[str, str, str], None]

# field number -> wire type, for the messages walked here (onnx.proto)
MODEL = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
GRAPH = {1: 2, 2: 2, 5: 2, 10: 2, 11: 2, 12: 2, 13: 2, 15: 2}
NODE = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2}
ATTRIBUTE = {1: 2, 5: 2, 6: 2, 10: 2, 11: 2, 22: 2, 23: 2}
TENSOR = {1: 0, 2: 0, 8: 2, 13: 2, 14: 0}
SPARSE = {1: 2, 2: 2}
FUNCTION = {1: 2, 7: 2, 11: 2}
TRAINING = {1: 2, 2: 2}
ENTRY = {1: 2, 2: 2}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
MAX_DEPTH = 64


def looks_like_onnx(buf: Buf) -> bool:
    """A ModelProto parses to its end with an ir_version and a graph."""
    try:
        top = check_shape(buf, MODEL)
    except WireError:
        return False
    return 1 in top and 7 in top


def escapes_folder(location: str) -> str | None:
    """Why ``location`` would be read from outside the model's folder, or None."""
    if not location:
        return "empty location"
    if location.startswith(("/", "\\")) or ntpath.splitdrive(location)[0] or posixpath.isabs(location):
        return "absolute path"
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        return "climbs out with '..'"
    if "\x00" in location:
        return "contains a NUL byte"
    return None


class _Walker:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.externals: list[str] = []

    def model(self, buf: Buf) -> None:
        top = check_shape(buf, MODEL)
        for g in top.get(7, []):
            self.graph(g, 0)
        for t in top.get(20, []):
            info = check_shape(t, TRAINING)
            for g in info.get(1, []) + info.get(2, []):
                self.graph(g, 0)
        for f in top.get(25, []):
            fn = check_shape(f, FUNCTION)
            for n in fn.get(7, []):
                self.node(n, 0)
            for a in fn.get(11, []):
                self.attribute(a, 0)

    def graph(self, buf: Buf, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise WireError("subgraphs nested too deeply")
        g = check_shape(buf, GRAPH)
        for n in g.get(1, []):
            self.node(n, depth)
        for t in g.get(5, []):
            self.tensor(t)
        for s in g.get(15, []):
            self.sparse(s)

    def node(self, buf: Buf, depth: int) -> None:
        for a in check_shape(buf, NODE).get(5, []):
            self.attribute(a, depth)

    def attribute(self, buf: Buf, depth: int) -> None:
        a = check_shape(buf, ATTRIBUTE)
        for t in a.get(5, []) + a.get(10, []):
            self.tensor(t)
        for g in a.get(6, []) + a.get(11, []):
            self.graph(g, depth + 1)
        for s in a.get(22, []) + a.get(23, []):
            self.sparse(s)

    def sparse(self, buf: Buf) -> None:
        s = check_shape(buf, SPARSE)
        for t in s.get(1, []) + s.get(2, []):
            self.tensor(t)

    def tensor(self, buf: Buf) -> None:
        t = check_shape(buf, TENSOR)
        name = text(t[8][0]) if 8 in t else "<unnamed>"
        entries = {}
        for e in t.get(13, []):
            kv = check_shape(e, ENTRY)
            key = text(kv[1][0]) if 1 in kv else ""
            entries[key] = text(kv[2][0]) if 2 in kv else ""
        external = t.get(14, [0])[-1] == EXTERNAL
        if external or entries:
            location = entries.get("location")
            if location is None:
                self.sink("High", "parse-error", f"tensor {name!r} is external but names no location")
                return
            self.externals.append(location)
            why = escapes_folder(location)
            if why:
                self.sink("High", "external-data-escape",
                          f"tensor {name!r} reads its data from {location!r} ({why}): a file outside the model folder")


def scan_onnx(buf: Buf, sink: Sink) -> list[str]:
    """Walk the model; returns the external data locations it names."""
    walker = _Walker(sink)
    try:
        walker.model(buf)
    except WireError as exc:
        sink("High", "parse-error", f"ONNX protobuf is malformed: {exc}")
    return walker.externals


__all__ = ["escapes_folder", "fields", "looks_like_onnx", "scan_onnx"]
