r"""The evidence lower bound (ELBO) and importance-sampled estimates of :math:`\log p(x)`.

For one datapoint (Kingma & Welling 2014, Eq. 3 and 10):

.. math::
    \log p_\theta(x) \;\ge\; \mathcal L(\theta, \phi; x)
    = \mathbb E_{q_\phi(z|x)}\big[\log p_\theta(x|z)\big] - D_{KL}\big(q_\phi(z|x)\,\|\,p(z)\big)

with the expectation estimated by :math:`\frac1L\sum_{l=1}^{L} \log p_\theta(x|z^{(l)})`,
:math:`z^{(l)} = \mu + \sigma\odot\varepsilon^{(l)}`, and the KL in closed form. All values are
**per example, in nats**; a training loss is ``-elbo(...).elbo.mean()`` (mean over the batch).

The importance-weighted bound of Burda et al. (2016) tightens the ELBO as the number ``K`` of
importance samples grows:

.. math::
    \log p(x) \;\ge\; \mathcal L_K = \mathbb E\Big[\log \frac1K \sum_{k=1}^K
    \frac{p_\theta(x, z_k)}{q_\phi(z_k|x)}\Big], \qquad \mathcal L_1 = \mathcal L.

Every function takes any model of the protocol :class:`LatentVariableModel` and data as a tensor
or a numpy array; the data are moved to the device of the model's parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from vaelib._checks import as_data, check_positive_int
from vaelib.distributions import (
    gaussian_log_prob,
    kl_normal_standard,
    reparameterize,
    standard_normal_log_prob,
)

__all__ = [
    "ELBO",
    "LatentVariableModel",
    "elbo",
    "elbo_from_posterior",
    "iwae_bound",
    "log_likelihood",
]

LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# iwae_bound decodes at most this many numbers (samples x batch x data dims) at once
_MAX_DECODED = 2**22


@runtime_checkable
class LatentVariableModel(Protocol):
    r"""The model protocol: what :func:`vaelib.train.fit`, the objectives and the diagnostics
    need.

    * ``encode(x) -> (mu, logvar)``: the parameters of :math:`q_\phi(z|x) = \mathcal N(\mu,
      \operatorname{diag}\sigma^2)` for a batch ``x`` of ``B`` examples, each ``(B, J)``;
      ``logvar`` is :math:`\log\sigma^2`.
    * ``log_px_given_z(x, z)``: :math:`\log p_\theta(x|z)` summed over the ``D`` data
      dimensions, in nats, for ``x`` ``(B, D)`` (or ``(B, *x_shape)``) and ``z`` of either
      shape: ``(L, B, J)`` → ``(L, B)`` (``L`` samples per example, ``K`` for the
      importance-weighted bound; the objectives, the diagnostics and ``fit`` pass this shape)
      and ``(B, J)`` → ``(B,)`` (one sample per example: the baselines of
      :mod:`vaelib.baselines` — HMC, Monte Carlo EM and wake-sleep, hence also
      ``fit(..., objective="wake-sleep")``, which needs ``sample_x_given_z(z)`` as well — pass
      this one). Code that broadcasts over the leading dimensions handles both.

    The prior is :math:`p(z) = \mathcal N(0, I)`. ``fit`` trains ``model.parameters()`` (there
    must be some), and data, tensors and numpy arrays alike, are converted to the device and
    floating dtype of the model's parameters.

    **Input checks.** :func:`vaelib.train.fit` and :func:`vaelib.train.evaluate` check the data
    once, before any work:

    * a method ``check_input(x)`` or ``check_input(x, name)`` (``name`` is what the data are
      called in messages, e.g. ``"train"``), if the model has one, is called on the whole data
      set and replaces the checks below; it should raise ``ValueError`` or ``TypeError`` with a
      message that says what is wrong and what to do (vaelib's models check shape, values and
      range there, and name their decoder);
    * otherwise the optional attributes switch checks on: ``x_shape`` (one example's shape:
      data must be ``(N, *x_shape)``), ``input_range`` (a pair ``(low, high)``, e.g.
      ``(0, 1)``, that the data must lie in; the error names the model and its
      ``input_range``) and ``z_dim`` (``J``). The data must always be finite floating-point
      numbers.

    :class:`vaelib.models.VAE` and :class:`vaelib.models.ConvVAE` implement the protocol; so can
    any ``torch.nn.Module``.
    """

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
        log_px_given_z: ``(x (B, D), z (L, B, J)) -> (L, B)``, e.g. ``VAE.log_px_given_z``.
        x: data ``(B, D)``.
        mu, logvar: parameters of ``q``, ``(B, J)``.
        num_samples: ``L``, samples of ``z`` per datapoint.

    Returns:
        :class:`ELBO`, each term ``(B,)``.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    z = reparameterize(mu, logvar, eps)  # (L, B, J)
    log_px = log_px_given_z(x, z).mean(0)  # (B,)
    kl = kl_normal_standard(mu, logvar)  # (B,)
    return ELBO(log_px - kl, log_px, kl)


def elbo(model: LatentVariableModel, x: Any, num_samples: int = 1) -> ELBO:
    r"""The SGVB estimate of the ELBO for each example (Kingma & Welling 2014, Eq. 10).

    Args:
        model: a model of the protocol :class:`LatentVariableModel`, e.g. a
            :class:`~vaelib.models.VAE`.
        x: data ``(B, D)`` (or ``(B, *x_shape)``), a tensor or a numpy array.
        num_samples: ``L``, samples of ``z`` per datapoint (the paper used 1 with ``M = 100``).

    Returns:
        :class:`ELBO` with ``elbo``, ``log_px`` and ``kl``, each ``(B,)`` in nats.
    """
    x = as_data(x, model)
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


def _chunk_size(x: torch.Tensor, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return check_positive_int(chunk_size, "chunk_size")
    per_sample = max(1, x.numel())  # numbers decoded per importance sample, B x D
    return max(1, _MAX_DECODED // per_sample)


def iwae_bound(
    model: LatentVariableModel, x: Any, num_samples: int, chunk_size: int | None = None
) -> torch.Tensor:
    r"""The importance-weighted bound :math:`\mathcal L_K` (Burda et al. 2016), ``(B,)`` nats.

    ``num_samples`` is ``K``; ``K = 1`` gives the ELBO (with a Monte-Carlo KL), and the bound
    rises with ``K`` towards :math:`\log p(x)`. Differentiable: it can be a training objective
    (``vaelib.fit(..., objective="iwae")``).

    The ``K`` samples are decoded ``chunk_size`` at a time and combined with a running
    ``logsumexp``, so without gradients memory stays bounded (by default about
    :math:`2^{22}` decoded numbers at once); with gradients autograd keeps every chunk.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    x = as_data(x, model)
    mu, logvar = model.encode(x)
    step = _chunk_size(x, chunk_size)
    total = None
    for start in range(0, num_samples, step):
        k = min(step, num_samples - start)
        part = torch.logsumexp(_log_weights(model, x, mu, logvar, k), dim=0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(num_samples)


@torch.no_grad()
def log_likelihood(
    model: LatentVariableModel,
    x: Any,
    num_samples: int = 1000,
    chunk_size: int = 100,
    batch_size: int = 500,
) -> torch.Tensor:
    r"""Importance-sampled estimate of :math:`\log p(x)` per example, ``(B,)`` nats.

    Uses :math:`\log \frac1K \sum_k w_k` with ``K = num_samples`` draws from :math:`q(z|x)`
    (the estimator of Rezende et al. 2014 and Burda et al. 2016): :func:`iwae_bound` without
    gradients, ``batch_size`` examples and ``chunk_size`` samples at a time. It is a lower bound
    in expectation that tightens as ``K`` grows.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = as_data(x, model)
    return torch.cat([iwae_bound(model, xb, num_samples, chunk_size)
                      for xb in x.split(batch_size)])
