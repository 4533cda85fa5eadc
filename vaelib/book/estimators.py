r"""Two Monte-Carlo estimators of the gradient of an expectation over a Gaussian.

For parameters :math:`\phi` (an encoder's, or in the worked example the input :math:`x`), a Gaussian
:math:`q_\phi(z) = \mathcal N\big(z \mid \mu(\phi), \operatorname{diag}\sigma^2(\phi)\big)`
and a function :math:`f`, both estimators are unbiased for

.. math:: \nabla_\phi\, \mathbb E_{q_\phi(z)}[f(z)].

* **Pathwise** (reparameterization) estimator (Kingma & Welling 2014, Sec. 2.4): write
  :math:`z = \mu(\phi) + \sigma(\phi)\odot\varepsilon` with
  :math:`\varepsilon\sim\mathcal N(0, I)` and differentiate through the sample,

  .. math:: \nabla_\phi f\big(\mu(\phi) + \sigma(\phi)\odot\varepsilon\big).

* **Score-function** (REINFORCE, likelihood-ratio) estimator (Williams 1992): differentiate
  the density instead of the sample,

  .. math:: \big(f(z) - b\big)\, \nabla_\phi \log q_\phi(z), \qquad z \sim q_\phi,

  with an optional constant baseline :math:`b` (it leaves the mean unchanged because
  :math:`\mathbb E_q[\nabla_\phi \log q_\phi(z)] = 0`).

Both functions return one estimate **per sample**, so that their mean (the estimator with
``L`` samples), variance and standard error can all be read off. Introduced in the chapter
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
    return copies, mu, sigma, eps


def _per_sample(values: torch.Tensor, k: int) -> torch.Tensor:
    if values.shape != (k,):
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

    Sample ``k`` is :math:`\nabla_\phi f\big(\mu(\phi) + \sigma(\phi)\odot\varepsilon_k\big)`,
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

    Sample ``k`` is :math:`\big(f(z_k) - b\big)\,\nabla_\phi \log q_\phi(z_k)` with
    :math:`z_k = \mu + \sigma\odot\varepsilon_k` treated as a constant (no gradient flows
    through the sample or through :math:`f`, which need not be differentiable), and

    .. math:: \log q_\phi(z) = -\sum_j \Big[\tfrac12\log 2\pi + \log\sigma_j(\phi)
        + \frac{(z_j - \mu_j(\phi))^2}{2\sigma_j^2(\phi)}\Big].

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
    log_q = -(0.5 * LOG_2PI + torch.log(sigma) + 0.5 * ((z - mu) / sigma) ** 2)
    log_q = log_q.reshape(len(eps), -1).sum(-1)  # (L,): sum over the dimensions of z
    (grad,) = torch.autograd.grad((weights * log_q).sum(), copies)
    return grad
