"""``env:ID`` data: an environment an agent is tested in, and the safety spec of a user's own.

``env:redline/BoatRace-v0`` names a registered gymnasium id; ``env:module:factory`` (or
``env:path/to/file.py:factory``) a function that returns a ``gymnasium.Env``. What the
checks need beyond the reward comes from the environment itself (``info["performance"]``,
``info["side_effect"]``, ``metadata["failure_modes"]`` and ``metadata["shifts"]``, as
redline's worlds give them) or, for an environment that says nothing of safety, from a
:class:`SafetySpec` the factory carries as its ``redline_safety`` attribute (a SafetySpec or
a dict of the same fields)::

    def make_env(**kwargs):
        return MyEnv(**kwargs)

    make_env.redline_safety = {
        "performance": lambda obs, action, reward, next_obs, info: reward - info["damage"],
        "irreversible": lambda obs: bool(obs[4] == 0),   # e.g. the vase is broken
        "failure_modes": ["FM12", "FM13"],
    }

The loaded :class:`EnvData` carries the id, ``make(seed, shift=None)`` and the modes it tests.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import DataError
from ..util.imports import ImportRefused, import_attr

AGENT_MODES = ("FM12", "FM13", "FM14")
_SPEC_FIELDS = ("performance", "forbidden", "irreversible", "failure_modes", "shifts")


@dataclasses.dataclass(frozen=True)
class SafetySpec:
    """What a user's environment does not say about safety.

    ``performance(obs, action, reward, next_obs, info) -> float``: the true objective of a
    step (default: the reward, i.e. no hidden objective). ``forbidden(obs) -> bool``: states
    the agent must never enter; ``irreversible(obs) -> bool``: states the world cannot be
    brought back from. Entering either counts one side effect. ``failure_modes``: the modes
    the environment tests; ``shifts``: name -> factory keyword arguments of a shifted variant.
    """

    performance: Callable[..., float] | None = None
    forbidden: Callable[[np.ndarray], bool] | None = None
    irreversible: Callable[[np.ndarray], bool] | None = None
    failure_modes: tuple[str, ...] = ()
    shifts: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_value(cls, value: Any, where: str) -> SafetySpec:
        if isinstance(value, SafetySpec):
            spec = value
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_SPEC_FIELDS))
            if unknown:
                raise DataError(f"{where}: unknown safety spec key(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(_SPEC_FIELDS)}")
            fields = dict(value)
            fields["failure_modes"] = tuple(fields.get("failure_modes") or ())
            fields["shifts"] = dict(fields.get("shifts") or {})
            spec = cls(**fields)
        else:
            raise DataError(f"{where}: redline_safety must be a SafetySpec or a dict, not {type(value).__name__}")
        for name in ("performance", "forbidden", "irreversible"):
            if getattr(spec, name) is not None and not callable(getattr(spec, name)):
                raise DataError(f"{where}: safety spec {name} must be a function")
        return spec


def _safety_wrapper(env: Any, safety: SafetySpec) -> Any:
    """``env`` with ``info["performance"]`` and ``info["side_effect"]`` from the safety spec."""
    import gymnasium

    class SafetyInfo(gymnasium.Wrapper):
        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self._last = obs
            self._marked = self._marks(obs)
            # "side_effect" is only said where something counts it: its absence tells FM13 that
            # the environment cannot show side effects (0 would read as 'none happened').
            counted = {"side_effect": 0} if safety.forbidden or safety.irreversible else {}
            return obs, {**info, "performance": 0.0, **counted}

        def _marks(self, obs) -> tuple[bool, bool]:
            return (bool(safety.forbidden(obs)) if safety.forbidden else False,
                    bool(safety.irreversible(obs)) if safety.irreversible else False)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            info = dict(info)
            if "performance" not in info:
                perf = reward if safety.performance is None else safety.performance(self._last, action, reward, obs, info)
                info["performance"] = float(perf)
            marks = self._marks(obs)
            entered = sum(int(now and not before) for now, before in zip(marks, self._marked))
            if safety.forbidden or safety.irreversible or "side_effect" in info:
                info["side_effect"] = int(info.get("side_effect", 0)) + entered
            self._last, self._marked = obs, marks
            return obs, reward, terminated, truncated, info

    return SafetyInfo(env)


@dataclasses.dataclass
class EnvData:
    """An environment as the data of a scan (``task == "control"``: only agent checks read it)."""

    env_id: str
    factory: Callable[..., Any]
    failure_modes: tuple[str, ...]
    shifts: dict[str, dict[str, Any]]
    observation_shape: tuple[int, ...]
    observation_low: float
    observation_high: float
    n_actions: int
    safety: SafetySpec | None = None
    spec: str = ""
    name: str = ""
    task: str = "control"
    modality: str = "environment"
    roles: tuple[str, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def make(self, seed: int | None = None, shift: str | None = None) -> Any:
        """A fresh environment (the shifted variant named ``shift``), already reset with
        ``seed`` when one is given."""
        kwargs = {}
        if shift is not None:
            if shift not in self.shifts:
                raise DataError(f"{self.env_id} has no shift {shift!r} (has: {', '.join(self.shifts) or 'none'})")
            kwargs = dict(self.shifts[shift])
        env = self.factory(**kwargs)
        if self.safety is not None:
            env = _safety_wrapper(env, self.safety)
        if seed is not None:
            env.reset(seed=int(seed))
        return env

    # What the check contract asks of any data set.
    def has(self, role: str) -> bool:
        return False

    @property
    def n_classes(self) -> int:
        return self.n_actions

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "environment": self.env_id,
            "task": self.task,
            "failure_modes": list(self.failure_modes),
            "shifts": sorted(self.shifts),
            "observation_shape": list(self.observation_shape),
            "actions": self.n_actions,
            "safety_spec": self.safety is not None,
        }


def load_env_data(ref: str, spec: str | None = None) -> EnvData:
    """The EnvData an ``env:`` spec names (``ref`` is the part after ``env:``)."""
    ref = ref.strip()
    spec = spec or f"env:{ref}"
    if not ref:
        raise DataError("env: needs an environment, e.g. env:redline/BoatRace-v0 or env:module:factory")
    import gymnasium

    from . import WORLDS  # registers redline's worlds

    if ref in gymnasium.registry:
        env_spec = gymnasium.registry[ref]

        def factory(**kwargs: Any) -> Any:
            return gymnasium.make(ref, **kwargs)

        safety = None
        origin = ref
    elif ":" in ref:
        try:
            factory = import_attr(ref)
        except ImportRefused as exc:
            raise DataError(f"env:{ref}: {exc}") from None
        if not callable(factory):
            raise DataError(f"env:{ref} is not a function that returns an environment")
        raw = getattr(factory, "redline_safety", None)
        safety = None if raw is None else SafetySpec.from_value(raw, f"env:{ref}")
        env_spec, origin = None, ref
    else:
        known = ", ".join(sorted(WORLDS))
        raise DataError(f"unknown environment {ref!r}: use a registered gymnasium id (redline's: {known}) "
                        "or module:factory")
    return _inspect(origin, factory, safety, spec, env_spec)


def _inspect(env_id: str, factory: Callable[..., Any], safety: SafetySpec | None, spec: str, env_spec: Any) -> EnvData:
    """Make one environment to read its spaces and what it says about safety."""
    import gymnasium

    try:
        env = factory()
    except Exception as exc:  # a user's factory may fail in any way
        raise DataError(f"{spec}: making the environment failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(env, gymnasium.Env):
        raise DataError(f"{spec}: the factory returned a {type(env).__name__}, not a gymnasium.Env")
    try:
        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise DataError(f"{spec}: redline tests agents with discrete actions; the action space is {env.action_space}")
        if int(getattr(env.action_space, "start", 0)) != 0:
            raise DataError(f"{spec}: redline numbers actions from 0, and this action space starts at "
                            f"{int(env.action_space.start)} ({env.action_space}); wrap the environment to shift them")
        space = env.observation_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise DataError(f"{spec}: the observation space must be a Box (an array), not {type(space).__name__}")
        metadata = dict(getattr(env.unwrapped, "metadata", {}) or {})
        modes = tuple(safety.failure_modes if safety and safety.failure_modes else metadata.get("failure_modes") or ())
        shifts = dict(safety.shifts if safety and safety.shifts else metadata.get("shifts") or {})
        bad = [m for m in modes if m not in AGENT_MODES]
        if bad:
            raise DataError(f"{spec}: failure_modes {', '.join(bad)} are not modes of agents ({', '.join(AGENT_MODES)})")
        data = EnvData(
            env_id=env_id,
            factory=factory,
            failure_modes=modes or AGENT_MODES,
            shifts={str(k): dict(v) for k, v in shifts.items()},
            observation_shape=tuple(int(s) for s in space.shape),
            observation_low=float(np.min(space.low)),
            observation_high=float(np.max(space.high)),
            n_actions=int(env.action_space.n),
            safety=safety,
            spec=spec,
            name=env_id,
        )
        _require_performance(data, spec)
    finally:
        env.close()
    return data


def _require_performance(data: EnvData, spec: str) -> None:
    """An environment with no hidden objective cannot show reward gaming: say how to give one."""
    if data.safety is not None:
        return
    env = data.make()
    try:
        env.reset(seed=0)
        info = env.step(0)[4]
    finally:
        env.close()
    if "performance" not in info:
        raise DataError(f"{spec}: the environment gives no info['performance']; give its factory a safety spec "
                        "(redline_safety = {'performance': fn, 'irreversible': fn, ...}, see the README)")
