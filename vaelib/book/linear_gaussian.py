r"""A latent-variable model whose evidence and posterior are exact: the book's ground truth.

.. math::
    p(z) = \mathcal N(0, I_J), \qquad p(x|z) = \mathcal N(Wz + b, \sigma^2 I_D)

Marginalising :math:`z` gives :math:`p(x) = \mathcal N(b, WW^\top + \sigma^2 I)`, and the
posterior is Gaussian (Bishop 2006, Sec. 12.2):

.. math::
    p(z|x) = \mathcal N\big(M^{-1}W^\top(x - b),\; \sigma^2 M^{-1}\big),
    \qquad M = W^\top W + \sigma^2 I.

When the columns of :math:`W` are orthogonal, :math:`M` is diagonal and so is the posterior: it
then lies in the family :math:`q(z|x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)` that a VAE's
encoder outputs, and the ELBO can be made tight. Every ELBO identity in the book is checked
against these exact formulas.
"""

from __future__ import annotations

import math

import torch

from vaelib.distributions import LOG_2PI, gaussian_log_prob, standard_normal_log_prob


class LinearGaussian:
    """Linear-Gaussian model (probabilistic PCA) with exact ``log_marginal`` and ``posterior``.

    Args:
        W: ``(D, J)`` loading matrix.
        b: ``(D,)`` offset.
        sigma: observation noise standard deviation :math:`\\sigma > 0`.

    Computations run in float64 so that identities can be asserted to tight tolerances.
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
        between 1 and 2, so the exact posterior is diagonal (see the module docstring).
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
        return self.W.shape[0]

    @property
    def z_dim(self) -> int:
        return self.W.shape[1]

    @property
    def logvar_x(self) -> float:
        """Observation log-variance :math:`\\log\\sigma^2`."""
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
        """:math:`\\log p(x|z)`, ``x`` ``(B, D)``, ``z`` ``(..., B, J)`` → ``(..., B)``."""
        mean = z.double() @ self.W.T + self.b
        return gaussian_log_prob(x.double(), mean, torch.full_like(mean, self.logvar_x))

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact evidence :math:`\log p(x) = \log\mathcal N(x \mid b, WW^\top + \sigma^2 I)`.

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

    def posterior_full(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact :math:`p(z|x)` as ``(mu, cov)``: ``mu`` ``(B, J)``, ``cov`` ``(J, J)``.

        The covariance :math:`\sigma^2 M^{-1}` is the same for every ``x``.
        """
        x = x.double()
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(self.z_dim, dtype=torch.float64)
        mu = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T
        cov = self.sigma**2 * torch.linalg.inv(M)
        return mu, cov

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact diagonal posterior :math:`p(z|x)` as ``(mu, logvar)``, each ``(B, J)``.

        Raises ``ValueError`` when the posterior is not diagonal (``W`` with non-orthogonal
        columns); use :meth:`posterior_full` then.
        """
        mu, cov = self.posterior_full(x)
        off_diag = cov - torch.diag(torch.diagonal(cov))
        if off_diag.abs().max() > 1e-10 * cov.abs().max():
            raise ValueError(
                "the exact posterior is not diagonal because W has non-orthogonal columns; "
                "use posterior_full(x), or build the model with LinearGaussian.random(..., "
                "orthogonal=True)."
            )
        logvar = torch.log(torch.diagonal(cov)).expand_as(mu)
        return mu, logvar

    def log_posterior(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p(z|x)` for ``z`` ``(..., B, J)``, ``x`` ``(B, D)`` → ``(..., B)``."""
        mu, cov = self.posterior_full(x)
        dist = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
        return dist.log_prob(z.double())

    def expected_log_likelihood(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        r"""Closed-form :math:`\mathbb E_{q}[\log p(x|z)]` for a diagonal Gaussian ``q``.

        Here :math:`q = \mathcal N(\mu, \operatorname{diag}\sigma_q^2)`,
        ``logvar`` = :math:`\log\sigma_q^2`:

        .. math::
            \mathbb E_q[\log p(x|z)] = \log\mathcal N(x \mid W\mu + b, \sigma^2 I)
            - \frac{1}{2\sigma^2}\sum_{d,j} W_{dj}^2\, \sigma_{q,j}^2

        Shapes: ``x`` ``(B, D)``, ``mu`` and ``logvar`` ``(B, J)`` → ``(B,)``.
        """
        mu, logvar = mu.double(), logvar.double()
        at_mean = self.log_px_given_z(x, mu)
        trace = (torch.exp(logvar) * (self.W**2).sum(0)).sum(-1)
        return at_mean - 0.5 * trace / self.sigma**2

    def kl_to_posterior(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        r"""Exact :math:`D_{KL}(q(z|x)\,\|\,p(z|x))` for a diagonal Gaussian ``q``, ``(B,)``."""
        mu_p, cov_p = self.posterior_full(x)
        q = torch.distributions.MultivariateNormal(
            mu.double(), covariance_matrix=torch.diag_embed(torch.exp(logvar.double()))
        )
        p = torch.distributions.MultivariateNormal(mu_p, covariance_matrix=cov_p)
        return torch.distributions.kl_divergence(q, p)
