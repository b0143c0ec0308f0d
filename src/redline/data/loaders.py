"""DATA specs and arrays by role -> Dataset.

Forms: ``builtin:NAME``, ``npz:PATH``, ``csv:PATH#label=COL``, and one file per role as
``ROLE=SPEC,ROLE=SPEC`` (e.g. ``train=csv:a.csv#label=y,test=npz:t.npz,deploy=csv:new.csv``;
roles train, test, pool and deploy, a sample from where the model runs now, whose CSV
needs no ``label``: without one its rows are inputs only). A file spec may
end in ``#key=value&...`` options: ``csv`` needs ``label`` (or ``unlabelled=true`` for
inputs without labels); both kinds take ``task`` (``classification`` or ``regression``) and,
for a file that holds one ``x, y`` table, ``split=train:0.6,test:0.2,pool:0.2`` with
``seed`` (default 0). Without ``split`` such a table is the ``test`` role: rows of unknown
origin are never silently called the target's training data. A split never makes the
deploy role (rows cut from the same table show no shift). The older ``test=F&pool=F``
options still ask for a split (train gets the rest).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from ..errors import DataError
from .arrays import SplitOptions, dataset_from_arrays
from .base import REFERENCE_ROLES, Dataset
from .builtin import BUILTIN_NAMES, load_builtin
from .files import _numeric_column, _read_rows, load_csv, load_npz
from .split import parse_split, split_fractions

SPEC_FORMS = ("builtin:NAME, npz:PATH, csv:PATH#label=COL or ROLE=SPEC,ROLE=SPEC (roles train, test, pool, deploy); "
              "env:ID for agents")
_SPLIT_KEYS = ("split", "test", "pool", "seed", "task")
_ALLOWED_KEYS = {"npz": _SPLIT_KEYS, "csv": ("label", "unlabelled") + _SPLIT_KEYS}
# Keys of an arrays-by-role mapping that describe the data rather than hold it.
_MAPPING_META = ("feature_names", "class_names", "modality", "task", "split", "seed")
# A per-role spec starts with ROLE=; its parts are cut at commas that start the next ROLE=.
_ROLE_PREFIX = re.compile(r"^\s*(train|test|pool|deploy)\s*=")
_ROLE_CUT = re.compile(r",\s*(?=(?:train|test|pool|deploy)\s*=)")

__all__ = ["BUILTIN_NAMES", "SPEC_FORMS", "as_dataset", "load_data"]


def load_data(spec: str) -> Dataset:
    """Load the data set a DATA spec names; DataError with a one-line reason if it cannot."""
    if not isinstance(spec, str):
        raise DataError(f"a data spec is a string ({SPEC_FORMS}), got {type(spec).__name__}")
    if _ROLE_PREFIX.match(spec):
        return _load_by_role(spec)
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "env" and sep:
        # An environment is the data of an agent (redline.envs; needs gymnasium).
        from ..envs.spec import load_env_data

        return load_env_data(rest, spec)  # type: ignore[return-value]
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
    split = _split_options(options)
    if kind == "npz":
        return load_npz(path, split, spec)
    if options.get("unlabelled"):
        if "label" in options:
            raise DataError("csv options label and unlabelled exclude each other")
        return _load_unlabelled_csv(path, split, spec)
    if "label" not in options:
        raise DataError(f"csv data needs the label column: csv:{location}#label=COLUMN "
                        "(or #unlabelled=true for inputs without labels)")
    return load_csv(path, options["label"], split, spec)


def as_dataset(obj: Any, *, name: str | None = None) -> Dataset:
    """A :class:`Dataset` from a Dataset (returned as is), a DATA spec, an ``.npz`` path, or arrays by role.

    A mapping holds any of ``x_train, y_train, x_test, y_test, x_pool, y_pool, x_deploy,
    y_deploy`` (a role
    without its ``y`` is unlabelled), or a single ``x, y`` pair, which is the test role
    unless the mapping asks for a ``split`` (``{"train": 0.6, "test": 0.4}`` or
    ``"train:0.6,test:0.4"``, with an optional ``seed``). It may add ``feature_names``,
    ``class_names``, ``modality`` and ``task``.
    """
    if isinstance(obj, Dataset) or getattr(obj, "task", None) == "control":  # arrays, or an environment
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
        fractions = meta.get("split")
        if isinstance(fractions, str):
            fractions = parse_split(fractions)
        return dataset_from_arrays(
            arrays,
            name=name or "arrays",
            spec="arrays",
            options=SplitOptions(fractions=fractions, seed=int(meta.get("seed", 0)),
                                 task=meta.get("task", "classification")),
            feature_names=meta.get("feature_names"),
            class_names=meta.get("class_names"),
            modality=meta.get("modality"),
        )
    raise DataError(f"cannot use a {type(obj).__name__} as data: give a Dataset, arrays by role or {SPEC_FORMS}")


def _split_options(options: dict[str, Any]) -> SplitOptions:
    """A split only when the spec asks for one (``split=``, or the older ``test=``/``pool=``)."""
    task = options.get("task", "classification")
    if "split" in options and ({"test", "pool"} & set(options)):
        raise DataError("give the split as split=train:0.6,test:0.2,pool:0.2 or as test=/pool=, not both")
    if "split" in options:
        fractions = options["split"]
    elif {"test", "pool"} & set(options):
        train, test, pool = split_fractions(options.get("test", 0.25), options.get("pool", 0.25))
        fractions = {role: share for role, share in zip(REFERENCE_ROLES, (train, test, pool)) if share > 0}
    elif "seed" in options:
        raise DataError("seed= sets the seed of a split; ask for one with split=train:0.6,test:0.2,pool:0.2")
    else:
        fractions = None
    return SplitOptions(fractions=fractions, seed=options.get("seed", 0), task=task)


def _load_unlabelled_csv(path: Path, split: SplitOptions, spec: str) -> Dataset:
    """A CSV table of inputs only: every column is a feature; the target will label the rows."""
    if split.fractions is not None:
        raise DataError(f"{path}: unlabelled rows cannot be split by label; give one file per role instead")
    header, rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: has a header but no data rows")
    columns = list(zip(*(values for _, values in rows)))
    lines = [line for line, _ in rows]
    x = np.stack([_numeric_column(columns[i], header[i], lines, path) for i in range(len(header))], axis=1)
    return dataset_from_arrays({"x": x}, name=path.stem, spec=spec, options=split, feature_names=header)


def _load_by_role(spec: str) -> Dataset:
    """``ROLE=SPEC,ROLE=SPEC``: each part names a file (or table) holding one role's rows."""
    parts: dict[str, Dataset] = {}
    for chunk in _ROLE_CUT.split(spec.strip()):
        role, _, sub = chunk.partition("=")
        role, sub = role.strip(), sub.strip()
        if role in parts:
            raise DataError(f"the {role} role is given twice in {spec!r}")
        if _ROLE_PREFIX.match(sub) or not sub:
            raise DataError(f"{role}= needs one data spec, e.g. {role}=csv:{role}.csv#label=y")
        part = load_data(_deploy_csv_unlabelled(sub) if role == "deploy" else sub)
        if len(part.roles) != 1:
            raise DataError(f"{role}={sub} holds the roles {', '.join(part.roles)}; a per-role spec names "
                            "a file of one role (a single x, y table, or one role's arrays)")
        parts[role] = part
    return _merge_roles(parts, spec)


def _deploy_csv_unlabelled(spec: str) -> str:
    """A deployment CSV that names no label column holds inputs only: its labels are optional."""
    kind, sep, rest = spec.partition(":")
    if kind.strip().lower() != "csv" or not sep:
        return spec
    _, fragment = _split_fragment(rest)
    keys = {key.strip() for key, _ in parse_qsl(fragment, keep_blank_values=True)}
    if keys & {"label", "unlabelled"}:
        return spec
    return f"{spec}{'&' if fragment else '#'}unlabelled=true"


def _merge_roles(parts: dict[str, Dataset], spec: str) -> Dataset:
    """One data set from per-role parts; they must agree on features and task, and their
    labels are put on one class numbering."""
    first = next(iter(parts.values()))
    for role, part in parts.items():
        if part.task != first.task:
            raise DataError(f"the {role} file is a {part.task} set, another is {first.task}")
        if part.shape != first.shape:
            raise DataError(f"the {role} rows have shape {part.shape}, other rows {first.shape}")
        if part.feature_names and first.feature_names and part.feature_names != first.feature_names:
            raise DataError(f"the {role} file's columns ({', '.join(part.feature_names)}) differ from "
                            f"another's ({', '.join(first.feature_names)}); use the same columns in the same order")
    arrays: dict[str, Any] = {}
    names = {tuple(p.class_names) for p in parts.values() if p.class_names}
    for role, part in parts.items():
        (own,) = part.roles
        arrays[f"x_{role}"] = part.x(own)
        y = part.y(own)
        if y is not None:
            # Files that encoded their text labels differently are decoded and numbered together.
            if len(names) > 1 and part.class_names:
                y = _decode(part.class_names, y)
            arrays[f"y_{role}"] = y
    feature_names = next((p.feature_names for p in parts.values() if p.feature_names), None)
    class_names = next(iter(names)) if len(names) == 1 else None
    return dataset_from_arrays(
        arrays,
        name="+".join(p.name for p in parts.values()),
        spec=spec,
        options=SplitOptions(task=first.task),
        feature_names=feature_names,
        class_names=class_names,
        modality=first.modality,
    )


def _decode(class_names: list[str], y: np.ndarray) -> np.ndarray:
    values = np.asarray(class_names)[y]
    try:
        return values.astype(np.float64)
    except ValueError:
        return values


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
    if key == "split":
        return parse_split(value)
    if key == "unlabelled":
        if value.lower() not in ("true", "1", "yes", ""):
            raise DataError(f"option unlabelled takes true, not {value!r}")
        return True
    if not value:
        raise DataError(f"option {key} has no value")
    return value
