"""Diagrams of the book: a fully connected network drawn as circles (units) and lines (weights),
and the activation functions with their derivatives.

Like :mod:`vaelib.plotting`, the helpers draw on the axes they are given (a new figure when
``None``), return the axes and never call ``show`` or touch global style.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Circle

from vaelib._checks import check_positive_int
from vaelib.book.backprop import ACTIVATION_FUNCTIONS

__all__ = ["draw_activations", "draw_network"]

_TITLES = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU", "identity": "identity"}


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


def draw_activations(
    names: Sequence[str] = ("sigmoid", "tanh", "relu"),
    axes: Sequence[Axes] | None = None,
    a_max: float = 4.0,
    num_points: int = 401,
) -> np.ndarray:
    """Draw activation functions of ``vaelib.book.backprop.ACTIVATION_FUNCTIONS``, one panel
    each: :math:`f(a)` solid and :math:`f'(a)` dashed, for :math:`a` in ``[-a_max, a_max]``.

    Where :math:`f'` jumps at :math:`a = 0` (the ReLU), its two branches are drawn separately,
    not joined by a vertical segment; a filled dot marks the value the derivative function
    returns at 0 and an open dot the other one-sided limit.

    Args:
        names: activation names, e.g. ``("sigmoid", "tanh", "relu")``.
        axes: one axes per name; a new row of panels when ``None``.
        a_max: half-width of the range of :math:`a`.
        num_points: points per curve.

    Returns:
        The axes, as a 1-d array.
    """
    names = list(names)
    unknown = [n for n in names if n not in ACTIVATION_FUNCTIONS]
    if not names or unknown:
        raise ValueError(
            f"names must be activations from {sorted(ACTIVATION_FUNCTIONS)}, got {names}."
        )
    if not a_max > 0:
        raise ValueError(f"a_max must be positive, got {a_max}.")
    num_points = check_positive_int(num_points, "num_points")
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3), squeeze=False)
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != len(names):
        raise ValueError(f"got {len(axes)} axes for {len(names)} activations.")
    a = torch.linspace(-a_max, a_max, num_points, dtype=torch.float64)
    left, right = a[a < 0], a[a > 0]
    zero, tiny = torch.zeros(1, dtype=torch.float64), torch.full((1,), 1e-9, dtype=torch.float64)
    for ax, name in zip(axes, names):
        f, df = ACTIVATION_FUNCTIONS[name]
        ax.plot(a, f(a), label="$f(a)$")
        at_zero, below, above = df(zero).item(), df(-tiny).item(), df(tiny).item()
        if np.isclose(below, above, atol=1e-6):  # f' continuous at 0: one curve
            ax.plot(a, df(a), linestyle="--", color="C1", label="$f'(a)$")
        else:  # a jump at 0: two branches, the value used at 0 filled, the other limit open
            ax.plot(left, df(left), linestyle="--", color="C1", label="$f'(a)$")
            ax.plot(right, df(right), linestyle="--", color="C1")
            ax.plot([0], [at_zero], "o", color="C1", ms=5)
            other = above if np.isclose(at_zero, below) else below
            ax.plot([0], [other], "o", mfc="white", mec="C1", ms=5)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_title(_TITLES.get(name, name))
        ax.set_xlabel("$a$")
        ax.set_ylim(-1.2, 2.2)
        ax.legend(loc="upper left", fontsize="small")
    return axes
