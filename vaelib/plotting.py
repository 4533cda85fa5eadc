r"""Figures of the book: image grids, the learned manifold, latent scatter plots and curves.

Every helper draws on ``ax`` (a new figure when ``None``), returns the axes, and never calls
``show`` or ``savefig`` or touches global style, so it composes in notebooks and scripts alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MNIST_SHAPE = (28, 28)
FREY_SHAPE = (28, 20)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5, 5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def tile_images(
    images: torch.Tensor | np.ndarray,
    nrow: int | None = None,
    image_shape: tuple[int, int] = MNIST_SHAPE,
    padding: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile ``images`` ``(N, H*W)`` or ``(N, H, W)`` into one array ``(rows*(H+p), nrow*(W+p))``.

    Images fill the grid row by row; ``nrow`` is the number of images per row (default: a
    near-square grid).
    """
    arr = _numpy(images).reshape(-1, *image_shape)
    n = len(arr)
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol_rows = int(np.ceil(n / nrow))
    h, w = image_shape
    canvas = np.full(
        (ncol_rows * (h + padding) - padding, nrow * (w + padding) - padding),
        pad_value,
        dtype=np.float32,
    )
    for i, img in enumerate(arr):
        r, c = divmod(i, nrow)
        canvas[
            r * (h + padding) : r * (h + padding) + h, c * (w + padding) : c * (w + padding) + w
        ] = img
    return canvas


def image_grid(
    images: torch.Tensor | np.ndarray,
    nrow: int | None = None,
    image_shape: tuple[int, int] = MNIST_SHAPE,
    ax: Axes | None = None,
    title: str | None = None,
    padding: int = 1,
    cmap: str = "gray",
) -> Axes:
    """Show images ``(N, H*W)`` with values in [0, 1] as a grid, ``nrow`` images per row."""
    ax = _axes(ax)
    canvas = tile_images(images, nrow, image_shape, padding)
    ax.imshow(canvas, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def latent_grid(n: int = 20, quantile_range: tuple[float, float] = (0.05, 0.95)) -> torch.Tensor:
    r"""An ``n`` × ``n`` grid of 2-D latent points, ``(n*n, 2)``, row by row from the top.

    As in Kingma & Welling (2014), Fig. 4: linearly spaced quantiles :math:`u_j` in
    ``quantile_range`` (default 5 % to 95 %; the paper uses the unit square) are mapped through
    the inverse CDF of the Gaussian, :math:`z_j = \Phi^{-1}(u_j)`, so the grid covers the
    central part of the prior :math:`\mathcal N(0, I)` (81 % of its mass by default), with equal
    probability mass between neighbouring points. Row ``r``
    has :math:`z_2` decreasing downwards, column ``c`` has :math:`z_1` increasing rightwards.
    """
    lo, hi = quantile_range
    if not 0 < lo < hi < 1:
        raise ValueError(f"quantile_range must satisfy 0 < lo < hi < 1, got {quantile_range}.")
    values = torch.special.ndtri(torch.linspace(lo, hi, n, dtype=torch.float64)).numpy()
    z1, z2 = np.meshgrid(values, values[::-1])
    return torch.tensor(np.stack([z1.ravel(), z2.ravel()], axis=1), dtype=torch.float32)


@torch.no_grad()
def plot_manifold(
    model: torch.nn.Module,
    n: int = 20,
    image_shape: tuple[int, int] = MNIST_SHAPE,
    ax: Axes | None = None,
    quantile_range: tuple[float, float] = (0.05, 0.95),
    title: str | None = None,
) -> Axes:
    """The learned 2-D manifold: the decoder's mean image at each point of :func:`latent_grid`."""
    if getattr(model, "z_dim", 2) != 2:
        raise ValueError(f"plot_manifold needs a model with z_dim=2, got z_dim={model.z_dim}.")
    param = next(model.parameters())  # the grid goes where the decoder is, in its dtype
    z = latent_grid(n, quantile_range).to(device=param.device, dtype=param.dtype)
    x_hat = model.decode(z)
    return image_grid(x_hat, nrow=n, image_shape=image_shape, ax=ax, title=title, padding=0)


def plot_latent_scatter(
    z: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    s: float = 6.0,
    legend: str | None = "inside",
) -> Axes:
    """Scatter 2-D codes ``z`` ``(N, 2)``, coloured by integer ``labels``.

    ``legend``: ``"inside"`` (matplotlib's best spot), ``"outside"`` (to the right of the axes,
    in two columns titled "digit": the codes stay uncovered) or ``None``.
    """
    if legend not in ("inside", "outside", None):
        raise ValueError(f'legend must be "inside", "outside" or None, got {legend!r}.')
    ax = _axes(ax)
    z = _numpy(z)
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=0.7)
    else:
        labels = _numpy(labels)
        cmap = plt.get_cmap("tab10")
        for k in np.unique(labels):
            mask = labels == k
            ax.scatter(
                z[mask, 0], z[mask, 1], s=s, alpha=0.7, color=cmap(int(k) % 10), label=str(k)
            )
        if legend == "inside":
            ax.legend(markerscale=2.5, fontsize="small", loc="best", ncol=2, title="label")
        elif legend == "outside":
            ax.legend(markerscale=2.5, fontsize="x-small", ncol=2, title="digit",
                      loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax


def image_rows(
    rows: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    image_shape: tuple[int, int] = MNIST_SHAPE,
    width: float = 7.0,
    clip: bool = True,
) -> Figure:
    """One labelled row of images per ``(label, images)`` pair, labels to the left of the rows.

    Every row shows its images ``(n, H*W)`` side by side; values are clipped to [0, 1] (PCA
    reconstructions, say, can leave it) unless ``clip=False``. Returns the new figure.
    """
    if not rows:
        raise ValueError("image_rows needs at least one (label, images) row.")
    height = width * image_shape[0] / (image_shape[1] * max(len(_numpy(r[1])) for r in rows))
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, 0.3 + len(rows) * 1.15 * height),
                             squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows):
        images = _numpy(images)
        if clip:
            images = np.clip(images, 0.0, 1.0)
        image_grid(images, nrow=len(images), image_shape=image_shape, ax=ax)
        ax.text(-0.01, 0.5, label, ha="right", va="center", fontsize=9, transform=ax.transAxes)
    return fig


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    ax: Axes | None = None,
    xlabel: str = "epoch",
    ylabel: str = "ELBO (nats per example)",
    title: str | None = None,
) -> Axes:
    """Plot named curves (e.g. ``{"train": [...], "test": [...]}``) against 1, 2, ... ."""
    ax = _axes(ax, figsize=(6, 4))
    for name, values in curves.items():
        values = list(values)
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax
