"""vaelib.book.estimators against exact gradients of closed-form expectations.

Worked example of the book (x plays the role of the encoder parameters phi):
mu(x) = x^2, sigma(x) = x^2 (variance x^4), f(z) = z^2, so
E[f(z)] = mu^2 + sigma^2 = 2 x^4 and d/dx E[f(z)] = 8 x^3. Per sample, with z = x^2 (1 + eps):

* pathwise: d/dx f(z) = 4 x^3 (1 + eps)^2,                    variance 96 x^6;
* score function: f(z) d/dx log q(z) = 2 x^3 (1 + eps)^2 (eps^2 + eps - 1), variance 1080 x^6
  (Gaussian moments E[eps^2k] = (2k - 1)!!); with a baseline b = 2 x^4, 744 x^6; with the best
  constant baseline b* = E[f s^2] / E[s^2] = 8 x^4, 312 x^6.

With phi = (mu, sigma) itself and f(z) = z^2, the per-sample variances are 4 sigma^2 and
4 mu^2 + 8 sigma^2 (pathwise, d/dmu and d/dsigma), mu^4/sigma^2 + 14 mu^2 + 15 sigma^2 and
2 mu^4/sigma^2 + 60 mu^2 + 74 sigma^2 (score function).
"""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vaelib.book.estimators import (  # noqa: E402
    FOUR_SE_FALSE_ALARM,
    dkw_bound,
    draw_computation_graphs,
    exact_moments,
    ks_distance,
    mu_sigma_direct,
    pathwise_gradient,
    plot_estimator_spread,
    render_reparameterization,
    score_function_gradient,
)


def worked_example(x):
    return x**2, x**2  # mu(x), sigma(x): the standard deviation, not the variance x^4


def square(z):
    return z**2


def _stats(samples):
    return float(samples.mean()), float(samples.std() / len(samples) ** 0.5)


@pytest.mark.parametrize("estimator", [pathwise_gradient, score_function_gradient])
@pytest.mark.parametrize("x", [0.5, 1.0, 1.5])
def test_estimators_are_unbiased_for_the_worked_example(estimator, x):
    g = torch.Generator().manual_seed(0)
    samples = estimator(square, torch.tensor(x), worked_example, 200_000, generator=g)
    assert samples.shape == (200_000,)
    mean, se = _stats(samples)
    assert abs(mean - 8 * x**3) < 5 * se  # 5 standard errors: fails by chance with p < 1e-6


def test_per_sample_values_match_the_hand_derived_formulas():
    x = 1.3
    eps = torch.randn(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pathwise = pathwise_gradient(square, torch.tensor(x), worked_example, eps=eps)
    score = score_function_gradient(square, torch.tensor(x), worked_example, eps=eps)
    assert torch.allclose(pathwise, 4 * x**3 * (1 + eps) ** 2)
    assert torch.allclose(score, 2 * x**3 * (1 + eps) ** 2 * (eps**2 + eps - 1))


def test_variances_match_the_exact_values_and_pathwise_is_smaller():
    x = 1.0
    g = torch.Generator().manual_seed(2)
    eps = torch.randn(400_000, generator=g, dtype=torch.float64)
    var_pathwise = float(pathwise_gradient(square, torch.tensor(x), worked_example, eps=eps).var())
    var_score = float(
        score_function_gradient(square, torch.tensor(x), worked_example, eps=eps).var()
    )
    # sample variances of heavy-tailed polynomials of eps: loose relative tolerances
    assert var_pathwise == pytest.approx(96 * x**6, rel=0.05)
    assert var_score == pytest.approx(1080 * x**6, rel=0.25)
    assert var_score > 5 * var_pathwise


def test_baseline_keeps_the_mean_and_can_reduce_the_variance():
    x = torch.tensor(1.0)
    eps = torch.randn(200_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plain = score_function_gradient(square, x, worked_example, eps=eps)
    centred = score_function_gradient(square, x, worked_example, eps=eps, baseline=2.0)  # E[f]
    mean, se = _stats(centred)
    assert abs(mean - 8.0) < 5 * se
    assert centred.var() < plain.var()


def test_vector_parameters_and_latents():
    """phi = (mu, sigma) directly, z in 3 dimensions: d/dmu E[sum z^2] = 2 mu, d/dsigma = 2 sigma."""
    phi = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.5, 1.5]], dtype=torch.float64)  # rows mu, sigma

    def mu_sigma(t):
        return t[:, 0], t[:, 1]  # (L, 3) each

    def f(z):
        return (z**2).sum(-1)

    exact = 2 * phi
    g = torch.Generator().manual_seed(4)
    for estimator in (pathwise_gradient, score_function_gradient):
        samples = estimator(f, phi, mu_sigma, 200_000, generator=g)
        assert samples.shape == (200_000, 2, 3)
        se = samples.std(0) / len(samples) ** 0.5
        assert ((samples.mean(0) - exact).abs() < 5 * se).all()


def test_phi_receives_no_gradient_and_is_not_modified():
    x = torch.tensor(1.5, requires_grad=True)
    pathwise_gradient(square, x, worked_example, 10)
    score_function_gradient(square, x, worked_example, 10)
    assert x.grad is None and x.item() == 1.5


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_samples"):
        pathwise_gradient(square, torch.tensor(1.0), worked_example, 0)
    with pytest.raises(ValueError, match="one value per sample"):
        pathwise_gradient(lambda z: z.sum(), torch.tensor(1.0), worked_example, 5)
    with pytest.raises(ValueError, match="mu_sigma"):
        score_function_gradient(square, torch.tensor(1.0), lambda x: (x, x[:1]), 5)
    with pytest.raises(ValueError, match="sigma > 0"):  # a log-variance passed as sigma
        score_function_gradient(square, torch.tensor(1.0), lambda x: (x, -x), 5)
    with pytest.raises(ValueError, match="num_nodes"):
        exact_moments(pathwise_gradient, square, torch.tensor(1.0), worked_example, num_nodes=0)


# --- exact moments by quadrature ---------------------------------------------------------------


@pytest.mark.parametrize("x", [0.5, 1.5, 3.0])
def test_exact_moments_of_the_worked_example(x):
    phi = torch.tensor(x, dtype=torch.float64)
    cases = [(pathwise_gradient, {}, 96), (score_function_gradient, {}, 1080)]
    cases += [(score_function_gradient, {"baseline": 2 * x**4}, 744)]
    cases += [(score_function_gradient, {"baseline": 8 * x**4}, 312)]
    for estimator, kwargs, constant in cases:
        m = exact_moments(estimator, square, phi, worked_example, **kwargs)
        assert m.mean.shape == ()
        assert m.mean.item() == pytest.approx(8 * x**3, rel=1e-10)
        assert m.var.item() == pytest.approx(constant * x**6, rel=1e-10)


def test_exact_moments_third_and_fourth_against_independent_quadrature():
    """The pathwise estimate 4 x^3 (1 + eps)^2, centred: 4 x^3 (eps^2 + 2 eps - 1)."""
    x = 1.3
    m = exact_moments(
        pathwise_gradient, square, torch.tensor(x, dtype=torch.float64), worked_example
    )
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / math.sqrt(2 * math.pi)
    centred = 4 * x**3 * (nodes**2 + 2 * nodes - 1)
    assert m.m3.item() == pytest.approx(weights @ centred**3, rel=1e-10)
    assert m.m4.item() == pytest.approx(weights @ centred**4, rel=1e-10)


def test_best_constant_baseline_minimises_the_exact_variance():
    x = torch.tensor(1.5, dtype=torch.float64)

    def var(b):
        m = exact_moments(score_function_gradient, square, x, worked_example, baseline=b)
        return m.var.item()

    # the variance is a parabola in b, symmetric about its vertex: equal values at b* (1 -+ 1%)
    # put the vertex exactly at b*; a b* off by 1e-4 (relative) changes them by about 1e-6
    best = 8 * 1.5**4
    lo, hi = var(0.99 * best), var(1.01 * best)
    assert lo == pytest.approx(hi, rel=1e-9) and lo > var(best)
    off = 8.0008 * 1.5**4
    assert var(0.99 * off) != pytest.approx(var(1.01 * off), rel=1e-9)


@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (2.0, 0.25), (-1.5, 2.0)])
def test_exact_moments_for_phi_equal_to_mu_and_sigma(mu, sigma):
    phi = torch.tensor([mu, sigma], dtype=torch.float64)
    pathwise = exact_moments(pathwise_gradient, square, phi, mu_sigma_direct)
    score = exact_moments(score_function_gradient, square, phi, mu_sigma_direct)
    expected_mean = torch.tensor([2 * mu, 2 * sigma], dtype=torch.float64)
    assert torch.allclose(pathwise.mean, expected_mean) and torch.allclose(
        score.mean, expected_mean
    )
    assert torch.allclose(
        pathwise.var, torch.tensor([4 * sigma**2, 4 * mu**2 + 8 * sigma**2], dtype=torch.float64)
    )
    score_var = [
        mu**4 / sigma**2 + 14 * mu**2 + 15 * sigma**2,
        2 * mu**4 / sigma**2 + 60 * mu**2 + 74 * sigma**2,
    ]
    assert torch.allclose(score.var, torch.tensor(score_var, dtype=torch.float64))


def test_exact_moments_of_a_smooth_non_polynomial_function_with_more_nodes():
    """f(z) = cos(w z): d/dmu E[f] = -w sin(w mu) exp(-w^2 sigma^2 / 2)."""
    w, mu, sigma = 2.0, 0.5, 1.0
    phi = torch.tensor([mu, sigma], dtype=torch.float64)
    m = exact_moments(pathwise_gradient, lambda z: torch.cos(w * z), phi, mu_sigma_direct, 60)
    exact = -w * math.sin(w * mu) * math.exp(-(w**2) * sigma**2 / 2)
    assert m.mean[0].item() == pytest.approx(exact, rel=1e-10)


# --- the shape of a distribution ----------------------------------------------------------------


def uniform_cdf(z):
    return z.clamp(0, 1)


def test_ks_distance_small_cases():
    assert ks_distance(torch.tensor([0.5]), uniform_cdf) == pytest.approx(0.5)
    assert ks_distance(torch.tensor([0.75, 0.25]), uniform_cdf) == pytest.approx(0.25)
    # all samples at 0.9: the empirical function is 0 up to 0.9, where the gap is 0.9
    assert ks_distance(torch.full((10,), 0.9), uniform_cdf) == pytest.approx(0.9)


def test_ks_distance_agrees_with_scipy():
    from scipy import stats

    samples = torch.randn(500, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    normal = torch.distributions.Normal(0.1, 1.2)
    expected = stats.kstest(samples.numpy(), stats.norm(0.1, 1.2).cdf).statistic
    assert ks_distance(samples, normal.cdf) == pytest.approx(expected, abs=1e-8)
    assert ks_distance(samples.float().reshape(20, 25), normal.cdf) == pytest.approx(
        expected, abs=1e-6
    )


def test_dkw_bound():
    t = dkw_bound(200_000)
    assert 2 * math.exp(-2 * 200_000 * t**2) == pytest.approx(FOUR_SE_FALSE_ALARM)
    assert FOUR_SE_FALSE_ALARM == pytest.approx(6.334e-5, rel=1e-3)
    assert dkw_bound(100, 0.05) == pytest.approx(math.sqrt(math.log(40) / 200))
    with pytest.raises(ValueError, match="num_samples"):
        dkw_bound(0)
    with pytest.raises(ValueError, match="false_alarm"):
        dkw_bound(10, 1.5)
    with pytest.raises(ValueError, match="one value each"):
        ks_distance(torch.ones(3), lambda z: z[:1])


def test_the_shape_test_passes_gaussian_noise_and_fails_uniform_noise_of_the_same_moments():
    g = torch.Generator().manual_seed(8)
    num = 200_000
    gaussian = torch.randn(num, generator=g, dtype=torch.float64)
    uniform = (torch.rand(num, generator=g, dtype=torch.float64) - 0.5) * math.sqrt(12)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf
    assert ks_distance(gaussian, cdf) < dkw_bound(num)
    assert ks_distance(uniform, cdf) > 5 * dkw_bound(num)  # about 0.057 against 0.0051


def test_mu_sigma_direct():
    mu, sigma = mu_sigma_direct(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert mu.tolist() == [1.0, 3.0] and sigma.tolist() == [2.0, 4.0]


# --- figures -------------------------------------------------------------------------------------


def test_draw_computation_graphs():
    fig = draw_computation_graphs()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)


def test_plot_estimator_spread_draws_every_estimate_and_one_line_per_estimator():
    g = torch.Generator().manual_seed(5)
    estimates = {
        "pathwise": 27 + 3 * torch.randn(500, generator=g, dtype=torch.float64),
        "score function": 27 + 11 * torch.randn(500, generator=g, dtype=torch.float64),
    }
    estimates["score function"][0] = 500.0  # an outlier must still fall in a bin
    exact_var = {"pathwise": 1093.5, "score function": 12301.9, "score function, b = 2x⁴": 8474.6}
    fig = plot_estimator_spread(estimates, 27.0, exact_var, 100, exact_label="exact $8x^3$")
    ax_hist, ax_se = fig.axes
    counted = sum(sum(p.get_height() for p in c) for c in ax_hist.containers)
    assert counted == 1000
    lines = [line for line in ax_se.get_lines() if len(line.get_xdata()) > 1]
    assert len(lines) == len(exact_var)
    assert lines[2].get_linestyle() == ":"
    assert np.allclose(lines[0].get_ydata()[0], math.sqrt(1093.5))  # L = 1 first
    assert "exact $8x^3$ = 27" in [t.get_text() for t in ax_hist.get_legend().get_texts()]
    plt.close(fig)


def test_render_reparameterization_shows_both_estimators_and_the_exact_values():
    eps = torch.randn(300, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    fig = render_reparameterization(1.0, 0.5, eps)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["exact", "pathwise", "score function"]
    plt.close(fig)
    fig = render_reparameterization(0.0, 1.0, eps, f=lambda z: z, exact=(1.0, 0.0), f_label="z")
    assert "z" in fig.axes[1].get_title()
    plt.close(fig)
