"""vaelib.book.divergences against closed-form KLs, torch.distributions and known minimisers."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from vaelib.book.divergences import (
    fit_gaussian,
    gaussian_kl,
    kl_on_grid,
    mixture_log_prob,
    normal_log_prob,
)
from vaelib.distributions import kl_normal_normal

GRID = torch.linspace(-30.0, 30.0, 6001, dtype=torch.float64)


def test_normal_log_prob_matches_torch_distributions():
    z = torch.linspace(-5, 5, 11, dtype=torch.float64)
    expected = Normal(torch.tensor(0.7), torch.tensor(1.3)).log_prob(z)
    assert torch.allclose(normal_log_prob(z, 0.7, 1.3), expected.double(), atol=1e-6)


def test_mixture_log_prob_is_the_log_of_the_weighted_sum():
    z = torch.linspace(-4, 4, 9, dtype=torch.float64)
    weights, means, sigmas = [0.3, 0.7], [-1.0, 2.0], [0.5, 1.5]
    expected = torch.log(
        sum(
            w * Normal(torch.tensor(m), torch.tensor(s)).log_prob(z).exp()
            for w, m, s in zip(weights, means, sigmas)
        )
    )
    got = mixture_log_prob(z, torch.tensor(weights), torch.tensor(means), torch.tensor(sigmas))
    assert torch.allclose(got, expected, atol=1e-12)
    # a density: it integrates to 1 on a grid that covers its mass
    dense = mixture_log_prob(GRID, torch.tensor(weights), torch.tensor(means), torch.tensor(sigmas))
    assert float(torch.trapezoid(dense.exp(), GRID)) == pytest.approx(1.0, abs=1e-10)


def test_mixture_rejects_bad_weights():
    z = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="sum to 1"):
        mixture_log_prob(z, torch.tensor([0.5, 0.6]), torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="one entry per component"):
        mixture_log_prob(z, torch.tensor([1.0]), torch.zeros(2), torch.ones(2))


params = st.tuples(st.floats(-3, 3), st.floats(0.3, 3), st.floats(-3, 3), st.floats(0.3, 3))


@settings(max_examples=100, deadline=None)
@given(params)
def test_kl_on_grid_matches_the_closed_form_gaussian_kl(p):
    mu_p, s_p, mu_q, s_q = p
    log_p = normal_log_prob(GRID, mu_p, s_p)
    log_q = normal_log_prob(GRID, mu_q, s_q)
    mu_p, logvar_p, mu_q, logvar_q = (
        torch.tensor([v], dtype=torch.float64)
        for v in (mu_p, 2 * math.log(s_p), mu_q, 2 * math.log(s_q))
    )
    expected = kl_normal_normal(mu_p, logvar_p, mu_q, logvar_q)  # KL(p || q), closed form
    # the trapezoidal rule is spectrally accurate for Gaussians on a grid this fine
    got = float(kl_on_grid(log_p, log_q, GRID))
    assert got == pytest.approx(float(expected), rel=1e-9, abs=1e-9)


def test_kl_on_grid_is_zero_for_equal_densities_and_asymmetric():
    log_p = normal_log_prob(GRID, 0.0, 1.0)
    log_q = normal_log_prob(GRID, 0.0, 2.0)
    assert float(kl_on_grid(log_p, log_p, GRID)) == pytest.approx(0.0, abs=1e-12)
    forward, reverse = float(kl_on_grid(log_p, log_q, GRID)), float(kl_on_grid(log_q, log_p, GRID))
    assert forward == pytest.approx(math.log(2) + 1 / 8 - 1 / 2, abs=1e-9)
    assert reverse == pytest.approx(-math.log(2) + 2 - 1 / 2, abs=1e-9)


def test_kl_on_grid_broadcasts_over_candidates():
    log_p = normal_log_prob(GRID, 0.0, 1.0)  # (N,)
    sigmas = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    log_q = normal_log_prob(GRID, 0.0, sigmas[:, None])  # (3, N)
    batched = kl_on_grid(log_p, log_q, GRID)
    assert batched.shape == (3,)
    one_by_one = torch.stack([kl_on_grid(log_p, row, GRID) for row in log_q])
    assert torch.allclose(batched, one_by_one, atol=1e-14)


def test_kl_on_grid_ignores_points_where_p_underflows():
    log_p = torch.full_like(GRID, -math.inf)
    log_p[3000] = 0.0  # p is zero except at one point: the integrand there is finite
    value = kl_on_grid(log_p, normal_log_prob(GRID, 0.0, 1.0), GRID)
    assert torch.isfinite(value)


def test_kl_on_grid_validates_the_grid():
    uneven = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="evenly spaced"):
        kl_on_grid(torch.zeros(3), torch.zeros(3), uneven)
    with pytest.raises(ValueError, match="evaluated on the grid"):
        kl_on_grid(torch.zeros(4), torch.zeros(3), torch.linspace(0, 1, 3))


def _bimodal(z):
    return mixture_log_prob(
        z, torch.tensor([0.5, 0.5]), torch.tensor([-2.0, 2.0]), torch.tensor([0.6, 0.6])
    )


def test_forward_fit_matches_the_moments_of_the_target():
    """Over Gaussians, KL(p || q) is minimised by the q with the mean and variance of p."""
    weights, means, sigmas = [0.3, 0.7], [-2.0, 1.5], [0.5, 1.0]

    def log_p(z):
        return mixture_log_prob(z, torch.tensor(weights), torch.tensor(means), torch.tensor(sigmas))

    mean = sum(w * m for w, m in zip(weights, means))
    second = sum(w * (s**2 + m**2) for w, m, s in zip(weights, means, sigmas))
    fit = fit_gaussian(log_p, GRID, "forward", init=(0.0, 1.0))
    assert fit.mu == pytest.approx(mean, abs=1e-5)
    assert fit.sigma == pytest.approx(math.sqrt(second - mean**2), abs=1e-5)


def test_reverse_fit_recovers_a_gaussian_target():
    fit = fit_gaussian(lambda z: normal_log_prob(z, 1.2, 0.7), GRID, "reverse", init=(0.0, 2.0))
    assert (fit.mu, fit.sigma) == pytest.approx((1.2, 0.7), abs=1e-5)
    assert fit.kl == pytest.approx(0.0, abs=1e-9)


def test_reverse_fit_seeks_the_mode_nearest_its_start():
    right = fit_gaussian(_bimodal, GRID, "reverse", init=(1.0, 1.0))
    left = fit_gaussian(_bimodal, GRID, "reverse", init=(-1.0, 1.0))
    assert right.mu == pytest.approx(2.0, abs=0.01) and left.mu == pytest.approx(-2.0, abs=0.01)
    assert right.sigma == pytest.approx(0.6, abs=0.01)
    # q sits on one of two equal modes: KL(q || p) is close to log 2
    assert right.kl == pytest.approx(math.log(2), abs=0.01)
    # a broad q between the modes is another local minimum, a worse one, reached from an
    # off-centre start (so symmetry alone does not hold mu at 0)
    middle = fit_gaussian(_bimodal, GRID, "reverse", init=(0.3, 2.5))
    assert middle.mu == pytest.approx(0.0, abs=1e-4) and middle.kl > right.kl + 0.1
    target = _bimodal(GRID)
    hessian = torch.autograd.functional.hessian(
        lambda t: gaussian_kl(target, GRID, t[0], t[1].exp(), "reverse"),
        torch.tensor([middle.mu, math.log(middle.sigma)], dtype=torch.float64),
    )
    assert torch.linalg.eigvalsh(hessian).min() > 0.1


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_gaussian_kl_matches_the_closed_form_in_both_directions(direction):
    log_p = normal_log_prob(GRID, 0.5, 1.5)
    mu = torch.tensor([[-1.0, 0.0, 2.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    got = gaussian_kl(log_p, GRID, mu, sigma, direction)
    assert got.shape == (2, 3)
    mu_p = torch.tensor([0.5], dtype=torch.float64)
    logvar_p = torch.tensor([2 * math.log(1.5)], dtype=torch.float64)
    for i, s in enumerate(sigma[:, 0].tolist()):
        for j, m in enumerate(mu[0].tolist()):
            q = (
                torch.tensor([m], dtype=torch.float64),
                torch.tensor([2 * math.log(s)], dtype=torch.float64),
            )
            pair = (q, (mu_p, logvar_p)) if direction == "reverse" else ((mu_p, logvar_p), q)
            expected = kl_normal_normal(*pair[0], *pair[1])
            assert float(got[i, j]) == pytest.approx(float(expected), abs=1e-9)


def test_gaussian_kl_rejects_a_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        gaussian_kl(_bimodal(GRID), GRID, 0.0, 1.0, "sideways")


def test_forward_fit_has_one_minimum():
    """From far-apart starts the forward fit reaches the same moment-matching Gaussian."""
    fits = [
        fit_gaussian(_bimodal, GRID, "forward", init=init) for init in [(-3.0, 0.5), (2.0, 3.0)]
    ]
    assert fits[0].mu == pytest.approx(fits[1].mu, abs=1e-5)
    assert fits[0].sigma == pytest.approx(fits[1].sigma, abs=1e-5)


def test_fit_gaussian_rejects_bad_arguments():
    with pytest.raises(ValueError, match="direction"):
        fit_gaussian(_bimodal, GRID, "sideways")
    with pytest.raises(ValueError, match="sigma"):
        fit_gaussian(_bimodal, GRID, "forward", init=(0.0, 0.0))
