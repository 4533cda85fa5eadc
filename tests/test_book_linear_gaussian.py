"""The exact linear-Gaussian model against independent references."""

import math

import matplotlib
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from vaelib.book.linear_gaussian import LinearGaussian, plot_latent_densities
from vaelib.distributions import kl_normal_standard

matplotlib.use("Agg")


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


def test_posterior_full_matches_the_probabilistic_pca_form():
    """Bishop (2006), Eq. 12.42: mean M^{-1} W^T (x - b), covariance sigma^2 M^{-1}, with
    M = W^T W + sigma^2 I: the same Gaussian as Lambda^{-1} W^T (x - b) / sigma^2, Lambda^{-1}."""
    model = _tilted()
    x = model.sample(4, torch.Generator().manual_seed(3))
    m = model.W.T @ model.W + model.sigma**2 * torch.eye(2, dtype=torch.float64)
    mu, cov = model.posterior_full(x)
    assert torch.allclose(mu, torch.linalg.solve(m, model.W.T @ (x - model.b).T).T, atol=1e-12)
    assert torch.allclose(cov, model.sigma**2 * torch.linalg.inv(m), atol=1e-12)


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


def _tilted(seed: int = 0) -> LinearGaussian:
    """A model whose W has columns at an angle, so its posterior is correlated."""
    base = LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=seed)
    W = torch.stack([base.W[:, 0], base.W[:, 0] + base.W[:, 1]], dim=1)
    return LinearGaussian(W, base.b, base.sigma)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_elbo_matches_a_monte_carlo_estimate_with_torch_distributions(orthogonal):
    """The closed-form ELBO against E_q[log p(x|z) + log p(z) - log q(z)], sampled."""
    model = LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=6, orthogonal=orthogonal)
    x = model.sample(3, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(8)
    mu = torch.randn(3, 2, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 2, generator=g, dtype=torch.float64) - 1.0
    q = Normal(mu, (0.5 * logvar).exp())
    z = q.sample((200_000,))  # (S, 3, 2)
    decoder = MultivariateNormal(
        z @ model.W.T + model.b,
        covariance_matrix=model.sigma**2 * torch.eye(5, dtype=torch.float64),
    )
    prior = Normal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    values = decoder.log_prob(x) + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    se = values.std(0) / math.sqrt(len(values))
    assert torch.all((values.mean(0) - model.elbo(x, mu, logvar)).abs() < 4 * se)


def test_elbo_is_the_evidence_minus_the_kl_to_the_posterior():
    model = _tilted()
    x = model.sample(6, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(6, 2, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 2, generator=g, dtype=torch.float64)
    expected = model.log_marginal(x) - model.kl_to_posterior(x, mu, logvar)
    assert torch.allclose(model.elbo(x, mu, logvar), expected, atol=1e-10)


def test_elbo_is_tight_at_a_diagonal_posterior(model, x):
    mu, logvar = model.posterior(x)
    assert torch.allclose(model.elbo(x, mu, logvar), model.log_marginal(x), atol=1e-10)


def test_posterior_precision_is_the_inverse_posterior_covariance():
    model = _tilted()
    _, cov = model.posterior_full(model.sample(1))
    eye = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(model.posterior_precision() @ cov, eye, atol=1e-12)


def _maximise_elbo(model, x, mu, logvar):
    """L-BFGS on log p(x) - KL(q || posterior), the KL from torch.distributions."""
    mu = mu.clone().requires_grad_(True)
    logvar = logvar.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [mu, logvar],
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = model.kl_to_posterior(x, mu, logvar).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return mu.detach(), logvar.detach()


@pytest.mark.parametrize("seed", [0, 3])
def test_best_diagonal_q_is_the_numerical_maximiser_of_the_elbo(seed):
    model = _tilted(seed)
    x = model.sample(4, torch.Generator().manual_seed(seed + 1))
    start = torch.zeros(4, 2, dtype=torch.float64)
    mu_fit, logvar_fit = _maximise_elbo(model, x, start, start)
    mu, logvar = model.best_diagonal_q(x)
    assert torch.allclose(mu, mu_fit, atol=1e-6)
    assert torch.allclose(logvar, logvar_fit, atol=1e-6)
    # and no nearby diagonal q does better
    best = model.elbo(x, mu, logvar)
    g = torch.Generator().manual_seed(9)
    for _ in range(20):
        nudge = 1e-2 * torch.randn(2, 4, 2, generator=g, dtype=torch.float64)
        assert torch.all(model.elbo(x, mu + nudge[0], logvar + nudge[1]) < best)


def test_best_diagonal_q_is_the_posterior_when_w_is_orthogonal(model, x):
    mu, logvar = model.best_diagonal_q(x)
    mu_post, logvar_post = model.posterior(x)
    assert torch.allclose(mu, mu_post, atol=1e-12)
    assert torch.allclose(logvar, logvar_post, atol=1e-12)
    assert torch.allclose(model.approximation_gap(x), torch.zeros(8, dtype=torch.float64))


def test_best_diagonal_q_underestimates_the_marginal_variances():
    model = _tilted()
    x = model.sample(2, torch.Generator().manual_seed(1))
    _, logvar = model.best_diagonal_q(x)
    _, cov = model.posterior_full(x)
    assert torch.all(logvar.exp() < torch.diagonal(cov))
    # they are the conditional variances: Var[z_1 | z_2] = var_1 (1 - rho^2)
    rho2 = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
    assert torch.allclose(logvar.exp()[0], torch.diagonal(cov) * (1 - rho2), atol=1e-12)


def test_approximation_gap_matches_its_definition_and_the_two_dimensional_closed_form():
    model = _tilted()
    x = model.sample(3, torch.Generator().manual_seed(1))
    mu, logvar = model.best_diagonal_q(x)
    gap = model.approximation_gap(x)
    assert gap.shape == (3,)
    assert torch.allclose(gap, model.log_marginal(x) - model.elbo(x, mu, logvar), atol=1e-10)
    assert torch.allclose(gap, model.kl_to_posterior(x, mu, logvar), atol=1e-10)
    # for J = 2 the gap is -1/2 log(1 - rho^2), rho the posterior correlation
    _, cov = model.posterior_full(x)
    rho2 = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
    assert torch.allclose(gap, -0.5 * torch.log1p(-rho2).expand(3), atol=1e-12)
    assert torch.all(gap > 0.1)


def test_plot_latent_densities_draws_one_contour_set_per_density(model, x):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    densities = [
        ("prior", model.log_prior, "0.6", "-"),
        ("posterior", lambda z: model.log_posterior(z, x[:1]), "C0", "--"),
    ]
    assert plot_latent_densities(ax, densities, num=41) is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prior", "posterior"]
    assert len(ax.collections) >= 2
    plt.close(fig)
    # a square around another centre
    fig, ax = plt.subplots()
    plot_latent_densities(ax, densities[:1], lim=0.5, num=21, center=(2.0, -1.0))
    assert ax.get_xlim() == pytest.approx((1.5, 2.5), abs=0.05)
    assert ax.get_ylim() == pytest.approx((-1.5, -0.5), abs=0.05)
    plt.close(fig)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(torch.ones(3, 1), torch.zeros(3), sigma=0.0)
    with pytest.raises(ValueError, match="W"):
        LinearGaussian(torch.ones(3, 1), torch.zeros(2), sigma=1.0)
