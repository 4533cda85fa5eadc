"""vaelib.diagnostics: KL per latent dimension, active units, mutual information, the gaps and the
baseline without latent variable, against direct computations."""

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelib import VAE, VAEConfig
from vaelib.book.checks import standard_errors
from vaelib.book.troubleshooting import PriorEncoder
from vaelib.diagnostics import active_units, kl_per_dimension


class FixedEncoder(torch.nn.Module):
    """A model of the protocol whose q(z|x) is given: mu = x @ A, logvar = constant."""

    def __init__(self, A: torch.Tensor, logvar: torch.Tensor) -> None:
        super().__init__()
        self.A = torch.nn.Parameter(A)
        self.logvar = logvar

    def encode(self, x):
        return x @ self.A, self.logvar.expand(len(x), -1)

    def log_px_given_z(self, x, z):  # pragma: no cover - not used here
        return torch.zeros(z.shape[:-1])


def test_kl_per_dimension_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    logvar = torch.tensor([0.3, -1.0, 0.0], dtype=torch.float64)
    model = FixedEncoder(A, logvar)
    x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    mu = x @ A
    q = Normal(mu, torch.exp(0.5 * logvar))
    reference = kl_divergence(q, Normal(0.0, 1.0)).mean(0)  # (J,)
    ours = kl_per_dimension(model, x, batch_size=64)  # batches must not change the result
    assert ours.shape == (3,)
    assert torch.allclose(ours, reference, rtol=1e-12)


def test_active_units_is_the_variance_of_the_posterior_mean():
    """A dimension whose mean does not move with x is inactive; the variance is the population
    variance over the data (Burda et al. 2016), and the threshold is 0.01."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 4, generator=gen, dtype=torch.float64)
    A = torch.zeros(4, 3, dtype=torch.float64)
    A[0, 0] = 1.0  # variance about 1: active
    A[1, 1] = 0.05  # variance 0.0025: inactive
    A[2, 2] = 0.2  # variance 0.04: active
    model = FixedEncoder(A, torch.zeros(3, dtype=torch.float64))
    result = active_units(model, x)
    expected = np.var((x @ A).numpy(), axis=0)  # numpy: ddof=0
    assert np.allclose(result.variances.numpy(), expected, rtol=1e-12)
    assert result.count == 2 and result.active.tolist() == [True, False, True]
    assert active_units(model, x, threshold=0.001).count == 3
    with pytest.raises(ValueError, match="at least two"):
        active_units(model, x[:1])


def test_diagnostics_accept_numpy_and_restore_the_training_mode():
    model = VAE(VAEConfig(x_dim=6, hidden_dim=8, z_dim=2, seed=0))
    model.train()
    x = np.random.default_rng(0).random((20, 6))
    assert kl_per_dimension(model, x).shape == (2,)
    assert active_units(model, x).variances.shape == (2,)
    assert model.training


def test_aggregate_posterior_is_the_law_of_total_variance():
    """Samples from the mixture of the q(z|x_n) have the stated mean and variance."""
    from vaelib.diagnostics import aggregate_posterior

    gen = torch.Generator().manual_seed(2)
    A = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    logvar = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    model = FixedEncoder(A, logvar)
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    moments = aggregate_posterior(model, x, batch_size=128)
    n = torch.randint(0, 500, (400_000,), generator=gen)  # pick a datapoint, then z ~ q(z|x_n)
    z = (x @ A)[n] + torch.exp(0.5 * logvar) * torch.randn(400_000, 2, generator=gen,
                                                            dtype=torch.float64)
    se_mean = z.std(0) / 400_000**0.5
    assert ((z.mean(0) - moments.mean).abs() < 5 * se_mean).all()
    assert torch.allclose(z.var(0), moments.var, rtol=0.02)  # the s.e. of a variance is ~0.3% here


def test_optimal_q_and_the_two_gaps_on_the_exact_model():
    """On the linear-Gaussian model with a correlated posterior the best diagonal q and the
    approximation gap are known exactly (LinearGaussian.best_diagonal_q, approximation_gap)."""
    from vaelib.book.linear_gaussian import LinearGaussian
    from vaelib.diagnostics import elbo_gaps, optimal_q

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(6, 1, generator=gen, dtype=torch.float64)
    W = torch.cat([w, w + 0.3 * torch.randn(6, 1, generator=gen, dtype=torch.float64)], 1)
    lg = LinearGaussian(W, torch.zeros(6, dtype=torch.float64), sigma=0.5)  # nearly parallel
    x = lg.sample(50, generator=torch.Generator().manual_seed(2))
    wrapped = PriorEncoder(lg)
    mu, logvar = optimal_q(wrapped, x, steps=1000, lr=0.1, num_samples=50, seed=0)
    mu_star, logvar_star = lg.best_diagonal_q(x)
    assert torch.allclose(mu, mu_star, atol=0.05) and torch.allclose(logvar, logvar_star, atol=0.08)
    # q* is too narrow for this posterior (its importance weights have infinite variance):
    # the proposal for log p(x) is q* with doubled variances
    gaps = elbo_gaps(wrapped, x, num_samples=5000, elbo_samples=5000, steps=1000, lr=0.1, seed=0,
                     optimal_q_samples=50, proposal_variance=2.0)
    assert torch.equal(gaps.mu_star, mu) and torch.equal(gaps.logvar_star, logvar)
    exact_gap = lg.approximation_gap(x)
    assert (exact_gap > 0.2).all()  # a real gap: the posterior is strongly correlated
    # each piece against its closed form, within four standard errors over the 50 examples
    assert standard_errors(gaps.log_px - lg.log_marginal(x), 0.0) < 4
    # and every example's log p(x): from q* itself the worst misses by 0.2 to 0.5 nats
    assert (gaps.log_px - lg.log_marginal(x)).abs().max() < 0.1
    assert standard_errors(gaps.elbo_optimal - lg.elbo(x, mu, logvar), 0.0) < 4
    zeros = torch.zeros_like(mu)
    assert standard_errors(gaps.elbo_encoder - lg.elbo(x, zeros, zeros), 0.0) < 4
    assert (gaps.approximation - exact_gap).abs().max() < 0.1
    assert (gaps.amortization > 1.0).all()  # q = N(0, I) is far from the posterior
    assert torch.allclose(gaps.approximation + gaps.amortization,
                          gaps.log_px - gaps.elbo_encoder, atol=1e-9)


def test_elbo_gaps_sets_the_samples_of_optimal_q(monkeypatch):
    """Regression: elbo_gaps always ran optimal_q with 10 samples per step."""
    import vaelib.diagnostics as diagnostics

    seen = []
    real = diagnostics.optimal_q

    def spy(*args, **kwargs):
        seen.append(kwargs.get("num_samples"))
        return real(*args, **kwargs)

    monkeypatch.setattr(diagnostics, "optimal_q", spy)
    model = VAE(VAEConfig(x_dim=6, hidden_dim=8, z_dim=2, likelihood="gaussian",
                          decoder_mean="identity", seed=0))
    x = torch.randn(4, 6)
    gaps = diagnostics.elbo_gaps(model, x, num_samples=20, elbo_samples=20, steps=4,
                                 optimal_q_samples=3)
    assert gaps.log_px.shape == (4,)
    diagnostics.elbo_gaps(model, x, num_samples=20, elbo_samples=20, steps=4)
    assert seen == [3, 10]  # the default stays 10
    monkeypatch.setattr(diagnostics, "optimal_q", real)
    again = diagnostics.elbo_gaps(model, x, num_samples=20, elbo_samples=20, steps=4,
                                  optimal_q_samples=3)
    assert torch.equal(again.elbo_optimal, gaps.elbo_optimal)  # seeded: the same q*
    with pytest.raises(ValueError, match="optimal_q_samples must be an integer"):
        diagnostics.elbo_gaps(model, x, steps=2, optimal_q_samples=0)


def test_elbo_gaps_draws_exactly_elbo_samples(monkeypatch):
    """Regression: with a chunk that does not divide elbo_samples, elbo_gaps drew whole chunks
    (530 samples of z for 500 asked, on 100 MNIST digits)."""
    import vaelib.diagnostics as diagnostics
    import vaelib.objectives as objectives

    drawn = []
    real = objectives.elbo_from_posterior

    def spy(log_px_given_z, x, mu, logvar, num_samples=1):
        drawn.append(num_samples)
        return real(log_px_given_z, x, mu, logvar, num_samples)

    model = VAE(VAEConfig(x_dim=6, hidden_dim=8, z_dim=2, likelihood="gaussian",
                          decoder_mean="identity", seed=0))
    x = torch.randn(1500, 6)
    chunk = diagnostics._chunk(x)
    assert 500 % chunk != 0 and chunk < 500  # a partial last chunk
    monkeypatch.setattr(objectives, "elbo_from_posterior", spy)
    diagnostics.elbo_gaps(model, x, num_samples=10, elbo_samples=500, steps=2,
                          optimal_q_samples=3)
    assert sum(drawn) == 2 * 3 + 2 * 500  # optimal_q's two steps, then the two ELBOs


def test_importance_log_px_is_exact_with_the_posterior_as_proposal():
    """When the proposal is the exact posterior, every weight equals p(x): exact for any K."""
    from vaelib.book.linear_gaussian import LinearGaussian
    from vaelib.diagnostics import importance_log_px

    lg = LinearGaussian.random(5, 2, seed=3)  # orthogonal columns: a diagonal posterior
    x = lg.sample(7, generator=torch.Generator().manual_seed(4))
    wrapped = PriorEncoder(lg)
    mu, logvar = lg.posterior(x)
    for k in (1, 30):
        estimate = importance_log_px(wrapped, x, mu, logvar, num_samples=k, seed=1)
        assert torch.allclose(estimate, lg.log_marginal(x), atol=1e-9)
    wide = importance_log_px(wrapped, x, mu, logvar + 1.0, num_samples=20000, seed=2)
    assert (wide - lg.log_marginal(x)).abs().max() < 0.05  # unbiased in the limit, noisy at K
    with pytest.raises(ValueError, match="mu and logvar"):
        importance_log_px(wrapped, x, mu[:3], logvar[:3], num_samples=5)


def test_mutual_information_against_quadrature():
    """Two examples whose codes are N(-a, s^2) and N(a, s^2): I(x; z) by numerical integration."""
    from vaelib.diagnostics import mutual_information

    a, s2 = 0.8, 0.5
    model = FixedEncoder(torch.tensor([[a]], dtype=torch.float64),
                         torch.tensor([np.log(s2)], dtype=torch.float64))
    x = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    z = np.linspace(-12, 12, 200001)
    q1 = np.exp(-(z + a) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2)
    q2 = np.exp(-(z - a) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2)
    mix = 0.5 * (q1 + q2)
    exact = 0.5 * np.trapezoid(q1 * np.log(q1 / mix), z) + 0.5 * np.trapezoid(q2 * np.log(q2 / mix), z)
    result = mutual_information(model, x, num_samples=20000, seed=0)
    assert result.log_n == pytest.approx(np.log(2))
    assert abs(result.estimate - exact) < 4 * result.standard_error
    assert 0 < result.estimate < np.log(2)


def test_mutual_information_limits_and_the_rate():
    """Zero when the codes ignore x; log N when they tell every example apart; never above
    the rate (the mean KL) by more than its noise."""
    from vaelib.diagnostics import mutual_information

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    ignoring = FixedEncoder(torch.zeros(3, 2, dtype=torch.float64),
                            torch.zeros(2, dtype=torch.float64))
    assert mutual_information(ignoring, x).estimate == pytest.approx(0.0, abs=1e-12)
    sharp = FixedEncoder(torch.randn(3, 2, generator=gen, dtype=torch.float64) * 10,
                         torch.full((2,), -12.0, dtype=torch.float64))
    result = mutual_information(sharp, x, batch_size=64)
    assert result.estimate == pytest.approx(np.log(300), abs=1e-6)
    blurred = FixedEncoder(torch.randn(3, 2, generator=gen, dtype=torch.float64),
                           torch.tensor([-1.0, 0.3], dtype=torch.float64))
    result = mutual_information(blurred, x, num_samples=20, seed=1)
    rate = kl_per_dimension(blurred, x).sum().item()
    assert result.estimate < rate + 4 * result.standard_error
    assert result.estimate < result.log_n
    with pytest.raises(ValueError, match="at least two"):
        mutual_information(blurred, x[:1])


def test_pixel_frequency_log_prob_is_laplace_smoothed_independent_pixels():
    from vaelib.diagnostics import pixel_frequency_log_prob

    rng = np.random.default_rng(0)
    x_train = (rng.random((50, 4)) < [0.1, 0.5, 0.9, 0.0]).astype(np.float32)
    x = (rng.random((6, 4)) < 0.5).astype(np.float32)
    x[0, 3] = 1.0  # a pixel never on in training: probability 1/52, not 0
    p = (x_train.sum(0) + 1) / (50 + 2)
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    ours = pixel_frequency_log_prob(x_train, torch.from_numpy(x))
    assert ours.shape == (6,)
    assert np.allclose(ours.numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="same D"):
        pixel_frequency_log_prob(x_train, x[:, :3])
