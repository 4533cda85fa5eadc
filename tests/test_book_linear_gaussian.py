"""The exact linear-Gaussian model against independent references."""

import pytest
import torch
from torch.distributions import MultivariateNormal

from vaelib.book.linear_gaussian import LinearGaussian
from vaelib.distributions import kl_normal_standard


@pytest.fixture
def model():
    return LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=0)


@pytest.fixture
def x(model):
    return model.sample(8, torch.Generator().manual_seed(1))


def test_log_marginal_matches_multivariate_normal(model, x):
    cov = model.W @ model.W.T + model.sigma**2 * torch.eye(5, dtype=torch.float64)
    expected = MultivariateNormal(model.b, covariance_matrix=cov).log_prob(x)
    assert torch.allclose(model.log_marginal(x), expected, atol=1e-10)


def test_bayes_rule_holds_for_any_z(model, x):
    """log p(x) = log p(z) + log p(x|z) - log p(z|x) for every z (Step 1 of the ELBO)."""
    z = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rhs = model.log_prior(z) + model.log_px_given_z(x, z) - model.log_posterior(z, x)
    assert torch.allclose(rhs, model.log_marginal(x).expand(3, 8), atol=1e-10)


def test_posterior_is_diagonal_for_orthogonal_w(model, x):
    mu, logvar = model.posterior(x)
    mu_full, cov = model.posterior_full(x)
    assert torch.allclose(mu, mu_full)
    assert torch.allclose(torch.diag_embed(logvar.exp()[0]), cov, atol=1e-12)


def test_non_orthogonal_posterior_asks_for_full_covariance():
    model = LinearGaussian.random(5, 2, seed=3, orthogonal=False)
    with pytest.raises(ValueError, match="posterior_full"):
        model.posterior(model.sample(2))


def test_expected_log_likelihood_matches_monte_carlo(model, x):
    mu = torch.zeros(8, 2, dtype=torch.float64) + 0.3
    logvar = torch.full((8, 2), -0.7, dtype=torch.float64)
    n = 100_000
    eps = torch.randn(n, 8, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    samples = model.log_px_given_z(x, mu + (0.5 * logvar).exp() * eps)
    stderr = samples.std(0) / n**0.5
    exact = model.expected_log_likelihood(x, mu, logvar)
    assert torch.all((samples.mean(0) - exact).abs() < 5 * stderr)


def test_elbo_plus_posterior_kl_is_log_evidence_for_any_q(model, x):
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        mu = 2 * torch.randn(8, 2, generator=g, dtype=torch.float64)
        logvar = torch.randn(8, 2, generator=g, dtype=torch.float64)
        elbo = model.expected_log_likelihood(x, mu, logvar) - kl_normal_standard(mu, logvar)
        total = elbo + model.kl_to_posterior(x, mu, logvar)
        assert torch.allclose(total, model.log_marginal(x), atol=1e-9)
        assert torch.all(elbo <= model.log_marginal(x))


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(torch.ones(3, 1), torch.zeros(3), sigma=0.0)
    with pytest.raises(ValueError, match="W"):
        LinearGaussian(torch.ones(3, 1), torch.zeros(2), sigma=1.0)
