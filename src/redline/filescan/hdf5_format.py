"""Legacy Keras ``.h5`` files: find the JSON ``model_config`` (and ``training_config``)
attributes. h5py is used read-only when installed; otherwise the JSON is located in the raw
file (HDF5 keeps small attributes contiguous in object headers or heaps)."""
from __future__ import annotations

import json
from typing import Any

from .buffer import Buf

MAGIC = b"\x89HDF\r\n\x1a\n"
ANCHORS = (b"model_config", b"training_config")
_DECODER = json.JSONDecoder()


def find_superblock(buf: Buf) -> int:
    """Offset of the HDF5 signature (0, 512, 1024, ...), or -1."""
    offset = 0
    while buf.start + offset + 8 <= buf.end:
        if buf.data[buf.start + offset : buf.start + offset + 8] == MAGIC:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return -1


def _configs_with_h5py(source: Any) -> list[tuple[str, Any]] | None:
    """The root attributes Keras reads (``source``: a path or a binary file object)."""
    try:
        import h5py  # optional, read-only use
    except ImportError:
        return None
    out = []
    try:
        with h5py.File(source, "r") as f:
            for key in ("model_config", "training_config"):
                if key in f.attrs:
                    raw = f.attrs[key]
                    raw = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                    out.append((key, json.loads(raw)))
    except (OSError, ValueError) as exc:
        raise ValueError(f"h5py cannot read it: {exc}") from exc
    return out


class _Work:
    """Characters the JSON decoder has been asked to read while searching the raw file: a file
    of many anchors each followed by a long unfinished object would otherwise cost
    (anchors x file size). A failed decode is charged the whole text (see ``decode``). Past
    ``limit`` the search stops and says so."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0

    def decode(self, text: str, pos: int) -> tuple[Any, int]:
        if self.limit is not None and self.spent > self.limit:
            raise _WorkExceeded
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except ValueError:
            # json's error builds its line number by counting newlines up to the error:
            # a failure costs its absolute offset, not the characters decoded
            self.spent += len(text)
            raise
        self.spent += end - pos
        return obj, end


class _WorkExceeded(Exception):
    pass


def _json_objects_after(text: str, start: int, work: _Work, limit: int = 4096) -> tuple[Any, int] | None:
    pos = text.find("{", start, start + limit)
    while pos >= 0:
        try:
            obj, end = work.decode(text, pos)
            return obj, end
        except ValueError:
            pos = text.find("{", pos + 1, start + limit)
    return None


def find_configs(buf: Buf, path: str | None = None,
                 max_work: int | None = None) -> tuple[list[tuple[str, Any]], list[str]]:
    """(configs found, problems). A named attribute whose JSON cannot be read is a problem, and
    so is a file read without h5py: the byte search below can report what it finds, but it
    cannot vouch that it saw the attributes Keras will read. ``max_work`` bounds the
    characters decoded by that byte search."""
    import io

    try:
        found = _configs_with_h5py(path if path is not None else io.BytesIO(buf.to_bytes()))
    except ValueError as exc:
        return [], [str(exc)]
    if found is not None:
        return found, []
    text = str(buf.view(), "latin-1")  # decoded from the buffer directly: one copy, not two
    configs: list[tuple[str, Any]] = []
    problems: list[str] = ["h5py is not installed: the HDF5 attributes Keras reads cannot be parsed exactly"]
    work = _Work(max_work)
    try:
        _search(text, configs, problems, work)
    except _WorkExceeded:
        problems.append(f"searching the file for JSON configs decoded more than {max_work} characters; "
                        "stopped (limit max_json_bytes)")
    return configs, problems


def _search(text: str, configs: list, problems: list, work: _Work) -> None:
    for anchor in ANCHORS:
        name = anchor.decode()
        pos = text.find(name)
        while pos >= 0:
            got = _json_objects_after(text, pos + len(name), work)
            if got is None:
                problems.append(f"attribute {name} found but its JSON value could not be read")
            else:
                obj, _end = got
                try:  # the bytes are UTF-8 in the file; re-decode strings faithfully
                    obj = json.loads(json.dumps(obj).encode("latin-1").decode("utf-8"))
                except (UnicodeError, ValueError):
                    pass
                configs.append((name, obj))
            pos = text.find(name, pos + len(name))
    # configs written as plain JSON anywhere else in the file (e.g. in a global heap)
    pos = text.find('{"class_name"')
    while pos >= 0:
        try:
            obj, end = work.decode(text, pos)
            configs.append(("json", obj))
            pos = text.find('{"class_name"', end)
        except ValueError:
            pos = text.find('{"class_name"', pos + 1)
