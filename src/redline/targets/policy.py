"""Agents as targets: a policy maps a batch of observations to one discrete action each.

A :class:`PolicyTarget` is a :class:`~redline.targets.base.Target` whose answers are
actions (``outputs == "labels"``, one class per action), so the same query ledger counts
what it is asked: one row per environment step the policy acted on, and a budget is a
number of steps. Its :class:`PolicyCapabilities` add whether it is deterministic and how
many actions it has; ``trainable`` means it carries a ``learner(env_data, seed)`` that
trains a fresh policy of its kind in an environment.

Loaded from: a Python callable or an object with ``predict(obs)`` (``py:module:attr``, or
in memory; a Stable-Baselines3 ``predict`` returns ``(actions, state)``, which is
accepted), a TorchScript file answering one score per action (``torch:PATH``), or an HTTP
endpoint (``POST {"observations": [...]}`` -> ``{"actions": [...]}``; see
:mod:`redline.targets.policy_http`).
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from ..util.imports import ImportRefused, import_attr
from ._common import check_labels, first_line
from .base import Capabilities, InputSpec, Target


@dataclasses.dataclass(frozen=True)
class PolicyCapabilities(Capabilities):
    """A policy's capabilities: those of any target plus ``kind``, ``deterministic`` and ``n_actions``."""

    outputs: str = "labels"
    kind: str = "policy"
    deterministic: bool = True
    n_actions: int = 0


def is_policy(target: Any) -> bool:
    """True when ``target`` is an agent (its capabilities say so)."""
    return getattr(getattr(target, "capabilities", None), "kind", None) == "policy"


class PolicyTarget(Target):
    """An agent under test; subclasses implement ``_act(observations) -> actions``."""

    def __init__(self, *, input_spec: InputSpec, n_actions: int, spec: str, deterministic: bool = True,
                 remote: bool = False, learner: Callable[[Any, int], PolicyTarget] | None = None):
        super().__init__()
        self.spec = spec
        self.input_spec = input_spec
        self.n_classes = int(n_actions)
        self.learner = learner
        self.capabilities = PolicyCapabilities(
            gradients=False, trainable=learner is not None, remote=remote,
            deterministic=bool(deterministic), n_actions=int(n_actions),
        )

    def _act(self, observations: np.ndarray) -> Any:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return check_labels(np.asarray(self._act(x)).reshape(-1), len(x), self.n_classes, self.spec)

    def act(self, observations: np.ndarray) -> np.ndarray:
        """One action per observation row; each row is one environment step on the ledger."""
        return self.predict(np.asarray(observations, dtype=np.float64))

    def relearn(self, env_data: Any, seed: int = 0) -> PolicyTarget:
        """A fresh policy trained by this policy's own learner in ``env_data``."""
        if self.learner is None:
            raise TargetError(f"{self.spec} has no training function")
        return self.learner(env_data, seed)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "capabilities": self.capabilities.to_dict(), "n_classes": self.n_classes}


class CallablePolicy(PolicyTarget):
    """A Python function of a batch of observations, or an object with ``predict(obs)``."""

    def __init__(self, policy: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy = policy
        method = getattr(policy, "predict", None)
        self._call = method if callable(method) else policy
        self._keyword = callable(method) and _accepts(method, "deterministic")

    def _act(self, observations: np.ndarray) -> Any:
        out = self._call(observations, deterministic=True) if self._keyword else self._call(observations)
        if isinstance(out, tuple):  # Stable-Baselines3: (actions, recurrent state)
            out = out[0]
        return out

    def _predict_raw(self, x: Any) -> Any:
        return self._act(x)


class ClassifierPolicy(PolicyTarget):
    """A model answering one score per action (TorchScript, a torch module): the best-scored action."""

    def __init__(self, model: Target, **kwargs: Any):
        super().__init__(**kwargs)
        self.model = model

    def _act(self, observations: np.ndarray) -> Any:
        out = np.asarray(self.model._predict(observations.astype(self.model.input_spec.dtype, copy=False)))
        return out.argmax(axis=1) if out.ndim == 2 else out

    def parameter_arrays(self) -> list[np.ndarray] | None:
        return self.model.parameter_arrays()


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# -- loading ---------------------------------------------------------------------------------------


def policy_input_spec(env_data: Any, config: Any = None) -> InputSpec:
    """Observations as the environment gives them, unless the target config says otherwise."""
    shape = getattr(config, "input_shape", None)
    if env_data is None:
        if shape is None:
            raise UsageError("a policy needs its environment (--data env:ID) or input.shape in the target config")
        return InputSpec(shape=tuple(shape), dtype="float32", lower=-np.inf, upper=np.inf)
    if shape is not None and tuple(shape) != tuple(env_data.observation_shape):
        raise UsageError(f"input.shape {list(shape)} does not match the environment's observations "
                         f"{list(env_data.observation_shape)}")
    return InputSpec(shape=tuple(env_data.observation_shape), dtype="float32",
                     lower=env_data.observation_low, upper=env_data.observation_high)


def _n_actions(env_data: Any, config: Any) -> int:
    if env_data is not None:
        return int(env_data.n_actions)
    n = getattr(config, "n_classes", None)
    if n is None:
        raise UsageError("a policy needs its environment (--data env:ID) or n_classes (the number of actions) "
                         "in the target config")
    return int(n)


def load_policy(target: Any, *, data: Any = None, config: Any = None) -> PolicyTarget:
    """The PolicyTarget ``target`` names: ``py:module:attr``, ``torch:PATH`` or a TorchScript
    path, an ``http(s)://`` URL, or an in-memory callable / object with ``predict``."""
    if isinstance(target, PolicyTarget):
        return target
    input_spec = policy_input_spec(data, config)
    n_actions = _n_actions(data, config)
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if text.startswith(("http://", "https://")):
            from .policy_http import HttpPolicy

            return HttpPolicy(text, config=config, input_spec=input_spec, n_actions=n_actions)
        if text.startswith("py:"):
            try:
                obj = import_attr(text[3:])
            except ImportRefused as exc:
                raise TargetError(f"{text}: {exc}") from None
            return open_policy_object(obj, input_spec=input_spec, n_actions=n_actions, spec=text, data=data)
        path = Path(text.removeprefix("torch:"))
        if not path.is_file():
            raise TargetError(f"{path}: no such policy file (a policy is py:module:attr, torch:PATH or a URL)")
        from .torch import load_torchscript

        spec = text if text.startswith("torch:") else f"torch:{path}"
        model = load_torchscript(path, spec=spec, input_spec=input_spec, n_classes=n_actions)
        return ClassifierPolicy(model, input_spec=input_spec, n_actions=n_actions, spec=spec)
    return open_policy_object(target, input_spec=input_spec, n_actions=n_actions,
                              spec=f"python:{type(target).__name__}", data=data)


def open_policy_object(obj: Any, *, input_spec: InputSpec, n_actions: int, spec: str, data: Any = None) -> PolicyTarget:
    """A policy around a Python object; it answers a few observations twice first (locally,
    not charged to any check), which tells whether it is deterministic."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        from .torch import TorchTarget

        model = TorchTarget(obj, input_spec=input_spec, n_classes=n_actions, spec=spec)
        return ClassifierPolicy(model, input_spec=input_spec, n_actions=n_actions, spec=spec)
    if not callable(obj) and not callable(getattr(obj, "predict", None)):
        raise TargetError(f"{spec}: a policy is a function of observations or an object with predict(obs), "
                          f"not a {type(obj).__name__}")
    policy = CallablePolicy(obj, input_spec=input_spec, n_actions=n_actions, spec=spec)
    sample = _sample_observations(data, input_spec)
    try:
        first, second = policy._predict(sample), policy._predict(sample)
    except TargetError:
        raise
    except Exception as exc:  # the user's policy may raise anything on a sample observation
        raise TargetError(f"{spec}: the policy fails on sample observations ({type(exc).__name__}: "
                          f"{first_line(exc)})") from None
    if not np.array_equal(first, second):
        policy.capabilities = dataclasses.replace(policy.capabilities, deterministic=False)
    return policy


def _sample_observations(data: Any, input_spec: InputSpec, n: int = 8) -> np.ndarray:
    """Observations the environment really produces (first steps under random actions)."""
    if data is None or not hasattr(data, "make"):
        return np.zeros((1, *input_spec.shape), dtype=np.float32)
    env = data.make()
    rng = np.random.default_rng(0)
    rows = []
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(n):
            rows.append(np.asarray(obs, dtype=np.float32))
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(data.n_actions)))
            if terminated or truncated:
                obs, _ = env.reset(seed=len(rows))
    finally:
        env.close()
    return np.stack(rows)
