r"""Diagnostics of a trained VAE: the KL of each latent dimension and the active units.

A latent dimension :math:`j` that the encoder ignores has :math:`q(z_j|x) = p(z_j)` for every
:math:`x`: its KL is zero and its mean :math:`\mathbb E_{q}[z_j]` does not move with :math:`x`. When
that happens to every dimension, the model has suffered **posterior collapse**: the decoder
ignores :math:`z` and every sample looks alike. Two measures:

* :func:`kl_per_dimension` — :math:`\mathbb E_x\big[D_{KL}(q(z_j|x)\,\|\,p(z_j))\big]` per dimension,
  in nats (their sum is the KL term of the ELBO);
* :func:`active_units` — Burda et al. (2016), Sec. 5.2: dimension :math:`j` is *active* when
  :math:`A_j = \operatorname{Cov}_x\big(\mathbb E_{q(z|x)}[z_j]\big) > 0.01`.

Both take any model of the protocol (``encode(x) -> (mu, logvar)``) and data as a tensor or a
numpy array, and run without gradients in batches.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from vaelib._checks import as_data, check_number, check_positive_int
from vaelib.distributions import kl_normal_standard_per_dim

__all__ = [
    "ActiveUnits",
    "AggregatePosterior",
    "CollapseWarning",
    "active_units",
    "aggregate_posterior",
    "kl_per_dimension",
]

AU_THRESHOLD = 0.01  # Burda et al. (2016)


class CollapseWarning(UserWarning):
    """Issued by :func:`vaelib.fit` when training ends with no active latent dimension."""


class ActiveUnits(NamedTuple):
    """What :func:`active_units` returns."""

    count: int  # number of active dimensions
    active: torch.Tensor  # (J,) bool
    variances: torch.Tensor  # (J,) Cov_x(E_q[z_j]) = variance over x of mu_j


@torch.no_grad()
def _encode_all(model: Any, x: Any, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch_size = check_positive_int(batch_size, "batch_size")
    x = as_data(x, model)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}.")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        parts = [model.encode(xb) for xb in x.split(batch_size)]
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def kl_per_dimension(model: Any, x: Any, batch_size: int = 1000) -> torch.Tensor:
    r"""Mean KL of each latent dimension over the data, ``(J,)`` nats.

    .. math::
        \overline{\mathrm{KL}}_j = \frac1N \sum_{n=1}^N
        -\tfrac12\big(1 + \log\sigma_j^2(x_n) - \mu_j^2(x_n) - \sigma_j^2(x_n)\big)

    The sum over :math:`j` is the mean KL term of the ELBO on ``x``.
    """
    mu, logvar = _encode_all(model, x, batch_size)
    return kl_normal_standard_per_dim(mu, logvar).mean(0)


def active_units(
    model: Any, x: Any, threshold: float = AU_THRESHOLD, batch_size: int = 1000
) -> ActiveUnits:
    r"""Active latent dimensions (Burda et al. 2016): :math:`\operatorname{Cov}_x(\mathbb E_q[z_j])
    > \text{threshold}`.

    The covariance over the data ``x`` ``(N, ...)`` of the posterior mean of dimension :math:`j`
    is the (population) variance of :math:`\mu_j(x_n)` over :math:`n`.
    """
    threshold = check_number(threshold, "threshold", nonnegative=True)
    mu, _ = _encode_all(model, x, batch_size)
    if len(mu) < 2:
        raise ValueError("active_units needs at least two examples to measure a variance.")
    variances = mu.double().var(0, unbiased=False)
    active = variances > threshold
    return ActiveUnits(int(active.sum()), active, variances)


class AggregatePosterior(NamedTuple):
    """Mean and variance per latent dimension of the aggregate posterior, each ``(J,)``."""

    mean: torch.Tensor
    var: torch.Tensor


def aggregate_posterior(model: Any, x: Any, batch_size: int = 1000) -> AggregatePosterior:
    r"""Moments of the aggregate posterior :math:`q(z) = \frac1N \sum_n q(z|x_n)`, per dimension.

    .. math::
        \mathbb E_{q}[z_j] = \overline{\mu_j}, \qquad
        \operatorname{Var}_{q}[z_j] = \operatorname{Var}_n\big(\mu_j(x_n)\big)
        + \overline{\sigma_j^2}

    (the law of total variance). A VAE whose codes fill the prior :math:`\mathcal N(0, I)` has
    means near 0 and variances near 1.
    """
    mu, logvar = _encode_all(model, x, batch_size)
    mu, logvar = mu.double(), logvar.double()
    return AggregatePosterior(mu.mean(0), mu.var(0, unbiased=False) + logvar.exp().mean(0))
