"""What the agent checks share: they need a policy target and an environment (``env:`` data
whose declared failure modes include the check's), and they play seeded episodes within a
budget of environment steps."""
from __future__ import annotations

from typing import Any, ClassVar

from ...targets.policy import is_policy
from ..base import Check, Inconclusive, Needs
from .episodes import Episode, episode_limit, plan_episodes, run_episodes

AGENT_NEEDS = Needs(task="control", roles=(), labels=False)
MIN_EPISODES = 5
STEP_CAP = 500  # an episode of an environment without a step limit is cut here

EPISODE_DOCS = {
    "episodes": "episodes to play, each on an environment seed of its own, fewer when the budget of steps is smaller",
    "min_episodes": "fewest episodes that can decide; with fewer the finding is inconclusive",
}


class AgentCheck(Check):
    needs: ClassVar[Needs] = AGENT_NEEDS
    default_budget: ClassVar[int] = 5_000

    def applicability(self, target: Any, data: Any) -> str | None:
        if data is None or getattr(data, "task", None) != "control":
            return "this check runs an agent in an environment: give --data env:ID"
        if not is_policy(target):
            return "this check tests agents (policies), and the target is a classifier"
        wanted = tuple(target.input_spec.shape)
        if wanted != tuple(data.observation_shape):
            return (f"the policy takes observations shaped {list(wanted)}, and {data.env_id} gives "
                    f"{list(data.observation_shape)}")
        if self.mode not in data.failure_modes:
            return (f"{data.env_id} tests {', '.join(data.failure_modes)}, not {self.mode} "
                    "(its metadata['failure_modes'] or safety spec say which)")
        return None

    def _validate_share(self, name: str) -> None:
        """A tolerance given as a share of something (reward, performance): in [0, 1)."""
        value = getattr(self, name)
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")

    def _validate_episodes(self) -> None:
        if int(self.min_episodes) < 2:
            raise ValueError("min_episodes must be at least 2 (an interval needs two episodes)")
        if int(self.episodes) < int(self.min_episodes):
            raise ValueError(f"episodes ({self.episodes}) must be at least min_episodes ({self.min_episodes})")

    def play(self, target: Any, data: Any, budget: int, seed: int, *, shift: str | None = None,
             runs: int = 1, frames: bool = False) -> list[Episode]:
        """Seeded episodes of ``target`` in ``data`` (its shifted variant ``shift``); ``runs``
        is how many such rollouts the check makes in all, which share the budget."""
        limit = layout_limit(data, shift)
        n = plan_episodes(int(self.episodes), budget, limit, runs)
        if n < int(self.min_episodes):
            raise Inconclusive(
                f"a budget of {budget} steps covers {n} episode(s) of up to {limit} steps"
                f"{f' in each of {runs} layouts' if runs > 1 else ''}; at least {self.min_episodes} are needed "
                f"(--budget {int(self.min_episodes) * limit * runs})")
        seeds = [seed * 10_000 + i for i in range(n)]
        return run_episodes(target.act, lambda: data.make(shift=shift), seeds, max_steps=limit, frames=frames)


def layout_limit(data: Any, shift: str | None = None) -> int:
    """The most steps an episode of ``data``'s layout ``shift`` takes (capped at ``STEP_CAP``)."""
    probe = data.make(shift=shift)
    try:
        return episode_limit(probe, STEP_CAP)
    finally:
        probe.close()


def random_policy(n_actions: int, seed: int):
    """A policy choosing uniformly among ``n_actions`` actions, reproducibly from ``seed``."""
    import numpy as np

    chooser = np.random.default_rng(seed)

    def act(obs):
        return chooser.integers(0, n_actions, size=len(obs))

    return act
