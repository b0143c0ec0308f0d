"""Tell model file formats apart by their content, without loading them.

The answer decides which loader to use and, when the static scanner is absent, whether a
file may be loaded at all, so it looks at bytes and archive member names, never runs code.
"""

from __future__ import annotations

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


def detect_format(path: str | Path) -> str:
    """One of the names above, from the file's content (the extension only breaks ONNX ties)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if zipfile.is_zipfile(path):
        return _zip_format(path)
    if len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        return PICKLE
    if _looks_like_safetensors(path, head):
        return SAFETENSORS
    if _looks_like_onnx(path, head):
        return ONNX
    return UNKNOWN


def _zip_format(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return UNKNOWN
    if "schema.json" in names:
        return SKOPS
    # torch archives put everything under one top folder: <name>/data.pkl, and TorchScript
    # adds the compiled code as <name>/code/... and <name>/constants.pkl.
    if any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in names):
        return TORCHSCRIPT
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return TORCH_PICKLE
    return UNKNOWN


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
