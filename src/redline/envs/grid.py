"""The base of redline's gridworlds: a small state machine behind gymnasium's ``Env`` API.

Each world is a map of characters (``#`` walls) and a hidden state (a tuple of ints). A
subclass says how a state starts, moves, is observed and is drawn; this base does the
gymnasium bookkeeping (seeding, the step limit, ``info``), renders RGB frames and, for
deterministic worlds, lists the states reachable from a state (the impact measure of
FM13 compares those sets).

Every step's ``info`` holds ``performance`` (the designer's true objective for that step,
which the agent never sees) and ``side_effect`` (how many irreversible changes the step
made to the world). Actions are the same everywhere: 0 up, 1 right, 2 down, 3 left, 4 stay.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, ClassVar

import gymnasium
import numpy as np

MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1), (0, 0))
ACTION_NAMES = ("up", "right", "down", "left", "stay")
CELL = 12  # pixels per grid cell in rendered frames

# Colours of the rendered cells, by the character a world draws there.
COLOURS = {
    "#": (60, 60, 70),
    " ": (235, 235, 225),
    "A": (40, 110, 220),
    "G": (60, 170, 80),
    "L": (220, 80, 30),
    "V": (160, 60, 170),
    "X": (170, 120, 50),
    "C": (250, 210, 60),
    "T": (120, 200, 90),
    "t": (200, 170, 110),
    "O": (120, 190, 230),
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one move did: the next state and what the agent and the designer make of it."""

    state: tuple[int, ...]
    reward: float
    performance: float
    side_effect: int = 0
    terminated: bool = False


class GridWorld(gymnasium.Env):
    """A gridworld with a visible reward and a hidden performance (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4, "failure_modes": []}
    layout: ClassVar[tuple[str, ...]] = ()
    max_steps: ClassVar[int] = 40
    deterministic: ClassVar[bool] = True

    def __init__(self, render_mode: str | None = "rgb_array"):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, not {render_mode!r}")
        self.render_mode = render_mode
        self.grid = np.array([list(row) for row in self.map_rows()])
        self.walls = self.grid == "#"
        self.action_space = gymnasium.spaces.Discrete(len(MOVES))
        low, high = self.observation_bounds()
        self.observation_space = gymnasium.spaces.Box(low=low, high=high, dtype=np.float32)
        self.state: tuple[int, ...] | None = None
        self.steps = 0

    # -- what a world defines ------------------------------------------------------------
    def map_rows(self) -> tuple[str, ...]:
        return self.layout

    def initial_state(self, rng: np.random.Generator) -> tuple[int, ...]:
        raise NotImplementedError

    def transition(self, state: tuple[int, ...], action: int, rng: np.random.Generator) -> Outcome:
        raise NotImplementedError

    def observe(self, state: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def draw(self, state: tuple[int, ...]) -> np.ndarray:
        """The map as characters with the state drawn on it (agent ``A`` and so on)."""
        raise NotImplementedError

    # -- helpers for worlds ------------------------------------------------------------------
    def find(self, char: str) -> list[tuple[int, int]]:
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(self.grid == char))]

    def free(self, r: int, c: int) -> bool:
        return 0 <= r < self.grid.shape[0] and 0 <= c < self.grid.shape[1] and not self.walls[r, c]

    @staticmethod
    def moved(r: int, c: int, action: int) -> tuple[int, int]:
        dr, dc = MOVES[int(action)]
        return r + dr, c + dc

    def walk(self, r: int, c: int, action: int) -> tuple[int, int]:
        """Where the agent ends up: the cell ``action`` leads to, or where it stands when that
        cell is a wall or off the map."""
        nr, nc = self.moved(r, c, action)
        return (nr, nc) if self.free(nr, nc) else (r, c)

    # -- gymnasium ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = self.initial_state(self.np_random)
        self.steps = 0
        return self.observe(self.state), {"performance": 0.0, "side_effect": 0}

    def step(self, action: Any):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        action = int(np.asarray(action).reshape(-1)[0])
        if not 0 <= action < len(MOVES):
            raise ValueError(f"action {action} is not one of 0..{len(MOVES) - 1}")
        out = self.transition(self.state, action, self.np_random)
        self.state = out.state
        self.steps += 1
        truncated = not out.terminated and self.steps >= self.max_steps
        info = {"performance": float(out.performance), "side_effect": int(out.side_effect)}
        return self.observe(out.state), float(out.reward), bool(out.terminated), truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.state is None:
            return None
        return render_chars(self.draw(self.state))

    # -- the reachable states (deterministic worlds) -----------------------------------------
    @staticmethod
    def world_part(state: tuple[int, ...]) -> tuple[int, ...]:
        """The part of a state that is the world rather than the agent (states start with the
        agent's row and column): what a side effect changes."""
        return tuple(state[2:])

    def reachable(self, state: tuple[int, ...], limit: int = 20_000) -> set[tuple[int, ...]]:
        """Every state reachable from ``state`` by some sequence of actions (terminal states
        are ends), cut off once more than ``limit`` states are found."""
        return self.state_graph(state, limit)[0]

    def state_graph(self, start: tuple[int, ...], limit: int = 20_000, *, past_ends: bool = False,
                    edges: bool = False) -> tuple[set[tuple[int, ...]], dict[tuple[int, ...], set[tuple[int, ...]]], bool]:
        """The states reachable from ``start`` (see :func:`search_states`)."""
        return search_states(self, start, limit, past_ends=past_ends, edges=edges)


def search_states(world: Any, start: Any, limit: int = 20_000, *, past_ends: bool = False,
                  edges: bool = False) -> tuple[set, dict, bool]:
    """One breadth-first search over the states reachable from ``start`` by any actions, in
    any deterministic world with ``transition(state, action, rng)`` and a discrete
    ``action_space``.

    Returns the states found; for each state, the states one action leads to it from
    (when ``edges``, else an empty dict; searching backward from some states over these
    finds every state that can reach them); and whether the search is complete: it
    stops, cut off, as soon as it has found more than ``limit`` states. Terminal states
    are ends unless ``past_ends``: then the world is searched as it stands, the agent
    free to keep acting after an episode would have ended."""
    if not getattr(world, "deterministic", False):
        raise ValueError(f"{type(world).__name__} is stochastic: its reachable states are not listed")
    rng = np.random.default_rng(0)
    seen = {start}
    back: dict = {}
    queue = deque([start])
    n_actions = int(world.action_space.n)
    while queue:
        current = queue.popleft()
        for action in range(n_actions):
            out = world.transition(current, action, rng)
            if edges:
                back.setdefault(out.state, set()).add(current)
            if out.state not in seen:
                seen.add(out.state)
                if len(seen) > limit:
                    return seen, back, False
                if past_ends or not out.terminated:
                    queue.append(out.state)
    return seen, back, True


def render_chars(chars: np.ndarray) -> np.ndarray:
    """An RGB image (uint8) of a character grid, ``CELL`` pixels per cell."""
    h, w = chars.shape
    palette = np.array([COLOURS.get(ch, (255, 0, 255)) for ch in chars.reshape(-1)], dtype=np.uint8)
    image = palette.reshape(h, w, 3)
    image = np.repeat(np.repeat(image, CELL, axis=0), CELL, axis=1)
    image[::CELL, :, :] = 0  # thin grid lines
    image[:, ::CELL, :] = 0
    return image
