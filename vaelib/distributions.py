r"""Gaussian and Bernoulli densities, the reparameterization trick and closed-form KLs.

Conventions (used across vaelib and the book):

* a diagonal Gaussian is given by its mean ``mu`` and its log-variance
  ``logvar`` = :math:`\log\sigma^2`;
* log-densities and KL divergences are **summed over the last (data or latent) dimension**, so
  they return one value per example, in nats;
* batch shapes are free: ``(B, J)`` gives ``(B,)``, ``(L, B, J)`` gives ``(L, B)``.

Introduced in the chapters *The KL divergence in closed form* and *The reparameterization trick*.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Draw :math:`z = \mu + \sigma \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`.

    The sample is a deterministic, differentiable function of ``mu`` and ``logvar``, so
    gradients flow to both (Kingma & Welling 2014, Sec. 2.4).

    Args:
        mu: mean, shape ``(..., J)``.
        logvar: log-variance :math:`\log\sigma^2`, same shape as ``mu``.
        eps: noise of shape ``(..., J)`` broadcastable against ``mu`` (e.g. ``(L, B, J)`` for
            ``L`` samples per datapoint); drawn from :math:`\mathcal N(0, I)` when ``None``.

    Returns:
        ``z``, with the shape of ``mu`` broadcast against ``eps``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}."
        )
    if eps is None:
        eps = torch.randn_like(mu)
    sigma = torch.exp(0.5 * logvar)
    return mu + sigma * eps


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a diagonal Gaussian, summed over the last dimension.

    .. math::
        \log \mathcal N(x \mid \mu, \operatorname{diag}\sigma^2)
        = -\tfrac12 \sum_{d} \Big[\log 2\pi + \log\sigma_d^2 + \frac{(x_d-\mu_d)^2}{\sigma_d^2}\Big]

    Args:
        x, mean, logvar: broadcastable tensors with last dimension ``D``.

    Returns:
        log-density in nats, shape ``broadcast(...)`` without the last dimension.
    """
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar)).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    r"""Log-density of the prior :math:`p(z) = \mathcal N(0, I)`, summed over the last dimension.

    .. math:: \log p(z) = -\tfrac12 \sum_j \big(\log 2\pi + z_j^2\big)

    Args:
        z: shape ``(..., J)``.

    Returns:
        shape ``(...)``.
    """
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    r"""Log-probability of ``x`` under independent Bernoullis with the given logits.

    .. math::
        \log p(x \mid z) = \sum_d \big[x_d \log y_d + (1 - x_d)\log(1 - y_d)\big],
        \qquad y = \operatorname{sigm}(\text{logits})

    Computed from logits as :math:`-\mathrm{BCEWithLogits}`, which never takes ``log(0)``.
    ``x`` may be any value in [0, 1]: grey levels give the cross-entropy that many MNIST VAEs
    use, which is not a log-probability of grey-level data (the continuous Bernoulli of
    Loaiza-Ganem & Cunningham (2019) adds the missing normaliser).

    Args:
        x: data in [0, 1], shape ``(..., D)``.
        logits: decoder output before the sigmoid, broadcastable against ``x``.

    Returns:
        shape ``broadcast(...)`` without the last dimension, in nats.
    """
    x, logits = torch.broadcast_tensors(x, logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def kl_normal_standard_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""The KL of :func:`kl_normal_standard` for each latent dimension, not summed: ``(..., J)``.

    .. math::
        D_{KL,j} = -\tfrac12 \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big) \;\ge\; 0

    Used to measure posterior collapse (:mod:`vaelib.diagnostics`) and for free bits.
    """
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}."
        )
    return -0.5 * (1.0 + logvar - mu**2 - torch.exp(logvar))


def kl_normal_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Closed-form :math:`D_{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(0, I)\big)`.

    .. math::
        D_{KL} = -\tfrac12 \sum_{j=1}^{J} \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)

    (Kingma & Welling 2014, Appendix B; note the leading minus sign: without it the expression
    is :math:`-D_{KL}`, which is what the ELBO adds.)

    Args:
        mu, logvar: shape ``(..., J)``.

    Returns:
        KL in nats, summed over the ``J`` latent dimensions, shape ``(...)``; always >= 0.
    """
    return kl_normal_standard_per_dim(mu, logvar).sum(-1)


def kl_normal_normal(
    mu_q: torch.Tensor,
    logvar_q: torch.Tensor,
    mu_p: torch.Tensor,
    logvar_p: torch.Tensor,
) -> torch.Tensor:
    r"""Closed-form KL between two diagonal Gaussians, summed over the last dimension.

    .. math::
        D_{KL}(q\,\|\,p) = \tfrac12 \sum_j \Big[\log\frac{\sigma_{p,j}^2}{\sigma_{q,j}^2}
        + \frac{\sigma_{q,j}^2 + (\mu_{q,j} - \mu_{p,j})^2}{\sigma_{p,j}^2} - 1\Big]

    Args:
        mu_q, logvar_q: parameters of :math:`q`, shape ``(..., J)``.
        mu_p, logvar_p: parameters of :math:`p`, broadcastable against ``mu_q``.

    Returns:
        shape ``(...)``, in nats.
    """
    return 0.5 * (
        logvar_p
        - logvar_q
        + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p)
        - 1.0
    ).sum(-1)
