r"""Backpropagation by hand: activations with their derivatives, and an MLP's forward and backward
pass written as plain tensor algebra, without autograd (Chapter 2).

A network of :math:`Q` layers maps a batch :math:`X \in \mathbb R^{B \times D}` of :math:`B`
examples (one example per row; in training a minibatch, :math:`B = M`) through

.. math::
    H_0 = X, \qquad A_q = H_{q-1} W_q + b_q, \qquad H_q = f(A_q) \quad (q < Q),
    \qquad Y = A_Q,

with :math:`W_q \in \mathbb R^{U_{q-1} \times U_q}` (:math:`U_q` units in layer :math:`q`,
:math:`U_0 = D`) and :math:`b_q \in \mathbb R^{U_q}` added to every row (the last layer is
affine, as in :class:`vaelib.models.MLP`). Given :math:`\Delta_Q = \partial E / \partial Y`,
the chain rule runs the layers backwards:

.. math::
    \frac{\partial E}{\partial W_q} = H_{q-1}^\top \Delta_q, \qquad
    \frac{\partial E}{\partial b_q} = \sum_{m} \Delta_{q,m}, \qquad
    \Delta_{q-1} = \bigl(\Delta_q W_q^\top\bigr) \odot f'(A_{q-1}).

Shapes: ``x`` ``(B, D)``, ``y`` ``(B, U_Q)``, each :math:`\Delta_q` ``(B, U_q)``. In code the
layers are numbered from 0: ``params[i]`` is layer :math:`q = i + 1`.

:func:`numerical_gradients` computes the same derivatives without the chain rule, by central
finite differences, at the cost of two forward passes per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from vaelib._checks import check_positive_int
from vaelib.models import ACTIVATIONS

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "Activation",
    "ForwardCache",
    "Perceptron",
    "backward",
    "forward",
    "layer_params",
    "least_squares",
    "mse",
    "mse_grad",
    "numerical_gradients",
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "tanh",
    "tanh_derivative",
]

Tensor = torch.Tensor


def sigmoid(a: Tensor) -> Tensor:
    r"""The logistic sigmoid :math:`\operatorname{sigm}(a) = 1 / (1 + e^{-a})`, elementwise, in
    (0, 1)."""
    return 1.0 / (1.0 + torch.exp(-a))


def sigmoid_derivative(a: Tensor) -> Tensor:
    r""":math:`\operatorname{sigm}'(a) = \operatorname{sigm}(a)\,(1 - \operatorname{sigm}(a))`,
    elementwise."""
    s = sigmoid(a)
    return s * (1.0 - s)


def tanh(a: Tensor) -> Tensor:
    r"""The hyperbolic tangent :math:`\tanh(a) = (e^{a} - e^{-a}) / (e^{a} + e^{-a})`, in (-1, 1)."""
    return torch.tanh(a)


def tanh_derivative(a: Tensor) -> Tensor:
    r""":math:`\tanh'(a) = 1 - \tanh^2(a)`, elementwise."""
    return 1.0 - torch.tanh(a) ** 2


def relu(a: Tensor) -> Tensor:
    r"""The rectified linear unit :math:`\max(0, a)`, elementwise (``torch.relu``, whose autograd
    derivative at 0 is 0)."""
    return torch.relu(a)


def relu_derivative(a: Tensor) -> Tensor:
    r""":math:`[a > 0]`: 1 for positive inputs, else 0.

    At :math:`a = 0` the derivative does not exist; like ``torch.relu`` and ``nn.ReLU``, we use
    0 there.
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
    ``(U, D)``; the book writes :math:`x W + b` with :math:`W = A^\top \in \mathbb R^{D\times U}`.

    Returns:
        ``[(W_1, b_1), ...]``: detached copies, ``W_q`` ``(U_{q-1}, U_q)``, ``b_q`` ``(U_q,)``.
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
    """What :func:`forward` keeps for :func:`backward`: the input ``H_{q-1}`` and the
    pre-activation ``A_q`` of every layer (lists of length ``Q``)."""

    inputs: list[Tensor]
    pre_activations: list[Tensor]


def forward(
    params: Sequence[tuple[Tensor, Tensor]], x: Tensor, activation: str = "relu"
) -> tuple[Tensor, ForwardCache]:
    r"""Forward pass :math:`A_q = H_{q-1} W_q + b_q`, :math:`H_q = f(A_q)`, :math:`Y = A_Q`.

    Returns:
        ``y`` ``(B, U_Q)`` and the :class:`ForwardCache`.
    """
    f = _activation(activation).f
    inputs, pre_activations = [], []
    h = x  # H_0 = X
    for i, (W, b) in enumerate(params):  # Python index i is layer q = i + 1
        a = h @ W + b  # A_q = H_{q-1} W_q + b_q, (B, U_q)
        inputs.append(h)
        pre_activations.append(a)
        h = f(a) if i < len(params) - 1 else a  # H_q = f(A_q); the last layer stays affine
    return h, ForwardCache(inputs, pre_activations)


def backward(
    params: Sequence[tuple[Tensor, Tensor]],
    cache: ForwardCache,
    dE_dy: Tensor,
    activation: str = "relu",
) -> list[tuple[Tensor, Tensor]]:
    r"""Backward pass: ``[(dE/dW_q, dE/db_q)]`` for every layer, first layer first.

    Rows are examples: :math:`H_{q-1}` ``(B, U_{q-1})`` holds the inputs of layer :math:`q`,
    :math:`A_q` ``(B, U_q)`` its pre-activations (both from the ``cache``), and row :math:`m`
    of :math:`\Delta_q` is :math:`\partial E / \partial a_q` for example :math:`m`. From
    :math:`\Delta_Q = \partial E / \partial Y` (``dE_dy``, ``(B, U_Q)``), last layer first:
    :math:`\partial E / \partial W_q = H_{q-1}^\top \Delta_q`,
    :math:`\partial E / \partial b_q = \sum_m \Delta_{q,m}` (the rows summed),
    :math:`\Delta_{q-1} = (\Delta_q W_q^\top) \odot f'(A_{q-1})`.
    """
    df = _activation(activation).df
    grads: list[tuple[Tensor, Tensor]] = []
    delta = dE_dy  # Δ_Q = ∂E/∂A_Q, since Y = A_Q
    for i in reversed(range(len(params))):  # Python index i is layer q = i + 1
        W, _ = params[i]
        grads.append((cache.inputs[i].T @ delta, delta.sum(0)))  # H_{q-1}^T Δ_q, rows summed
        if i > 0:
            delta = (delta @ W.T) * df(cache.pre_activations[i - 1])  # Δ_{q-1}
    return grads[::-1]


def numerical_gradients(
    params: Sequence[tuple[Tensor, Tensor]],
    x: Tensor,
    t: Tensor,
    activation: str = "relu",
    step: float = 1e-6,
) -> list[tuple[Tensor, Tensor]]:
    r"""Central finite differences of :math:`E =` :func:`mse` ``(forward(params, x)[0], t)``,
    one parameter at a time, without the chain rule:

    .. math::
        \frac{\partial E}{\partial w_i} \approx \frac{E(w + s e_i) - E(w - s e_i)}{2s},

    where :math:`w` collects all weights and biases, :math:`e_i` is the :math:`i`-th unit
    vector and :math:`s` is the ``step``. The error is of order :math:`s^2` (the next term of the
    Taylor series) plus about :math:`2^{-52} |E| / s` from rounding in double precision.
    It costs two forward passes per parameter, :math:`2P` for :math:`P` parameters.

    Args:
        params: ``[(W_q, b_q)]`` as from :func:`layer_params` (not modified).
        x: inputs ``(B, D)``.
        t: targets, the shape of the network's output ``(B, U_Q)``.
        activation: the hidden activation, a name of ``ACTIVATION_FUNCTIONS``.
        step: the step :math:`s`, positive.

    Returns:
        ``[(dE/dW_q, dE/db_q)]`` with the shapes of ``params``, like :func:`backward`.
    """
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}.")
    _activation(activation)
    work = [
        tuple(p.detach().clone(memory_format=torch.contiguous_format) for p in layer)
        for layer in params
    ]

    def cost() -> float:
        return mse(forward(work, x, activation)[0], t).item()

    grads = []
    for layer in work:
        layer_grads = []
        for p in layer:
            flat, grad = p.view(-1), torch.zeros(p.numel(), dtype=p.dtype)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + step
                up, e_up = flat[i].item(), cost()
                flat[i] = old - step
                down, e_down = flat[i].item(), cost()
                flat[i] = old
                grad[i] = (e_up - e_down) / (up - down)  # the step as stored, after rounding
            layer_grads.append(grad.view(p.shape))
        grads.append((layer_grads[0], layer_grads[1]))
    return grads


class Perceptron(nn.Module):
    r"""A single unit: :math:`y(x) = f(w^\top x + b)`, :math:`w \in \mathbb R^D, b \in \mathbb R`.

    Args:
        in_dim: ``D``.
        activation: ``f``: ``"identity"`` gives the linear model of linear regression,
            ``"sigmoid"`` the model of logistic regression (any name of
            ``vaelib.models.ACTIVATIONS``).

    Shapes: ``x`` ``(B, D)`` (one example per row) → ``y`` ``(B,)``.
    """

    def __init__(self, in_dim: int, activation: str = "identity") -> None:
        super().__init__()
        in_dim = check_positive_int(in_dim, "in_dim")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}."
            )
        self.linear = nn.Linear(in_dim, 1)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        """The output :math:`y(x)` ``(B,)`` for ``x`` ``(B, D)``."""
        return self.activation(self.linear(x)).squeeze(-1)


def least_squares(x: Tensor, t: Tensor) -> Perceptron:
    r"""The linear model :math:`y(x) = w^\top x + b` with the smallest mean squared error on the
    pairs ``(x, t)``, as a :class:`Perceptron` with the identity activation.

    A constant 1 is appended to every input, :math:`\tilde x = (x, 1)`, so that
    :math:`y(x) = \tilde x^\top \theta` with :math:`\theta = (w, b)`. With the extended inputs as
    the rows of :math:`\tilde X`, the minimiser solves the normal equations
    :math:`\tilde X^\top \tilde X \theta = \tilde X^\top t`; ``torch.linalg.lstsq`` finds it
    without forming :math:`\tilde X^\top \tilde X`, which is more accurate. The solution is
    copied into the module (``nn.Linear`` stores :math:`w` as a ``(1, D)`` row). The global
    random state is left as it was.

    Args:
        x: inputs ``(N, D)``, floating point; the model takes its dtype (use float64).
        t: targets ``(N,)``.

    Returns:
        ``Perceptron(D, "identity")`` holding the least-squares :math:`w` and :math:`b`.
    """
    if x.dim() != 2 or t.shape != (len(x),):
        raise ValueError(
            f"expected x (N, D) and t (N,), got {tuple(x.shape)} and {tuple(t.shape)}."
        )
    ones = torch.ones(len(x), 1, dtype=x.dtype)
    design = torch.cat([x, ones], dim=1)  # rows (x, 1): X~, (N, D + 1)
    theta = torch.linalg.lstsq(design, t.to(x.dtype).unsqueeze(1)).solution[:, 0]  # (w, b)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten below
        model = Perceptron(x.shape[1], activation="identity").to(x.dtype)
    with torch.no_grad():
        model.linear.weight.copy_(theta[:-1].unsqueeze(0))  # w as a (1, D) row
        model.linear.bias.fill_(theta[-1])  # b
    return model
