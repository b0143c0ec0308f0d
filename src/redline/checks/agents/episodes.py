"""Running a policy in an environment: episodes in lockstep, one batched query per step.

Every observation the policy acts on is one row on its ledger, so a check's budget is a
number of environment steps. Episodes are seeded (``seed + i``), so a finding replays.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...util.stats import mean_t_interval

MAX_FRAME_BYTES = 64 * 1024 * 1024  # frames kept for the trajectory picture, at most


@dataclasses.dataclass
class Episode:
    seed: int
    rewards: list[float] = dataclasses.field(default_factory=list)
    performances: list[float] = dataclasses.field(default_factory=list)
    side_effects: int = 0
    side_effects_reported: bool = False  # the environment said how many side effects a step had
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    final_state: Any = None
    ended: str = "running"  # "terminated", "truncated" or "step limit"

    @property
    def reward(self) -> float:
        return float(sum(self.rewards))

    @property
    def performance(self) -> float:
        return float(sum(self.performances))

    @property
    def steps(self) -> int:
        return len(self.rewards)


def episode_limit(env: Any, cap: int) -> int:
    """The most steps an episode of ``env`` can take: its registered limit, else ``cap``."""
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None) or getattr(env.unwrapped, "max_steps", None)
    return int(min(limit, cap)) if limit else int(cap)


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray],
    make_env: Callable[[], Any],
    seeds: Sequence[int],
    *,
    max_steps: int,
    frames: bool = False,
) -> list[Episode]:
    """Play one episode per seed, all at once: each step asks ``act`` for the actions of
    every episode still running (one batch), then steps each environment."""
    envs = [make_env() for _ in seeds]
    episodes = [Episode(int(s)) for s in seeds]
    observations: list[Any] = []
    frame_bytes = 0
    try:
        for env, seed in zip(envs, seeds):
            obs, _ = env.reset(seed=int(seed))
            observations.append(np.asarray(obs, dtype=np.float64))
        running = list(range(len(envs)))
        for _ in range(max_steps):
            if not running:
                break
            if frames:
                for i in running:
                    image = envs[i].render()
                    if image is not None and frame_bytes < MAX_FRAME_BYTES:
                        episodes[i].frames.append(np.asarray(image))
                        frame_bytes += episodes[i].frames[-1].nbytes
            actions = np.asarray(act(np.stack([observations[i] for i in running])))
            still = []
            for i, action in zip(running, actions):
                obs, reward, terminated, truncated, info = envs[i].step(int(action))
                episode = episodes[i]
                episode.rewards.append(float(reward))
                episode.performances.append(float(info.get("performance", reward)))
                episode.side_effects += int(info.get("side_effect", 0))
                episode.side_effects_reported |= "side_effect" in info
                observations[i] = np.asarray(obs, dtype=np.float64)
                if terminated or truncated:
                    episode.ended = "terminated" if terminated else "truncated"
                else:
                    still.append(i)
            running = still
        for i in running:
            episodes[i].ended = "step limit"
        if frames:
            for env, episode in zip(envs, episodes):
                image = env.render()
                if image is not None and frame_bytes < MAX_FRAME_BYTES:
                    episode.frames.append(np.asarray(image))
        for env, episode in zip(envs, episodes):
            episode.final_state = getattr(env.unwrapped, "state", None)
    finally:
        for env in envs:
            env.close()
    return episodes


def mean_interval(values: Sequence[float]) -> tuple[float, list[float]]:
    """The mean and its 95% Student-t interval (a single value, or equal values, give a
    zero-width interval: the episodes agreed exactly)."""
    return mean_t_interval(values)


def plan_episodes(wanted: int, budget: int, steps_each: int, runs: int = 1) -> int:
    """How many episodes (of ``runs`` rollouts each) fit in ``budget`` steps, at most ``wanted``."""
    return int(min(wanted, budget // max(1, steps_each * runs)))
