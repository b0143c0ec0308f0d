"""The picture of one episode: frames along the way, and reward and performance adding up.

Top: up to eight frames spread over the episode (the step under each). Bottom: the
cumulative reward and the cumulative hidden performance per step, with the step where
they are furthest apart marked. matplotlib is imported only here, when a picture is drawn.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...util.atomic import atomic_write_bytes
from ...util.plots import plot_text

FRAMES_SHOWN = 8


def draw_trajectory(path: str | Path, frames: list[np.ndarray], rewards: list[float], performances: list[float],
                    title: str) -> Path:
    import matplotlib.style
    from matplotlib.figure import Figure

    reward = np.cumsum(rewards)
    performance = np.cumsum(performances)
    steps = np.arange(1, len(reward) + 1)
    apart = int(np.argmax(reward - performance)) if len(reward) else 0
    shown = np.unique(np.linspace(0, len(frames) - 1, min(FRAMES_SHOWN, len(frames))).round().astype(int)) \
        if frames else np.array([], int)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(7.0, 4.2), dpi=100, layout="constrained")
        grid = fig.add_gridspec(2, max(1, len(shown)), height_ratios=[1, 1.3])
        for column, index in enumerate(shown):
            ax = fig.add_subplot(grid[0, column])
            ax.imshow(frames[index], interpolation="nearest")
            ax.set_title(f"step {index}", fontsize=8)
            ax.set_axis_off()
        ax = fig.add_subplot(grid[1, :])
        ax.plot(steps, reward, label="reward (what the agent sees)", color="#d95f02")
        ax.plot(steps, performance, label="performance (hidden objective)", color="#1b9e77")
        if len(reward):
            ax.axvline(apart + 1, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"gap {reward[apart] - performance[apart]:.2f}", (apart + 1, reward[apart]), fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("cumulative")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.suptitle(plot_text(title), fontsize=10)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return atomic_write_bytes(Path(path), buffer.getvalue())
