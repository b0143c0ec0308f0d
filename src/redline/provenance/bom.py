"""A CycloneDX 1.6 ML-BOM of a model folder: the model, its files, their hashes and scan verdicts.

The model component's SHA-256 is the same digest that ``redline sign`` puts in the signature's
subject, so a BOM and a signature of one folder can be matched without re-hashing. Every
file also carries the static scanner's verdict (FM09), so the BOM says what is in the
folder and whether any of it would run code when loaded.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..util.atomic import atomic_write_text
from .manifest import SIGNATURE_NAME, Manifest, describe_folder, model_folder, relative_inside

SPEC_VERSION = "1.6"
HASH_METHOD = "sha256 over the sorted per-file sha256 digests (model_signing v1.0 subject digest)"
# Worst first: the model's verdict is the worst of its files'.
_VERDICT_ORDER = {"unsafe": 2, "error": 1, "safe": 0}
# Metadata files are only read when small: they come from the (untrusted) model folder.
_MAX_METADATA_BYTES = 1 << 20

Scanner = Callable[[str], Any]


def default_scanner() -> Scanner:
    """``redline.filescan.scan_path``, imported only when a BOM is built with scanning on."""
    from ..filescan import scan_path

    return scan_path


def build_bom(
    directory: str | os.PathLike,
    *,
    scan: bool = True,
    scanner: Scanner | None = None,
    exclude: set[str] | None = None,
    timestamp: str | None = None,
    serial_number: str | None = None,
) -> dict[str, Any]:
    """The ML-BOM of ``directory`` as a JSON-ready dict.

    ``exclude`` holds relative names to leave out; ``model.sig`` always is, because the
    signature describes the model rather than being part of it.
    """
    from ..version import __version__

    root = model_folder(directory)
    manifest = describe_folder(root, {SIGNATURE_NAME} | set(exclude or ()))
    if scan and scanner is None:
        scanner = default_scanner()
    model_ref = f"model:{manifest.model_name}"

    files = []
    scans = []
    for resource in manifest.resources:
        component: dict[str, Any] = {
            "type": "file",
            "bom-ref": f"file:{resource.name}",
            "name": resource.name,
            "hashes": [{"alg": "SHA-256", "content": resource.digest}],
        }
        if scanner is not None:
            outcome = _scan_file(scanner, root / resource.name)
            scans.append(outcome)
            component["properties"] = _scan_properties(outcome)
        files.append(component)

    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": manifest.model_name,
        "hashes": [{"alg": "SHA-256", "content": manifest.root_digest}],
        "properties": [{"name": "redline:hash:method", "value": HASH_METHOD}],
    }
    if scans:
        model["properties"] = _model_scan_properties(scans) + model["properties"]
    card = model_card(root, manifest)
    if card:
        model["modelCard"] = card

    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number or f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp or _utc_now(),
            "tools": {"components": [{"type": "application", "name": "redline", "version": __version__}]},
        },
        "components": [model, *files],
        "dependencies": [{"ref": model_ref, "dependsOn": [f["bom-ref"] for f in files]}],
    }


def write_bom(directory: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Build the BOM and write it to ``out``, leaving ``out`` itself out when it lies in the folder."""
    out_path = Path(out)
    if out_path.is_dir():
        raise UsageError(f"--out {out_path} is a directory; give a file name")
    if not out_path.parent.is_dir():
        raise UsageError(f"{out_path.parent}: no such directory for the BOM")
    inside = relative_inside(Path(directory), out_path)
    exclude = set(kwargs.pop("exclude", None) or ()) | ({inside} if inside else set())
    bom = build_bom(directory, exclude=exclude, **kwargs)
    atomic_write_text(out_path, json.dumps(bom, indent=2) + "\n")  # replaces a symlink, never follows it
    return bom


def _scan_file(scanner: Scanner, path: Path) -> dict[str, Any]:
    """The scanner's verdict on one file; a scanner crash is an ``error`` verdict, not a dead BOM."""
    try:
        report = scanner(str(path))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the inventory of the others
        return {"format": "", "verdict": "error", "issues": 0, "error": f"{exc.__class__.__name__}: {exc}"}
    return {
        "format": str(getattr(report, "format", "") or ""),
        "verdict": str(getattr(report, "verdict", "error")),
        "issues": len(getattr(report, "issues", None) or ()),
    }


def _scan_properties(outcome: dict[str, Any]) -> list[dict[str, str]]:
    props = [
        {"name": "redline:format", "value": outcome["format"] or "unknown"},
        {"name": "redline:scan:verdict", "value": outcome["verdict"]},
        {"name": "redline:scan:issues", "value": str(outcome["issues"])},
    ]
    if "error" in outcome:
        props.append({"name": "redline:scan:error", "value": outcome["error"]})
    return props


def _model_scan_properties(scans: list[dict[str, Any]]) -> list[dict[str, str]]:
    formats = sorted({s["format"] for s in scans if s["format"] and s["format"] != "unknown"})
    worst = max((s["verdict"] for s in scans), key=lambda v: _VERDICT_ORDER.get(v, 1))
    return [
        {"name": "redline:format", "value": ",".join(formats) or "unknown"},
        {"name": "redline:scan:verdict", "value": worst},
        {"name": "redline:scan:issues", "value": str(sum(s["issues"] for s in scans))},
    ]


def model_card(root: Path, manifest: Manifest) -> dict[str, Any]:
    """The model-card facts the folder states itself; empty when it states none.

    Only two common, declarative sources are read: a top-level ``config.json`` (its
    ``model_type`` and ``architectures``) and the YAML front matter of ``README.md``
    (``pipeline_tag`` and ``datasets``). Nothing is guessed.
    """
    names = set(manifest.digests())
    params: dict[str, Any] = {}
    config = _read_json(root / "config.json") if "config.json" in names else None
    if isinstance(config, dict):
        if isinstance(config.get("model_type"), str):
            params["architectureFamily"] = config["model_type"]
        archs = config.get("architectures")
        if isinstance(archs, list) and archs and all(isinstance(a, str) for a in archs):
            params["modelArchitecture"] = ", ".join(archs)
    front = _front_matter(root / "README.md") if "README.md" in names else None
    if isinstance(front, dict):
        if isinstance(front.get("pipeline_tag"), str):
            params["task"] = front["pipeline_tag"]
        datasets = front.get("datasets")
        if isinstance(datasets, str):
            datasets = [datasets]
        if isinstance(datasets, list) and datasets and all(isinstance(d, str) for d in datasets):
            params["datasets"] = [{"type": "dataset", "name": d} for d in datasets]
    return {"modelParameters": params} if params else {}


def _read_small(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_METADATA_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path: Path) -> Any:
    text = _read_small(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _front_matter(path: Path) -> Any:
    text = _read_small(path)
    if not text or not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    from ..errors import UsageError
    from ..util.safe_yaml import load_yaml_text

    try:  # a model card is untrusted: bounded like every user YAML
        return load_yaml_text(text[3:end], f"front matter of {path}")
    except UsageError:
        return None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
