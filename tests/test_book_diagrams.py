"""vaelib.book.diagrams: the network drawing has one circle per unit and one line per weight; the
activation panels draw the ReLU's jump at 0 without joining it."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from vaelib.book.diagrams import draw_activations, draw_network  # noqa: E402


def test_one_circle_per_unit_and_one_line_per_weight():
    fig, ax = plt.subplots()
    sizes = [5, 4, 4, 3, 1]
    assert draw_network(sizes, ax=ax, layer_labels=list("abcde"), highlight=[3]) is ax
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    assert len(circles) == sum(sizes)
    assert len(ax.get_lines()) == sum(m * n for m, n in zip(sizes, sizes[1:]))
    assert sum(c.get_facecolor() != circles[0].get_facecolor() for c in circles) == 3
    assert [t.get_text() for t in ax.texts] == list("abcde")
    plt.close(fig)


def test_new_figure_when_no_axes():
    ax = draw_network([2, 1])
    assert len(ax.patches) == 3
    plt.close(ax.figure)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="layer_labels"):
        draw_network([2, 1], layer_labels=["x"])
    with pytest.raises(ValueError, match="highlight"):
        draw_network([2, 1], highlight=[2])
    with pytest.raises(ValueError, match="layer size"):
        draw_network([2, 0])


def _markers(ax):
    return [line for line in ax.get_lines() if line.get_marker() == "o"]


def test_activations_panels_and_relu_jump_not_joined():
    axes = draw_activations(["sigmoid", "relu"])
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["sigmoid", "ReLU"]
    sigmoid_ax, relu_ax = axes
    assert not _markers(sigmoid_ax)  # a continuous derivative: no dots
    dashed = [line for line in sigmoid_ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.max(dashed[0].get_ydata()) <= 0.25
    for line in relu_ax.get_lines():
        if line.get_linestyle() == "--":  # no derivative branch crosses a = 0
            x = np.asarray(line.get_xdata())
            assert (x < 0).all() or (x > 0).all()
    filled, hollow = sorted(_markers(relu_ax), key=lambda m: m.get_markerfacecolor() == "white")
    assert (filled.get_xdata()[0], filled.get_ydata()[0]) == (0, 0)  # the value used at 0
    assert (hollow.get_xdata()[0], hollow.get_ydata()[0]) == (0, 1)  # the right-hand limit
    plt.close(axes[0].figure)


def test_activations_bad_arguments_are_named():
    with pytest.raises(ValueError, match="activations"):
        draw_activations(["swish"])
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="axes"):
        draw_activations(["sigmoid", "tanh"], axes=[ax])
    plt.close(fig)
