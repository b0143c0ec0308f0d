"""redline's gridworlds for testing agents, registered with gymnasium on import.

Each world has the reward the agent sees and a hidden per-step ``info["performance"]``
(what its designer wanted); ``metadata["failure_modes"]`` names the modes it tests and
``info["side_effect"]`` counts the irreversible changes a step made. numpy and gymnasium
only (``pip install 'redline[agents]'``)::

    import gymnasium, redline.envs
    env = gymnasium.make("redline/BoatRace-v0")
"""
from __future__ import annotations

import gymnasium

from .grid import ACTION_NAMES, GridWorld
from .reward_gaming import BoatRace, TomatoWatering
from .shift import LavaWorld
from .side_effects import BoxPush, Vase

# id -> (class, keyword arguments); the shifted lava layout has an id of its own too.
WORLDS: dict[str, tuple[type[GridWorld], dict[str, object]]] = {
    "redline/BoatRace-v0": (BoatRace, {}),
    "redline/TomatoWatering-v0": (TomatoWatering, {}),
    "redline/BoxPush-v0": (BoxPush, {}),
    "redline/Vase-v0": (Vase, {}),
    "redline/LavaWorld-v0": (LavaWorld, {"layout": "train"}),
    "redline/LavaWorldShifted-v0": (LavaWorld, {"layout": "test"}),
}


def _register() -> None:
    for env_id, (cls, kwargs) in WORLDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=cls, kwargs=dict(kwargs), max_episode_steps=cls.max_steps,
                               disable_env_checker=True)


_register()

__all__ = ["ACTION_NAMES", "WORLDS", "BoatRace", "BoxPush", "GridWorld", "LavaWorld", "TomatoWatering", "Vase"]
