r"""Diagnostics of a trained VAE: the KL of each latent dimension, the active units, the
mutual information between data and codes, and the two parts of the ELBO's gap.

A latent dimension :math:`j` that the encoder ignores has :math:`q(z_j|x) = p(z_j)` for every
:math:`x`: its KL is zero and its mean :math:`\mathbb E_{q}[z_j]` does not move with :math:`x`. When
that happens to every dimension, the model has suffered **posterior collapse**: the decoder
ignores :math:`z` and every sample looks alike. Two measures:

* :func:`kl_per_dimension` — :math:`\mathbb E_x\big[D_{KL}(q(z_j|x)\,\|\,p(z_j))\big]` per dimension,
  in nats (their sum is the KL term of the ELBO);
* :func:`active_units` — Burda et al. (2016), Sec. 5.2: dimension :math:`j` is *active* when
  :math:`A_j = \operatorname{Cov}_x\big(\mathbb E_{q(z|x)}[z_j]\big) > 0.01`.

Both take any model of the protocol (``encode(x) -> (mu, logvar)``) and data as a tensor or a
numpy array, and run without gradients in batches. Further:

* :func:`mutual_information` — :math:`I_q(x; z)` between the data and their codes, whose
  excess over the mean KL (the *rate*) is :math:`D_{KL}(q(z)\,\|\,p(z))`;
* :func:`elbo_gaps` — the approximation and the amortization gap (Cremer et al. 2018), with
  :func:`optimal_q` and :func:`importance_log_px`;
* :func:`pixel_frequency_log_prob` — the baseline without latent variable for binary images:
  independent pixels with their frequencies of ink.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from vaelib._checks import as_data, check_number, check_positive_int
from vaelib.distributions import bernoulli_log_prob, gaussian_log_prob, kl_normal_standard_per_dim

__all__ = [
    "ActiveUnits",
    "AggregatePosterior",
    "CollapseWarning",
    "Gaps",
    "MutualInformation",
    "active_units",
    "aggregate_posterior",
    "elbo_gaps",
    "importance_log_px",
    "kl_per_dimension",
    "mutual_information",
    "optimal_q",
    "pixel_frequency_log_prob",
]

AU_THRESHOLD = 0.01  # Burda et al. (2016)


class CollapseWarning(UserWarning):
    """Issued by :func:`vaelib.train.fit` when training ends with no active latent dimension.

    It is issued whenever the last epoch has no active unit, so real posterior collapse never
    goes unreported; its message says whether units were active in an earlier epoch. An
    untrained VAE has no active unit either (its encoder's means hardly move with ``x``), so
    after a short run the warning may only mean that the model has not started to use ``z``
    yet: look at ``history["active_units"]`` over the epochs.
    """


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


class MutualInformation(NamedTuple):
    """What :func:`mutual_information` returns (nats)."""

    estimate: float  # the Monte-Carlo estimate of I_q(x; z)
    standard_error: float  # its standard error
    log_n: float  # log N: no estimate on N examples can exceed it


@torch.no_grad()
def mutual_information(
    model: Any, x: Any, num_samples: int = 1, seed: int = 0, batch_size: int = 1000
) -> MutualInformation:
    r"""The mutual information between the data and their codes, :math:`I_q(x; z)`, in nats.

    The data are the ``N`` rows of ``x``, each with probability :math:`1/N`, and the codes are
    drawn from the encoder, :math:`z \sim q(z|x_n)`; :math:`q(z) = \frac1N \sum_m q(z|x_m)` is
    the aggregate posterior. Then

    .. math::
        I_q(x; z) = \frac1N \sum_{n=1}^N \mathbb E_{q(z|x_n)}
        \Big[\log q(z|x_n) - \log \frac1N \sum_{m=1}^N q(z|x_m)\Big]
        = \underbrace{\frac1N \sum_n D_{KL}\big(q(z|x_n)\,\|\,p(z)\big)}_{\text{the rate}}
        - D_{KL}\big(q(z)\,\|\,p(z)\big),

    so the rate is an upper bound on :math:`I_q`. Each bracket is at most :math:`\log N` (the
    sum contains the term :math:`m = n`): the codes can at best tell the ``N`` examples apart.
    The estimate draws ``num_samples`` codes per example (``seed``; the caller's RNG state is
    restored) and averages the brackets, exactly evaluated at each code; the brackets are
    independent, so the standard error is their standard deviation over the square root of
    their number. Cost: :math:`N^2 J` per sample, in blocks of about 4 million numbers
    (``batch_size`` is the encoder's batch).
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    mu, logvar = _encode_all(model, x, batch_size)
    mu, logvar = mu.double(), logvar.double()
    n = len(mu)
    if n < 2:
        raise ValueError("mutual_information needs at least two examples.")
    rows = max(1, 2**22 // (n * mu.shape[1]))  # codes per block of (rows, N, J) numbers
    terms = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(num_samples):
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # one code per example
            for start in range(0, n, rows):
                zb = z[start:start + rows]  # (b, J)
                log_q = gaussian_log_prob(zb[:, None, :], mu[None], logvar[None])  # (b, N)
                own = log_q[torch.arange(len(zb)), torch.arange(start, start + len(zb))]
                terms.append(own - (torch.logsumexp(log_q, dim=1) - math.log(n)))
    terms = torch.cat(terms)
    return MutualInformation(terms.mean().item(), terms.std().item() / math.sqrt(len(terms)),
                             math.log(n))


def pixel_frequency_log_prob(x_train: Any, x: Any) -> torch.Tensor:
    r""":math:`\log p(x)` under the model without latent variable of binary images, ``(B,)``
    nats: independent Bernoulli pixels, pixel :math:`d` on with its frequency of ink in
    ``x_train`` ``(N, D)``, add-one smoothed so that no pixel is certain,

    .. math::
        p_d = \frac{1 + \sum_{n=1}^N x_{nd}}{2 + N}

    (Laplace's rule of succession). Up to the smoothing these are the maximum-likelihood
    probabilities on ``x_train``: the best that a decoder of independent pixels which receives
    nothing through :math:`z` (rate 0) can learn, so a VAE whose rate is zero should
    reconstruct no better. ``x`` is ``(B, D)``; both are tensors or numpy arrays of values in
    [0, 1].
    """
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    x = torch.as_tensor(x, dtype=torch.float32)
    if x_train.dim() != 2 or x.dim() != 2 or x_train.shape[1] != x.shape[1]:
        raise ValueError(f"x_train (N, D) and x (B, D) must be batches of the same D, got "
                         f"{tuple(x_train.shape)} and {tuple(x.shape)}.")
    ink = (x_train.sum(0) + 1) / (len(x_train) + 2)  # (D,)
    return bernoulli_log_prob(x, torch.log(ink) - torch.log1p(-ink))


class Gaps(NamedTuple):
    r"""The two parts of the ELBO's gap per example (Cremer et al. 2018), each ``(B,)`` nats.

    ``log_px - elbo_encoder = approximation + amortization`` with
    ``approximation = log_px - elbo_optimal`` (what the best diagonal Gaussian :math:`q^*` still
    misses) and ``amortization = elbo_optimal - elbo_encoder`` (what the encoder, one network for
    every :math:`x`, misses against :math:`q^*`). ``mu_star`` and ``logvar_star``, each
    ``(B, J)``, are :math:`q^*` itself.
    """

    log_px: torch.Tensor
    elbo_encoder: torch.Tensor
    elbo_optimal: torch.Tensor
    approximation: torch.Tensor
    amortization: torch.Tensor
    mu_star: torch.Tensor
    logvar_star: torch.Tensor


def optimal_q(
    model: Any,
    x: Any,
    steps: int = 300,
    lr: float = 0.05,
    num_samples: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The diagonal Gaussian :math:`q^*(z|x) = \mathcal N(\mu^*, \operatorname{diag}\sigma^{*2})`
    that maximises each example's ELBO, found by Adam on :math:`(\mu, \log\sigma^2)` per example,
    starting from the encoder's output (the decoder is fixed).

    Each step estimates the ELBO with ``num_samples`` reparameterized samples and the KL in closed
    form; the step size decays linearly to a tenth and the result is the average of the second
    half's iterates: ``(mu, logvar)``, each ``(B, J)``, without gradients.
    """
    from vaelib.objectives import elbo_from_posterior

    steps = check_positive_int(steps, "steps")
    num_samples = check_positive_int(num_samples, "num_samples")
    lr = check_number(lr, "lr", positive=True)
    x = as_data(x, model)
    was_training = getattr(model, "training", False)
    params = list(model.parameters()) if callable(getattr(model, "parameters", None)) else []
    if hasattr(model, "eval"):
        model.eval()
    requires = [p.requires_grad for p in params]
    for p in params:  # the decoder is fixed: no gradient work for it
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            mu0, logvar0 = model.encode(x)
        mu = mu0.clone().requires_grad_(True)
        logvar = logvar0.clone().requires_grad_(True)
        opt = torch.optim.Adam([mu, logvar], lr=lr)
        # the step size decays linearly to a tenth, and the iterates of the second half are
        # averaged (Polyak-Ruppert): the noise of the Monte-Carlo gradients averages out
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - 0.9 * t / steps)
        mu_sum, logvar_sum, count = torch.zeros_like(mu0), torch.zeros_like(logvar0), 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for step in range(steps):
                terms = elbo_from_posterior(model.log_px_given_z, x, mu, logvar, num_samples)
                loss = -terms.elbo.sum()  # examples are independent: one sum, separate gradients
                opt.zero_grad()
                loss.backward()
                opt.step()
                decay.step()
                if step >= steps // 2:
                    mu_sum += mu.detach()
                    logvar_sum += logvar.detach()
                    count += 1
    finally:
        for p, r in zip(params, requires):
            p.requires_grad_(r)
        if hasattr(model, "train"):
            model.train(was_training)
    return mu_sum / count, logvar_sum / count


@torch.no_grad()
def _is_log_px(model: Any, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
               num_samples: int, chunk: int) -> torch.Tensor:
    from vaelib.objectives import _log_weights

    total = None
    for start in range(0, num_samples, chunk):
        k = min(chunk, num_samples - start)
        part = torch.logsumexp(_log_weights(model, x, mu, logvar, k), dim=0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(num_samples)


def _chunk(x: torch.Tensor) -> int:
    """Samples of z decoded at once: about 4 million decoded numbers."""
    return max(1, 2**22 // max(1, x.numel()))


@torch.no_grad()
def _mean_elbo(model: Any, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
               num_samples: int, chunk: int) -> torch.Tensor:
    """The ELBO of q = N(mu, diag exp(logvar)) from exactly ``num_samples`` samples of z per
    example, drawn ``chunk`` at a time (the last chunk partial), ``(B,)``."""
    from vaelib.objectives import elbo_from_posterior

    total = 0.0
    for start in range(0, num_samples, chunk):
        k = min(chunk, num_samples - start)
        total = total + k * elbo_from_posterior(model.log_px_given_z, x, mu, logvar, k).elbo
    return total / num_samples


def importance_log_px(
    model: Any,
    x: Any,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    num_samples: int,
    seed: int = 0,
) -> torch.Tensor:
    r"""The importance-sampling estimate of :math:`\log p_\theta(x)` with the proposal
    :math:`\mathcal N(\mu, \operatorname{diag}\sigma^2)` given by ``mu`` and ``logvar``, each
    ``(B, J)``:

    .. math::
        \log \hat p(x) = \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x|z_k)\,p(z_k)}{q(z_k)}, \qquad z_k \sim q,

    ``K = num_samples``; ``(B,)`` nats, without gradients (``seed``; the caller's RNG state is
    restored). In expectation it lies below :math:`\log p_\theta(x)` (Jensen), by about
    :math:`\operatorname{Var}[w]/(2K\,p(x)^2)` for weights :math:`w` of finite variance. That
    variance is finite only if the proposal is wide enough: for a Gaussian posterior of
    precision :math:`\Lambda` and a Gaussian proposal of precision :math:`\Lambda_r`, only if
    :math:`2\Lambda - \Lambda_r` is positive definite. A proposal that is too narrow along some
    direction, as the best diagonal :math:`q^*` of a strongly correlated posterior can be,
    gives an estimate that is biased low and rises erratically with :math:`K`; widen it
    (``logvar + log 2`` doubles its variances).
    """
    x = as_data(x, model)
    num_samples = check_positive_int(num_samples, "num_samples")
    if mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu and logvar must both be (B, J) with B = {x.shape[0]}, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _is_log_px(model, x, mu, logvar, num_samples, _chunk(x))


def elbo_gaps(
    model: Any,
    x: Any,
    num_samples: int = 5000,
    elbo_samples: int = 1000,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    optimal_q_samples: int = 10,
    proposal_variance: float = 1.0,
) -> Gaps:
    r"""Split the gap :math:`\log p(x) - \mathcal L(q_\phi)` into the approximation and the
    amortization gap (Cremer et al. 2018) for each example.

    :math:`q^*` comes from :func:`optimal_q` (``steps`` Adam steps with step size ``lr``, each
    on an ELBO estimated with ``optimal_q_samples`` samples of :math:`z` per example); the ELBOs
    of the encoder's :math:`q_\phi` and of :math:`q^*` are estimated with ``elbo_samples``
    samples each; :math:`\log p(x)` is the importance-sampled estimate
    (:func:`importance_log_px`) with ``num_samples`` samples from :math:`q^*` with its variances
    multiplied by ``proposal_variance``. That estimate is in expectation a lower bound, so the
    approximation gap comes out too small by its bias. :math:`q^*` itself (``proposal_variance=1``)
    is narrower than a correlated posterior and can give weights of infinite variance and a
    bias that shrinks slowly with ``K``; a wider proposal (``proposal_variance=2``) avoids that
    when the posterior is not much wider than :math:`q^*`. Compare the estimates of two
    ``num_samples`` or proposals to see how far it is from converged.

    Args:
        model: a model of the protocol :class:`~vaelib.objectives.LatentVariableModel`.
        x: data ``(B, D)`` (or ``(B, *x_shape)``), a tensor or a numpy array.
        num_samples: ``K``, importance samples for :math:`\log p(x)`.
        elbo_samples: ``L``, samples of :math:`z` for each of the two ELBOs.
        steps, lr: Adam steps and step size of :func:`optimal_q`.
        seed: seed of all the noise (the caller's RNG state is restored).
        optimal_q_samples: samples of :math:`z` per example in each step of
            :func:`optimal_q` (its ``num_samples``): more give less noisy steps and a better
            :math:`q^*`, at proportional cost.
        proposal_variance: the importance-sampling proposal is
            :math:`\mathcal N(\mu^*, \text{proposal\_variance}\cdot\sigma^{*2})`.

    Returns:
        :class:`Gaps`: five fields ``(B,)`` nats, and :math:`q^*` as ``mu_star``,
        ``logvar_star``.
    """
    x = as_data(x, model)
    num_samples = check_positive_int(num_samples, "num_samples")
    elbo_samples = check_positive_int(elbo_samples, "elbo_samples")
    optimal_q_samples = check_positive_int(optimal_q_samples, "optimal_q_samples")
    proposal_variance = check_number(proposal_variance, "proposal_variance", positive=True)
    mu_star, logvar_star = optimal_q(model, x, steps=steps, lr=lr,
                                     num_samples=optimal_q_samples, seed=seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        mu, logvar = model.encode(x)
        chunk = _chunk(x)
        encoder = _mean_elbo(model, x, mu, logvar, elbo_samples, chunk)
        optimal = _mean_elbo(model, x, mu_star, logvar_star, elbo_samples, chunk)
        log_px = _is_log_px(model, x, mu_star, logvar_star + math.log(proposal_variance),
                            num_samples, chunk)
    return Gaps(log_px, encoder, optimal, log_px - optimal, optimal - encoder, mu_star,
                logvar_star)
