"""vaelib.book.diagrams: the network drawing has one circle per unit and one line per weight."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from vaelib.book.diagrams import draw_network  # noqa: E402


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
