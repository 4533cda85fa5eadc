"""vaelib.book.descent: gradient descent against the exact solution x_t = x0 (1 - 2 a eta)^t."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vaelib.book.descent import gradient_descent, quadratic_closed_form


def test_the_worked_example_5_4_3_2_2_56() -> None:
    xs = gradient_descent(lambda x: 2 * x, 5.0, lr=0.1, steps=3)
    assert xs.dtype == np.float64 and xs.shape == (4,)
    # x1 = 5 - 0.1 * 10, x2 = 4 - 0.1 * 8, x3 = 3.2 - 0.1 * 6.4: each is 0.8 times the last
    np.testing.assert_allclose(xs, [5.0, 4.0, 3.2, 2.56], rtol=1e-15)


@given(
    x0=st.floats(-100, 100),
    lr=st.floats(1e-3, 1.2),
    a=st.floats(0.1, 2.0),
    steps=st.integers(0, 40),
)
def test_iterates_equal_the_closed_form_on_any_quadratic(x0, lr, a, steps) -> None:
    xs = gradient_descent(lambda x: 2 * a * x, x0, lr=lr, steps=steps)
    exact = quadratic_closed_form(x0, lr=lr, steps=steps, a=a)
    assert xs.shape == exact.shape == (steps + 1,)
    # each step rounds once, so the relative error grows at most linearly in t
    np.testing.assert_allclose(xs, exact, rtol=1e-12 * (steps + 1), atol=1e-300)


@pytest.mark.parametrize(
    ("lr", "regime"),
    [(0.05, "monotone"), (0.5, "one step"), (0.8, "oscillating"), (1.0, "cycle"), (1.1, "diverge")],
)
def test_the_learning_rate_regimes_of_x_squared(lr, regime) -> None:
    xs = gradient_descent(lambda x: 2 * x, 5.0, lr=lr, steps=60)
    signs = np.sign(xs[1:6])
    if regime == "monotone":
        assert np.all(np.diff(xs) < 0) and np.all(xs > 0)
    elif regime == "one step":
        assert xs[1] == 0.0 and np.all(xs[1:] == 0.0)
    elif regime == "oscillating":
        assert np.all(signs[1:] == -signs[:-1]) and abs(xs[-1]) < 1e-10
    elif regime == "cycle":
        np.testing.assert_array_equal(np.abs(xs), 5.0)
        assert np.all(signs[1:] == -signs[:-1])
    else:
        assert np.all(np.diff(np.abs(xs)) > 0)  # |x_t| = 5 * 1.2^t grows without bound
        assert abs(xs[-1]) == pytest.approx(5.0 * 1.2**60, rel=1e-12)


def test_torch_input_gives_a_tensor_and_works_on_vectors() -> None:
    x0 = torch.tensor([5.0, -3.0, 0.5], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    xs = gradient_descent(lambda x: 2 * a * x, x0, lr=0.1, steps=10)
    assert isinstance(xs, torch.Tensor) and xs.shape == (11, 3) and not xs.requires_grad
    exact = x0.detach().numpy() * (1 - 2 * a.numpy() * 0.1) ** np.arange(11)[:, None]
    np.testing.assert_allclose(xs.numpy(), exact, rtol=1e-13)


def test_gradient_from_autograd_matches_the_analytic_one() -> None:
    def grad(x: torch.Tensor) -> torch.Tensor:  # f'(x) by autograd for f(x) = x^2
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad((x**2).sum(), x)
        return g

    xs = gradient_descent(grad, torch.tensor(5.0, dtype=torch.float64), lr=0.1, steps=20)
    np.testing.assert_allclose(xs.numpy(), quadratic_closed_form(5.0, 0.1, 20), rtol=1e-13)


def test_zero_steps_returns_the_start() -> None:
    np.testing.assert_array_equal(gradient_descent(lambda x: 2 * x, 5.0, 0.1, 0), [5.0])
    np.testing.assert_array_equal(quadratic_closed_form(5.0, 0.1, 0), [5.0])


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_learning_rates_are_rejected(lr) -> None:
    with pytest.raises(ValueError, match="lr"):
        gradient_descent(lambda x: 2 * x, 5.0, lr, 3)
    with pytest.raises(ValueError, match="lr"):
        quadratic_closed_form(5.0, lr, 3)


@pytest.mark.parametrize("steps", [-1, 2.5, True])
def test_bad_step_counts_are_rejected(steps) -> None:
    with pytest.raises(ValueError, match="steps"):
        gradient_descent(lambda x: 2 * x, 5.0, 0.1, steps)


def test_bad_curvature_is_rejected() -> None:
    with pytest.raises(ValueError, match="a must"):
        quadratic_closed_form(5.0, 0.1, 3, a=0.0)
