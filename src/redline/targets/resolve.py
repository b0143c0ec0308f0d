"""``load_target``: the one way the CLI and the Python API turn what the user named into a Target.

Accepted: ``zoo:NAME``, ``onnx:PATH``, ``sklearn:PATH`` (skops), ``torch:PATH``
(TorchScript), ``http(s)://`` URLs, a bare file path (its kind read from its content), or an
object: a Target (returned as is), a fitted scikit-learn estimator, a torch module, or a
callable. Data, when given, supplies what the model does not say: the input shape and
bounds, and the number of classes. The target config is applied last: input bounds and
feature constraints, a training recipe (``train``), and ``outputs: labels``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from . import formats
from ._common import first_line, random_inputs
from .base import InputSpec, LabelOnlyTarget, Target
from .config import TargetConfig, load_target_config

_FILE_SCHEMES = ("onnx", "sklearn", "torch")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+$")  # two or more letters, so C:\ stays a path
_SUFFIX_FORMATS = {
    ".onnx": formats.ONNX,
    ".skops": formats.SKOPS,
    ".pt": formats.TORCHSCRIPT,
    ".pth": formats.TORCHSCRIPT,
}


def load_target(target: Any, *, data: Any = None, config: TargetConfig | str | Path | None = None) -> Target:
    """Build the Target that ``target`` names; see the module docstring for what it may be.

    ``data`` is a :class:`redline.data.base.Dataset`; ``config`` a TargetConfig or the path of
    a YAML target config.
    """
    cfg = _as_config(config)
    if isinstance(target, Target):
        return target if config is None else _apply_config(target, cfg, data)
    if isinstance(target, (str, os.PathLike)):
        loaded = _from_text(os.fspath(target), data, cfg)
    else:
        loaded = _from_object(
            target,
            _known_input_spec(data, cfg),
            n_classes=cfg.n_classes,
            n_classes_hint=_n_classes_hint(data, cfg),
            spec=f"python:{type(target).__name__}",
            outputs=cfg.outputs,
            data=data,
        )
    return _apply_config(loaded, cfg, data)


def _as_config(config: TargetConfig | str | Path | None) -> TargetConfig:
    if config is None:
        return TargetConfig()
    if isinstance(config, TargetConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_target_config(config)
    raise UsageError(f"config must be a TargetConfig or a path to a YAML file, not {type(config).__name__}")


# -- names and files ---------------------------------------------------------------------------


def _from_text(text: str, data: Any, cfg: TargetConfig) -> Target:
    if text.startswith(("http://", "https://")):
        from .http import HttpTarget

        return HttpTarget(
            text,
            config=cfg,
            input_spec=_data_input_spec(data),
            n_classes=_n_classes_hint(data, cfg),
            feature_names=getattr(data, "feature_names", None),
        )
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "zoo":
        return _from_zoo(rest)
    if sep and scheme in _FILE_SCHEMES:
        return _from_file(Path(rest), scheme, text, data, cfg)
    if sep and _SCHEME.match(scheme) and not Path(text).exists():
        raise UsageError(
            f"unknown target scheme {scheme!r} in {text!r}: use zoo:NAME, onnx:PATH, sklearn:PATH, torch:PATH, "
            "an http(s):// URL or a model file path"
        )
    return _from_file(Path(text), None, None, data, cfg)


def _from_zoo(name: str) -> Target:
    from .. import zoo

    return zoo.load_target(name)


def _from_file(path: Path, scheme: str | None, spec: str | None, data: Any, cfg: TargetConfig) -> Target:
    if not path.exists():
        raise TargetError(f"{path}: no such model file")
    if not path.is_file():
        raise TargetError(f"{path}: not a file (a model is a single .onnx, .skops or TorchScript file)")
    kind = {"onnx": formats.ONNX, "sklearn": formats.SKOPS, "torch": formats.TORCHSCRIPT}.get(scheme or "")
    if kind is None:
        kind = _guess_kind(path)
        spec = f"{_SCHEME_OF[kind]}:{path}"
    input_spec = _known_input_spec(data, cfg)
    if kind == formats.ONNX:
        from .onnx import load_onnx

        return load_onnx(
            path, spec=spec, input_spec=input_spec, n_classes=cfg.n_classes, n_classes_hint=_n_classes_hint(data, cfg)
        )
    if kind == formats.SKOPS:
        from .sklearn import load_skops

        target = load_skops(path, spec=spec, input_spec=input_spec, n_classes=cfg.n_classes)
        return _widen_classes(target, data, cfg)
    if input_spec is None:
        raise UsageError(
            f"{path}: a TorchScript model does not state its input shape; give data or input.shape in the target config"
        )
    from .torch import load_torchscript

    return load_torchscript(path, spec=spec, input_spec=input_spec, n_classes=cfg.n_classes)


_SCHEME_OF = {formats.ONNX: "onnx", formats.SKOPS: "sklearn", formats.TORCHSCRIPT: "torch"}


def _guess_kind(path: Path) -> str:
    """The loader for a bare path, from the content; files we never load are refused here."""
    kind = formats.detect_format(path)
    if kind in _SCHEME_OF:
        return kind
    if kind in (formats.PICKLE, formats.TORCH_PICKLE):
        from .gate import require_safe

        require_safe(path)  # explains why a pickle is refused, when it is
        raise TargetError(
            f"{path}: holds pickled Python objects, which redline does not load; "
            "export the model to ONNX, skops or TorchScript"
        )
    if kind == formats.SAFETENSORS:
        raise TargetError(
            f"{path}: safetensors files hold weights without the model; "
            "build the model in Python and pass it to redline.scan"
        )
    by_suffix = _SUFFIX_FORMATS.get(path.suffix.lower())
    if by_suffix is None:
        raise TargetError(
            f"{path}: cannot tell what kind of model this is; name it as onnx:PATH, sklearn:PATH or torch:PATH"
        )
    return by_suffix


# -- objects -------------------------------------------------------------------------------------


def _from_object(
    obj: Any,
    input_spec: InputSpec | None,
    *,
    n_classes: int | None,
    n_classes_hint: int | None,
    spec: str,
    outputs: str | None,
    data: Any = None,
) -> Target:
    """A Target around an in-memory model. ``n_classes`` is explicit, ``n_classes_hint`` a fallback."""
    if isinstance(obj, Target):
        return obj
    if _is_torch_module(obj):
        from .torch import TorchTarget, infer_n_classes

        input_spec = _require_input_spec(input_spec, spec, "a PyTorch module")
        return TorchTarget(
            obj, input_spec=input_spec, n_classes=n_classes or infer_n_classes(obj, input_spec, spec), spec=spec
        )
    if callable(getattr(obj, "predict", None)) and callable(getattr(obj, "fit", None)):
        from .sklearn import SklearnTarget

        if input_spec is None:
            n_features = getattr(obj, "n_features_in_", None)
            if n_features is None:
                raise UsageError(f"{spec}: cannot tell how many features the estimator takes; give data or input.shape")
            input_spec = InputSpec(shape=(int(n_features),), dtype="float64")
        from .regression import SklearnRegressorTarget, is_regressor

        if is_regressor(obj):
            return SklearnRegressorTarget(obj, input_spec=input_spec, spec=spec)
        target = SklearnTarget(obj, input_spec=input_spec, n_classes=n_classes, spec=spec)
        return target if n_classes else _widen_to(target, n_classes_hint)
    if callable(obj):
        return _from_callable(
            obj,
            _require_input_spec(input_spec, spec, "a Python callable"),
            n_classes,
            n_classes_hint,
            spec,
            outputs,
            data,
        )
    raise UsageError(
        f"cannot make a target from a {type(obj).__name__}: pass a fitted scikit-learn estimator, a torch module, "
        "a callable, a model file or a URL"
    )


def _from_callable(
    fn: Callable[..., Any],
    input_spec: InputSpec,
    n_classes: int | None,
    hint: int | None,
    spec: str,
    outputs: str | None,
    data: Any,
) -> Target:
    """Ask the function about one row to learn whether it answers probabilities or labels."""
    from .callable import CallableTarget

    row = np.asarray(data.any_x()[:1], dtype=input_spec.dtype) if data is not None else random_inputs(input_spec, 1)
    try:
        answer = np.asarray(fn(row))
    except Exception as exc:  # the user's function may raise anything on a sample row
        raise TargetError(
            f"{spec}: the function fails on a sample input ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    answers = "probabilities" if answer.ndim == 2 and answer.shape[1] > 1 else "labels"
    if outputs == "probabilities" and answers == "labels":
        raise UsageError(f"{spec}: the config says outputs: probabilities, but the function answers labels")
    n = n_classes or (answer.shape[1] if answers == "probabilities" else None) or hint
    if n is None:
        raise UsageError(f"{spec}: the function answers labels; give data or n_classes in the target config")
    return CallableTarget(fn, input_spec=input_spec, n_classes=n, outputs=answers, spec=spec)


def _is_torch_module(obj: Any) -> bool:
    """Checked without importing torch: a torch module exists only if torch is loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


# -- what data and config tell -------------------------------------------------------------------


def _data_input_spec(data: Any) -> InputSpec | None:
    if data is None:
        return None
    x = np.asarray(data.any_x())
    lower, upper = data.bounds
    feature_lower = feature_upper = None
    if x.ndim == 2 and getattr(data, "modality", "tabular") != "image":
        # a table: each column keeps its own range (images, even flattened, share the pixel range)
        rows = [np.asarray(p, np.float64) for p in (data.x_train, data.x_test, data.x_pool) if p is not None and len(p)]
        stacked = np.concatenate(rows)
        feature_lower = tuple(float(v) for v in stacked.min(axis=0))
        feature_upper = tuple(float(v) for v in stacked.max(axis=0))
    return InputSpec(
        shape=tuple(int(s) for s in x.shape[1:]),
        dtype=str(x.dtype) if x.dtype in (np.float32, np.float64) else "float32",
        lower=lower,
        upper=upper,
        feature_lower=feature_lower,
        feature_upper=feature_upper,
    )


def _known_input_spec(data: Any, cfg: TargetConfig) -> InputSpec | None:
    return cfg.apply_input(_data_input_spec(data), getattr(data, "feature_names", None))


def _n_classes_hint(data: Any, cfg: TargetConfig) -> int | None:
    if cfg.n_classes is not None:
        return cfg.n_classes
    return data.n_classes if data is not None else None


def _require_input_spec(spec: InputSpec | None, name: str, what: str) -> InputSpec:
    if spec is None:
        raise UsageError(
            f"{name}: {what} does not state its input shape; give data or input.shape in the target config"
        )
    return spec


def _widen_classes(target: Target, data: Any, cfg: TargetConfig) -> Target:
    return target if cfg.n_classes else _widen_to(target, _n_classes_hint(data, cfg))


def _widen_to(target: Any, n_classes: int | None) -> Target:
    """A scikit-learn model fitted without some class of the data still answers one column per class."""
    if n_classes is None or n_classes <= target.n_classes:
        return target
    from .sklearn import SklearnTarget

    return SklearnTarget(
        target.estimator,
        input_spec=target.input_spec,
        n_classes=n_classes,
        spec=target.spec,
        outputs=target.capabilities.outputs,
    )


# -- the config, after loading ------------------------------------------------------------------


def _apply_config(target: Target, cfg: TargetConfig, data: Any) -> Target:
    from .http import HttpTarget

    if not isinstance(target, HttpTarget):  # an HTTP target applied its config when built
        target.input_spec = _configured_input_spec(target, cfg, data)
    if cfg.train is not None:
        _set_trainer(target, _train_recipe(_import_train(cfg.train, cfg.base_dir), target))
    if (
        cfg.outputs == "labels"
        and target.capabilities.outputs == "probabilities"
        and not isinstance(target, HttpTarget)
    ):
        target = LabelOnlyTarget(target)
    return target


def _configured_input_spec(target: Target, cfg: TargetConfig, data: Any) -> InputSpec:
    spec = target.input_spec
    if cfg.input_shape is not None and tuple(cfg.input_shape) != tuple(spec.shape):
        raise UsageError(
            f"{cfg.source}: input.shape {list(cfg.input_shape)} does not match the model's {list(spec.shape)}"
        )
    return dataclasses.replace(
        spec,
        lower=spec.lower if cfg.lower is None else cfg.lower,
        upper=spec.upper if cfg.upper is None else cfg.upper,
        constraints=cfg.feature_constraints(getattr(data, "feature_names", None))
        if cfg.constraints
        else spec.constraints,
    )


def _set_trainer(target: Target, trainer: Callable[[np.ndarray, np.ndarray, int], Target]) -> None:
    target.trainer = trainer
    target.capabilities = dataclasses.replace(target.capabilities, trainable=True)


def _train_recipe(train: Callable[..., Any], target: Target) -> Callable[[np.ndarray, np.ndarray, int], Target]:
    """``trainer(x, y, seed)``: call the user's ``train(x, y[, seed=])`` and wrap the model it returns."""
    input_spec, n_classes, spec = target.input_spec, target.n_classes, target.spec
    takes_seed = _accepts_keyword(train, "seed")

    def trainer(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Target:
        model = train(x, y, seed=seed) if takes_seed else train(x, y)
        retrained = _from_object(model, input_spec, n_classes=n_classes, n_classes_hint=None, spec=spec, outputs=None)
        _set_trainer(retrained, trainer)
        return retrained

    return trainer


def _accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _import_train(ref: str, base_dir: Path | None) -> Callable[..., Any]:
    """Resolve ``module:function`` or ``path/to/file.py:function`` (relative to the config file)."""
    where, _, name = ref.rpartition(":")
    try:
        if where.endswith(".py") or "/" in where or os.sep in where:
            path = Path(where) if Path(where).is_absolute() or base_dir is None else base_dir / where
            if not path.is_file():
                raise UsageError(f"train: {path} does not exist")
            module_spec = importlib.util.spec_from_file_location(f"redline_user_train_{path.stem}", path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"train: cannot import {path}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UsageError:
        raise
    except Exception as exc:  # importing user code can fail in any way; say which and where
        raise UsageError(f"train: cannot import {where!r} ({type(exc).__name__}: {first_line(exc)})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"train: {where!r} has no function {name!r}")
    return fn
