"""vaelib.distributions against torch.distributions and Monte Carlo."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaelib.distributions import (
    bernoulli_log_prob,
    gaussian_log_prob,
    kl_normal_normal,
    kl_normal_standard,
    reparameterize,
    standard_normal_log_prob,
)

# mu in [-10, 10], logvar in [-10, 10]: sigma from 0.0067 to 148, far wider than any encoder output
finite = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)
vectors = st.lists(st.tuples(finite, finite), min_size=1, max_size=6)


def _tensors(pairs):
    t = torch.tensor(pairs, dtype=torch.float64)
    return t[:, 0], t[:, 1]


@settings(max_examples=200, deadline=None)
@given(vectors)
def test_kl_normal_standard_matches_torch_distributions(pairs):
    mu, logvar = _tensors(pairs)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum()
    got = kl_normal_standard(mu[None], logvar[None])[0]
    # float64: the two formulas differ only by rounding; relative 1e-9 plus absolute 1e-9
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert got >= -1e-12  # a KL divergence is never negative


@settings(max_examples=200, deadline=None)
@given(vectors, vectors)
def test_kl_normal_normal_matches_torch_distributions(pairs_q, pairs_p):
    n = min(len(pairs_q), len(pairs_p))
    mu_q, logvar_q = _tensors(pairs_q[:n])
    mu_p, logvar_p = _tensors(pairs_p[:n])
    expected = kl_divergence(
        Normal(mu_q, torch.exp(0.5 * logvar_q)), Normal(mu_p, torch.exp(0.5 * logvar_p))
    ).sum()
    got = kl_normal_normal(mu_q, logvar_q, mu_p, logvar_p)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-6)


def test_kl_normal_normal_reduces_to_standard():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    zeros = torch.zeros_like(mu)
    assert torch.allclose(
        kl_normal_normal(mu, logvar, zeros, zeros), kl_normal_standard(mu, logvar)
    )


def test_kl_matches_monte_carlo_within_standard_error():
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    logvar = torch.tensor([-0.5, 0.3, -1.2], dtype=torch.float64)
    n = 200_000
    eps = torch.randn(n, 3, generator=g, dtype=torch.float64)
    z = reparameterize(mu, logvar, eps)
    # KL = E_q[log q(z) - log p(z)]
    samples = gaussian_log_prob(z, mu, logvar) - standard_normal_log_prob(z)
    estimate, stderr = samples.mean(), samples.std() / math.sqrt(n)
    exact = kl_normal_standard(mu, logvar)
    assert abs(estimate - exact) < 5 * stderr  # 5 standard errors: fails by chance < 1e-6


def test_kl_sign_slip_is_negative_kl():
    """The common slide formula 1/2 sum(1 + log s^2 - mu^2 - s^2) is -KL, not KL."""
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, -1.0]])
    slip = 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
    assert torch.allclose(slip, -kl_normal_standard(mu, logvar))
    assert slip < 0


def test_kl_is_zero_only_at_the_prior():
    zeros = torch.zeros(2, 5)
    assert torch.equal(kl_normal_standard(zeros, zeros), torch.zeros(2))
    assert (kl_normal_standard(zeros + 0.1, zeros) > 0).all()


@settings(max_examples=100, deadline=None)
@given(vectors)
def test_gaussian_log_prob_matches_torch(pairs):
    mu, logvar = _tensors(pairs)
    x = mu + 0.7 * torch.exp(0.5 * logvar) - 0.3
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum()
    assert torch.allclose(gaussian_log_prob(x, mu, logvar), expected, rtol=1e-9, atol=1e-9)


def test_standard_normal_log_prob_matches_torch():
    z = torch.linspace(-4, 4, 12, dtype=torch.float64).reshape(3, 4)
    expected = Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(standard_normal_log_prob(z), expected)


@pytest.mark.parametrize("x_value", [0.0, 0.3, 1.0])
def test_bernoulli_log_prob_matches_torch(x_value):
    logits = torch.tensor([[-50.0, -3.0, 0.0, 2.5, 60.0]], dtype=torch.float64)
    x = torch.full_like(logits, x_value)
    # torch's Bernoulli.log_prob uses the same cross-entropy for soft targets in [0, 1]
    expected = Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1)
    got = bernoulli_log_prob(x, logits)
    assert torch.isfinite(got).all()  # stable at |logits| = 60 where sigmoid rounds to 0 or 1
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_bernoulli_log_prob_broadcasts_over_samples():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    logits = torch.zeros(7, 2, 2)
    assert bernoulli_log_prob(x, logits).shape == (7, 2)
    assert torch.allclose(bernoulli_log_prob(x, logits), torch.full((7, 2), 2 * math.log(0.5)))


def test_reparameterize_moments():
    g = torch.Generator().manual_seed(2)
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, math.log(0.25)], dtype=torch.float64)
    n = 400_000
    z = reparameterize(mu, logvar, torch.randn(n, 2, generator=g, dtype=torch.float64))
    var = logvar.exp()
    # standard error of the mean is sigma/sqrt(n); of the variance sigma^2 sqrt(2/n)
    assert torch.all((z.mean(0) - mu).abs() < 5 * var.sqrt() / math.sqrt(n))
    assert torch.all((z.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))


def test_reparameterize_passes_gradients_to_mu_and_logvar():
    mu = torch.tensor([0.5, -0.5], requires_grad=True)
    logvar = torch.tensor([0.2, -0.4], requires_grad=True)
    eps = torch.tensor([1.5, -0.7])
    z = reparameterize(mu, logvar, eps)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(2))  # dz/dmu = 1
    # dz/dlogvar = eps * sigma / 2
    assert torch.allclose(logvar.grad, eps * torch.exp(0.5 * logvar.detach()) / 2)


def test_reparameterize_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))
