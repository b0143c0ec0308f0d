"""Reading an exchange file someone else wrote, without trusting it.

A file is refused with a one-line error, before anything is built from it, when it is not a
regular file, is larger than MAX_BYTES, is not UTF-8, nests deeper than MAX_DEPTH, or stands
for more than MAX_VALUES values (YAML aliases expanded: the "billion laughs"). YAML goes
through redline's bounded safe loader, so tags such as ``!!python/object`` build nothing;
JSON through :mod:`json`, whose recursion and huge-integer failures become the same errors.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ...errors import DataError, UsageError
from ...util.safe_text import one_line
from ...util.safe_yaml import YamlLimits, load_yaml_text

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "read_document"]

MAX_BYTES = 4 * 1024 * 1024  # a hand-written report or case study is a few kilobytes
MAX_DEPTH = 32
MAX_VALUES = 100_000
_LIMITS = YamlLimits(max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_values=MAX_VALUES)


def read_document(path: str | Path) -> tuple[Any, str]:
    """The parsed document in ``path`` and how it was read (``json`` or ``yaml``).

    JSON is recognised by a ``.json`` suffix or a leading ``{``/``[``; anything else is
    read as YAML (JSON is YAML too, so a misnamed file still reads).
    """
    path = Path(path)
    name = f"exchange file {one_line(path)[:200]}"
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device could block or never end
            raise UsageError(f"{name} is not a regular file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{name} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{name} is larger than {MAX_BYTES:,} bytes; an exchange file this big is refused")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{name} is not UTF-8 text") from None
    if not text.strip():
        raise DataError(f"{name} is empty")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        return _json(text, name), "json"
    try:
        return load_yaml_text(text, name, _LIMITS), "yaml"
    except UsageError as exc:  # a malformed file is bad data, whatever the YAML loader calls it
        raise DataError(str(exc)) from None


def _json(text: str, name: str) -> Any:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DataError(f"{name} is nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise DataError(f"{name} is not valid JSON: {one_line(exc)[:160]}") from None
    check_shape(doc, name)
    return doc


def check_shape(doc: Any, name: str, max_depth: int = MAX_DEPTH) -> None:
    """Depth and value count of a parsed JSON document, walked without recursion."""
    stack = [(doc, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise DataError(f"{name} holds more than {MAX_VALUES:,} values; an exchange file this big is refused")
        if depth > max_depth:
            raise DataError(f"{name} is nested more than {max_depth} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
