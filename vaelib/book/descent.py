r"""Gradient descent, the worked example of the chapter *Gradient descent on x²*.

The rule moves a point against the slope of the function it minimises,

.. math::
    x_{t+1} = x_t - \eta\, f'(x_t),

with learning rate :math:`\eta > 0`. For the quadratic :math:`f(x) = a x^2`, :math:`f'(x) = 2ax`,
every step multiplies :math:`x` by the same factor, so the iterates have a closed form,

.. math::
    x_{t+1} = (1 - 2a\eta)\, x_t \quad\Longrightarrow\quad x_t = x_0 (1 - 2a\eta)^t,

which converges to the minimum :math:`x^\star = 0` exactly when :math:`|1 - 2a\eta| < 1`, i.e.
:math:`0 < \eta < 1/a = 2/f''`: monotonically for :math:`\eta < 1/(2a)`, in one step at
:math:`\eta = 1/(2a)`, oscillating for :math:`1/(2a) < \eta < 1/a`; it oscillates forever at
:math:`\eta = 1/a` and diverges above.

The same rule applied to the vector :math:`w` of all weights of a network with cost :math:`E(w)` is
:math:`w \leftarrow w - \eta\nabla_w E`, what ``torch.optim.SGD`` does (without momentum or weight
decay). Its stability limit is set by the largest eigenvalue of the Hessian of :math:`E`
(:func:`hessian`). :func:`plot_trajectory` and :func:`trajectory_figure` draw the iterates on
:math:`x^2`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "gradient_descent",
    "hessian",
    "plot_trajectory",
    "quadratic_closed_form",
    "trajectory_figure",
]


def _check_lr(lr: float) -> None:
    is_number = isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool)
    if not (is_number and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}.")


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}.")


def gradient_descent(
    grad: Callable[[Any], Any],
    x0: float | np.ndarray | torch.Tensor,
    lr: float,
    steps: int,
) -> np.ndarray | torch.Tensor:
    r"""The iterates of gradient descent, :math:`x_{t+1} = x_t - \eta\, f'(x_t)`.

    Args:
        grad: the derivative (gradient) :math:`f'`, mapping a point to the slope there, same
            shape in and out (it may be a noisy estimate of the slope).
        x0: the starting point :math:`x_0`: a number, a numpy array or a torch tensor of any
            shape (each entry follows its own copy of the rule when ``grad`` acts entrywise).
        lr: the learning rate :math:`\eta > 0`.
        steps: the number of updates :math:`T \ge 0`.

    Returns:
        :math:`x_0, x_1, \dots, x_T` stacked along a new first axis, shape ``(T + 1, *x0.shape)``:
        a torch tensor if ``x0`` is one (gradients are not tracked), else a float64 numpy array.

    Example:
        >>> gradient_descent(lambda x: 2 * x, 5.0, lr=0.1, steps=3)
        array([5.  , 4.  , 3.2 , 2.56])
    """
    _check_lr(lr)
    _check_steps(steps)
    if isinstance(x0, torch.Tensor):
        x, stack = x0.detach().clone(), torch.stack
    else:
        x, stack = np.asarray(x0, dtype=np.float64), np.stack
    iterates = [x]
    # no autograd graph; a diverging run may overflow to inf without a warning
    with torch.no_grad(), np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            x = x - lr * grad(x)  # the rule: one step against the slope
            iterates.append(x)
    return stack(iterates)


def quadratic_closed_form(
    x0: float | np.ndarray,
    lr: float,
    steps: int,
    a: float = 1.0,
) -> np.ndarray:
    r"""The exact iterates of gradient descent on :math:`f(x) = a x^2`: :math:`x_0 (1-2a\eta)^t`.

    Args:
        x0: the starting point (number or array).
        lr: the learning rate :math:`\eta > 0`.
        steps: the number of updates :math:`T \ge 0`.
        a: the curvature :math:`a > 0` (:math:`f''(x) = 2a`); ``a=1`` gives :math:`f(x) = x^2`.

    Returns:
        float64 array ``(T + 1, *x0.shape)`` with row ``t`` equal to :math:`x_0 (1 - 2a\eta)^t`.
    """
    _check_lr(lr)
    _check_steps(steps)
    if not (isinstance(a, (int, float, np.floating)) and np.isfinite(a) and a > 0):
        raise ValueError(f"a must be a positive finite number, got {a!r}.")
    x0 = np.asarray(x0, dtype=np.float64)
    t = np.arange(steps + 1, dtype=np.float64).reshape(-1, *([1] * x0.ndim))
    with np.errstate(over="ignore"):
        return x0 * (1.0 - 2.0 * a * lr) ** t


def hessian(cost: Callable[[], torch.Tensor], parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    r"""The Hessian :math:`\nabla^2 E` of a scalar cost with respect to all ``parameters``.

    The parameters are flattened and concatenated into one vector :math:`w` of length :math:`P`
    (in the order given, as ``torch.nn.Module.parameters()`` lists them); entry :math:`(i, j)` is
    :math:`\partial^2 E / \partial w_i \partial w_j`. Its eigenvalues are the curvatures of
    :math:`E` along its principal directions: gradient descent with learning rate :math:`\eta`
    is stable near a minimum only if :math:`\eta < 2/\lambda_{\max}`. Computed by differentiating
    each entry of the gradient again (:math:`P` backward passes), so meant for small networks.

    Args:
        cost: a function of no arguments that computes :math:`E` from the current parameters.
        parameters: the tensors to differentiate by (``requires_grad=True``).

    Returns:
        the symmetric ``(P, P)`` Hessian, in the parameters' dtype.
    """
    params = list(parameters)
    if not params or not all(p.requires_grad for p in params):
        raise ValueError("hessian needs at least one parameter, each with requires_grad=True.")
    with torch.enable_grad():
        value = cost()
        if value.dim() != 0:
            raise ValueError(f"cost() must return a scalar, got shape {tuple(value.shape)}.")
        grads = torch.autograd.grad(value, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        rows = []
        for g_i in flat:
            # allow_unused: an entry of the gradient may not depend on every parameter
            second = torch.autograd.grad(g_i, params, retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if s is None else s).reshape(-1)
                        for s, p in zip(second, params)
                    ]
                )
            )
    matrix = torch.stack(rows).detach()
    return 0.5 * (matrix + matrix.T)  # symmetric up to rounding; make it exactly so


def plot_trajectory(
    xs: np.ndarray,
    ax_parabola: Axes,
    ax_steps: Axes,
    closed_form: np.ndarray | None = None,
    color: str = "C0",
    shown: int = 12,
    xlim: float = 7.0,
) -> None:
    r"""Draw iterates :math:`x_0, \dots, x_T` of gradient descent on :math:`f(x) = x^2`.

    Args:
        xs: the iterates, shape ``(T + 1,)``.
        ax_parabola: axes for the first ``shown`` iterates on the parabola (the start as a black
            square).
        ax_steps: axes for :math:`x_t` against the step :math:`t`.
        closed_form: optional exact iterates ``(T + 1,)``, drawn dashed (cut where they leave
            the plotted range).
        color: the colour of the iterates.
        shown: how many iterates to draw on the parabola.
        xlim: both panels show :math:`|x| \le` ``xlim`` (and :math:`f` up to about ``xlim**2``).
    """
    xs = np.asarray(xs, dtype=np.float64)
    grid = np.linspace(-xlim, xlim, 200)
    ax_parabola.plot(grid, grid**2, color="0.7", lw=1)
    first = xs[:shown]
    ax_parabola.plot(first, first**2, "-o", color=color, ms=3, lw=1)
    ax_parabola.plot(xs[0], xs[0] ** 2, "ks", ms=5)
    ax_parabola.set_xlim(-xlim, xlim)
    ax_parabola.set_ylim(-0.04 * xlim**2, 1.02 * xlim**2)
    ax_parabola.set_xlabel("$x$")
    steps = np.arange(len(xs))
    if closed_form is not None:
        exact = np.array(closed_form, dtype=np.float64)
        exact[np.abs(exact) > 1.2 * xlim] = np.nan  # leave the plotted range without a line
        ax_steps.plot(steps, exact, "--", color="0.5", lw=1, label="$x_0(1-2\\eta)^t$")
    ax_steps.plot(steps, xs, "-o", color=color, ms=3, lw=0.6, label="iterates")
    ax_steps.axhline(0, color="0.8", lw=0.8)
    ax_steps.set_ylim(-xlim, xlim)
    ax_steps.set_xlabel("step $t$")


def trajectory_figure(eta: float, x0: float = 5.0, steps: int = 20) -> Figure:
    r"""Gradient descent on :math:`x^2` from ``x0`` with learning rate ``eta``, as one figure:
    the iterates on the parabola (left) and :math:`x_t` against :math:`t` with the closed form
    (right). The render function of the chapter's :math:`\eta` explorer."""
    xs = gradient_descent(lambda x: 2 * x, x0, lr=eta, steps=steps)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3))
    plot_trajectory(xs, left, right, closed_form=quadratic_closed_form(x0, eta, steps))
    left.set_ylabel("$f(x) = x^2$")
    right.set_ylabel("$x_t$")
    right.set_title(f"η = {eta:.2f},  factor 1 − 2η = {1 - 2 * eta:+.2f}", fontsize="medium")
    fig.tight_layout()
    return fig
