r"""Two Monte-Carlo estimators of the gradient of an expectation over a Gaussian.

For parameters :math:`\theta` (e.g. the input :math:`x` of an encoder), a Gaussian
:math:`q_\theta(z) = \mathcal N\big(z \mid \mu(\theta), \operatorname{diag}\sigma^2(\theta)\big)`
and a function :math:`f`, both estimators are unbiased for

.. math:: \nabla_\theta\, \mathbb E_{q_\theta(z)}[f(z)].

* **Pathwise** (reparameterization) estimator (Kingma & Welling 2014, Sec. 2.4): write
  :math:`z = \mu(\theta) + \sigma(\theta)\odot\varepsilon` with
  :math:`\varepsilon\sim\mathcal N(0, I)` and differentiate through the sample,

  .. math:: \nabla_\theta f\big(\mu(\theta) + \sigma(\theta)\odot\varepsilon\big).

* **Score-function** (REINFORCE, likelihood-ratio) estimator (Williams 1992): differentiate
  the density instead of the sample,

  .. math:: \big(f(z) - b\big)\, \nabla_\theta \log q_\theta(z), \qquad z \sim q_\theta,

  with an optional constant baseline :math:`b` (it leaves the mean unchanged because
  :math:`\mathbb E_q[\nabla_\theta \log q_\theta(z)] = 0`).

Both functions return one estimate **per sample**, so that their mean (the estimator with
``K`` samples), variance and standard error can all be read off. Introduced in the chapter
*The reparameterization trick*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaelib._checks import check_positive_int
from vaelib.distributions import LOG_2PI

MuSigma = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Function = Callable[[torch.Tensor], torch.Tensor]


def _setup(
    theta: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int,
    eps: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One detached copy of ``theta`` per sample, ``(K, *theta.shape)``, and mu, sigma, eps."""
    theta = torch.as_tensor(theta)
    if not theta.is_floating_point():
        theta = theta.double()
    if eps is None:
        check_positive_int(num_samples, "num_samples")
        with torch.no_grad():
            mu0, _ = mu_sigma(theta.detach().unsqueeze(0))  # (1, *z_shape)
        eps = torch.randn((num_samples, *mu0.shape[1:]), generator=generator, dtype=theta.dtype)
    else:
        dtype = torch.promote_types(theta.dtype, eps.dtype)
        theta, eps = theta.to(dtype), eps.to(dtype)
    # every sample gets its own copy of theta, so the gradient of a sum over samples is the
    # stack of per-sample gradients
    copies = theta.detach().expand(len(eps), *theta.shape).clone().requires_grad_(True)
    mu, sigma = mu_sigma(copies)
    if mu.shape != sigma.shape or mu.shape != eps.shape:
        raise ValueError(
            "mu_sigma(theta) must return mu and sigma of the shape of one z, per sample; got "
            f"mu {tuple(mu.shape)}, sigma {tuple(sigma.shape)} for eps {tuple(eps.shape)}."
        )
    return copies, mu, sigma, eps


def _per_sample(values: torch.Tensor, k: int) -> torch.Tensor:
    if values.shape != (k,):
        raise ValueError(f"f must map z (K, ...) to one value per sample (K,), got {values.shape}.")
    return values


def pathwise_gradient(
    f: Function,
    theta: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int = 1000,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Per-sample pathwise (reparameterized) estimates of :math:`\nabla_\theta\mathbb E_q[f(z)]`.

    Sample ``k`` is :math:`\nabla_\theta f\big(\mu(\theta) + \sigma(\theta)\odot\varepsilon_k\big)`,
    computed by autograd. Their mean is the ``K``-sample estimator.

    Args:
        f: ``z (K, *z_shape) -> (K,)``, differentiable.
        theta: parameters, any shape (a scalar ``x`` in the book's worked example).
        mu_sigma: ``theta (K, *theta.shape) -> (mu, sigma)``, each ``(K, *z_shape)``: the mean
            and the standard deviation :math:`\sigma > 0` (not the variance) of :math:`q_\theta`.
        num_samples: ``K``, used when ``eps`` is not given.
        eps: standard normal noise ``(K, *z_shape)``; pass the same ``eps`` to both estimators
            to compare them on common random numbers.
        generator: random generator for ``eps`` when it is drawn here.

    Returns:
        per-sample gradient estimates, ``(K, *theta.shape)``.
    """
    copies, mu, sigma, eps = _setup(theta, mu_sigma, num_samples, eps, generator)
    z = mu + sigma * eps  # the reparameterization: a differentiable function of theta
    values = _per_sample(f(z), len(eps))
    (grad,) = torch.autograd.grad(values.sum(), copies)
    return grad


def score_function_gradient(
    f: Function,
    theta: torch.Tensor,
    mu_sigma: MuSigma,
    num_samples: int = 1000,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    baseline: float = 0.0,
) -> torch.Tensor:
    r"""Per-sample score-function (REINFORCE) estimates of :math:`\nabla_\theta\mathbb E_q[f(z)]`.

    Sample ``k`` is :math:`\big(f(z_k) - b\big)\,\nabla_\theta \log q_\theta(z_k)` with
    :math:`z_k = \mu + \sigma\odot\varepsilon_k` treated as a constant (no gradient flows
    through the sample or through :math:`f`, which need not be differentiable), and

    .. math:: \log q_\theta(z) = -\sum_j \Big[\tfrac12\log 2\pi + \log\sigma_j(\theta)
        + \frac{(z_j - \mu_j(\theta))^2}{2\sigma_j^2(\theta)}\Big].

    Args:
        f: ``z (K, *z_shape) -> (K,)``.
        theta, mu_sigma, num_samples, eps, generator: as in :func:`pathwise_gradient`.
        baseline: constant :math:`b` subtracted from :math:`f` (a control variate; 0 gives
            plain REINFORCE).

    Returns:
        per-sample gradient estimates, ``(K, *theta.shape)``.
    """
    copies, mu, sigma, eps = _setup(theta, mu_sigma, num_samples, eps, generator)
    z = (mu + sigma * eps).detach()  # a sample: no gradient flows through it
    with torch.no_grad():
        weights = _per_sample(f(z), len(eps)) - baseline
    log_q = -(0.5 * LOG_2PI + torch.log(sigma) + 0.5 * ((z - mu) / sigma) ** 2)
    log_q = log_q.reshape(len(eps), -1).sum(-1)  # (K,): sum over the dimensions of z
    (grad,) = torch.autograd.grad((weights * log_q).sum(), copies)
    return grad
