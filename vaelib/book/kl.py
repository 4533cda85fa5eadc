r"""The KL divergence to the standard normal prior, taken apart: the chapter *The KL divergence in
closed form*.

For one latent dimension, with :math:`v = \log\sigma^2` (what the encoder outputs),

.. math::
    D_{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big)
    = \underbrace{\tfrac12 \mu^2}_{\text{mean part}}
    + \underbrace{\tfrac12 \big(e^{v} - 1 - v\big)}_{\text{spread part}},

the sum of :func:`vaelib.distributions.kl_normal_standard_per_dim`. The spread part is itself
the sum of a line and an exponential, :math:`(-\tfrac12 - \tfrac12 v) + \tfrac12 e^{v}`: for a
narrow :math:`q` (:math:`v \to -\infty`) the exponential vanishes and the line remains; for a
wide :math:`q` the exponential takes over (their ratio tends to 1, while the gap, the line,
grows without bound).

This module holds the two parts (:func:`kl_parts`, :func:`spread_asymptotes`), the figure of the
two parts (:func:`kl_parts_figure`) and the chapter's explorer (:func:`kl_explorer_frame`,
:func:`kl_explorer`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from vaelib.book.divergences import normal_log_prob
from vaelib.book.widgets import explorer
from vaelib.distributions import kl_normal_standard

__all__ = [
    "KLParts",
    "SpreadAsymptotes",
    "kl_explorer",
    "kl_explorer_frame",
    "kl_parts",
    "kl_parts_figure",
    "spread_asymptotes",
]


class KLParts(NamedTuple):
    """The KL to :math:`\\mathcal N(0, 1)` of each latent dimension, split by parameter."""

    mean: torch.Tensor
    spread: torch.Tensor


class SpreadAsymptotes(NamedTuple):
    """The two terms whose sum is the spread part: a line and an exponential in ``logvar``."""

    line: torch.Tensor
    exponential: torch.Tensor


def kl_parts(mu: torch.Tensor, logvar: torch.Tensor) -> KLParts:
    r"""The mean part :math:`\tfrac12\mu_j^2` and the spread part
    :math:`\tfrac12(\sigma_j^2 - 1 - \log\sigma_j^2)` of the KL, per latent dimension.

    ``mean + spread`` is :func:`vaelib.distributions.kl_normal_standard_per_dim`; summed over
    the last dimension it is :func:`vaelib.distributions.kl_normal_standard`.

    Args:
        mu: mean, any shape (e.g. ``(M, J)``).
        logvar: log-variance :math:`\log\sigma^2`, broadcastable against ``mu``.

    Returns:
        :class:`KLParts` ``(mean, spread)``, each of the broadcast shape, in nats; both are
        :math:`\ge 0`.
    """
    mu, logvar = torch.broadcast_tensors(torch.as_tensor(mu), torch.as_tensor(logvar))
    return KLParts(0.5 * mu**2, 0.5 * (torch.exp(logvar) - 1.0 - logvar))


def spread_asymptotes(logvar: torch.Tensor) -> SpreadAsymptotes:
    r"""The line :math:`-\tfrac12 - \tfrac12\log\sigma^2` and the exponential
    :math:`\tfrac12\sigma^2 = \tfrac12 e^{\log\sigma^2}`, whose sum is the spread part.

    The line is what the spread part approaches for a narrow :math:`q` (the gap is the
    exponential, which vanishes); the exponential is what it approaches for a wide :math:`q`
    (their ratio tends to 1).
    """
    logvar = torch.as_tensor(logvar)
    return SpreadAsymptotes(-0.5 - 0.5 * logvar, 0.5 * torch.exp(logvar))


def kl_parts_figure(
    mu_range: tuple[float, float] = (-3.0, 3.0),
    logvar_range: tuple[float, float] = (-6.0, 2.5),
    num_points: int = 301,
) -> Figure:
    r"""Two panels: the mean part against :math:`\mu`, and the spread part against
    :math:`\log\sigma^2` with its line and its exponential (dotted and dashed); a top axis reads
    :math:`\sigma`. The curves are computed by :func:`kl_parts` and :func:`spread_asymptotes`."""
    mu = torch.linspace(*mu_range, num_points, dtype=torch.float64)
    logvar = torch.linspace(*logvar_range, num_points, dtype=torch.float64)
    mean = kl_parts(mu, torch.zeros_like(mu)).mean
    spread = kl_parts(torch.zeros_like(logvar), logvar).spread
    line, exponential = spread_asymptotes(logvar)
    top = float(1.15 * max(spread[0], spread[-1]))

    fig, (ax_m, ax_s) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_m.plot(mu, mean, color="C2")
    ax_m.plot(0, 0, "ko", ms=4)
    ax_m.set_xlabel(r"$\mu$")
    ax_m.set_title(r"mean part $\frac{1}{2}\mu^2$")

    ax_s.plot(logvar, spread, color="C1", lw=2, label=r"$\frac{1}{2}(\sigma^2 - 1 - \log\sigma^2)$")
    ax_s.plot(
        logvar, line, color="0.4", ls=":", label=r"line $-\frac{1}{2} - \frac{1}{2}\log\sigma^2$"
    )
    ax_s.plot(logvar, exponential, color="0.4", ls="--", label=r"exponential $\frac{1}{2}\sigma^2$")
    ax_s.plot(0, 0, "ko", ms=4)
    ax_s.set_ylim(-0.6, top)
    ax_s.set_xlim(*logvar_range)
    ax_s.set_xlabel(r"$\log\sigma^2$ (what the encoder outputs)")
    ax_s.set_title("spread part", pad=4)
    ax_s.legend(fontsize="small", loc="upper center")
    sigma_ticks = [
        sd
        for sd in (0.05, 0.1, 0.25, 0.5, 1, 2, 4)
        if logvar_range[0] <= 2 * math.log(sd) <= logvar_range[1]
    ]
    ax_top = ax_s.secondary_xaxis(
        "top",
        functions=(lambda v: np.exp(0.5 * v), lambda sd: 2 * np.log(np.clip(sd, 1e-300, None))),
    )
    ax_top.set_xticks(sigma_ticks, [f"{sd:g}" for sd in sigma_ticks])
    ax_top.set_xlabel(r"$\sigma$", labelpad=1, loc="right")
    for ax in (ax_m, ax_s):
        ax.set_ylabel("nats")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def kl_explorer_frame(
    mu: float, sigma: float, *, z_max: float = 8.0, kl_max: float = 3.3
) -> Figure:
    r"""One frame of the explorer: :math:`q = \mathcal N(\mu, \sigma^2)` over the prior
    :math:`\mathcal N(0, 1)` (left), and the KL with its mean and spread parts as bars (right).

    Args:
        mu, sigma: the mean and standard deviation of :math:`q` (:math:`\sigma > 0`).
        z_max: the density panel shows :math:`z \in [-z_{max}, z_{max}]`.
        kl_max: top of the bar panel, in nats.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    mu_t = torch.tensor([float(mu)], dtype=torch.float64)
    logvar_t = torch.tensor([2.0 * math.log(sigma)], dtype=torch.float64)
    mean_part, spread_part = (float(p) for p in kl_parts(mu_t, logvar_t))
    kl = kl_normal_standard(mu_t, logvar_t).item() + 0.0  # + 0.0 turns -0.0 into 0.0: no "-0.00"
    z = torch.linspace(-z_max, z_max, 801, dtype=torch.float64)
    prior_density = normal_log_prob(z, 0.0, 1.0).exp()
    q_density = normal_log_prob(z, float(mu), float(sigma)).exp()

    fig, (ax_d, ax_k) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1.6, 1]})
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.18, top=0.9, wspace=0.25)
    ax_d.fill_between(z, prior_density, color="0.85", label=r"prior $\mathcal{N}(0, 1)$")
    ax_d.plot(z, q_density, color="C0", lw=2, label=r"$q = \mathcal{N}(\mu, \sigma^2)$")
    ax_d.set_xlim(-z_max, z_max)
    ax_d.set_ylim(0, 2.1)
    ax_d.set_xlabel("$z$")
    ax_d.legend(loc="upper center", ncol=2, fontsize="small")
    bars = ax_k.bar(
        ["mean\npart", "spread\npart", "KL"],
        [mean_part, spread_part, kl],
        color=["C2", "C1", "C0"],
    )
    ax_k.bar_label(bars, fmt="%.2f", fontsize="small")
    ax_k.set_ylim(0, kl_max)
    ax_k.set_ylabel("nats")
    ax_k.set_title(rf"$D_{{\mathrm{{KL}}}}(q\,\|\,p) = {kl:.2f}$ nats", fontsize="medium")
    return fig


def kl_explorer(
    mu_values: Sequence[float] = tuple(np.linspace(-2.0, 2.0, 9)),
    sigma_values: Sequence[float] = tuple(np.linspace(0.25, 2.0, 8)),
    *,
    initial: dict[str, float] | None = None,
    **kwargs: Any,
):
    r"""The chapter's explorer: sliders for :math:`\mu` and :math:`\sigma` over
    :func:`kl_explorer_frame`, through :func:`vaelib.book.widgets.explorer`.

    The density panel covers :math:`\mu \pm 3\sigma` for every slider value, and the bar panel
    the largest KL on the grid (at its corners), so no frame is cut off.

    Args:
        mu_values, sigma_values: the slider values (the website shows exactly these).
        initial: starting values (default ``mu = 1``, ``sigma = 0.5``).
        **kwargs: passed on to :func:`vaelib.book.widgets.explorer` (e.g. ``static=True``).
    """
    mu_values = [float(m) for m in mu_values]
    sigma_values = [float(s) for s in sigma_values]
    if min(sigma_values) <= 0:
        raise ValueError(f"every sigma must be positive, got {sigma_values}.")
    z_max = max(abs(m) for m in mu_values) + 3.0 * max(sigma_values)
    corners = torch.tensor(
        [
            [m, 2.0 * math.log(s)]
            for m in (min(mu_values), max(mu_values))
            for s in (min(sigma_values), max(sigma_values))
        ],
        dtype=torch.float64,
    )
    largest = kl_normal_standard(corners[:, :1], corners[:, 1:]).max().item()
    render = functools.partial(kl_explorer_frame, z_max=z_max, kl_max=1.15 * largest)
    kwargs.setdefault("labels", {"mu": "μ", "sigma": "σ"})
    kwargs.setdefault(
        "description",
        "q = N(μ, σ²) against the prior N(0, 1), and KL(q ‖ p) split into its mean and spread parts.",
    )
    return explorer(
        render,
        {"mu": mu_values, "sigma": sigma_values},
        initial=initial or {"mu": 1.0, "sigma": 0.5},
        **kwargs,
    )
