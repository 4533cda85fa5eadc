"""ELBO and importance-sampled bounds, checked on the exact linear-Gaussian model."""

import math

import pytest
import torch

from vaelib import VAE, VAEConfig
from vaelib.book.linear_gaussian import LinearGaussian
from vaelib.distributions import kl_normal_standard
from vaelib.objectives import _log_weights, elbo, elbo_from_posterior, iwae_bound, log_likelihood


class ShiftedPosterior:
    """The linear-Gaussian model with q(z|x) = its exact posterior, shifted by fixed offsets.

    It has the interface the objectives use (encode, log_px_given_z); zero offsets give the
    exact posterior, so the bounds must be tight.
    """

    def __init__(self, model, mu_shift=0.0, logvar_shift=0.0):
        self.model, self.mu_shift, self.logvar_shift = model, mu_shift, logvar_shift

    def encode(self, x):
        mu, logvar = self.model.posterior(x)
        return mu + self.mu_shift, logvar + self.logvar_shift

    def log_px_given_z(self, x, z):
        return self.model.log_px_given_z(x, z)


@pytest.fixture
def lg():
    return LinearGaussian.random(x_dim=6, z_dim=2, sigma=0.6, seed=0)


@pytest.fixture
def x(lg):
    return lg.sample(5, torch.Generator().manual_seed(1))


def test_monte_carlo_elbo_plus_kl_is_log_evidence(lg, x):
    """ELBO(q) + KL(q || p(z|x)) = log p(x) for an arbitrary q, with many samples."""
    torch.manual_seed(0)
    mu = torch.tensor([[0.4, -1.0]], dtype=torch.float64).expand(5, 2)
    logvar = torch.tensor([[-1.0, 0.5]], dtype=torch.float64).expand(5, 2)
    terms = elbo_from_posterior(lg.log_px_given_z, x, mu, logvar, num_samples=200_000)
    gap = lg.kl_to_posterior(x, mu, logvar)
    # the log-likelihood samples have std < 10 nats here; 10 / sqrt(2e5) = 0.022: 5 SE = 0.11
    assert torch.allclose(terms.elbo + gap, lg.log_marginal(x), atol=0.11)
    exact = lg.expected_log_likelihood(x, mu, logvar) - kl_normal_standard(mu, logvar)
    assert torch.allclose(terms.elbo, exact, atol=0.11)
    assert torch.equal(terms.elbo, terms.log_px - terms.kl)


def test_elbo_is_exact_at_the_true_posterior(lg, x):
    """With q = p(z|x), log p(x|z) + log p(z) - log q(z|x) = log p(x) for every sample."""
    torch.manual_seed(1)
    mu, logvar = lg.posterior(x)
    model = ShiftedPosterior(lg)
    # the IWAE weights are constant, so even K = 1 gives log p(x) up to rounding
    assert torch.allclose(iwae_bound(model, x, num_samples=1), lg.log_marginal(x), atol=1e-9)
    closed = lg.expected_log_likelihood(x, mu, logvar) - kl_normal_standard(mu, logvar)
    assert torch.allclose(closed, lg.log_marginal(x), atol=1e-9)


def test_iwae_bound_rises_with_k_towards_log_evidence(lg, x):
    torch.manual_seed(2)
    model = ShiftedPosterior(lg, 0.8, 0.7)  # a deliberately poor q
    log_px = lg.log_marginal(x)
    bounds = []
    for k in (1, 10, 100, 1000):
        # average 400 independent estimates so that the ordering is not noise
        estimates = torch.stack([iwae_bound(model, x, k) for _ in range(400)])
        bounds.append(estimates.mean(0))
    for lower, higher in zip(bounds, bounds[1:]):
        assert torch.all(higher > lower)
    assert torch.all(bounds[-1] <= log_px + 1e-3)
    assert torch.all(log_px - bounds[-1] < 0.1 * (log_px - bounds[0]))


def test_log_likelihood_estimate_is_chunk_invariant_and_close(lg, x):
    model = ShiftedPosterior(lg, 0.3, 0.3)
    k = 5000
    torch.manual_seed(3)
    one_chunk = log_likelihood(model, x, num_samples=k, chunk_size=k)
    torch.manual_seed(3)
    many_chunks = log_likelihood(model, x, num_samples=k, chunk_size=128, batch_size=2)
    # delta method: sd(log mean w) ~ sd(w) / (mean(w) sqrt(K)); 5 standard errors
    mu, logvar = model.encode(x)
    w = _log_weights(model, x, mu, logvar, 20_000).exp()
    stderr = w.std(0) / (w.mean(0) * k**0.5)
    for estimate in (one_chunk, many_chunks):
        assert torch.all((estimate - lg.log_marginal(x)).abs() < 5 * stderr)


def test_vae_elbo_shapes_and_bound():
    torch.manual_seed(4)
    model = VAE(VAEConfig(x_dim=12, hidden_dim=16, z_dim=3))
    x = torch.rand(7, 12)
    terms = elbo(model, x, num_samples=4)
    assert all(t.shape == (7,) for t in terms)
    assert torch.all(terms.kl >= 0)
    # the ELBO is a lower bound of the importance-sampled log-likelihood (on average)
    assert terms.elbo.mean() < log_likelihood(model, x, num_samples=2000).mean()
    loss = -terms.elbo.mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_gaussian_vae_elbo():
    torch.manual_seed(5)
    model = VAE(VAEConfig(x_dim=10, hidden_dim=8, z_dim=2, likelihood="gaussian"))
    terms = elbo(model, torch.rand(4, 10))
    assert torch.isfinite(terms.elbo).all()


def test_num_samples_must_be_positive(lg, x):
    mu, logvar = lg.posterior(x)
    with pytest.raises(ValueError, match="num_samples"):
        elbo_from_posterior(lg.log_px_given_z, x, mu, logvar, num_samples=0)
    with pytest.raises(ValueError, match="num_samples"):
        iwae_bound(ShiftedPosterior(lg), x, num_samples=0)


def test_elbo_nats_per_example_scale():
    """An untrained Bernoulli decoder with logits ~0 costs about D log 2 nats per example."""
    torch.manual_seed(6)
    model = VAE(VAEConfig(x_dim=784, hidden_dim=32, z_dim=2, init_std=1e-4))
    terms = elbo(model, torch.rand(3, 784).round())
    assert torch.allclose(-terms.log_px, torch.full((3,), 784 * math.log(2)), rtol=1e-3)


def test_iwae_bound_is_computed_in_chunks_of_bounded_size(lg, x):
    """Regression: iwae_bound held K x B x D values at once. With the exact posterior as q every
    log-weight is log p(x), so any chunking gives log p(x) exactly; and no chunk decodes more
    than chunk_size samples."""
    sizes = []

    class Recording(ShiftedPosterior):
        def log_px_given_z(self, x, z):
            sizes.append(z.shape[0])
            return super().log_px_given_z(x, z)

    exact = lg.log_marginal(x)
    for chunk in (1, 7, 1000):
        sizes.clear()
        bound = iwae_bound(Recording(lg), x, num_samples=50, chunk_size=chunk)
        assert torch.allclose(bound, exact, atol=1e-9)
        assert max(sizes) == min(chunk, 50) and sum(sizes) == 50
    sizes.clear()
    iwae_bound(Recording(lg), x, num_samples=5000)  # default: about 2**22 numbers at once
    assert max(sizes) * len(x) * lg.x_dim <= 2**22 and sum(sizes) == 5000


def test_the_protocol_documents_the_check_hook_and_both_z_shapes():
    """The protocol's docstring is the reference for your own models: it must name the
    check_input hook and the (B, J) z that the baselines pass."""
    from vaelib.objectives import LatentVariableModel

    doc = LatentVariableModel.__doc__
    assert "check_input(x)" in doc and "replaces the checks below" in doc
    assert "``(B, J)`` →\n      ``(B,)``" in doc or "``(B, J)`` → ``(B,)``" in doc
    assert "baselines" in doc and "input_range" in doc and "dtype" in doc
