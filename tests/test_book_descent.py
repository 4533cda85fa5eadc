"""vaelib.book.descent: gradient descent against the exact solution x_t = x0 (1 - 2 a eta)^t,
the Hessian of a cost, and the trajectory plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vaelib.book.descent import (  # noqa: E402
    gradient_descent,
    hessian,
    plot_trajectory,
    quadratic_closed_form,
    trajectory_figure,
)

UNIT = 2.0**-53  # the largest relative rounding error of one float64 operation


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
    r = 1 - 2 * a * lr
    assume(abs(r) > 1e-6)  # r = 0 reaches 0 in one step; near it 1 - 2 a lr cancels
    xs = gradient_descent(lambda x: 2 * a * x, x0, lr=lr, steps=steps)
    exact = quadratic_closed_form(x0, lr=lr, steps=steps, a=a)
    assert xs.shape == exact.shape == (steps + 1,)
    # A step computes x - lr * (2 a x) with a few roundings of at most UNIT each, relative to
    # the numbers involved; relative to the result r x they are amplified by at most
    # (1 + |1 - r|) / |r| (cancellation when r is small). The closed form rounds its factor r
    # the same way. So the relative error grows at most linearly in t, by a few such units.
    per_step = 8 * UNIT * (1 + abs(1 - r)) / abs(r)
    np.testing.assert_allclose(xs, exact, rtol=(steps + 1) * per_step, atol=1e-300)


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


def test_numpy_and_torch_iterates_agree() -> None:
    x0 = np.array([5.0, -3.0, 0.5])
    on_numpy = gradient_descent(lambda x: 2 * x, x0, lr=0.3, steps=8)
    on_torch = gradient_descent(lambda x: 2 * x, torch.from_numpy(x0), lr=0.3, steps=8)
    assert isinstance(on_numpy, np.ndarray) and on_numpy.dtype == np.float64
    np.testing.assert_array_equal(on_numpy, on_torch.numpy())


def test_a_noisy_gradient_is_followed_as_given() -> None:
    noise = iter([1.0, -2.0, 0.5])
    xs = gradient_descent(lambda x: 2 * x + next(noise), 5.0, lr=0.1, steps=3)
    # x1 = 5 - 0.1 (10 + 1), x2 = 3.9 - 0.1 (7.8 - 2), x3 = 3.32 - 0.1 (6.64 + 0.5)
    np.testing.assert_allclose(xs, [5.0, 3.9, 3.32, 2.606], rtol=1e-15)


def test_hessian_of_a_quadratic_is_its_matrix() -> None:
    gen = torch.Generator().manual_seed(0)
    b = torch.randn(5, 5, dtype=torch.float64, generator=gen)
    a = b @ b.T + torch.eye(5, dtype=torch.float64)
    w = torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_(True)
    v = torch.randn(3, dtype=torch.float64, generator=gen).requires_grad_(True)

    def cost() -> torch.Tensor:  # E = 1/2 u^T A u with u = (w, v)
        u = torch.cat([w, v])
        return 0.5 * u @ a @ u

    h = hessian(cost, [w, v])
    assert h.shape == (5, 5) and not h.requires_grad
    torch.testing.assert_close(h, a)


def test_hessian_of_a_network_matches_autograd_functional() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    net = net.double()
    x = torch.linspace(-2, 2, 9, dtype=torch.float64).unsqueeze(1)
    t = torch.sin(x)
    h = hessian(lambda: ((net(x) - t) ** 2).mean(), net.parameters())
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def cost_of(vector: torch.Tensor) -> torch.Tensor:
        pieces, start = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            pieces[name] = vector[start : start + size].reshape(shape)
            start += size
        y = torch.func.functional_call(net, pieces, (x,))
        return ((y - t) ** 2).mean()

    expected = torch.autograd.functional.hessian(cost_of, flat)
    torch.testing.assert_close(h, expected)
    torch.testing.assert_close(h, h.T, rtol=0, atol=0)


def test_hessian_handles_parameters_the_gradient_does_not_reach_twice() -> None:
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    h = hessian(lambda: (w**2).sum() + b, [w, b])  # linear in b: its row and column are 0
    torch.testing.assert_close(h, torch.diag(torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)))


def test_hessian_rejects_bad_input() -> None:
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        hessian(lambda: w**2, [w])
    with pytest.raises(ValueError, match="requires_grad"):
        hessian(lambda: (w**2).sum(), [torch.ones(2)])


def test_plot_trajectory_draws_the_iterates_and_the_closed_form() -> None:
    xs = gradient_descent(lambda x: 2 * x, 5.0, lr=1.05, steps=25)  # divergent
    fig, (top, bottom) = plt.subplots(1, 2)
    plot_trajectory(xs, top, bottom, closed_form=quadratic_closed_form(5.0, 1.05, 25), shown=12)
    parabola, path, start = top.get_lines()
    np.testing.assert_allclose(parabola.get_ydata(), parabola.get_xdata() ** 2)
    np.testing.assert_array_equal(path.get_xdata(), xs[:12])
    np.testing.assert_array_equal(start.get_xdata(), [5.0])
    exact, iterates = bottom.get_lines()[:2]
    np.testing.assert_array_equal(iterates.get_ydata(), xs)
    cut = np.isnan(exact.get_ydata())
    assert cut.any() and np.all(np.abs(xs[cut]) > 7)  # the closed form stops off the plot
    assert bottom.get_ylim() == (-7.0, 7.0)
    plt.close(fig)


def test_trajectory_figure_is_a_figure_with_two_panels() -> None:
    fig = trajectory_figure(0.85)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "0.85" in fig.axes[1].get_title()
    plt.close(fig)
