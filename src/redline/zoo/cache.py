"""The on-disk cache of trained zoo models.

Each model is two files in ``<cache>/zoo``: the serialised model (``.safetensors`` or
``.skops``, never pickle) and a ``.json`` record with its SHA-256 and build facts. Both
are written atomically (temporary file, then ``os.replace``), the model first, so an
interrupted build leaves either no record or a record whose digest does not match; either
way the model is rebuilt. The cache folder is ``platformdirs.user_cache_dir("redline")``,
or ``$REDLINE_CACHE_DIR`` when set.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger("redline.zoo")

CACHE_ENV = "REDLINE_CACHE_DIR"


def cache_root() -> Path:
    """redline's cache folder (the zoo lives in its ``zoo`` subfolder)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is a dependency, but a bare checkout may lack it
        return Path.home() / ".cache" / "redline"
    return Path(user_cache_dir("redline"))


def zoo_dir() -> Path:
    return cache_root() / "zoo"


def cache_key(fingerprint: dict[str, Any]) -> str:
    """A short stable digest of everything that determines a model."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def model_paths(name: str, key: str, suffix: str) -> tuple[Path, Path]:
    """(model file, record file) for one cached model."""
    stem = zoo_dir() / f"{name}-{key}"
    return stem.with_suffix(f".{suffix}"), stem.with_suffix(".json")


def read(name: str, key: str, suffix: str) -> tuple[bytes, dict[str, Any]] | None:
    """The cached model bytes and record, or None when missing, incomplete or corrupt."""
    model_path, record_path = model_paths(name, key, suffix)
    try:
        data = model_path.read_bytes()
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("zoo cache for %s is unreadable (%s); rebuilding", name, exc)
        return None
    if not isinstance(record, dict) or record.get("sha256") != hashlib.sha256(data).hexdigest():
        log.warning("zoo cache file %s does not match its record; rebuilding", model_path)
        return None
    return data, record


def write(name: str, key: str, suffix: str, data: bytes, record: dict[str, Any]) -> Path | None:
    """Store a model and its record; returns the model path, or None if the cache is not writable."""
    model_path, record_path = model_paths(name, key, suffix)
    record = {**record, "sha256": hashlib.sha256(data).hexdigest()}
    try:
        _atomic_write(model_path, data)
        _atomic_write(record_path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))
    except OSError as exc:
        # A read-only or full disk should not stop a scan: the model is still in memory.
        log.warning("could not write the zoo cache in %s (%s); the model will be rebuilt next time", zoo_dir(), exc)
        return None
    return model_path


def read_record(name: str, key: str, suffix: str) -> dict[str, Any] | None:
    """The build record alone (no digest check), for descriptions."""
    try:
        record = json.loads(model_paths(name, key, suffix)[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
