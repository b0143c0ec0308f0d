"""Example image grids: a colour scale for differences, predicted classes under the examples."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.util import plots
from redline.util.evidence import _predicted_captions, adversarial_grid

pytest.importorskip("matplotlib")


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=float)


def test_difference_rows_get_a_colour_scale(tmp_path, monkeypatch):
    drawn = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (drawn.append(fig), real_save(fig, path))[1])
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 8, 8))
    diff = rng.uniform(-0.2, 0.2, size=(3, 8, 8))
    plots.image_grid(tmp_path / "a.png", [list(x), list(diff)])
    plots.image_grid(tmp_path / "b.png", [list(x), list(x)])
    with_diff, plain = drawn
    scales = [ax for ax in with_diff.axes if ax.get_label() == "<colorbar>"]
    assert len(scales) == 1 and scales[0].get_ylabel() == "change"
    assert not [ax for ax in plain.axes if ax.get_label() == "<colorbar>"]


def test_captions_add_room_under_the_images(tmp_path):
    x = [np.zeros((8, 8))] * 3
    plain = _pixels(plots.image_grid(tmp_path / "a.png", [x, x]))
    captioned = _pixels(plots.image_grid(tmp_path / "b.png", [x, x], captions=[["class 1"] * 3, ["predicted 2"] * 3]))
    assert captioned.shape[0] > plain.shape[0]


def test_adversarial_grid_reads_predicted_classes_from_the_saved_examples(tmp_path):
    ctx = CheckContext(tmp_path)
    x = np.random.default_rng(1).uniform(size=(5, 1, 6, 6)).astype(np.float32)
    x_adv = np.clip(x + 0.1, 0, 1)
    path, _ = ctx.artifact("FM01.x-examples.npz")
    np.savez(path, x=x, x_adv=x_adv, y=np.array([1, 2, 3, 4, 5]), y_adv=np.array([7, 7, 8, 8, 9]))
    fooled = np.array([True, False, True, True, False])
    assert _predicted_captions(ctx, "FM01.x-examples.png", x, np.flatnonzero(fooled)) == [
        ["class 1", "class 3", "class 4"], ["predicted 7", "predicted 8", "predicted 8"], []]
    assert adversarial_grid(ctx, "FM01.x-examples.png", x, x_adv, fooled) == "artifacts/FM01.x-examples.png"
    # Examples that do not line up with the plotted inputs give no captions rather than wrong ones.
    assert _predicted_captions(ctx, "FM01.x-examples.png", x[:3], np.array([0])) is None
