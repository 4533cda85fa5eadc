"""Diagrams of the book: a fully connected network drawn as circles (units) and lines (weights).

Like :mod:`vaelib.plotting`, the helper draws on ``ax`` (a new figure when ``None``), returns the
axes and never calls ``show`` or touches global style.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Circle

from vaelib._checks import check_positive_int

__all__ = ["draw_network"]


def draw_network(
    layer_sizes: Sequence[int],
    ax: Axes | None = None,
    layer_labels: Sequence[str] | None = None,
    highlight: Sequence[int] = (),
    node_color: str = "white",
    highlight_color: str = "tab:orange",
    radius: float = 0.18,
    layer_gap: float = 2.0,
) -> Axes:
    """Draw a fully connected network: one column of units per layer, every pair of units in
    neighbouring layers joined by a line (one weight).

    Args:
        layer_sizes: units per layer, input first, e.g. ``[5, 4, 4, 3, 1]``.
        ax: axes to draw on; a new figure when ``None``.
        layer_labels: one caption per layer, written below its column.
        highlight: indices of layers whose units are filled with ``highlight_color`` (e.g. the
            bottleneck of an autoencoder).
        node_color: fill of the other units.
        radius: unit radius, in units of the vertical spacing between units.
        layer_gap: horizontal distance between layers, in the same units.

    Returns:
        The axes, with ``sum(layer_sizes)`` circles and
        ``sum(m * n for m, n in zip(layer_sizes, layer_sizes[1:]))`` lines.
    """
    sizes = list(layer_sizes)
    if not sizes:
        raise ValueError("layer_sizes is empty; give the units per layer, e.g. [5, 4, 1].")
    for size in sizes:
        check_positive_int(size, "every layer size")
    if layer_labels is not None and len(layer_labels) != len(sizes):
        raise ValueError(
            f"layer_labels has {len(layer_labels)} entries for {len(sizes)} layers."
        )
    bad = [i for i in highlight if not 0 <= i < len(sizes)]
    if bad:
        raise ValueError(f"highlight names layers {bad} outside 0..{len(sizes) - 1}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4 * len(sizes) + 1, 0.6 * max(sizes) + 1))
    tallest = max(sizes)
    x_gap = layer_gap

    def positions(i: int) -> list[tuple[float, float]]:
        offset = (tallest - sizes[i]) / 2  # centre each column vertically
        return [(i * x_gap, tallest - 1 - offset - j) for j in range(sizes[i])]

    columns = [positions(i) for i in range(len(sizes))]
    for left, right in zip(columns[:-1], columns[1:]):
        for x0, y0 in left:
            for x1, y1 in right:
                ax.plot([x0 + radius, x1 - radius], [y0, y1], color="0.55", lw=0.7, zorder=1)
    for i, column in enumerate(columns):
        face = highlight_color if i in highlight else node_color
        for x, y in column:
            ax.add_patch(Circle((x, y), radius, facecolor=face, edgecolor="black", lw=1.0,
                                zorder=2))
        if layer_labels is not None:
            ax.text(i * x_gap, -0.8, layer_labels[i], ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.6, (len(sizes) - 1) * x_gap + 0.6)
    ax.set_ylim(-1.6 if layer_labels is not None else -0.6, tallest - 0.4)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax
