"""Text drawn in plots comes from the data (feature names, class names): control and bidi
characters are escaped visibly, so matplotlib's "Glyph missing" warning never prints them raw
to stderr, and a dollar sign is never read as math (a bad formula had failed the plot)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from redline.util import plots
from redline.util.safe_text import UNSAFE_CHARACTERS

HOSTILE = "\x1b[31mred\x1b[0m\ttab \u202eevil $\\frac$ cost $5"


def _draw_all(folder, name):
    yield plots.line_plot(folder / "line.png", {name: ([0, 1], [0, 1])}, title=name, xlabel=name, ylabel=name)
    yield plots.roc_plot(folder / "roc.png", {name: ([0.0, 0.5, 1.0], [0.0, 0.8, 1.0])}, title=name)
    yield plots.bar_plot(folder / "bar.png", {name: 0.4, "plain": 0.2}, title=name, xlabel=name, ylabel=name,
                         highlight=[name], threshold=0.3, threshold_label=name)
    yield plots.heat_map(folder / "heat.png", [[0.1, 0.9]], rows=[name], columns=[name, "b"], title=name,
                         xlabel=name, ylabel=name, colorbar_label=name)
    yield plots.image_grid(folder / "grid.png", [[np.zeros((4, 4))], [np.ones((4, 4))]], row_titles=[name, name],
                           col_titles=[name], captions=[[name], [name]], title=name)


def test_hostile_labels_draw_without_raw_control_characters_in_any_warning(tmp_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        drawn = list(_draw_all(tmp_path, HOSTILE))
    assert all(path.stat().st_size > 0 for path in drawn)
    raw = [str(w.message) for w in seen if UNSAFE_CHARACTERS.search(str(w.message))]
    assert raw == []
    assert not [w for w in seen if "Glyph" in str(w.message)]  # every character drawn is one the font has


def test_plot_text_escapes_controls_and_dollars_and_leaves_plain_text_alone():
    assert plots.plot_text("accuracy (test)") == "accuracy (test)"
    assert plots.plot_text("\x1b[2J\ta\u202e") == "\\x1b[2J a\\u202e"
    assert plots.plot_text("$x$") == "\\$x\\$"
    assert plots.plot_text(3) == "3"


@pytest.mark.parametrize("name", ["\x07bell", "a\x00b"])
def test_a_bar_highlight_still_matches_its_label(tmp_path, name):
    path = plots.bar_plot(tmp_path / "b.png", {name: 1.0, "other": 0.5}, highlight=[name])
    plain = plots.bar_plot(tmp_path / "c.png", {name: 1.0, "other": 0.5})
    assert path.read_bytes() != plain.read_bytes()  # the highlighted bar is drawn in another colour
