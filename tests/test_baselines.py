"""HMC, the App. D estimator, MCEM and wake-sleep, checked against exact answers.

The ground truth is the linear-Gaussian model (``vaelib.book.linear_gaussian``): its posterior
p(z|x) and evidence log p(x) are known in closed form. ``W`` has non-orthogonal columns, so
the posterior is correlated.

The tests' model computes W z and A x with broadcasting and a sum instead of a matrix product,
and its likelihood without ``exp``: on a busy 2-core machine every multi-threaded MKL call
(BLAS, and the vectorised exp/log) can wait milliseconds for a core, and an HMC run makes
thousands of tiny calls. ``test_linear_model_is_the_linear_gaussian_model`` checks that this
copy equals ``LinearGaussian`` itself.

Tolerances are stated as multiples of a Monte-Carlo standard error (SE): with a fixed seed a
test is deterministic, and 5 SE (two-sided p ~ 6e-7 per comparison for a Gaussian error) keeps
it from failing on an unlucky seed after an unrelated change to the random stream, while real
slips (a wrong sign, a missing prior term, a variance for a standard deviation) move the
answers by tens of SE.
"""

from __future__ import annotations

import math

import pytest
import scipy.signal
import torch
from torch import nn

from vaelib.baselines import (
    MCEM,
    adapt_step_size,
    complete_data_loss,
    fit_gaussian,
    hmc_log_likelihood,
    hmc_sample,
    hmc_transition,
    integrated_autocorrelation_time,
    log_joint,
    reciprocal_importance_estimate,
    wake_sleep_loss,
    wake_sleep_terms,
)
from vaelib.book.linear_gaussian import LinearGaussian
from vaelib.distributions import LOG_2PI, kl_normal_standard
from vaelib.models import VAE, VAEConfig

# --------------------------------------------------------------------------------------------
# Models


class LinearModel(nn.Module):
    """The linear-Gaussian model with the VAE's interface.

    Decoder p(x|z) = N(Wz + b, sigma^2 I) with W, b parameters (``self.decoder``); encoder
    q(z|x) = N(Ax + c, diag exp(logvar)) with a logvar shared by all x (``self.encoder``): the
    exact posterior mean is linear in x and its covariance does not depend on x, so the
    forward-KL optimum of this family is known in closed form.
    ``sample_x_given_z`` deliberately has no ``torch.no_grad``: wake-sleep must not rely on it.
    """

    def __init__(self, lg: LinearGaussian) -> None:
        super().__init__()
        self.x_dim, self.z_dim = lg.W.shape
        self.sigma = lg.sigma
        self.decoder = nn.Module()
        self.decoder.W = nn.Parameter(lg.W.clone())
        self.decoder.b = nn.Parameter(lg.b.clone())
        self.encoder = nn.Module()
        self.encoder.A = nn.Parameter(torch.zeros(self.z_dim, self.x_dim, dtype=torch.float64))
        self.encoder.c = nn.Parameter(torch.zeros(self.z_dim, dtype=torch.float64))
        self.encoder.logvar = nn.Parameter(torch.zeros(self.z_dim, dtype=torch.float64))

    def exact(self) -> LinearGaussian:
        """The LinearGaussian with this model's W and b (differentiable in them)."""
        return LinearGaussian(self.decoder.W, self.decoder.b, self.sigma)

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        return (z.unsqueeze(-2) * self.decoder.W).sum(-1) + self.decoder.b  # W z + b

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = (x.unsqueeze(-2) * self.encoder.A).sum(-1) + self.encoder.c  # A x + c
        return mu, self.encoder.logvar.expand_as(mu)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # log N(x | Wz + b, sigma^2 I), summed over D (gaussian_log_prob would call exp)
        sq = ((x - self.decoder_mean(z)) ** 2).sum(-1) / self.sigma**2
        return -0.5 * (sq + self.x_dim * (LOG_2PI + 2.0 * math.log(self.sigma)))

    def sample_x_given_z(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean = self.decoder_mean(z)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + self.sigma * noise


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def lg() -> LinearGaussian:
    # D = 5, J = 2, posterior correlation 0.28, posterior sds 0.25 to 0.3
    return LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=3, orthogonal=False)


@pytest.fixture
def lg3() -> LinearGaussian:
    # J = 3 as in the paper's Fig. 3; posterior sds from 0.17 to 0.55
    return LinearGaussian.random(x_dim=6, z_dim=3, sigma=0.5, seed=4, orthogonal=False)


def small_vae(dtype: torch.dtype = torch.float32) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(x_dim=6, hidden_dim=5, z_dim=2, activation="tanh")).to(dtype)


def test_linear_model_is_the_linear_gaussian_model(lg):
    model = LinearModel(lg)
    x = lg.sample(4, gen(0))
    z = torch.randn(3, 4, 2, generator=gen(1), dtype=torch.float64)
    assert torch.allclose(model.log_px_given_z(x, z), lg.log_px_given_z(x, z), atol=1e-12)
    assert torch.allclose(model.exact().log_marginal(x), lg.log_marginal(x), atol=1e-12)
    # log p(x, z) - log p(z|x) = log p(x) for every z: log_joint has the prior in it
    gap = log_joint(model, x, z) - lg.log_posterior(z, x)
    assert torch.allclose(gap, lg.log_marginal(x).expand(3, 4), atol=1e-10)


# --------------------------------------------------------------------------------------------
# HMC


def test_hmc_samples_the_exact_posterior(lg):
    """Mean and covariance of 1000 independent chains (the last state of each) match p(z|x).

    Each chain starts at z = (3, 3), far in the prior's tail, runs 60 adapted burn-in
    transitions and one recorded one; the chains are independent, so the SE of the sample
    mean is sqrt(Sigma_jj / C), and of the sample covariance (Gaussian draws)
    sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / C).
    """
    model = LinearModel(lg)
    chains = 1000
    x = lg.sample(1, gen(0))
    mu, cov = lg.posterior_full(x)
    z0 = torch.full((chains, 2), 3.0, dtype=torch.float64)
    run = hmc_sample(model, x.expand(chains, -1), 1, num_burnin=60, z0=z0, generator=gen(1))
    z = run.samples[-1]
    mean_z = (z.mean(0) - mu[0]) / torch.sqrt(torch.diagonal(cov) / chains)
    var = torch.diagonal(cov)
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / chains)
    cov_z = (torch.cov(z.T) - cov) / se_cov
    assert mean_z.abs().max() < 5, mean_z
    assert cov_z.abs().max() < 5, cov_z
    # the step sizes were adapted so that about 90 % of proposals are accepted
    assert abs(float(run.accept_rate.mean()) - 0.9) < 0.03


def test_step_size_adaptation_reaches_the_target_acceptance(lg):
    """The rule's fixed point is E[alpha] = target; measured over 200 chains x 20 transitions
    after 100 burn-in transitions it lands within 0.025 (targets 0.6 to 0.95, J = 2 and 3,
    4 or 10 leapfrog steps)."""
    model = LinearModel(lg)
    x = lg.sample(200, gen(2))
    steps = []
    for target in (0.6, 0.9):
        run = hmc_sample(
            model, x, 20, num_burnin=100, num_leapfrog=4, target_accept=target, generator=gen(3)
        )
        assert abs(float(run.accept_rate.mean()) - target) < 0.04
        steps.append(run.step_size)
    assert torch.all(steps[0] > steps[1])  # a lower target allows a longer step


def test_adapt_step_size_is_the_multiplicative_rule():
    eps = torch.tensor([0.1, 0.1, 0.1])
    alpha = torch.tensor([1.0, 0.9, float("nan")])
    new = adapt_step_size(eps, alpha, target_accept=0.9, rate=0.5)
    expected = 0.1 * torch.exp(0.5 * (torch.tensor([1.0, 0.9, 0.0]) - 0.9))
    assert torch.allclose(new, expected)


def test_hmc_rejects_a_diverging_trajectory(lg):
    model = LinearModel(lg)
    x = lg.sample(3, gen(0))
    z = torch.zeros(3, 2, dtype=torch.float64)
    step = hmc_transition(
        lambda z_: log_joint(model, x, z_),
        z,
        torch.full((3,), 1e8, dtype=torch.float64),
        5,
        generator=gen(1),
    )
    assert not step.accepted.any()
    assert torch.equal(step.z, z)
    assert torch.all(step.accept_prob == 0)
    assert torch.isfinite(step.log_prob).all()


def test_hmc_result_shapes_thinning_and_reproducibility(lg):
    model = LinearModel(lg)
    x = lg.sample(4, gen(0))
    run = hmc_sample(model, x, 6, num_burnin=10, num_leapfrog=3, generator=gen(5))
    assert run.samples.shape == (6, 4, 2) and run.log_joint.shape == (6, 4)
    assert run.step_size.shape == (4,) and run.accept_rate.shape == (4,)
    assert torch.equal(run.z, run.samples[-1])
    assert torch.allclose(run.log_joint, log_joint(model, x, run.samples), atol=1e-10)
    same = hmc_sample(model, x, 6, num_burnin=10, num_leapfrog=3, generator=gen(5))
    assert torch.equal(run.samples, same.samples)
    other = hmc_sample(model, x, 6, num_burnin=10, num_leapfrog=3, generator=gen(6))
    assert not torch.equal(run.samples, other.samples)
    # thin=2 keeps every second state of the same chain (the same random stream)
    thinned = hmc_sample(model, x, 3, num_burnin=10, num_leapfrog=3, thin=2, generator=gen(5))
    assert torch.equal(thinned.samples, run.samples[1::2])
    # a step size per chain is accepted
    per_chain = torch.tensor([0.05, 0.1, 0.2, 0.4], dtype=torch.float64)
    fixed = hmc_sample(model, x, 2, num_burnin=0, step_size=per_chain, generator=gen(5))
    assert torch.equal(fixed.step_size, per_chain)  # no burn-in: no adaptation


def test_hmc_starts_where_asked(lg):
    """With no burn-in and a negligible step, the first sample is the start."""
    model = LinearModel(lg)
    with torch.no_grad():
        model.encoder.A.normal_(generator=gen(0))
    x = lg.sample(3, gen(1))
    kw = dict(num_burnin=0, step_size=1e-12)
    run = hmc_sample(model, x, 1, init="encoder", generator=gen(2), **kw)
    mu, _ = model.encode(x)
    assert torch.allclose(run.samples[0], mu.detach(), atol=1e-9)
    z0 = torch.tensor([[5.0, -5.0], [1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(
        hmc_sample(model, x, 1, z0=z0, generator=gen(2), **kw).samples[0], z0, atol=1e-9
    )
    prior = hmc_sample(model, x, 1, generator=gen(2), **kw).samples[
        0
    ]  # default: a draw from N(0, I)
    assert torch.allclose(prior, torch.randn(3, 2, generator=gen(2), dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hmc_and_estimator_keep_the_models_dtype(dtype):
    model = small_vae(dtype)
    x = (torch.rand(4, 6, generator=gen(0)) > 0.5).to(dtype)
    run = hmc_sample(model, x, 3, num_burnin=4, num_leapfrog=2, generator=gen(1))
    assert run.samples.dtype == dtype and run.step_size.dtype == dtype
    est = hmc_log_likelihood(model, x, 8, num_burnin=4, density="diagonal", generator=gen(2))
    assert est.log_px.shape == (4,) and torch.isfinite(est.log_px).all()
    assert all(p.grad is None for p in model.parameters())  # sampling leaves no gradients


# --------------------------------------------------------------------------------------------
# The App. D estimator


def test_estimator_is_exact_when_q_is_the_posterior(lg):
    """With q = p(z|x) every ratio q(z)/p(x, z) equals 1/p(x): no Monte-Carlo error."""
    model = LinearModel(lg)
    x = lg.sample(5, gen(0))
    mu, cov = lg.posterior_full(x)
    z = (
        mu
        + torch.randn(10, 5, 2, generator=gen(1), dtype=torch.float64)
        @ torch.linalg.cholesky(cov).T
    )
    log_px, stderr = reciprocal_importance_estimate(
        lg.log_posterior(z, x), log_joint(model, x, z), correlated=False
    )
    assert torch.allclose(log_px, lg.log_marginal(x), atol=1e-9)
    assert stderr.max() < 1e-9


def test_estimator_with_a_fitted_gaussian_is_within_its_error(lg3):
    """Independent posterior draws: fit q to 25, estimate with 25 more (the paper's L = 25).

    With independent samples the delta-method SE is the right error bar for the bulk: the
    median |z| of 1000 datapoints is that of a standard normal (0.674). The tails are heavier
    (a q fitted to 25 points is now and then wider than twice the posterior in some
    direction; the ratios then have infinite variance and their sample variance
    underestimates): over 20000 datapoints we measured an RMS z of 1.15 and 1.5 % beyond
    3 SE (Gaussian: 0.27 %), per 1000 about 1.15 +- 0.05 and 1.5 +- 0.4 %. Hence the
    bounds: RMS < 1.3, under 3 % beyond 3 SE.
    """
    model = LinearModel(lg3)
    x = lg3.sample(1000, gen(0))
    mu, cov = lg3.posterior_full(x)
    chol = torch.linalg.cholesky(cov)
    z = mu + torch.randn(50, 1000, 3, generator=gen(1), dtype=torch.float64) @ chol.T
    q = fit_gaussian(z[:25])
    with torch.no_grad():
        log_px, stderr = reciprocal_importance_estimate(
            q.log_prob(z[25:]), log_joint(model, x, z[25:]), correlated=False
        )
    score = (log_px - lg3.log_marginal(x)) / stderr
    assert 0.55 < float(score.abs().median()) < 0.8
    assert float(score.pow(2).mean().sqrt()) < 1.3
    assert (score.abs() > 3).double().mean() < 0.03
    assert stderr.mean() < 0.2  # nats: a useful error bar


def test_fit_gaussian_recovers_mean_and_covariance():
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    z = torch.randn(20000, 1, 2, generator=gen(0), dtype=torch.float64) @ torch.linalg.cholesky(
        cov
    ).T + torch.tensor([1.0, -2.0], dtype=torch.float64)
    q = fit_gaussian(z)
    fitted = q.scale_tril[0] @ q.scale_tril[0].T
    assert torch.allclose(q.mean[0], torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.03)
    assert torch.allclose(fitted, cov, atol=0.03)
    exact = torch.distributions.MultivariateNormal(q.mean, scale_tril=q.scale_tril)
    assert torch.allclose(q.log_prob(z[:5]), exact.log_prob(z[:5]), atol=1e-10)
    diag = fit_gaussian(z, diagonal=True)
    assert torch.allclose(diag.scale_tril[0, 0, 1], torch.zeros((), dtype=torch.float64))


def test_hmc_log_likelihood_matches_the_exact_evidence(lg3):
    """App. D end to end, J = 3, 50 HMC samples with 4 leapfrog steps per datapoint.

    With thin=4 (4 transitions per kept sample) the stated SE is honest: every error is
    below 5 SE and the RMS z-score is near 1. With the paper's budget (thin=1) the samples
    are too correlated for the SE (errors are 1.3-1.7 SE in RMS on this model), but the
    estimate is still unbiased to within 0.1 nats and off by < 0.5 nats in RMS.
    """
    model = LinearModel(lg3)
    x = lg3.sample(40, gen(0))
    exact = lg3.log_marginal(x)
    est = hmc_log_likelihood(model, x, thin=4, generator=gen(1))
    score = (est.log_px - exact) / est.stderr
    assert score.abs().max() < 5, score
    assert float(score.pow(2).mean().sqrt()) < 1.6
    assert abs(float(est.accept_rate.mean()) - 0.9) < 0.05
    paper = hmc_log_likelihood(model, x, generator=gen(2))  # 50 samples, 4 leapfrog steps
    error = paper.log_px - exact
    assert abs(float(error.mean())) < 0.1
    assert float(error.pow(2).mean().sqrt()) < 0.5


def test_integrated_autocorrelation_time():
    # AR(1) with coefficient 0.8: tau = (1 + 0.8) / (1 - 0.8) = 9. The truncated estimate
    # from 1000 steps runs a little high: we measured means of 9.3 to 10.1 over 50 chains,
    # each +- 0.5; hence the tolerance of 1.5
    steps, chains, coef = 1000, 50, 0.8
    noise = torch.randn(steps, chains, generator=gen(0), dtype=torch.float64)
    noise[0] /= math.sqrt(1 - coef**2)  # start in the stationary distribution
    # x_t = coef x_{t-1} + e_t, all chains at once
    series = torch.from_numpy(scipy.signal.lfilter([1.0], [1.0, -coef], noise.numpy(), axis=0))
    tau = integrated_autocorrelation_time(series)
    assert abs(float(tau.mean()) - 9.0) < 1.5
    independent = integrated_autocorrelation_time(noise[1:])
    assert float(independent.mean()) < 1.2 and independent.min() >= 1.0


# --------------------------------------------------------------------------------------------
# MCEM


def test_mcem_gradient_is_the_exact_em_gradient(lg):
    """Fisher's identity: grad_theta log p(x) = E_{p(z|x)}[grad_theta log p(x, z)].

    250 independent HMC chains for each of 4 datapoints; the MCEM loss on their last states
    is differentiated in W and b and compared with autograd of the exact log p(x). The data
    come from another model, so that the gradient is far from zero. The SE of every gradient
    entry comes from 20 independent groups of chains.
    """
    truth = LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=7, orthogonal=False)
    x = truth.sample(4, gen(0))
    model = LinearModel(lg)
    params = list(model.decoder.parameters())
    chains, groups = 250, 20
    x_rep = x.repeat(chains, 1)  # rows (chain, datapoint), chain-major
    run = hmc_sample(model, x_rep, 1, num_burnin=60, generator=gen(1))
    z = run.samples[-1]

    exact = torch.autograd.grad(-model.exact().log_marginal(x).mean(), params)
    exact = torch.cat([g.flatten() for g in exact])
    per_group = []
    for xg, zg in zip(x_rep.chunk(groups), z.chunk(groups)):
        grads = torch.autograd.grad(complete_data_loss(model, xg, zg), params)
        per_group.append(torch.cat([g.flatten() for g in grads]))
    per_group = torch.stack(per_group)
    estimate = per_group.mean(0)
    full = torch.autograd.grad(complete_data_loss(model, x_rep, z), params)
    assert torch.allclose(torch.cat([g.flatten() for g in full]), estimate, atol=1e-10)

    se = per_group.std(0) / math.sqrt(groups)
    assert ((estimate - exact) / se).abs().max() < 5
    cosine = torch.dot(estimate, exact) / (estimate.norm() * exact.norm())
    assert cosine > 0.99
    assert abs(float(estimate.norm() / exact.norm()) - 1) < 0.05


def test_complete_data_loss_and_the_weight_prior(lg):
    model = LinearModel(lg)
    x, z = lg.sample(8, gen(0)), torch.randn(8, 2, generator=gen(1), dtype=torch.float64)
    plain = complete_data_loss(model, x, z)
    assert torch.allclose(plain, -(model.log_px_given_z(x, z) + lg.log_prior(z)).mean())
    with_prior = complete_data_loss(model, x, z, num_data=1000)
    theta_sq = sum((p**2).sum() for p in model.decoder.parameters())
    # the N(0, I) prior's gradient, scaled by M/N per minibatch, on a per-example mean
    assert torch.allclose(with_prior - plain, 0.5 * theta_sq / 1000)
    grads = torch.autograd.grad(with_prior - plain, [model.decoder.W])
    assert torch.allclose(grads[0], model.decoder.W / 1000)


def test_mcem_learns_the_linear_gaussian_model(lg):
    """MCEM raises the exact log-likelihood of data drawn from the true model."""
    x = lg.sample(200, gen(0))
    model = LinearModel(lg)
    with torch.no_grad():
        model.decoder.W.mul_(0.3)
        model.decoder.b.zero_()
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    with torch.no_grad():
        before = float(model.exact().log_marginal(x).mean())
    best = float(lg.log_marginal(x).mean())  # the true model; the MLE is a little higher
    marks = []

    def callback(mcem, row):
        if row["epoch"] % 5 == 0:
            marks.append(row["epoch"])
            with torch.no_grad():
                return {"train_log_px": float(mcem.model.exact().log_marginal(mcem.x).mean())}
        return None

    mcem = MCEM(model, x, lr=0.1, seed=0)
    history = mcem.fit(10, callback=callback)
    with torch.no_grad():
        after = float(model.exact().log_marginal(x).mean())
    # measured: 98 % of the way from the start to the true model's value (seeds 0 and 1)
    assert after > before + 0.8 * (best - before)
    for p, q in zip(model.encoder.parameters(), encoder_before):
        assert torch.equal(p, q) and p.grad is None  # the encoder is ignored
    # counts: each datapoint once per minibatch, and once per each of the 5 weight updates
    assert history["samples"] == [200.0 * e for e in range(1, 11)]
    assert history["weight_update_samples"] == [1000.0 * e for e in range(1, 11)]
    assert history["hmc_gradients"] == [2000.0 * e for e in range(1, 11)]
    assert len(history["seconds"]) == 10 and min(history["seconds"]) > 0
    assert abs(history["accept_rate"][-1] - 0.9) < 0.1
    assert marks == [5, 10]
    logged = history["train_log_px"]
    assert all(math.isnan(v) for i, v in enumerate(logged) if (i + 1) % 5)
    assert logged[-1] == pytest.approx(after)
    assert mcem.z.shape == (200, 2) and mcem.step_size.shape == (200,)


def test_mcem_burn_in_brings_the_chains_to_the_posterior(lg):
    """After burn_in, chain n holds a draw from p(z|x_n): standardised by the exact posterior,
    the N x J values have mean 0 (SE 1/sqrt(NJ)) and variance 1 (SE sqrt(2/NJ))."""
    x = lg.sample(300, gen(0))
    mcem = MCEM(LinearModel(lg), x, z0=torch.full((300, 2), 3.0, dtype=torch.float64))
    mcem.burn_in(40)
    mu, cov = lg.posterior_full(x)
    white = torch.linalg.solve_triangular(
        torch.linalg.cholesky(cov), (mcem.z - mu).T, upper=False
    ).flatten()
    n = white.numel()
    assert abs(float(white.mean())) < 5 / math.sqrt(n)
    assert abs(float(white.var()) - 1) < 5 * math.sqrt(2 / n)
    assert mcem.samples == 0 and mcem.hmc_gradients == 300 * 10 * 40
    assert abs(float(mcem.step_size.mean()) - 0.24) < 0.05  # adapted from 0.1


def test_mcem_is_reproducible(lg):
    x = lg.sample(50, gen(0))

    def run(seed, weight_prior=True):
        model = LinearModel(lg)
        mcem = MCEM(model, x, batch_size=20, num_leapfrog=3, seed=seed, weight_prior=weight_prior)
        mcem.fit(2)
        return model.decoder.W.detach().clone(), mcem.z.clone()

    (w1, z1), (w2, z2), (w3, _) = run(0), run(0), run(1)
    assert torch.equal(w1, w2) and torch.equal(z1, z2)
    assert not torch.equal(w1, w3)
    w4, _ = run(0, weight_prior=False)  # the prior term reaches the optimizer
    assert not torch.equal(w1, w4)


def test_mcem_trains_only_the_decoder_of_a_vae():
    model = small_vae()
    x = (torch.rand(30, 6, generator=gen(0)) > 0.5).float()
    encoder = [p.detach().clone() for p in model.encoder.parameters()]
    decoder = [p.detach().clone() for p in model.decoder.parameters()]
    history = MCEM(model, x, batch_size=10, num_leapfrog=2, weight_updates=2).fit(1)
    assert all(torch.equal(p, q) for p, q in zip(model.encoder.parameters(), encoder))
    assert not all(torch.equal(p, q) for p, q in zip(model.decoder.parameters(), decoder))
    assert history["samples"] == [30.0] and math.isfinite(history["train_log_joint"][0])


# --------------------------------------------------------------------------------------------
# Wake-sleep


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``loss``, zeros for parameters it does not depend on."""
    out = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(out, params)]


@pytest.mark.parametrize("make", ["vae", "linear"])
def test_wake_sleep_gradients_are_separated(lg, make):
    """One backward of the loss = wake gradient for theta + sleep gradient for phi, nothing else."""
    if make == "vae":
        model = small_vae()
        x = (torch.rand(8, 6, generator=gen(0)) > 0.5).float()
    else:
        model = LinearModel(lg)
        with torch.no_grad():
            model.encoder.A.normal_(generator=gen(0))
        x = lg.sample(8, gen(0))
    theta, phi = list(model.decoder.parameters()), list(model.encoder.parameters())
    loss, _ = wake_sleep_loss(model, x, generator=gen(1))
    terms = wake_sleep_terms(model, x, generator=gen(1))  # the same draws
    assert torch.allclose(loss, terms.wake + terms.sleep)
    for g_loss, g_wake in zip(grads(loss, theta), grads(terms.wake, theta)):
        assert torch.allclose(g_loss, g_wake, atol=1e-7)
    for g_loss, g_sleep in zip(grads(loss, phi), grads(terms.sleep, phi)):
        assert torch.allclose(g_loss, g_sleep, atol=1e-7)
    assert all(torch.all(g == 0) for g in grads(terms.wake, phi))  # z ~ q is detached
    assert all(torch.all(g == 0) for g in grads(terms.sleep, theta))  # dreams: no gradient
    assert any(torch.any(g != 0) for g in grads(terms.wake, theta))
    assert any(torch.any(g != 0) for g in grads(terms.sleep, phi))


def test_wake_sleep_reports_the_elbo_of_the_real_batch(lg):
    model = LinearModel(lg)
    with torch.no_grad():
        model.encoder.A.normal_(generator=gen(0))
        model.encoder.logvar.fill_(-1.0)
    x = lg.sample(6, gen(1))
    loss, terms = wake_sleep_loss(model, x, generator=gen(2))
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=gen(2), dtype=mu.dtype)  # the first draw
    z = mu + torch.exp(0.5 * logvar) * eps
    assert torch.allclose(terms.log_px, model.log_px_given_z(x, z))
    assert torch.allclose(terms.kl, kl_normal_standard(mu, logvar))
    assert torch.allclose(terms.elbo, terms.log_px - terms.kl)
    assert all(t.shape == (6,) and not t.requires_grad for t in terms)
    assert loss.dim() == 0 and loss.requires_grad
    # the wake term is minus the mean of the reported reconstruction term
    parts = wake_sleep_terms(model, x, generator=gen(2))
    assert torch.allclose(parts.wake, -terms.log_px.mean())
    again, _ = wake_sleep_loss(model, x, generator=gen(2))
    assert torch.equal(loss, again)


def test_sleep_phase_moment_matches_the_exact_posterior():
    """Minimising the sleep term alone fits q by the forward KL: E_p(x) KL(p(z|x) || q(z|x)).

    With a FIXED linear decoder and a linear Gaussian encoder with diagonal covariance, the
    optimum is q's mean = the exact posterior mean and q's variances = the diagonal of the
    exact posterior covariance Sigma. The ELBO's reverse KL would give 1/diag(Sigma^{-1})
    instead, which here (posterior correlation -0.74) is 2.2 times smaller.
    """
    W = torch.tensor([[1.0, 0.8], [0.6, 1.0], [0.3, -0.2]], dtype=torch.float64)
    b = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)
    lg = LinearGaussian(W, b, 0.5)
    model = LinearModel(lg)
    model.decoder.requires_grad_(False)
    x = lg.sample(1000, gen(0))
    opt = torch.optim.Adam(model.encoder.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, [150, 200], gamma=0.2)
    g = gen(1)
    for _ in range(250):
        loss, _ = wake_sleep_loss(model, x, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()

    x_test = lg.sample(5, gen(2))
    mu, cov = lg.posterior_full(x_test)
    forward = torch.diagonal(cov)
    reverse = 1.0 / torch.diagonal(torch.linalg.inv(cov))
    q_mu, q_logvar = model.encode(x_test)
    q_var = torch.exp(q_logvar[0]).detach()
    # SGD noise with 1000 dreams per step leaves ~1 % error: 5 % and 0.05 posterior sds
    assert torch.allclose(q_var, forward, rtol=0.05)
    assert torch.all((q_var - reverse).abs() > 0.5 * reverse)
    assert ((q_mu.detach() - mu).abs() / forward.sqrt()).max() < 0.05


# --------------------------------------------------------------------------------------------
# Error messages


class NoLatent:
    def log_px_given_z(self, x, z):
        return x.sum(-1)


class Unsummed(LinearModel):
    def log_px_given_z(self, x, z):  # forgot to sum over D
        return -0.5 * (x - self.decoder_mean(z)) ** 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, x: hmc_sample(m, x[0]), ValueError, r"non-empty matrix \(B, 5\)"),
        (lambda m, x: hmc_sample(m, x * float("nan")), ValueError, "NaN"),
        (lambda m, x: hmc_sample(m, x, z0=torch.zeros(3, 2)), ValueError, r"z0 must have shape"),
        (lambda m, x: hmc_sample(m, x, step_size=0.0), ValueError, "step_size must be a positive"),
        (lambda m, x: hmc_sample(m, x, step_size=float("nan")), ValueError, "positive finite"),
        (
            lambda m, x: hmc_sample(m, x, step_size=torch.tensor([0.1, -0.1, 0.1, 0.1])),
            ValueError,
            "every step_size must be positive",
        ),
        (lambda m, x: hmc_sample(m, x, step_size=torch.ones(3)), ValueError, r"\(B,\) = \(4,\)"),
        (lambda m, x: hmc_sample(m, x, target_accept=1.0), ValueError, "strictly between 0"),
        (lambda m, x: hmc_sample(m, x, num_leapfrog=0), ValueError, "num_leapfrog must be"),
        (lambda m, x: hmc_sample(m, x, num_burnin=-1), ValueError, "num_burnin must be"),
        (lambda m, x: hmc_sample(m, x, jitter=1.0), ValueError, r"jitter must be .* \[0, 1\)"),
        (lambda m, x: hmc_sample(m, x, init="mode"), ValueError, 'init must be "prior"'),
        (lambda m, x: hmc_sample(NoLatent(), x), TypeError, "z_dim"),
        (lambda m, x: hmc_sample(object(), x), TypeError, "log_px_given_z"),
        (lambda m, x: hmc_log_likelihood(m, x, 3), ValueError, "at least 4"),
        (lambda m, x: hmc_log_likelihood(m, x, 4), ValueError, r"num_samples // 2 > J"),
        (lambda m, x: hmc_log_likelihood(m, x, density="kde"), ValueError, "density must be"),
        (
            lambda m, x: reciprocal_importance_estimate(torch.zeros(5, 4), torch.zeros(5, 3)),
            ValueError,
            r"shape \(L, B\)",
        ),
        (lambda m, x: fit_gaussian(torch.ones(10, 4, 2)), ValueError, "do not vary"),
        (lambda m, x: MCEM(NoLatent(), x), TypeError, "z_dim"),
        (
            lambda m, x: MCEM(LinearGaussian(m.decoder.W.detach(), m.decoder.b.detach(), 0.5), x),
            TypeError,
            "pass the generative parameters",
        ),
        (lambda m, x: MCEM(m, x, batch_size=0), ValueError, "batch_size must be"),
        (lambda m, x: wake_sleep_loss(LinearGaussian.random(5, 2), x), TypeError, "encode"),
    ],
)
def test_errors_say_what_is_wrong(lg, call, error, match):
    model = LinearModel(lg)
    x = lg.sample(4, gen(0))
    with pytest.raises(error, match=match):
        call(model, x)


def test_a_likelihood_that_is_not_summed_is_caught(lg):
    with pytest.raises(ValueError, match="one value per z"):
        hmc_sample(Unsummed(lg), lg.sample(4, gen(0)), 2)


def test_the_estimator_continues_its_chains_and_fails_from_a_bad_start(lg3):
    """Chains that start far from the posterior, with no burn-in, put the estimate nats off
    (the failure of fresh chains on the narrow posteriors of a long-trained model, where it
    errs low); continuing the chains of a previous estimate (``z0=previous.z``) needs no
    burn-in at all."""
    model = LinearModel(lg3)
    x = lg3.sample(40, gen(0))
    exact = lg3.log_marginal(x)
    first = hmc_log_likelihood(model, x, generator=gen(1))
    assert first.z.shape == (40, 3)
    far = torch.full_like(first.z, 30.0)
    stuck = hmc_log_likelihood(model, x, z0=far, num_burnin=0, generator=gen(2))
    continued = hmc_log_likelihood(model, x, z0=first.z, step_size=first.step_size,
                                   num_burnin=0, generator=gen(2))
    assert abs(float((stuck.log_px - exact).mean())) > 1
    assert abs(float((continued.log_px - exact).mean())) < 0.1
