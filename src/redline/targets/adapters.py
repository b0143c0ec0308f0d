"""The one table of target adapters: how a TARGET names each, and which code loads it.

Everything that needs to know the adapters reads this table: :func:`redline.targets.load_target`
(schemes, URL prefixes, file formats and suffixes, in-memory objects), the file-scan gate
(which formats load without the static scanner), the scan pipeline (which TARGET strings
name a model file to scan first) and the ``scan --help`` text. Loaders and detectors are
named as ``"module:function"`` strings and imported only when used, so this module stays
free of numpy and of every framework (the CLI reads it at start-up).

A loader is called as ``loader(source, request)``: ``source`` is the path, URL, name or
object the TARGET named, ``request`` a :class:`LoadRequest`; it returns a
:class:`~redline.targets.base.Target` or raises TargetError/UsageError in one line.

Adding an adapter: write its module (the loader, and the Target class with the capability
hooks it can offer), add one entry below, and a test. See docs/architecture.md.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any, Callable, Literal

from . import formats

Kind = Literal["name", "url", "file", "object"]


@dataclasses.dataclass(frozen=True)
class Adapter:
    """One way to name a model under test.

    ``kind`` says how it is named: ``name`` (``scheme:NAME``), ``url`` (``prefixes``),
    ``file`` (``scheme:PATH``, or a bare path whose content ``detect_format`` calls
    ``file_format``, or failing that whose suffix is in ``suffixes``), ``object`` (an
    in-memory model for which the ``accepts`` predicate is true; objects are tried in table
    order). ``hooks`` lists the capability hooks of :class:`~redline.targets.base.Target`
    that its targets offer (checked against ``target_class`` by the tests).
    """

    name: str
    kind: Kind
    loader: str
    description: str
    form: str = ""  # how a TARGET names it, in messages: "onnx:PATH"
    help_form: str = ""  # the same in ``scan --help`` when it differs
    scheme: str | None = None
    prefixes: tuple[str, ...] = ()
    file_format: str | None = None
    suffixes: tuple[str, ...] = ()
    accepts: str | None = None
    target_class: str | None = None
    hooks: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A model file format told apart by content (``detect(probe) -> bool``, tried in table order).

    ``code_free`` formats run no code while loading, so the file-scan gate lets them through
    when the static scanner is not installed. A format with a ``refusal`` is one redline
    recognises but never loads; the message says why (``{loadable}`` is replaced by the
    formats that do load). ``as_file`` is how "a single ... file" names it.
    """

    name: str
    title: str
    detect: str
    code_free: bool = False
    as_file: str = ""
    refusal: str = ""


@dataclasses.dataclass(frozen=True)
class LoadRequest:
    """What a loader may use besides the source: everything data and the target config tell.

    ``input_spec`` combines data and config; ``data_input_spec`` is the data's alone (a
    service applies its config itself). ``n_classes`` is stated by the config,
    ``n_classes_hint`` (config, else data) is only a fallback.
    """

    spec: str
    input_spec: Any = None
    data_input_spec: Any = None
    n_classes: int | None = None
    n_classes_hint: int | None = None
    outputs: str | None = None
    data: Any = None
    config: Any = None
    feature_names: Any = None


ADAPTERS: tuple[Adapter, ...] = (
    Adapter(
        "zoo", "name", "redline.zoo.build:open_zoo", "a model of redline's zoo, by name",
        form="zoo:NAME", scheme="zoo",
    ),
    Adapter(
        "onnx", "file", "redline.targets.onnx:open_file", "an ONNX graph, run by onnxruntime",
        form="onnx:PATH", scheme="onnx", file_format=formats.ONNX, suffixes=(".onnx",),
        target_class="redline.targets.onnx:OnnxTarget", hooks=("parameter_arrays",),
    ),
    Adapter(
        "sklearn", "file", "redline.targets.sklearn:open_file", "a scikit-learn model saved with skops",
        form="sklearn:PATH", help_form="sklearn:PATH (.skops)", scheme="sklearn", file_format=formats.SKOPS,
        suffixes=(".skops",), target_class="redline.targets.sklearn:SklearnTarget",
        hooks=("parameter_arrays", "sklearn_estimator"),
    ),
    Adapter(
        "torch", "file", "redline.targets.torch:open_file", "a TorchScript model",
        form="torch:PATH", help_form="torch:PATH (TorchScript)", scheme="torch", file_format=formats.TORCHSCRIPT,
        suffixes=(".pt", ".pth"), target_class="redline.targets.torch:TorchTarget",
        hooks=("parameter_arrays", "torch_module"),
    ),
    Adapter(
        "http", "url", "redline.targets.http:open_url", "a model behind an HTTP JSON endpoint",
        form="an http(s):// URL", help_form="an http(s) URL", prefixes=("http://", "https://"),
        target_class="redline.targets.http:HttpTarget", hooks=("raw_transport",),
    ),
    Adapter(
        "torch-module", "object", "redline.targets.torch:open_module", "an in-memory torch.nn.Module",
        accepts="redline.targets.adapters:is_torch_module", target_class="redline.targets.torch:TorchTarget",
        hooks=("parameter_arrays", "torch_module"),
    ),
    Adapter(
        "sklearn-estimator", "object", "redline.targets.sklearn:open_estimator",
        "a fitted scikit-learn classifier or regressor",
        accepts="redline.targets.adapters:is_estimator", target_class="redline.targets.sklearn:SklearnTarget",
        hooks=("parameter_arrays", "sklearn_estimator"),
    ),
    Adapter(
        "callable", "object", "redline.targets.callable:open_callable",
        "a Python function answering probabilities or labels",
        accepts="builtins:callable", target_class="redline.targets.callable:CallableTarget",
    ),
)

# Content detection order matters: zip archives first (TorchScript before torch-pickle,
# whose members TorchScript archives also hold), then the byte-level formats.
FILE_FORMATS: tuple[FileFormat, ...] = (
    FileFormat(formats.SKOPS, "skops", "redline.targets.formats:is_skops", code_free=True, as_file=".skops"),
    FileFormat(formats.TORCHSCRIPT, "TorchScript", "redline.targets.formats:is_torchscript", as_file="TorchScript"),
    FileFormat(
        formats.TORCH_PICKLE, "torch.save archive", "redline.targets.formats:is_torch_pickle",
        refusal="holds pickled Python objects, which redline does not load; export the model to {loadable}",
    ),
    FileFormat(
        formats.PICKLE, "pickle", "redline.targets.formats:is_pickle",
        refusal="holds pickled Python objects, which redline does not load; export the model to {loadable}",
    ),
    FileFormat(
        formats.SAFETENSORS, "safetensors", "redline.targets.formats:is_safetensors", code_free=True,
        refusal="safetensors files hold weights without the model; build the model in Python and pass it to redline.scan",
    ),
    FileFormat(formats.ONNX, "ONNX", "redline.targets.formats:is_onnx", code_free=True, as_file=".onnx"),
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+$")  # two or more letters, so C:\ stays a path


# -- looking things up ---------------------------------------------------------------------------


# The static model scanner every model file passes before loading (targets/gate.py). It sits
# in a higher layer (it also writes findings and SARIF), so it is named here, not imported.
SCANNER = "redline.filescan"


def load_module(name: str) -> Any:
    """The module a table entry names (imported now)."""
    return importlib.import_module(name)


def load(ref: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` reference names (imported now)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def of_kind(*kinds: Kind) -> list[Adapter]:
    return [a for a in ADAPTERS if a.kind in kinds]


def file_adapter_for(file_format: str) -> Adapter | None:
    return next((a for a in of_kind("file") if a.file_format == file_format), None)


def file_format(name: str) -> FileFormat | None:
    return next((f for f in FILE_FORMATS if f.name == name), None)


def parse(text: str) -> tuple[Adapter | None, str]:
    """``(adapter, source)`` for a TARGET string: the adapter its URL prefix or scheme names
    (None for a bare path or an unknown scheme) and the rest of the string."""
    for adapter in of_kind("url"):
        if text.startswith(adapter.prefixes):
            return adapter, text
    scheme, sep, rest = text.partition(":")
    if sep:
        for adapter in of_kind("name", "file"):
            if adapter.scheme == scheme:
                return adapter, rest
    return None, text


def unknown_scheme(text: str) -> str | None:
    """The scheme of ``text`` when it looks like ``scheme:...`` but no adapter has it."""
    scheme, sep, _ = text.partition(":")
    adapter, _ = parse(text)
    if adapter is None and sep and _SCHEME.match(scheme):
        return scheme
    return None


def names_service(text: str) -> bool:
    """True when a TARGET string names a remote service (a URL adapter)."""
    adapter, _ = parse(text)
    return adapter is not None and adapter.kind == "url"


def model_file_path(text: str) -> Path | None:
    """The file a TARGET string names (with or without a file scheme), or None for a name
    or URL. The file need not exist."""
    adapter, source = parse(text)
    if adapter is not None and adapter.kind != "file":
        return None
    return Path(source)


# -- wording, for messages and help ----------------------------------------------------------------


def either(words: list[str], conjunction: str = "or") -> str:
    """``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def forms(*kinds: Kind) -> list[str]:
    """How TARGETs name the adapters (of ``kinds``, or all), in table order."""
    return [a.form for a in ADAPTERS if a.form and (not kinds or a.kind in kinds)]


def target_help() -> str:
    """The TARGET line of ``scan --help``."""
    shown = [a.help_form or a.form for a in ADAPTERS if a.form]
    return f"TARGET: {', '.join(shown[:-1])}, or {shown[-1]}."


def loadable_formats() -> list[FileFormat]:
    """The file formats an adapter loads, in the order of the adapters."""
    by_name = {f.name: f for f in FILE_FORMATS}
    return [by_name[a.file_format] for a in of_kind("file") if a.file_format in by_name]


def code_free_formats() -> list[FileFormat]:
    """Formats that run no code while loading: the loadable ones first, then the rest."""
    loadable = loadable_formats()
    return [f for f in loadable if f.code_free] + [f for f in FILE_FORMATS if f.code_free and f not in loadable]


# -- predicates for in-memory objects (import no framework) ---------------------------------------


def is_torch_module(obj: Any) -> bool:
    """Checked without importing torch: a torch module exists only if torch is loaded."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def is_estimator(obj: Any) -> bool:
    """Anything with scikit-learn's ``fit`` and ``predict``."""
    return callable(getattr(obj, "predict", None)) and callable(getattr(obj, "fit", None))
