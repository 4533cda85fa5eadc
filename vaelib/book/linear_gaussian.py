r"""A latent-variable model whose evidence and posterior are exact: the book's ground truth.

.. math::
    p(z) = \mathcal N(0, I_J), \qquad p_\theta(x|z) = \mathcal N(Wz + b, \sigma_x^2 I_D)

with :math:`J` latent and :math:`D` observed dimensions, and :math:`\sigma_x` the decoder's noise
standard deviation (``sigma``; not the encoder's :math:`\sigma`). Marginalising :math:`z` gives
:math:`p_\theta(x) = \mathcal N(b, WW^\top + \sigma_x^2 I_D)`, and the posterior is Gaussian
(probabilistic PCA, Bishop 2006, Sec. 12.2.1):

.. math::
    p_\theta(z|x) = \mathcal N\big(\Lambda^{-1}W^\top(x - b) / \sigma_x^2,\; \Lambda^{-1}\big),
    \qquad \Lambda = I_J + W^\top W / \sigma_x^2,

with the precision (inverse covariance) :math:`\Lambda` the same for every :math:`x`.

When the columns of :math:`W` are orthogonal, :math:`\Lambda` is diagonal and so is the
posterior: it then lies in the family :math:`q(z|x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)`
that a VAE's encoder outputs, and the ELBO can be made tight. Otherwise the best diagonal
:math:`q` has the posterior mean and the variances :math:`1/\Lambda_{jj}`, smaller than the
posterior's marginal variances, and a gap
:math:`\tfrac12(\sum_j \log\Lambda_{jj} - \log\det\Lambda) > 0` remains (Bishop 2006,
Sec. 10.1.2). Every ELBO identity in the book is checked against these exact
formulas.

Introduced in the chapter *The ELBO, step by step*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from matplotlib.axes import Axes

from vaelib.distributions import (
    LOG_2PI,
    gaussian_log_prob,
    kl_normal_standard,
    standard_normal_log_prob,
)

__all__ = ["LinearGaussian", "plot_latent_densities"]


class LinearGaussian:
    """Linear-Gaussian model (probabilistic PCA) with an exact evidence, posterior and ELBO.

    Args:
        W: ``(D, J)`` loading matrix.
        b: ``(D,)`` offset.
        sigma: the decoder's noise standard deviation :math:`\\sigma_x > 0`.

    Computations run in float64 so that identities can be asserted to tight tolerances.
    Batches of data are rows: ``x`` is ``(B, D)``; a diagonal Gaussian ``q`` is given by
    ``mu`` and ``logvar`` (:math:`\\log\\sigma^2`), each ``(B, J)``.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float) -> None:
        if W.dim() != 2 or b.shape != (W.shape[0],):
            raise ValueError(f"need W (D, J) and b (D,), got {tuple(W.shape)}, {tuple(b.shape)}.")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}.")
        self.W = W.double()
        self.b = b.double()
        self.sigma = float(sigma)

    @classmethod
    def random(
        cls,
        x_dim: int,
        z_dim: int,
        sigma: float = 0.5,
        seed: int = 0,
        orthogonal: bool = True,
    ) -> LinearGaussian:
        """A model with random ``W`` and ``b ~ N(0, I)``, from a fixed seed.

        With ``orthogonal=True`` (default) the columns of ``W`` are orthogonal with lengths
        between 1 and 2, so the exact posterior is diagonal (see the module docstring). With
        ``orthogonal=False`` the entries of ``W`` are independent :math:`\\mathcal N(0, 1)`.
        """
        if z_dim > x_dim:
            raise ValueError(f"need z_dim <= x_dim, got z_dim={z_dim}, x_dim={x_dim}.")
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64)
        if orthogonal:
            Q, _ = torch.linalg.qr(W)  # (D, J) with orthonormal columns
            scales = 1.0 + torch.rand(z_dim, generator=g, dtype=torch.float64)
            W = Q * scales
        b = torch.randn(x_dim, generator=g, dtype=torch.float64)
        return cls(W, b, sigma)

    @property
    def x_dim(self) -> int:
        """:math:`D`, the number of observed dimensions."""
        return self.W.shape[0]

    @property
    def z_dim(self) -> int:
        """:math:`J`, the number of latent dimensions."""
        return self.W.shape[1]

    @property
    def logvar_x(self) -> float:
        """The decoder's log-variance :math:`\\log\\sigma_x^2`."""
        return 2.0 * math.log(self.sigma)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``x`` ``(n, D)``: ``z ~ p(z)``, then ``x ~ p(x|z)``."""
        z = torch.randn(n, self.z_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, self.x_dim, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.sigma * noise

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(z)`, ``(..., J)`` → ``(...)``."""
        return standard_normal_log_prob(z.double())

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p_\\theta(x|z)`, ``x`` ``(B, D)``, ``z`` ``(..., B, J)`` → ``(..., B)``."""
        mean = z.double() @ self.W.T + self.b
        return gaussian_log_prob(x.double(), mean, torch.full_like(mean, self.logvar_x))

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact evidence :math:`\log p_\theta(x) = \log\mathcal N(x \mid b, WW^\top + \sigma_x^2 I)`.

        Computed with a Cholesky factor of the ``(D, D)`` covariance; returns ``(B,)``.
        """
        x = x.double()
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(self.x_dim, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)
        diff = (x - self.b).T  # (D, B)
        solved = torch.linalg.solve_triangular(chol, diff, upper=False)  # L^{-1}(x - b)
        maha = (solved**2).sum(0)
        logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
        return -0.5 * (self.x_dim * LOG_2PI + logdet + maha)

    def posterior_precision(self) -> torch.Tensor:
        r"""The posterior precision :math:`\Lambda = I_J + W^\top W / \sigma_x^2`, ``(J, J)``,
        the inverse of the posterior covariance (the same for every ``x``)."""
        eye = torch.eye(self.z_dim, dtype=torch.float64)
        return eye + self.W.T @ self.W / self.sigma**2

    def posterior_full(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact :math:`p_\theta(z|x)` as ``(mu, cov)``: ``mu`` ``(B, J)``, ``cov`` ``(J, J)``.

        The mean is :math:`\Lambda^{-1} W^\top (x - b) / \sigma_x^2` and the covariance
        :math:`\Lambda^{-1}`, the same for every ``x``, with :math:`\Lambda` the
        :meth:`posterior_precision`.
        """
        x = x.double()
        precision = self.posterior_precision()
        mu = torch.linalg.solve(precision, self.W.T @ (x - self.b).T / self.sigma**2).T
        cov = torch.linalg.inv(precision)
        return mu, cov

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact diagonal posterior :math:`p_\theta(z|x)` as ``(mu, logvar)``, each ``(B, J)``.

        Raises ``ValueError`` when the posterior is not diagonal (``W`` with non-orthogonal
        columns); use :meth:`posterior_full` or :meth:`best_diagonal_q` then.
        """
        mu, cov = self.posterior_full(x)
        off_diag = cov - torch.diag(torch.diagonal(cov))
        if off_diag.abs().max() > 1e-10 * cov.abs().max():
            raise ValueError(
                "the exact posterior is not diagonal because W has non-orthogonal columns; "
                "use posterior_full(x) or best_diagonal_q(x), or build the model with "
                "LinearGaussian.random(..., orthogonal=True)."
            )
        logvar = torch.log(torch.diagonal(cov)).expand_as(mu)
        return mu, logvar

    def log_posterior(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p_\\theta(z|x)` for ``z`` ``(..., B, J)``, ``x`` ``(B, D)`` → ``(..., B)``."""
        mu, cov = self.posterior_full(x)
        dist = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
        return dist.log_prob(z.double())

    def expected_log_likelihood(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        r"""Closed-form :math:`\mathbb E_{q}[\log p_\theta(x|z)]` for a diagonal Gaussian ``q``.

        Here :math:`q = \mathcal N(\mu, \operatorname{diag}\sigma^2)`, ``logvar`` =
        :math:`\log\sigma^2`:

        .. math::
            \mathbb E_q[\log p_\theta(x|z)] = \log\mathcal N(x \mid W\mu + b, \sigma_x^2 I)
            - \frac{1}{2\sigma_x^2}\sum_{d,j} W_{dj}^2\, \sigma_j^2

        Shapes: ``x`` ``(B, D)``, ``mu`` and ``logvar`` ``(B, J)`` → ``(B,)``.
        """
        mu, logvar = mu.double(), logvar.double()
        at_mean = self.log_px_given_z(x, mu)
        trace = (torch.exp(logvar) * (self.W**2).sum(0)).sum(-1)
        return at_mean - 0.5 * trace / self.sigma**2

    def elbo(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        r"""Closed-form ELBO of a diagonal Gaussian :math:`q = \mathcal N(\mu, \operatorname{diag}\sigma^2)`.

        .. math::
            \mathcal L = \mathbb E_q[\log p_\theta(x|z)] - D_{KL}\big(q \,\|\, p(z)\big)

        (:meth:`expected_log_likelihood` minus :func:`~vaelib.distributions.kl_normal_standard`).
        It equals :meth:`log_marginal` minus :meth:`kl_to_posterior`. Differentiable in ``mu``
        and ``logvar``. Shapes: ``x`` ``(B, D)``, ``mu`` and ``logvar`` ``(B, J)`` → ``(B,)``.
        """
        mu, logvar = mu.double(), logvar.double()
        return self.expected_log_likelihood(x, mu, logvar) - kl_normal_standard(mu, logvar)

    def kl_to_posterior(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        r"""Exact :math:`D_{KL}(q(z|x)\,\|\,p_\theta(z|x))` for a diagonal Gaussian ``q``, ``(B,)``."""
        mu_p, cov_p = self.posterior_full(x)
        q = torch.distributions.MultivariateNormal(
            mu.double(), covariance_matrix=torch.diag_embed(torch.exp(logvar.double()))
        )
        p = torch.distributions.MultivariateNormal(mu_p, covariance_matrix=cov_p)
        return torch.distributions.kl_divergence(q, p)

    def best_diagonal_q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The diagonal Gaussian ``q`` with the largest ELBO, as ``(mu, logvar)``, each ``(B, J)``.

        Its mean is the posterior mean and its variances are :math:`1/\Lambda_{jj}`, the inverse
        diagonal of the posterior precision :meth:`posterior_precision` (Bishop 2006, Eq. 10.13).
        They are the posterior's *conditional* variances, :math:`\operatorname{Var}[z_j \mid
        x, z_{-j}]`, never larger than its marginal variances; the two agree exactly when the
        posterior is diagonal, and then ``q`` is the posterior.
        """
        mu, _ = self.posterior_full(x)
        logvar = -torch.log(torch.diagonal(self.posterior_precision()))
        return mu, logvar.expand_as(mu)

    def approximation_gap(self, x: torch.Tensor) -> torch.Tensor:
        r"""The gap that no diagonal ``q`` can close: :math:`\log p_\theta(x)` minus the ELBO of
        :meth:`best_diagonal_q`, ``(B,)`` nats.

        .. math::
            \log p_\theta(x) - \max_{q\ \mathrm{diagonal}} \mathcal L
            = \tfrac12\Big(\sum_j \log\Lambda_{jj} - \log\det\Lambda\Big) \;\ge\; 0,

        computed from the posterior precision :math:`\Lambda` alone; it is the same for every
        ``x``, and zero exactly when :math:`\Lambda` is diagonal (Hadamard's inequality).
        """
        precision = self.posterior_precision()
        gap = 0.5 * (torch.log(torch.diagonal(precision)).sum() - torch.logdet(precision))
        return gap.expand(x.shape[0])


LogDensity = Callable[[torch.Tensor], torch.Tensor]


def plot_latent_densities(
    ax: Axes,
    densities: Sequence[tuple[str, LogDensity, str, str]],
    lim: float = 3.0,
    num: int = 241,
    levels: Sequence[float] = (0.05, 0.3, 0.7),
    center: tuple[float, float] = (0.0, 0.0),
) -> Axes:
    r"""Contours of two-dimensional densities over a square of half-width ``lim`` around ``center``.

    Args:
        ax: the axes to draw on.
        densities: ``(label, log_density, color, linestyle)`` for each density, where
            ``log_density`` maps points ``(H, W, 1, 2)`` (a batch of one ``x`` per point) to
            log-densities ``(H, W, 1)``, e.g. ``model.log_prior`` or
            ``lambda z: model.log_posterior(z, x)``.
        lim, num: the half-width of the square and the number of grid points per side.
        levels: contour levels as fractions of each density's peak on the grid.
        center: the centre :math:`(z_1, z_2)` of the square.

    Returns:
        ``ax``, with equal aspect, axis labels :math:`z_1, z_2` and a legend.
    """
    axes = [torch.linspace(c - lim, c + lim, num, dtype=torch.float64) for c in center]
    z1, z2 = torch.meshgrid(*axes, indexing="xy")
    grid = torch.stack([z1, z2], -1).unsqueeze(-2)  # (H, W, 1, 2)
    for label, log_density, color, style in densities:
        density = log_density(grid)[..., 0].exp()
        ax.contour(
            z1,
            z2,
            density,
            levels=float(density.max()) * torch.tensor(sorted(levels)),
            colors=color,
            linestyles=style,
        )
        ax.plot([], [], color=color, linestyle=style, label=label)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize="small")
    return ax
