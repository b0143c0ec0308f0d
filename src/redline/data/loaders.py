"""DATA specs (``builtin:NAME``, ``npz:PATH``, ``csv:PATH#label=COL``) and arrays by role -> Dataset.

A spec may end in ``#key=value&...`` options. ``csv`` needs ``label``; both file kinds take
``test`` and ``pool`` (shares of the rows, default 0.25 each), ``seed`` (default 0) and
``task`` (``classification`` or ``regression``) for splitting a single table into roles.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import DataError
from .arrays import SplitOptions, dataset_from_arrays
from .base import Dataset
from .builtin import BUILTIN_NAMES, load_builtin
from .files import load_csv, load_npz

SPEC_FORMS = "builtin:NAME, npz:PATH or csv:PATH#label=COL"
_SPLIT_KEYS = ("test", "pool", "seed", "task")
_ALLOWED_KEYS = {"npz": _SPLIT_KEYS, "csv": ("label",) + _SPLIT_KEYS}
# Keys of an arrays-by-role mapping that describe the data rather than hold it.
_MAPPING_META = ("feature_names", "class_names", "modality", "task")

__all__ = ["BUILTIN_NAMES", "SPEC_FORMS", "as_dataset", "load_data"]


def load_data(spec: str) -> Dataset:
    """Load the data set a DATA spec names; DataError with a one-line reason if it cannot."""
    if not isinstance(spec, str):
        raise DataError(f"a data spec is a string ({SPEC_FORMS}), got {type(spec).__name__}")
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("builtin", "npz", "csv"):
        raise DataError(f"unknown data spec {spec!r}: use {SPEC_FORMS}")
    if kind == "builtin":
        name = rest.strip()
        if not name:
            raise DataError(f"builtin: needs a name; known: {', '.join(BUILTIN_NAMES)}")
        return load_builtin(name)
    location, fragment = _split_fragment(rest)
    if not location:
        raise DataError(f"{kind}: needs a file path, e.g. {kind}:data.{kind}")
    options = _parse_options(fragment, kind)
    path = Path(location).expanduser()
    split = SplitOptions(**{k: v for k, v in options.items() if k in _SPLIT_KEYS})
    if kind == "npz":
        return load_npz(path, split, spec)
    if "label" not in options:
        raise DataError(f"csv data needs the label column: csv:{location}#label=COLUMN")
    return load_csv(path, options["label"], split, spec)


def as_dataset(obj: Any, *, name: str | None = None) -> Dataset:
    """A :class:`Dataset` from a Dataset (returned as is), a DATA spec, an ``.npz`` path, or arrays by role.

    A mapping holds ``x_train, y_train, x_test, y_test`` (and optionally ``x_pool, y_pool``)
    or a single ``x, y`` pair that is split 50/25/25 into train/test/pool; it may add
    ``feature_names``, ``class_names``, ``modality`` and ``task``.
    """
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, str):
        return load_data(obj)
    if isinstance(obj, os.PathLike):
        path = Path(obj)
        if path.suffix.lower() == ".npz":
            return load_data(f"npz:{path}")
        raise DataError(f"cannot tell how to read {path}; name it as {SPEC_FORMS}")
    if isinstance(obj, Mapping):
        arrays = {str(k): v for k, v in obj.items()}
        meta = {k: arrays.pop(k) for k in _MAPPING_META if k in arrays}
        return dataset_from_arrays(
            arrays,
            name=name or "arrays",
            spec="arrays",
            options=SplitOptions(task=meta.get("task", "classification")),
            feature_names=meta.get("feature_names"),
            class_names=meta.get("class_names"),
            modality=meta.get("modality"),
        )
    raise DataError(f"cannot use a {type(obj).__name__} as data: give a Dataset, arrays by role or {SPEC_FORMS}")


def _split_fragment(rest: str) -> tuple[str, str]:
    """Split ``PATH#options``; a ``#`` followed by no ``key=value`` stays part of the path."""
    location, sep, fragment = rest.rpartition("#")
    if not sep or "=" not in fragment:
        return rest.strip(), ""
    return location.strip(), fragment


def _parse_options(fragment: str, kind: str) -> dict[str, Any]:
    allowed = _ALLOWED_KEYS[kind]
    options: dict[str, Any] = {}
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        key = key.strip()
        if key not in allowed:
            raise DataError(f"unknown {kind} option {key!r}; allowed: {', '.join(allowed)}")
        if key in options:
            raise DataError(f"{kind} option {key!r} given twice")
        options[key] = _convert(key, value.strip())
    return options


def _convert(key: str, value: str) -> Any:
    try:
        if key in ("test", "pool"):
            return float(value)
        if key == "seed":
            return int(value)
    except ValueError:
        raise DataError(f"option {key}={value!r} is not a number") from None
    if not value:
        raise DataError(f"option {key} has no value")
    return value
