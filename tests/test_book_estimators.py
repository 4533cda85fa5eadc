"""vaelib.book.estimators against exact gradients of closed-form expectations.

Worked example of the book: mu(x) = x^2, sigma(x) = x^2 (variance x^4), f(z) = z^2, so
E[f(z)] = mu^2 + sigma^2 = 2 x^4 and d/dx E[f(z)] = 8 x^3. Per sample, with z = x^2 (1 + eps):

* pathwise: d/dx f(z) = 4 x^3 (1 + eps)^2,                    variance 96 x^6;
* score function: f(z) d/dx log q(z) = 2 x^3 (1 + eps)^2 (eps^2 + eps - 1), variance 1080 x^6
  (Gaussian moments E[eps^2k] = (2k - 1)!!).
"""

import pytest
import torch

from vaelib.book.estimators import pathwise_gradient, score_function_gradient


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
    """theta = (mu, sigma) directly, z in 3 dimensions: d/dmu E[sum z^2] = 2 mu, d/dsigma = 2 sigma."""
    theta = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.5, 1.5]], dtype=torch.float64)  # rows mu, sigma

    def mu_sigma(t):
        return t[:, 0], t[:, 1]  # (K, 3) each

    def f(z):
        return (z**2).sum(-1)

    exact = 2 * theta
    g = torch.Generator().manual_seed(4)
    for estimator in (pathwise_gradient, score_function_gradient):
        samples = estimator(f, theta, mu_sigma, 200_000, generator=g)
        assert samples.shape == (200_000, 2, 3)
        se = samples.std(0) / len(samples) ** 0.5
        assert ((samples.mean(0) - exact).abs() < 5 * se).all()


def test_theta_receives_no_gradient_and_is_not_modified():
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
