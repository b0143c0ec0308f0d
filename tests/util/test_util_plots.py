"""Evidence plots: small deterministic PNGs, images in any common layout."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from redline.util import plots


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_line_plot_is_a_small_png(tmp_path):
    out = plots.line_plot(
        tmp_path / "a" / "curve.png",
        {"pgd": ([0.01, 0.02, 0.04], [0.1, 0.5, 0.9]), "fgsm": ([0.01, 0.02, 0.04], [0.05, 0.2, 0.4])},
        title="Success against epsilon",
        xlabel="epsilon",
        ylabel="success rate",
        logx=True,
    )
    assert out == tmp_path / "a" / "curve.png"
    width, height = png_size(out)
    assert width == 600 and 250 <= height <= 500


def test_plots_are_deterministic(tmp_path):
    series = {"x": (np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 2)}
    a = plots.line_plot(tmp_path / "a.png", series, title="t")
    b = plots.line_plot(tmp_path / "b.png", series, title="t")
    assert a.read_bytes() == b.read_bytes()
    c = plots.line_plot(tmp_path / "c.png", {"x": (np.linspace(0, 1, 50), np.linspace(0, 1, 50))}, title="t")
    assert c.read_bytes() != a.read_bytes()


def test_svg_output_is_deterministic_and_undated(tmp_path):
    a = plots.bar_plot(tmp_path / "a.svg", {"0": 1.0, "1": 3.5}, highlight=["1"], threshold=2.0)
    b = plots.bar_plot(tmp_path / "b.svg", {"0": 1.0, "1": 3.5}, highlight=["1"], threshold=2.0)
    assert a.read_bytes() == b.read_bytes()
    assert b"<svg" in a.read_bytes() and b"<dc:date>" not in a.read_bytes()


def test_user_rc_settings_do_not_change_the_output(tmp_path):
    import matplotlib

    series = {"x": ([1, 2, 3], [3, 1, 2])}
    a = plots.line_plot(tmp_path / "a.png", series)
    with matplotlib.rc_context({"lines.linewidth": 9, "axes.facecolor": "red"}):
        b = plots.line_plot(tmp_path / "b.png", series)
    assert a.read_bytes() == b.read_bytes()


def test_roc_plot_handles_zero_rates_on_log_axes(tmp_path):
    fpr = np.array([0.0, 0.0, 0.001, 0.01, 0.1, 1.0])
    tpr = np.array([0.0, 0.05, 0.1, 0.3, 0.6, 1.0])
    out = plots.roc_plot(tmp_path / "roc.png", {"lira": (fpr, tpr), "loss": (fpr, fpr)})
    assert png_size(out)[0] == 600


@pytest.mark.parametrize(
    "shape",
    [(8, 8), (8, 8, 3), (3, 8, 8), (1, 8, 8), (8, 8, 1), (64,)],
)
def test_as_image_accepts_common_layouts(shape):
    img = plots.as_image(np.zeros(shape))
    assert img.shape in ((8, 8), (8, 8, 3))


@pytest.mark.parametrize("shape", [(2, 8, 8), (5,), (2, 2, 2, 2)])
def test_as_image_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match="image"):
        plots.as_image(np.zeros(shape))


def test_image_grid_with_rgb_chw_and_differences(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 16, 16))  # (N, C, H, W) as a torch model sees it
    adv = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    out = plots.image_grid(
        tmp_path / "grid.png",
        [list(x), list(adv), list(adv - x)],
        row_titles=["original", "adversarial", "difference"],
        col_titles=["0", "1"],
    )
    width, _ = png_size(out)
    assert width == 600


def test_difference_rows_are_scaled_symmetrically(tmp_path):
    """A zero difference must land in the middle of the colour map, whatever the sign of the rest."""
    from matplotlib.image import imread

    diff = np.zeros((8, 8))
    diff[0, 0] = 1.0  # positive change only: auto-detection sees no negatives, so say it is signed
    out = plots.image_grid(tmp_path / "d.png", [[diff]], signed_rows=[0])
    pixels = imread(out)[..., :3]
    # the centre of the image (zero difference) is near white on the diverging map
    h, w = pixels.shape[:2]
    assert pixels[h // 2, w // 2].min() > 0.9


def test_ragged_rows_and_bad_input(tmp_path):
    out = plots.image_grid(tmp_path / "r.png", [[np.zeros((4, 4))], [np.ones((4, 4)), np.ones((4, 4))]])
    assert out.exists()
    with pytest.raises(ValueError):
        plots.image_grid(tmp_path / "e.png", [])
    with pytest.raises(ValueError, match="as many"):
        plots.line_plot(tmp_path / "l.png", {"x": ([1, 2], [1])})
    with pytest.raises(ValueError, match=".png or .svg"):
        plots.bar_plot(tmp_path / "b.pdf", {"a": 1})


def test_plotting_leaves_pyplot_and_the_backend_alone(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        "from redline.util import plots\n"
        f"plots.bar_plot({str(tmp_path / 'b.png')!r}, {{'a': 1.0}})\n"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "b.png").exists()


def test_heat_map_is_a_deterministic_png_and_checks_its_grid(tmp_path):
    grid = [[0.9, 0.7, 0.4], [0.95, float("nan"), 0.2]]
    a = plots.heat_map(tmp_path / "a.png", grid, ["noise", "blur"], [1, 2, 3], title="accuracy", xlabel="severity")
    b = plots.heat_map(tmp_path / "b.png", grid, ["noise", "blur"], [1, 2, 3], title="accuracy", xlabel="severity")
    assert png_size(a)[0] == 600 and a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError, match="2 x 2 grid"):
        plots.heat_map(tmp_path / "c.png", grid, ["noise", "blur"], [1, 2])
