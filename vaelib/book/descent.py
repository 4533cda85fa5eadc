r"""Gradient descent, the worked example of the chapter *Gradient descent on x²*.

The rule moves a point against the slope of the function it minimises,

.. math::
    x_{t+1} = x_t - \eta\, f'(x_t),

with learning rate :math:`\eta > 0`. For the quadratic :math:`f(x) = a x^2`, :math:`f'(x) = 2ax`,
every step multiplies :math:`x` by the same factor, so the iterates have a closed form,

.. math::
    x_{t+1} = (1 - 2a\eta)\, x_t \quad\Longrightarrow\quad x_t = x_0 (1 - 2a\eta)^t,

which converges to the minimum :math:`x^\star = 0` exactly when :math:`|1 - 2a\eta| < 1`, i.e.
:math:`0 < \eta < 1/a`: monotonically for :math:`\eta < 1/(2a)`, in one step at
:math:`\eta = 1/(2a)`, oscillating for :math:`1/(2a) < \eta < 1/a`; it oscillates forever at
:math:`\eta = 1/a` and diverges above.

The same rule applied to a vector of network weights is :math:`w \leftarrow w - \eta\nabla_w C`,
what ``torch.optim.SGD`` does (without momentum or weight decay).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["gradient_descent", "quadratic_closed_form"]


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
            shape in and out.
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
        x = x0.detach().clone()
        iterates = [x]
        with torch.no_grad():
            for _ in range(steps):
                x = x - lr * grad(x)
                iterates.append(x)
        return torch.stack(iterates)
    x = np.asarray(x0, dtype=np.float64)
    iterates = [x]
    with np.errstate(over="ignore", invalid="ignore"):  # divergence may overflow
        for _ in range(steps):
            x = x - lr * np.asarray(grad(x), dtype=np.float64)
            iterates.append(x)
    return np.stack(iterates)


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
