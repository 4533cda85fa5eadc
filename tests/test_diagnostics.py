"""vaelib.diagnostics: KL per latent dimension and active units, against direct computations."""

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelib import VAE, VAEConfig
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


class _LinearWithEncoder:
    """The exact linear-Gaussian model with a deliberately poor encoder q = N(0, I)."""

    def __init__(self, model):
        self.model, self.z_dim = model, model.z_dim

    def encode(self, x):
        zeros = torch.zeros(len(x), self.z_dim, dtype=torch.float64)
        return zeros, zeros

    def log_px_given_z(self, x, z):
        return self.model.log_px_given_z(x, z)


def test_optimal_q_and_the_two_gaps_on_the_exact_model():
    """On the linear-Gaussian model with a correlated posterior the best diagonal q and the
    approximation gap are known exactly (LinearGaussian.best_diagonal_q, approximation_gap)."""
    from vaelib.book.linear_gaussian import LinearGaussian
    from vaelib.diagnostics import elbo_gaps, optimal_q

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(6, 1, generator=gen, dtype=torch.float64)
    W = torch.cat([w, w + 0.3 * torch.randn(6, 1, generator=gen, dtype=torch.float64)], 1)
    lg = LinearGaussian(W, torch.zeros(6, dtype=torch.float64), sigma=0.5)  # nearly parallel
    x = lg.sample(10, generator=torch.Generator().manual_seed(2))
    wrapped = _LinearWithEncoder(lg)
    mu, logvar = optimal_q(wrapped, x, steps=1000, lr=0.1, num_samples=50, seed=0)
    mu_star, logvar_star = lg.best_diagonal_q(x)
    assert torch.allclose(mu, mu_star, atol=0.05) and torch.allclose(logvar, logvar_star, atol=0.08)
    gaps = elbo_gaps(wrapped, x, num_samples=5000, elbo_samples=5000, steps=1000, lr=0.1, seed=0)
    exact_gap = lg.approximation_gap(x)
    assert (exact_gap > 0.2).all()  # a real gap: the posterior is strongly correlated
    # ELBOs from 5,000 samples have standard errors of about 0.02 nats here
    assert torch.allclose(gaps.approximation, exact_gap, atol=0.1)
    assert torch.allclose(gaps.log_px, lg.log_marginal(x), atol=0.1)
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
