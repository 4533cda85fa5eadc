r"""Backpropagation by hand: activations with their derivatives, and an MLP's forward and backward
pass written as plain tensor algebra, without autograd (Chapter 2).

A network of :math:`L` layers maps a batch :math:`X \in \mathbb R^{N \times D}` through

.. math::
    h_0 = X, \qquad a_l = h_{l-1} W_l + b_l, \qquad h_l = f(a_l) \quad (l < L),
    \qquad y = a_L,

with :math:`W_l \in \mathbb R^{M_{l-1} \times M_l}` and :math:`b_l \in \mathbb R^{M_l}` (the last
layer is affine, as in :class:`vaelib.models.MLP`). Given :math:`\delta_L = \partial E / \partial y`,
the chain rule runs the layers backwards:

.. math::
    \frac{\partial E}{\partial W_l} = h_{l-1}^\top \delta_l, \qquad
    \frac{\partial E}{\partial b_l} = \sum_{n} \delta_{l,n}, \qquad
    \delta_{l-1} = \bigl(\delta_l W_l^\top\bigr) \odot f'(a_{l-1}).

Shapes: ``x`` ``(N, D)``, ``y`` ``(N, M_L)``, each :math:`\delta_l` ``(N, M_l)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "Activation",
    "ForwardCache",
    "backward",
    "forward",
    "layer_params",
    "mse",
    "mse_grad",
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "tanh",
    "tanh_derivative",
]

Tensor = torch.Tensor


def sigmoid(a: Tensor) -> Tensor:
    r"""The logistic sigmoid :math:`\sigma(a) = 1 / (1 + e^{-a})`, elementwise, in (0, 1)."""
    return 1.0 / (1.0 + torch.exp(-a))


def sigmoid_derivative(a: Tensor) -> Tensor:
    r""":math:`\sigma'(a) = \sigma(a)\,(1 - \sigma(a))`, elementwise."""
    s = sigmoid(a)
    return s * (1.0 - s)


def tanh(a: Tensor) -> Tensor:
    r"""The hyperbolic tangent :math:`\tanh(a) = (e^{a} - e^{-a}) / (e^{a} + e^{-a})`, in (-1, 1)."""
    return torch.tanh(a)


def tanh_derivative(a: Tensor) -> Tensor:
    r""":math:`\tanh'(a) = 1 - \tanh^2(a)`, elementwise."""
    return 1.0 - torch.tanh(a) ** 2


def relu(a: Tensor) -> Tensor:
    r"""The rectified linear unit :math:`\max(0, a)`, elementwise."""
    return torch.clamp(a, min=0.0)


def relu_derivative(a: Tensor) -> Tensor:
    r""":math:`[a > 0]`: 1 for positive inputs, else 0.

    At :math:`a = 0` the derivative does not exist; like PyTorch, we use 0 there.
    """
    return (a > 0).to(a.dtype)


class Activation(NamedTuple):
    """An activation function ``f`` and its derivative ``df``, both elementwise."""

    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]


ACTIVATION_FUNCTIONS: dict[str, Activation] = {
    "sigmoid": Activation(sigmoid, sigmoid_derivative),
    "tanh": Activation(tanh, tanh_derivative),
    "relu": Activation(relu, relu_derivative),
    "identity": Activation(lambda a: a, torch.ones_like),
}


def _activation(name: str) -> Activation:
    if name not in ACTIVATION_FUNCTIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_FUNCTIONS)}."
        )
    return ACTIVATION_FUNCTIONS[name]


def mse(y: Tensor, t: Tensor) -> Tensor:
    r"""Mean squared error :math:`E = \frac1N \sum_{n=1}^N (y(x_n) - t_n)^2`, a 0-d tensor.

    Shapes: ``y`` and ``t`` ``(N,)`` (or ``(N, 1)``; the mean runs over all entries).
    """
    if y.shape != t.shape:
        raise ValueError(f"y and t must have the same shape, got {tuple(y.shape)} and "
                         f"{tuple(t.shape)}; squeeze a trailing dimension of size 1.")
    return ((y - t) ** 2).mean()


def mse_grad(y: Tensor, t: Tensor) -> Tensor:
    r""":math:`\partial E / \partial y_n = \frac2N (y_n - t_n)` for :func:`mse`; shape of ``y``."""
    return 2.0 * (y - t) / y.numel()


def layer_params(mlp: nn.Module) -> list[tuple[Tensor, Tensor]]:
    r"""The weights of every ``nn.Linear`` in ``mlp``, in the book's convention.

    ``torch.nn.Linear`` computes :math:`x A^\top + b` and stores :math:`A` with shape
    ``(M, D)``; the book writes :math:`x W + b` with :math:`W = A^\top \in \mathbb R^{D\times M}`.

    Returns:
        ``[(W_1, b_1), ...]``: detached copies, ``W_l`` ``(M_{l-1}, M_l)``, ``b_l`` ``(M_l,)``.
    """
    params = [
        (m.weight.detach().T.clone(), m.bias.detach().clone())
        for m in mlp.modules()
        if isinstance(m, nn.Linear)
    ]
    if not params:
        raise ValueError(f"{type(mlp).__name__} has no nn.Linear layer.")
    return params


class ForwardCache(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`: the input ``h_{l-1}`` and the
    pre-activation ``a_l`` of every layer (lists of length ``L``)."""

    inputs: list[Tensor]
    pre_activations: list[Tensor]


def forward(
    params: Sequence[tuple[Tensor, Tensor]], x: Tensor, activation: str = "relu"
) -> tuple[Tensor, ForwardCache]:
    r"""Forward pass :math:`a_l = h_{l-1} W_l + b_l`, :math:`h_l = f(a_l)`, :math:`y = a_L`.

    Returns:
        ``y`` ``(N, M_L)`` and the :class:`ForwardCache`.
    """
    f = _activation(activation).f
    inputs, pre_activations = [], []
    h = x
    for i, (w, b) in enumerate(params):
        a = h @ w + b  # (N, M_l)
        inputs.append(h)
        pre_activations.append(a)
        h = f(a) if i < len(params) - 1 else a  # the last layer stays affine
    return h, ForwardCache(inputs, pre_activations)


def backward(
    params: Sequence[tuple[Tensor, Tensor]],
    cache: ForwardCache,
    dE_dy: Tensor,
    activation: str = "relu",
) -> list[tuple[Tensor, Tensor]]:
    r"""Backward pass: ``[(dE/dW_l, dE/db_l)]`` for every layer.

    From :math:`\delta_L = \partial E / \partial y` ``(N, M_L)``, last layer first:
    :math:`\partial E / \partial W_l = h_{l-1}^\top \delta_l`,
    :math:`\partial E / \partial b_l = \sum_n \delta_{l,n}`,
    :math:`\delta_{l-1} = (\delta_l W_l^\top) \odot f'(a_{l-1})`.
    """
    df = _activation(activation).df
    grads: list[tuple[Tensor, Tensor]] = []
    delta = dE_dy  # δ_L = ∂E/∂a_L, since y = a_L
    for i in reversed(range(len(params))):
        w, _ = params[i]
        grads.append((cache.inputs[i].T @ delta, delta.sum(0)))
        if i > 0:
            delta = (delta @ w.T) * df(cache.pre_activations[i - 1])  # δ_{l-1}
    return grads[::-1]
