"""Tell model file formats apart by their content, without loading them.

The answer decides which loader to use and, when the static scanner is absent, whether a
file may be loaded at all, so it looks at bytes and archive member names, never runs code.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zipfile
from pathlib import Path

ONNX = "onnx"
SKOPS = "skops"
TORCHSCRIPT = "torchscript"
TORCH_PICKLE = "torch-pickle"  # torch.save archive: pickled Python objects
PICKLE = "pickle"
SAFETENSORS = "safetensors"
UNKNOWN = "unknown"

_PICKLE_PROTOCOLS = range(2, 6)


@dataclasses.dataclass(frozen=True)
class Probe:
    """What a detector looks at: the path, the first 16 bytes, and the member names when
    the file is a zip archive (None when it is not)."""

    path: Path
    head: bytes
    zip_names: tuple[str, ...] | None


def detect_format(path: str | Path) -> str:
    """The name of the file's format (see ``adapters.FILE_FORMATS``, tried in order), from its
    content, or UNKNOWN; the extension only breaks ONNX ties."""
    from .adapters import FILE_FORMATS, load

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    probe = Probe(path, head, _zip_names(path))
    for candidate in FILE_FORMATS:
        if load(candidate.detect)(probe):
            return candidate.name
    return UNKNOWN


def _zip_names(path: Path) -> tuple[str, ...] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            return tuple(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return ()  # a zip archive, but not one anything here loads


# -- detectors: each (probe) -> bool ----------------------------------------------------------------


def is_skops(probe: Probe) -> bool:
    return probe.zip_names is not None and "schema.json" in probe.zip_names


def is_torchscript(probe: Probe) -> bool:
    # torch archives put everything under one top folder: <name>/data.pkl, and TorchScript
    # adds the compiled code as <name>/code/... and <name>/constants.pkl.
    names = probe.zip_names or ()
    return any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in names)


def is_torch_pickle(probe: Probe) -> bool:
    return any(n == "data.pkl" or n.endswith("/data.pkl") for n in probe.zip_names or ())


def is_pickle(probe: Probe) -> bool:
    head = probe.head
    return probe.zip_names is None and len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS


def is_safetensors(probe: Probe) -> bool:
    return probe.zip_names is None and _looks_like_safetensors(probe.path, probe.head)


def is_onnx(probe: Probe) -> bool:
    return probe.zip_names is None and _looks_like_onnx(probe.path, probe.head)


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    """An 8-byte little-endian header length followed by that many bytes of JSON."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if length <= 0 or length > 100_000_000 or length + 8 > path.stat().st_size or head[8:9] != b"{":
        return False
    with open(path, "rb") as f:
        f.seek(8)
        try:
            return isinstance(json.loads(f.read(length)), dict)
        except (ValueError, UnicodeDecodeError):
            return False


def _looks_like_onnx(path: Path, head: bytes) -> bool:
    """ONNX is a protobuf ModelProto: it must parse and hold a versioned, non-empty graph."""
    try:
        import onnx
    except ImportError:  # cannot parse it here; trust the name, the loader will check
        return path.suffix.lower() == ".onnx"
    if not head:
        return False
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # any parse failure means "not ONNX"; the protobuf errors vary by version
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0
