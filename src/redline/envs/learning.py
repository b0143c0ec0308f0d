"""A plain tabular Q-learner for any gymnasium environment with discrete actions.

It learns from the reward the environment pays (``objective="reward"``) or from the
hidden ``info["performance"]`` (``objective="performance"``), so the same learner gives
both a reward maximiser and its twin that learned the true objective. States are the
observation's values (rounded to integers) at ``features``, all of them by default: a
learner that keys on the agent's position alone memorises a path, one that keys on the
whole map can plan around what it sees.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

OBJECTIVES = ("reward", "performance")


class NotTabular(ValueError):
    """The environment does not fit a table (see ``q_learning``'s ``max_states``)."""


@dataclasses.dataclass(frozen=True)
class QSettings:
    episodes: int = 1500
    gamma: float = 0.95
    alpha: float = 0.5
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    seed: int = 0


class TabularPolicy:
    """A learned table: state key -> action; ``default`` for states never met in training
    (the last action, which is "stay" in redline's worlds).

    Called on a batch of observations, it answers one action per row (deterministic).
    """

    def __init__(self, table: dict[tuple[int, ...], int], features: Sequence[int] | None, default: int = 4):
        self.table = table
        self.features = None if features is None else tuple(int(i) for i in features)
        self.default = int(default)

    def key(self, obs: np.ndarray) -> tuple[int, ...]:
        values = np.asarray(obs, dtype=np.float64).reshape(-1)
        if self.features is not None:
            values = values[list(self.features)]
        return tuple(np.rint(values).astype(np.int64).tolist())

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations)
        return np.array([self.table.get(self.key(row), self.default) for row in obs], dtype=np.int64)

    # -- storage as plain arrays (no pickle) ----------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        keys = np.array(list(self.table), dtype=np.int64).reshape(len(self.table), -1)
        return {
            "keys": keys,
            "actions": np.array(list(self.table.values()), dtype=np.int64),
            "features": np.array(self.features if self.features is not None else [], dtype=np.int64),
            "all_features": np.array([self.features is None]),
            "default": np.array([self.default]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TabularPolicy:
        table = {tuple(int(v) for v in k): int(a) for k, a in zip(arrays["keys"], arrays["actions"])}
        features = None if bool(arrays["all_features"][0]) else [int(i) for i in arrays["features"]]
        return cls(table, features, int(arrays["default"][0]))


def q_learning(
    make_env: Callable[[], Any],
    *,
    objective: str = "reward",
    features: Sequence[int] | None = None,
    settings: QSettings = QSettings(),
    max_steps: int | None = None,
    max_states: int | None = None,
) -> TabularPolicy:
    """Train a table by epsilon-greedy Q-learning on ``make_env()`` (reset with seeds
    ``settings.seed + episode``, so training is deterministic) and return its greedy policy.

    ``max_steps`` cuts a training episode after that many steps (for environments with no
    step limit of their own). ``max_states`` asks for an exact table: NotTabular is raised
    when an observation (at ``features``) is not whole numbers, so rounding would merge
    states, or when training meets more than ``max_states`` states."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    env = make_env()
    n_actions = int(env.action_space.n)
    explore = np.random.default_rng(settings.seed)
    picked = None if features is None else [int(i) for i in features]
    strict = max_states is not None
    q: dict[tuple[int, ...], np.ndarray] = {}

    def key_of(obs: Any) -> tuple[int, ...]:  # TabularPolicy.key, and whether rounding lost anything
        raw = np.asarray(obs, dtype=np.float64).reshape(-1)
        if picked is not None:
            raw = raw[picked]
        rounded = np.rint(raw)
        if strict and raw.size and float(np.abs(raw - rounded).max()) > 1e-6:
            raise NotTabular("its observations are not whole numbers, so a table keyed on them would merge "
                             f"states (e.g. {np.round(raw[:6], 4).tolist()})")
        return tuple(rounded.astype(np.int64).tolist())

    def values(key: tuple[int, ...]) -> np.ndarray:
        row = q.get(key)
        if row is None:
            if max_states is not None and len(q) >= max_states:
                raise NotTabular(f"training met more than {max_states} states, too many for a table")
            row = q[key] = np.zeros(n_actions)
        return row

    try:
        for episode in range(settings.episodes):
            share = episode / max(1, settings.episodes - 1)
            epsilon = settings.epsilon_start + (settings.epsilon_end - settings.epsilon_start) * share
            obs, _ = env.reset(seed=settings.seed + episode)
            key = key_of(obs)
            done, steps = False, 0
            while not done:
                row = values(key)
                if explore.random() < epsilon:
                    action = int(explore.integers(n_actions))
                else:
                    action = int(row.argmax())
                obs, reward, terminated, truncated, info = env.step(action)
                signal = reward if objective == "reward" else float(info["performance"])
                next_key = key_of(obs)
                target = signal if terminated else signal + settings.gamma * values(next_key).max()
                row[action] += settings.alpha * (target - row[action])
                steps += 1
                key = next_key
                done = terminated or truncated or (max_steps is not None and steps >= max_steps)
    finally:
        env.close()
    # Greedy, ties to the lowest action, so the policy is the same on every run.
    table = {k: int(np.argmax(v)) for k, v in q.items()}
    return TabularPolicy(table, features, default=n_actions - 1)  # unseen states: the last action (stay)
