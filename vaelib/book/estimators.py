r"""Two Monte-Carlo estimators of the gradient of an expectation over a Gaussian, their exact
moments, and the figures of the chapter *The reparameterization trick*.

For parameters :math:`\phi` (an encoder's, or in the worked example the single number :math:`x`
that sets both the mean and the standard deviation), a Gaussian
:math:`q_\phi(z) = \mathcal N\big(z \mid \mu(\phi), \operatorname{diag}\sigma^2(\phi)\big)`
and a test function :math:`f`, both estimators are unbiased for

.. math:: \nabla_\phi\, \mathbb E_{q_\phi(z)}[f(z)].

* **Pathwise** (reparameterization) estimator (Kingma & Welling 2014, Sec. 2.4): write
  :math:`z = \mu(\phi) + \sigma(\phi)\odot\varepsilon` with
  :math:`\varepsilon\sim\mathcal N(0, I)` and differentiate through the sample,

  .. math:: \nabla_\phi f\big(\mu(\phi) + \sigma(\phi)\odot\varepsilon\big).

* **Score-function** (REINFORCE, likelihood-ratio) estimator (Williams 1992; the "naive"
  estimator of Kingma & Welling 2014, Sec. 2.2): differentiate the density instead of the sample,

  .. math:: \big(f(z) - b\big)\, \nabla_\phi \log q_\phi(z), \qquad z \sim q_\phi,

  with an optional constant baseline :math:`b` (it leaves the mean unchanged because
  :math:`\mathbb E_q[\nabla_\phi \log q_\phi(z)] = 0`).

Both functions return one estimate **per sample**, so that their mean (the estimator with
``L`` samples), variance and standard error can all be read off. :func:`exact_moments` gives the
exact mean and variance of one per-sample estimate when :math:`z` is one-dimensional, by
Gauss-Hermite quadrature over the noise. :func:`ks_distance` and :func:`dkw_bound` test the
*shape* of a distribution from samples (the Kolmogorov distance and the
Dvoretzky-Kiefer-Wolfowitz bound for it). :func:`draw_computation_graphs`,
:func:`plot_estimator_spread` and :func:`render_reparameterization` draw the chapter's figures
and its explorer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from vaelib._checks import check_positive_int
from vaelib.book.divergences import normal_log_prob

__all__ = [
    "FOUR_SE_FALSE_ALARM",
    "Moments",
    "dkw_bound",
    "draw_computation_graphs",
    "exact_moments",
    "ks_distance",
    "mu_sigma_direct",
    "pathwise_gradient",
    "plot_estimator_spread",
    "render_reparameterization",
    "score_function_gradient",
]

FOUR_SE_FALSE_ALARM = math.erfc(4 / math.sqrt(2))
r"""The chance that a standard normal lies more than four standard deviations from 0, about
:math:`6.3 \times 10^{-5}`: the false-alarm rate of a four-standard-error check."""

MuSigma = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Function = Callable[[torch.Tensor], torch.Tensor]
Estimator = Callable[..., torch.Tensor]


def _setup(
    phi: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int,
    eps: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One detached copy of ``phi`` per sample, ``(L, *phi.shape)``, and mu, sigma, eps."""
    phi = torch.as_tensor(phi)
    if not phi.is_floating_point():
        phi = phi.double()
    if eps is None:
        check_positive_int(num_samples, "num_samples")
        with torch.no_grad():
            mu0, _ = mu_sigma(phi.detach().unsqueeze(0))  # (1, *z_shape)
        eps = torch.randn((num_samples, *mu0.shape[1:]), generator=generator, dtype=phi.dtype)
    else:
        dtype = torch.promote_types(phi.dtype, eps.dtype)
        phi, eps = phi.to(dtype), eps.to(dtype)
    # every sample gets its own copy of phi, so the gradient of a sum over samples is the
    # stack of per-sample gradients
    copies = phi.detach().expand(len(eps), *phi.shape).clone().requires_grad_(True)
    mu, sigma = mu_sigma(copies)
    if mu.shape != sigma.shape or mu.shape != eps.shape:
        raise ValueError(
            "mu_sigma(phi) must return mu and sigma of the shape of one z, per sample; got "
            f"mu {tuple(mu.shape)}, sigma {tuple(sigma.shape)} for eps {tuple(eps.shape)}."
        )
    if not bool((sigma > 0).all()):
        raise ValueError(
            "mu_sigma(phi) must return a standard deviation sigma > 0 (not a log-variance); "
            f"got min(sigma) = {sigma.min().item():.4g}."
        )
    return copies, mu, sigma, eps


def _per_sample(values: torch.Tensor, num_samples: int) -> torch.Tensor:
    if values.shape != (num_samples,):
        raise ValueError(f"f must map z (L, ...) to one value per sample (L,), got {values.shape}.")
    return values


def pathwise_gradient(
    f: Function,
    phi: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int = 1000,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Per-sample pathwise (reparameterized) estimates of :math:`\nabla_\phi\mathbb E_q[f(z)]`.

    Sample ``l`` is :math:`\nabla_\phi f\big(\mu(\phi) + \sigma(\phi)\odot\varepsilon^{(l)}\big)`,
    computed by autograd. Their mean is the ``L``-sample estimator.

    Args:
        f: ``z (L, *z_shape) -> (L,)``, differentiable.
        phi: parameters, any shape (a scalar ``x`` in the book's worked example).
        mu_sigma: ``phi (L, *phi.shape) -> (mu, sigma)``, each ``(L, *z_shape)``: the mean
            and the standard deviation :math:`\sigma > 0` (not the variance) of :math:`q_\phi`.
        num_samples: ``L``, used when ``eps`` is not given.
        eps: standard normal noise ``(L, *z_shape)``; pass the same ``eps`` to both estimators
            to compare them on common random numbers.
        generator: random generator for ``eps`` when it is drawn here.

    Returns:
        per-sample gradient estimates, ``(L, *phi.shape)``.
    """
    copies, mu, sigma, eps = _setup(phi, mu_sigma, num_samples, eps, generator)
    z = mu + sigma * eps  # the reparameterization: a differentiable function of phi
    values = _per_sample(f(z), len(eps))
    (grad,) = torch.autograd.grad(values.sum(), copies)
    return grad


def score_function_gradient(
    f: Function,
    phi: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int = 1000,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    baseline: float = 0.0,
) -> torch.Tensor:
    r"""Per-sample score-function (REINFORCE) estimates of :math:`\nabla_\phi\mathbb E_q[f(z)]`.

    Sample ``l`` is :math:`\big(f(z^{(l)}) - b\big)\,\nabla_\phi \log q_\phi(z^{(l)})` with
    :math:`z^{(l)} = \mu + \sigma\odot\varepsilon^{(l)}` treated as a constant (no gradient flows
    through the sample or through :math:`f`, which need not be differentiable), and

    .. math:: \log q_\phi(z) = -\sum_j \Big[\tfrac12\log 2\pi + \log\sigma_j(\phi)
        + \frac{(z_j - \mu_j(\phi))^2}{2\sigma_j^2(\phi)}\Big]

    (:func:`vaelib.book.divergences.normal_log_prob`, summed over the dimensions of :math:`z`).

    Args:
        f: ``z (L, *z_shape) -> (L,)``.
        phi, mu_sigma, num_samples, eps, generator: as in :func:`pathwise_gradient`.
        baseline: constant :math:`b` subtracted from :math:`f` (a control variate; 0 gives
            plain REINFORCE).

    Returns:
        per-sample gradient estimates, ``(L, *phi.shape)``.
    """
    copies, mu, sigma, eps = _setup(phi, mu_sigma, num_samples, eps, generator)
    z = (mu + sigma * eps).detach()  # a sample: no gradient flows through it
    with torch.no_grad():
        weights = _per_sample(f(z), len(eps)) - baseline
    log_q = normal_log_prob(z, mu, sigma).reshape(len(eps), -1).sum(-1)  # (L,)
    (grad,) = torch.autograd.grad((weights * log_q).sum(), copies)
    return grad


class Moments(NamedTuple):
    """Exact moments of one per-sample gradient estimate, each of the shape of ``phi``."""

    mean: torch.Tensor
    var: torch.Tensor  # variance
    m3: torch.Tensor  # third central moment (its sign is the sign of the skew)
    m4: torch.Tensor  # fourth central moment: the standard error of a sample variance is
    # sqrt((m4 - var**2) / S) for S samples


def exact_moments(
    estimator: Estimator,
    f: Function,
    phi: torch.Tensor,
    mu_sigma: MuSigma,
    num_nodes: int = 20,
    **kwargs: Any,
) -> Moments:
    r"""Mean, variance, third and fourth central moments of one per-sample estimate, without
    sampling, for a one-dimensional :math:`z`.

    Gauss-Hermite quadrature replaces :math:`\mathbb E[g(\varepsilon)]`,
    :math:`\varepsilon \sim \mathcal N(0, 1)`, by the weighted sum :math:`\sum_i w_i\,g(\varepsilon_i)`
    over ``num_nodes`` fixed nodes :math:`\varepsilon_i`; the sum equals the expectation for
    every polynomial :math:`g` of degree at most ``2 * num_nodes - 1``. The estimator is run
    once with the nodes as its noise, so the moments are those of vaelib's own estimates. They
    are exact when the per-sample estimate is a polynomial in :math:`\varepsilon` of degree
    :math:`d` with :math:`4d \le` ``2 * num_nodes - 1`` (for the variance, :math:`2d`); for smooth
    non-polynomial estimates, more nodes give more accuracy.

    Args:
        estimator: :func:`pathwise_gradient` or :func:`score_function_gradient`.
        f, phi, mu_sigma: as for the estimator; ``mu_sigma`` returns ``(L,)`` tensors (a
            one-dimensional :math:`z`).
        num_nodes: quadrature nodes.
        **kwargs: passed to the estimator (e.g. ``baseline``).

    Returns:
        :class:`Moments`, each entry of the shape of ``phi``.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    # numpy's hermegauss is for the weight exp(-eps^2 / 2) (hermgauss is for exp(-eps^2)); the
    # weights sum to sqrt(2 pi), so dividing by it makes them the probabilities of the nodes
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    weights = torch.from_numpy(weights / math.sqrt(2 * math.pi))
    g = estimator(f, phi, mu_sigma, eps=torch.from_numpy(nodes), **kwargs)  # (num_nodes, ...)
    weights = weights.to(g.dtype).reshape(-1, *([1] * (g.dim() - 1)))
    mean = (weights * g).sum(0)
    centred = g - mean
    var, m3, m4 = ((weights * centred**k).sum(0) for k in (2, 3, 4))
    return Moments(mean, var, m3, m4)


def mu_sigma_direct(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``phi (L, 2) -> (mu, sigma)``, each ``(L,)``: the parameters are :math:`\mu` and
    :math:`\sigma` themselves, :math:`\phi = (\mu, \sigma)`."""
    return phi[:, 0], phi[:, 1]


# ---------------------------------------------------------------------------------------------
# The shape of a distribution from samples


def ks_distance(samples: Any, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    r"""The Kolmogorov distance :math:`D = \sup_z |F_S(z) - F(z)|` between the empirical
    distribution function :math:`F_S` of ``samples`` and the distribution function ``cdf``.

    :math:`F_S(z)` is the fraction of the :math:`S` samples at or below :math:`z`. It jumps by
    :math:`1/S` at each sorted sample :math:`z_{(s)}`, so the supremum is attained at a jump:
    :math:`D = \max_s \max\big(s/S - F(z_{(s)}),\; F(z_{(s)}) - (s - 1)/S\big)`.

    Args:
        samples: any shape; all entries are samples of one scalar distribution.
        cdf: ``z (S,) -> F(z) (S,)``, e.g. ``torch.distributions.Normal(mu, sigma).cdf``.

    Returns:
        :math:`D`, between 0 and 1.
    """
    z = torch.as_tensor(samples).detach().flatten().sort().values
    num_samples = len(z)
    if num_samples == 0:
        raise ValueError("ks_distance needs at least one sample.")
    p = torch.as_tensor(cdf(z)).to(torch.float64)
    if p.shape != z.shape:
        raise ValueError(
            f"cdf must map z {tuple(z.shape)} to one value each, got {tuple(p.shape)}."
        )
    rank = torch.arange(1, num_samples + 1, dtype=torch.float64)
    above = (rank / num_samples - p).max().item()  # just after each jump
    below = (p - (rank - 1) / num_samples).max().item()  # just before each jump
    return max(above, below)


def dkw_bound(num_samples: int, false_alarm: float = FOUR_SE_FALSE_ALARM) -> float:
    r"""The threshold :math:`t` that :func:`ks_distance` of ``num_samples`` correct draws exceeds
    with probability at most ``false_alarm``.

    The Dvoretzky-Kiefer-Wolfowitz inequality, with Massart's (1990) constant, says
    :math:`P(D > t) \le 2 e^{-2 S t^2}` for :math:`S` independent draws from a continuous
    distribution function; :math:`t = \sqrt{\log(2/\alpha) / (2S)}` makes the right side
    :math:`\alpha`. The default :math:`\alpha` is that of a four-standard-error check,
    :data:`FOUR_SE_FALSE_ALARM`.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}.")
    return math.sqrt(math.log(2 / false_alarm) / (2 * num_samples))


# ---------------------------------------------------------------------------------------------
# Figures of the chapter


def _node(ax: Axes, xy: tuple[float, float], text: str, random: bool):
    style = "circle,pad=0.25" if random else "round,pad=0.3"
    color = "#fdd9b5" if random else "#d6e6f5"
    bbox = {"boxstyle": style, "fc": color, "ec": "0.3"}
    return ax.annotate(text, xy, ha="center", va="center", fontsize=11, bbox=bbox)


def _link(ax: Axes, source, target, down: bool = False) -> None:
    """A forward arrow from the edge of node ``source`` to the edge of node ``target``."""
    start, end = ((0.5, 0.0), (0.5, 1.0)) if down else ((1.0, 0.5), (0.0, 0.5))
    ax.annotate(
        "",
        xy=end,
        xycoords=target,
        xytext=start,
        textcoords=source,
        arrowprops={"arrowstyle": "-|>", "color": "0.2", "lw": 1.4, "shrinkA": 2, "shrinkB": 2},
    )


def _backward(ax: Axes, start: float, end: float, y: float) -> None:
    """A dashed red arrow of the backward pass, from ``start`` to ``end`` at height ``y``."""
    ax.add_patch(
        FancyArrowPatch(
            (start, y),
            (end, y),
            arrowstyle="-|>",
            mutation_scale=12,
            color="C3",
            ls="--",
            lw=1.4,
        )
    )


def draw_computation_graphs() -> Figure:
    r"""The computation graph of :math:`f(z)` before and after the reparameterization.

    Left: :math:`z` is drawn from :math:`\mathcal N(\mu, \sigma^2)`, a random node, and the
    backward pass (dashed) stops there. Right: :math:`z = \mu + \sigma\odot\varepsilon` is a
    deterministic node; the randomness enters through :math:`\varepsilon`, which has no
    parameter, and the gradient reaches :math:`\phi`. Boxes are deterministic, circles random.
    """
    fig, axs = plt.subplots(1, 2, figsize=(9.5, 2.9))
    x_phi, x_ms, x_z, x_f, y, y_back = 0.0, 1.6, 3.5, 5.4, 0.0, -0.8
    for ax, reparameterized in zip(axs, (False, True)):
        phi = _node(ax, (x_phi, y), r"$\phi$", random=False)
        ms = _node(ax, (x_ms, y), r"$\mu, \sigma$", random=False)
        if reparameterized:
            z = _node(ax, (x_z, y), r"$z = \mu + \sigma \odot \varepsilon$", random=False)
            eps = _node(ax, (x_z, 1.3), r"$\varepsilon$", random=True)
            _link(ax, eps, z, down=True)
            ax.text(x_z + 0.3, 1.3, r"$\sim \mathcal{N}(0, I)$", va="center", fontsize=10)
        else:
            z = _node(ax, (x_z, y), r"$z$", random=True)
            ax.text(x_z, 0.7, r"$z \sim \mathcal{N}(\mu, \sigma^2)$", ha="center", fontsize=10)
        f = _node(ax, (x_f, y), r"$f(z)$", random=False)
        for source, target in [(phi, ms), (ms, z), (z, f)]:
            _link(ax, source, target)
        # the backward pass, below the forward one
        _backward(ax, x_f - 0.3, x_z + 0.5, y_back)
        if reparameterized:
            _backward(ax, x_z - 0.5, x_ms + 0.3, y_back)
            _backward(ax, x_ms - 0.3, x_phi + 0.2, y_back)
            note = r"$\nabla_\phi f$ reaches $\phi$"
        else:
            ax.text(
                (x_z + x_ms) / 2, y_back, "✕", color="C3", fontsize=16, ha="center", va="center"
            )
            note = r"no gradient reaches $\phi$"
        ax.text(x_phi - 0.2, y_back - 0.55, note, color="C3", fontsize=10, ha="left")
        ax.set_title(
            r"reparameterized: $z$ is a function of $\phi$ and $\varepsilon$"
            if reparameterized
            else r"sampled: $z$ is a random draw",
            fontsize=11,
        )
        ax.set_xlim(-0.4, 6.0)
        ax.set_ylim(-1.6, 1.8)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_estimator_spread(
    estimates: Mapping[str, torch.Tensor],
    exact_gradient: float,
    exact_var: Mapping[str, float],
    num_samples: int,
    sample_sizes: np.ndarray | None = None,
    exact_label: str = "exact",
) -> Figure:
    r"""Two panels: repeated :math:`L`-sample gradient estimates, and standard error against
    :math:`L`.

    Left: a histogram of each entry of ``estimates`` (one estimate per repeat, each the mean of
    ``num_samples`` per-sample estimates), with the exact gradient as a black line; the bins
    cover every estimate. Right: the standard error :math:`\sqrt{\mathrm{Var}/L}` of each
    estimator in ``exact_var`` (the exact per-sample variance) against :math:`L`, on log-log
    axes, with dots at :math:`L` = ``num_samples`` for the spreads (standard deviations) of the
    histograms. Names containing ``"score"`` are red, others blue; names containing
    ``"b ="`` or ``"b*"`` (baselines) are dotted or dashed.

    Args:
        estimates: name -> ``(repeats,)`` estimates, each from ``num_samples`` samples.
        exact_gradient: the value the estimators are unbiased for.
        exact_var: name -> exact variance of one per-sample estimate.
        num_samples: ``L``, samples per estimate.
        sample_sizes: values of :math:`L` for the right panel (default :math:`10^0`-:math:`10^4`).
        exact_label: legend label of the exact gradient, followed by its value.

    Returns:
        the figure.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    if sample_sizes is None:
        sample_sizes = np.logspace(0, 4, 50)

    def style(name: str) -> dict[str, Any]:
        color = "C3" if "score" in name else "C0"
        ls = ":" if "b =" in name else "--" if "b*" in name else "-"
        return {"color": color, "ls": ls}

    fig, (ax_h, ax_se) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    values = np.concatenate([e.detach().numpy().ravel() for e in estimates.values()])
    bins = np.linspace(values.min(), values.max(), 91)  # every estimate falls in a bin
    repeats = {len(e) for e in estimates.values()}
    for name, est in estimates.items():
        ax_h.hist(
            est.detach().numpy(), bins=bins, color=style(name)["color"], alpha=0.5, label=name
        )
    ax_h.axvline(exact_gradient, color="k", lw=1, label=f"{exact_label} = {exact_gradient:g}")
    ax_h.set_xlabel(f"gradient estimate from $L = {num_samples}$ samples")
    count = f"count (of {repeats.pop()} repeats)" if len(repeats) == 1 else "count"
    ax_h.set_ylabel(count)
    ax_h.legend(fontsize="small")

    for name, var in exact_var.items():
        ax_se.loglog(sample_sizes, np.sqrt(var / sample_sizes), label=name, **style(name))
    for name, est in estimates.items():
        ax_se.plot(num_samples, est.detach().std().item(), "o", color=style(name)["color"])
    ax_se.set_xlabel("number of samples $L$")
    ax_se.set_ylabel(r"standard error $\sqrt{\mathrm{Var}/L}$")
    ax_se.legend(fontsize="x-small")
    ax_se.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _square(z: torch.Tensor) -> torch.Tensor:
    return z**2


def render_reparameterization(
    mu: float,
    sigma: float,
    eps: torch.Tensor,
    f: Function = _square,
    exact: tuple[float, float] | None = None,
    f_label: str = "z^2",
) -> Figure:
    r"""One frame of the chapter's explorer: fixed noise, the samples it makes, and gradient
    estimates with respect to :math:`\phi = (\mu, \sigma)`.

    Left: histograms of the noise ``eps`` (grey) and of :math:`z = \mu + \sigma\varepsilon`
    (blue), the same noise shifted and stretched. Right: the pathwise (blue) and score-function
    (red) estimates of :math:`\partial/\partial\mu` and :math:`\partial/\partial\sigma` of
    :math:`\mathbb E[f(z)]`, each the mean over the ``S = len(eps)`` draws with a bar of two
    standard errors, and the exact values as black lines.

    Args:
        mu, sigma: mean and standard deviation :math:`\sigma > 0` of :math:`z`.
        eps: ``(S,)`` standard normal noise, fixed across frames.
        f: test function ``z (S,) -> (S,)``; default :math:`z^2`.
        exact: exact :math:`(\partial/\partial\mu, \partial/\partial\sigma)` of
            :math:`\mathbb E[f(z)]`; default :math:`(2\mu, 2\sigma)`, for :math:`f(z) = z^2`.
        f_label: :math:`f(z)` in LaTeX, for the title.

    Returns:
        the figure.
    """
    eps = torch.as_tensor(eps, dtype=torch.float64)
    phi = torch.tensor([mu, sigma], dtype=torch.float64)
    exact = (2 * mu, 2 * sigma) if exact is None else exact
    z = mu + sigma * eps
    fig, (ax_h, ax_g) = plt.subplots(1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [1.5, 1]})
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.18, top=0.88, wspace=0.3)
    eps_counts, eps_edges = np.histogram(eps.numpy(), bins=40, range=(-4, 4), density=True)
    z_counts, z_edges = np.histogram(z.numpy(), bins=80, range=(-8, 8), density=True)
    ax_h.stairs(
        eps_counts,
        eps_edges,
        fill=True,
        color="0.75",
        label=r"$\varepsilon \sim \mathcal{N}(0, 1)$",
    )
    ax_h.stairs(
        z_counts, z_edges, fill=True, color="C0", alpha=0.6, label=r"$z = \mu + \sigma\varepsilon$"
    )
    ax_h.set_xlim(-8, 8)
    ax_h.set_ylim(0, 1.7)
    ax_h.set_xlabel("value")
    ax_h.legend(loc="upper left", fontsize="small")
    estimators = [
        ("pathwise", pathwise_gradient, "C0"),
        ("score function", score_function_gradient, "C3"),
    ]
    for offset, (name, estimator, color) in zip([-0.12, 0.12], estimators):
        g = estimator(f, phi, mu_sigma_direct, eps=eps)  # (S, 2): d/dmu, d/dsigma per draw
        mean = g.mean(0).numpy()
        se = (g.std(0) / math.sqrt(len(g))).numpy()
        ax_g.errorbar(
            np.arange(2) + offset, mean, yerr=2 * se, fmt="o", color=color, capsize=3, label=name
        )
    ax_g.hlines(exact, [-0.3, 0.7], [0.3, 1.3], color="k", lw=2, label="exact")
    ax_g.set_xticks([0, 1], [r"$\partial/\partial\mu$", r"$\partial/\partial\sigma$"])
    ax_g.set_xlim(-0.5, 1.5)
    ax_g.set_ylim(-6, 9)
    ax_g.axhline(0, color="0.8", lw=0.8)
    ax_g.set_title(f"gradient of $\\mathbb{{E}}[{f_label}]$", fontsize="medium")
    ax_g.set_ylabel("estimate ± 2 standard errors")
    ax_g.legend(loc="upper center", ncol=3, fontsize="x-small", handlelength=1, columnspacing=0.8)
    return fig
