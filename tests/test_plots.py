"""Training plots keep identical trajectories apart: styles, markers, draw order, legend."""

import matplotlib.colors as mcolors
import numpy as np
import pytest

from toolkit.runner.plots import overlaps, plot_training, training_figure
from toolkit.runner.results import TrainingHistory

STEPS = 60
LOSS = list(np.linspace(1.0, 0.1, STEPS))


def histories():
    zero = [0.0] * STEPS
    return {
        "explicit-shared": TrainingHistory(LOSS, zero, zero),
        "tied": TrainingHistory(list(LOSS), list(zero), list(zero)),
        "explicit": TrainingHistory([y + 0.3 for y in LOSS], [1e-3] * STEPS, [1e-2] * STEPS),
    }


@pytest.fixture
def figure():
    import matplotlib.pyplot as plt

    fig = training_figure("aliases", "adam", histories())
    yield fig
    plt.close(fig)


def test_each_strategy_has_its_own_dashes_and_marker(figure):
    for ax in figure.axes:
        lines = ax.get_lines()
        assert len(lines) == 3
        assert len({str(line.get_linestyle()) for line in lines}) == 3
        assert len({line.get_marker() for line in lines}) == 3


def test_identical_lines_stay_visible(figure):
    loss_ax = figure.axes[0]
    shared, tied, _ = loss_ax.get_lines()
    np.testing.assert_array_equal(shared.get_ydata(), tied.get_ydata())
    # the later line is thinner and on top, with markers on other steps
    assert tied.get_linewidth() < shared.get_linewidth()
    assert tied.get_zorder() > shared.get_zorder()
    assert shared.get_markevery()[0] != tied.get_markevery()[0]
    # and both colours really are on the rendered panel (legend hidden: it shows both anyway)
    loss_ax.get_legend().set_visible(False)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(float) / 255
    box = loss_ax.get_window_extent()
    height = pixels.shape[0]
    panel = pixels[int(height - box.y1):int(height - box.y0), int(box.x0):int(box.x1)]
    for line in (shared, tied):
        rgb = np.array(mcolors.to_rgb(line.get_color()))
        assert np.sum(np.all(np.abs(panel - rgb) < 0.08, axis=-1)) > 50, line.get_label()


def test_legend_names_what_a_line_overlaps(figure):
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["explicit-shared", "tied (overlaps explicit-shared)", "explicit"]
    drift_labels = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert drift_labels[1] == "tied (overlaps explicit-shared)"
    assert drift_labels[2] == "explicit"


def test_overlap_is_relative_to_the_panel():
    assert overlaps({"a": [0.0, 10.0], "b": [0.001, 10.0]}, log=False) == {"b": "a"}
    assert overlaps({"a": [0.0, 10.0], "b": [0.5, 10.0]}, log=False) == {}
    # on a log axis 1e-18 and 1e-9 are far apart even though both are tiny
    assert overlaps({"a": [1e-18, 1e-18], "b": [1e-9, 1e-9]}, log=True) == {}
    assert overlaps({"a": [1.0], "b": [1.0], "c": [1.0]}, log=False) == {"b": "a", "c": "a"}


def test_png_bytes_repeat(tmp_path):
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    (name,) = plot_training({"aliases": {"adam": histories()}}, first)
    plot_training({"aliases": {"adam": histories()}}, second)
    assert (first / name).read_bytes() == (second / name).read_bytes()
