"""``load_target``: the one way the CLI and the Python API turn what the user named into a Target.

Accepted: what the adapter table (:mod:`redline.targets.adapters`) lists, i.e. ``zoo:NAME``,
``onnx:PATH``, ``sklearn:PATH`` (skops), ``torch:PATH`` (TorchScript), ``http(s)://`` URLs,
a bare file path (its kind read from its content), or an object: a Target (returned as is),
a torch module, a fitted scikit-learn estimator, or a callable. Data, when given, supplies
what the model does not say: the input shape and bounds, and the number of classes. The
target config is applied last: input bounds and feature constraints, a training recipe
(``train``), and ``outputs: labels``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from . import adapters, formats
from ._common import first_line
from .base import InputSpec, Target, observed_feature_bounds
from .config import TargetConfig, load_target_config


def load_target(target: Any, *, data: Any = None, config: TargetConfig | str | Path | None = None) -> Target:
    """Build the Target that ``target`` names; see the module docstring for what it may be.

    ``data`` is a :class:`redline.data.base.Dataset`; ``config`` a TargetConfig or the path of
    a YAML target config.
    """
    cfg = _as_config(config)
    if _names_policy(target, data, cfg):
        from .policy import load_policy  # agents: observations in, actions out

        return load_policy(target, data=data, config=cfg)
    if isinstance(target, Target):
        return target if config is None else _apply_config(target, cfg, data)
    if isinstance(target, (str, os.PathLike)):
        loaded = _from_text(os.fspath(target), data, cfg)
    else:
        loaded = _from_object(target, _request(f"python:{type(target).__name__}", data, cfg))
    if getattr(loaded.capabilities, "kind", None) == "policy":  # a zoo agent: nothing to configure
        return loaded
    return _apply_config(loaded, cfg, data)


def _names_policy(target: Any, data: Any, cfg: TargetConfig) -> bool:
    """An agent is asked for: the config says ``kind: policy``, the data is an environment
    (``env:``; the zoo serves its agents itself), or the target is a ``py:`` reference."""
    if isinstance(target, str) and target.startswith("zoo:"):
        return False
    if isinstance(target, Target):
        return False
    named_py = isinstance(target, str) and target.startswith("py:")
    return cfg.kind == "policy" or getattr(data, "task", None) == "control" or named_py


def _as_config(config: TargetConfig | str | Path | None) -> TargetConfig:
    if config is None:
        return TargetConfig()
    if isinstance(config, TargetConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_target_config(config)
    raise UsageError(f"config must be a TargetConfig or a path to a YAML file, not {type(config).__name__}")


# -- names and files ---------------------------------------------------------------------------


def _request(spec: str, data: Any, cfg: TargetConfig) -> adapters.LoadRequest:
    """What the loaders may use besides the source, from data and config."""
    return adapters.LoadRequest(
        spec=spec,
        input_spec=_known_input_spec(data, cfg),
        data_input_spec=_data_input_spec(data),
        n_classes=cfg.n_classes,
        n_classes_hint=_n_classes_hint(data, cfg),
        outputs=cfg.outputs,
        data=data,
        config=cfg,
        feature_names=getattr(data, "feature_names", None),
    )


def _from_text(text: str, data: Any, cfg: TargetConfig) -> Target:
    adapter, source = adapters.parse(text)
    if adapter is not None and adapter.kind == "file":
        return _from_file(Path(source), adapter, text, data, cfg)
    if adapter is not None:
        return adapters.load(adapter.loader)(source, _request(text, data, cfg))
    scheme = adapters.unknown_scheme(text)
    if scheme is not None and not Path(text).exists():
        raise UsageError(
            f"unknown target scheme {scheme!r} in {text!r}: use "
            f"{adapters.either(adapters.forms() + ['a model file path'])}"
        )
    return _from_file(Path(text), None, None, data, cfg)


def _from_file(
    path: Path, adapter: adapters.Adapter | None, spec: str | None, data: Any, cfg: TargetConfig
) -> Target:
    if not path.exists():
        raise TargetError(f"{path}: no such model file")
    if not path.is_file():
        kinds = adapters.either([f.as_file for f in adapters.loadable_formats()])
        raise TargetError(f"{path}: not a file (a model is a single {kinds} file)")
    if adapter is None:
        adapter = _guess_adapter(path)
        spec = f"{adapter.scheme}:{path}"
    return adapters.load(adapter.loader)(path, _request(spec or str(path), data, cfg))


def _guess_adapter(path: Path) -> adapters.Adapter:
    """The adapter for a bare path, from the content; files we never load are refused here."""
    kind = formats.detect_format(path)
    adapter = adapters.file_adapter_for(kind)
    if adapter is not None:
        return adapter
    known = adapters.file_format(kind)
    if known is not None and known.refusal:
        if not known.code_free:
            from .gate import require_safe

            require_safe(path)  # explains why a format that can run code is refused, when it is
        loadable = adapters.either([f.title for f in adapters.loadable_formats()])
        raise TargetError(f"{path}: {known.refusal.format(loadable=loadable)}")
    suffix = path.suffix.lower()
    by_suffix = next((a for a in adapters.of_kind("file") if suffix in a.suffixes), None)
    if by_suffix is None:
        raise TargetError(
            f"{path}: cannot tell what kind of model this is; name it as {adapters.either(adapters.forms('file'))}"
        )
    return by_suffix


# -- objects -------------------------------------------------------------------------------------


def _from_object(obj: Any, request: adapters.LoadRequest) -> Target:
    """A Target around an in-memory model, by the first object adapter that accepts it."""
    if isinstance(obj, Target):
        return obj
    for adapter in adapters.of_kind("object"):
        if adapters.load(adapter.accepts)(obj):
            return adapters.load(adapter.loader)(obj, request)
    raise UsageError(
        f"cannot make a target from a {type(obj).__name__}: pass a fitted scikit-learn estimator, a torch module, "
        "a callable, a model file or a URL"
    )


# -- what data and config tell -------------------------------------------------------------------


def _data_input_spec(data: Any) -> InputSpec | None:
    if data is None or getattr(data, "task", None) == "control":  # an environment: no arrays
        return None
    x = np.asarray(data.any_x())
    lower, upper = data.bounds
    if upper <= lower:  # every value alike: the data shows no range at all, assume a unit one (as InputSpec.from_data)
        upper = lower + 1.0
    feature_lower = feature_upper = None
    if x.ndim == 2 and getattr(data, "modality", "tabular") != "image":
        # a table: each column keeps its own range (images, even flattened, share the pixel range)
        rows = [np.asarray(p, np.float64) for p in (data.x_train, data.x_test, data.x_pool) if p is not None and len(p)]
        feature_lower, feature_upper = observed_feature_bounds(np.concatenate(rows), lower, upper)
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


# -- the config, after loading ------------------------------------------------------------------


def _apply_config(target: Target, cfg: TargetConfig, data: Any) -> Target:
    # Imported here: the defences import this package's base module, so not at its import.
    from ..defences.labels_only import LabelOnlyTarget
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
        retrained = _from_object(model, adapters.LoadRequest(spec=spec, input_spec=input_spec, n_classes=n_classes))
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
            # Registered while it runs, as an import would: dataclasses, pickle and typing
            # look a module's classes up in sys.modules by name.
            sys.modules[module_spec.name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_spec.name, None)
                raise
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
