r"""The evidence lower bound (ELBO) and importance-sampled estimates of :math:`\log p(x)`.

For one datapoint (Kingma & Welling 2014, Eq. 3 and 10):

.. math::
    \log p_\theta(x) \;\ge\; \mathcal L(\theta, \phi; x)
    = \mathbb E_{q_\phi(z|x)}\big[\log p_\theta(x|z)\big] - D_{KL}\big(q_\phi(z|x)\,\|\,p(z)\big)

with the expectation estimated by :math:`\frac1L\sum_{l} \log p_\theta(x|z^{(l)})`,
:math:`z^{(l)} = \mu + \sigma\odot\varepsilon^{(l)}`, and the KL in closed form. All values are
**per example, in nats**; a training loss is ``-elbo(...).elbo.mean()`` (mean over the batch).

The importance-weighted bound of Burda et al. (2016) tightens the ELBO as ``K`` grows:

.. math::
    \log p(x) \;\ge\; \mathcal L_K = \mathbb E\Big[\log \frac1K \sum_{k=1}^K
    \frac{p_\theta(x, z_k)}{q_\phi(z_k|x)}\Big], \qquad \mathcal L_1 = \mathcal L.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from vaelib._checks import check_positive_int
from vaelib.distributions import (
    gaussian_log_prob,
    kl_normal_standard,
    reparameterize,
    standard_normal_log_prob,
)

LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LatentVariableModel(Protocol):
    """What the objectives need: an encoder and a decoder log-likelihood."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


class ELBO(NamedTuple):
    """ELBO terms per example, each ``(B,)`` in nats: ``elbo = log_px - kl``."""

    elbo: torch.Tensor
    log_px: torch.Tensor  # Monte-Carlo estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # closed-form KL(q(z|x) || p(z))


def elbo_from_posterior(
    log_px_given_z: LogLikelihood,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    num_samples: int = 1,
) -> ELBO:
    r"""ELBO of any diagonal Gaussian :math:`q(z|x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)`.

    Args:
        log_px_given_z: ``(x (B, D), z (K, B, L)) -> (K, B)``, e.g. ``VAE.log_px_given_z``.
        x: data ``(B, D)``.
        mu, logvar: parameters of ``q``, ``(B, L)``.
        num_samples: ``L`` in the paper's notation (``K`` here): samples per datapoint.

    Returns:
        :class:`ELBO`, each term ``(B,)``.
    """
    check_positive_int(num_samples, "num_samples")
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    z = reparameterize(mu, logvar, eps)  # (K, B, L)
    log_px = log_px_given_z(x, z).mean(0)  # (B,)
    kl = kl_normal_standard(mu, logvar)  # (B,)
    return ELBO(log_px - kl, log_px, kl)


def elbo(model: LatentVariableModel, x: torch.Tensor, num_samples: int = 1) -> ELBO:
    r"""The SGVB estimate of the ELBO for each example (Kingma & Welling 2014, Eq. 10).

    Args:
        model: a :class:`~vaelib.models.VAE` (anything with ``encode`` and ``log_px_given_z``).
        x: data ``(B, D)``.
        num_samples: samples of ``z`` per datapoint (the paper used 1 with ``M = 100``).

    Returns:
        :class:`ELBO` with ``elbo``, ``log_px`` and ``kl``, each ``(B,)`` in nats.
    """
    mu, logvar = model.encode(x)
    return elbo_from_posterior(model.log_px_given_z, x, mu, logvar, num_samples)


def _log_weights(
    model: LatentVariableModel,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    num_samples: int,
) -> torch.Tensor:
    r"""Log importance weights :math:`\log p(x|z_k) + \log p(z_k) - \log q(z_k|x)`, ``(K, B)``."""
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    z = reparameterize(mu, logvar, eps)
    log_q = gaussian_log_prob(z, mu, logvar)
    return model.log_px_given_z(x, z) + standard_normal_log_prob(z) - log_q


def iwae_bound(model: LatentVariableModel, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    r"""The importance-weighted bound :math:`\mathcal L_K` (Burda et al. 2016), ``(B,)`` nats.

    ``num_samples=1`` gives the ELBO (with a Monte-Carlo KL); the bound rises with ``K`` towards
    :math:`\log p(x)`. Differentiable: it can be used as a training objective.
    """
    check_positive_int(num_samples, "num_samples")
    mu, logvar = model.encode(x)
    log_w = _log_weights(model, x, mu, logvar, num_samples)
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)


@torch.no_grad()
def log_likelihood(
    model: LatentVariableModel,
    x: torch.Tensor,
    num_samples: int = 1000,
    chunk_size: int = 100,
    batch_size: int = 500,
) -> torch.Tensor:
    r"""Importance-sampled estimate of :math:`\log p(x)` per example, ``(B,)`` nats.

    Uses :math:`\log \frac1K \sum_k w_k` with ``K = num_samples`` draws from :math:`q(z|x)`
    (the estimator of Rezende et al. 2014 and Burda et al. 2016). Memory stays bounded: at most
    ``chunk_size`` samples for ``batch_size`` examples are decoded at once, and the chunks are
    combined with a running ``logsumexp``.
    """
    for value, name in (
        (num_samples, "num_samples"),
        (chunk_size, "chunk_size"),
        (batch_size, "batch_size"),
    ):
        check_positive_int(value, name)
    results = []
    for xb in x.split(batch_size):
        mu, logvar = model.encode(xb)
        total = torch.full((len(xb),), -math.inf, dtype=mu.dtype, device=mu.device)
        for start in range(0, num_samples, chunk_size):
            k = min(chunk_size, num_samples - start)
            log_w = _log_weights(model, xb, mu, logvar, k)
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        results.append(total - math.log(num_samples))
    return torch.cat(results)
