"""Check parameters chosen by the user: ``--set CHECK.PARAM=VALUE``, ``--checks FILE`` and
the API's ``params={"FM01.pgd": {"epsilon": 0.1}}``.

Everything here runs at plan time, before a target is loaded or a query sent, so a typo in
a check id, a parameter name or a value is a one-line :class:`~redline.errors.UsageError`
that names what would have been valid.

A parameter's type is read from the check constructor's annotation (``int``, ``float``,
``str``, ``bool``, ``tuple[float, ...]``, unions with ``None``...). Values from YAML are
normalised to it (a list becomes a tuple, a whole number a float where a float is asked
for); anything else the annotation does not allow is refused. Ranges and choices are the
check's own business: :meth:`Check.validate_params` runs its ``_validate``.
"""
from __future__ import annotations

import dataclasses
import inspect
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "ParamSpec", "check_value", "command_line_params", "instantiate", "load_checks_file", "merge_params", "normalise_params",
    "param_specs", "parse_set", "resolve_checks",
]

_NO_DEFAULT = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter of a check as users see it: name, type, default and meaning."""

    name: str
    type: str
    default: Any
    doc: str

    def to_dict(self) -> dict[str, Any]:
        from ..findings import _jsonable

        return {"name": self.name, "type": self.type, "default": _jsonable(self.default), "doc": self.doc}


def param_specs(cls) -> list[ParamSpec]:
    """The parameters of a check class, in constructor order, with their documentation."""
    docs = getattr(cls, "param_docs", {}) or {}
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind is not p.POSITIONAL_OR_KEYWORD:
            continue
        annotation = p.annotation if p.annotation is not _NO_DEFAULT else ""
        type_text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        default = None if p.default is _NO_DEFAULT else p.default
        out.append(ParamSpec(p.name, type_text, default, docs.get(p.name, "")))
    return out


# -- types ------------------------------------------------------------------------------------

def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


_SEQUENCE = re.compile(r"^(tuple|list|Sequence)\[(.+?)(?:,\s*\.\.\.)?\]$")


def _fits(value: Any, type_text: str) -> tuple[bool, Any]:
    """(whether ``value`` fits the annotation, the value normalised to it)."""
    options = _split_top(type_text, "|")
    for option in options:
        ok, normalised = _fits_one(value, option)
        if ok:
            return True, normalised
    return False, value


def _fits_one(value: Any, option: str) -> tuple[bool, Any]:
    if option == "None":
        return value is None, value
    if option == "bool":
        return isinstance(value, bool), value
    if option == "int":  # numpy integers count; True and False do not
        return isinstance(value, numbers.Integral) and not isinstance(value, bool), value
    if option == "float":
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return True, value if isinstance(value, float) else float(value)
        return False, value
    if option == "str":
        return isinstance(value, str), value
    if option in ("dict", "Mapping") or option.startswith(("dict[", "Mapping[")):
        return isinstance(value, Mapping), value
    match = _SEQUENCE.match(option)
    if match:
        kind, item = match.groups()
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # a numpy array from Python code
        if not isinstance(value, (list, tuple)):
            return False, value
        items = []
        for v in value:
            ok, nv = _fits(v, item)
            if not ok:
                return False, value
            items.append(nv)
        return True, (list(items) if kind == "list" else tuple(items))
    return True, value  # an annotation this reader does not know: the check validates it


def _describe_type(type_text: str) -> str:
    words = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "true or false",
             "None": "null"}
    out = []
    for option in _split_top(type_text, "|"):
        match = _SEQUENCE.match(option)
        if match:
            out.append(f"a list of {words.get(match.group(2), match.group(2)).removeprefix('a ')}s")
        else:
            out.append(words.get(option, option))
    return " or ".join(out)


def check_value(check_id: str, spec: ParamSpec, value: Any) -> Any:
    """``value`` normalised to the parameter's type, or a UsageError saying what it takes."""
    if not spec.type:
        return value
    ok, normalised = _fits(value, spec.type)
    if not ok:
        raise UsageError(f"{check_id}.{spec.name} takes {_describe_type(spec.type)}, not {value!r}")
    return normalised


# -- user input -------------------------------------------------------------------------------

def _canonical_id(raw: str, known: Mapping[str, Any]) -> str:
    mode, dot, name = raw.strip().partition(".")
    key = f"{mode.upper()}{dot}{name}"
    if key not in known:
        raise UsageError(f"unknown check {raw.strip()!r} (known: {', '.join(known)})")
    return key


def parse_set(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["FM01.pgd.epsilon=0.1", "FM01.pgd.norm=l2"]`` -> ``{"FM01.pgd": {"epsilon": 0.1, "norm": "l2"}}``.

    VALUE is read as a YAML scalar or flow list (``0.1``, ``l2``, ``true``, ``null``,
    ``[0.01, 0.05]``); check ids and parameter names are checked later, by
    :func:`normalise_params`."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        check, dot, name = key.strip().rpartition(".")
        if not eq or not dot or not check or not name:
            raise UsageError(f"--set takes CHECK.PARAM=VALUE (e.g. FM01.pgd.epsilon=0.1), not {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {key.strip()}: cannot read {text!r} as a value (quote text, write lists as [a, b])") from None
        if isinstance(value, dict):
            raise UsageError(f"--set {key.strip()}: a value is a number, text, true/false, null or a list, not a mapping")
        out.setdefault(check, {})[name] = value
    return out


def load_checks_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """A YAML file mapping check ids to their parameters, e.g. ``FM01.pgd: {epsilon: 0.1}``."""
    from ..util.safe_yaml import read_yaml_mapping

    data = read_yaml_mapping(path, "checks file")
    out: dict[str, dict[str, Any]] = {}
    for check, params in data.items():
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise UsageError(f"checks file {path}: {check} must map parameter names to values, not {params!r}")
        out[str(check)] = {str(k): v for k, v in params.items()}
    return out


def merge_params(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Later layers win parameter by parameter (``--set`` over ``--checks``)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for check, params in (layer or {}).items():
            out.setdefault(check, {}).update(params)
    return out


def normalise_params(params: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Check ids made canonical (``fm01.pgd`` -> ``FM01.pgd``), parameter names checked and
    values normalised to their types. Raises UsageError naming the valid ids or names."""
    from . import all_checks

    if not params:
        return {}
    if not isinstance(params, Mapping):
        raise UsageError(f"params must map check ids to parameters, e.g. {{'FM01.pgd': {{'epsilon': 0.1}}}}, not {params!r}")
    known = all_checks()
    out: dict[str, dict[str, Any]] = {}
    for raw, values in params.items():
        check_id = _canonical_id(str(raw), known)
        if not isinstance(values, Mapping):
            raise UsageError(f"params[{raw!r}] must map parameter names to values, not {values!r}")
        specs = {s.name: s for s in param_specs(known[check_id])}
        target = out.setdefault(check_id, {})
        for name, value in values.items():
            if name not in specs:
                raise UsageError(f"{check_id} has no parameter {name!r} (has: {', '.join(specs) or 'none'})")
            target[name] = check_value(check_id, specs[name], value)
    return out


def command_line_params(
    set_items: Sequence[str] | None, checks_file: str | Path | None, select: Any
) -> dict[str, dict[str, Any]]:
    """The parameters of ``redline scan --checks FILE --set ...``: ``--set`` wins over the file.

    A checks file is often shared between scans with different ``--select``, so its entries
    for checks outside the selection are checked (ids, names, values) and then left out;
    a ``--set`` for such a check is an error (see :func:`resolve_checks`)."""
    from . import plan

    from_file = normalise_params(load_checks_file(checks_file)) if checks_file else {}
    planned = {cls.id for cls in plan(select)}
    from_file = {check: values for check, values in from_file.items() if check in planned}
    return merge_params(from_file, normalise_params(parse_set(set_items or [])))


def instantiate(cls, params: Mapping[str, Any] | None = None):
    """A check built with ``params`` (already normalised) and validated."""
    check = cls(**dict(params or {}))
    check.validate_params()
    return check


def resolve_checks(classes: Sequence[type], params: Mapping[str, Mapping[str, Any]] | None) -> list:
    """Instances of the planned check classes with the user's parameters, validated.

    Parameters for a check that the selection leaves out are a usage error: the user asked
    for a setting that would silently not be used."""
    chosen = normalise_params(params)
    planned = [cls.id for cls in classes]
    unused = [c for c in chosen if c not in planned]
    if unused:
        raise UsageError(f"parameters given for {', '.join(unused)}, which the selection does not include "
                         f"(selected: {', '.join(planned) or 'none'}); add it to --select or drop the parameters")
    return [instantiate(cls, chosen.get(cls.id)) for cls in classes]
