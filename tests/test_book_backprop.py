"""vaelib.book.backprop: hand-written derivatives and backward pass against torch autograd."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelib.book.backprop import (
    ACTIVATION_FUNCTIONS,
    backward,
    forward,
    layer_params,
    least_squares,
    mse,
    mse_grad,
    numerical_gradients,
)
from vaelib.models import MLP

TORCH_ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda a: a,
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_FUNCTIONS))
def test_activation_and_derivative_match_torch_and_autograd(name):
    f, df = ACTIVATION_FUNCTIONS[name]
    # hundredths from -6 to 6: the grid holds a = 0 exactly (a linspace need not)
    a = (torch.arange(-600, 601, dtype=torch.float64) / 100).requires_grad_()
    assert (a == 0).sum() == 1
    assert torch.allclose(f(a), TORCH_ACTIVATIONS[name](a), rtol=0, atol=1e-15)
    (grad,) = torch.autograd.grad(TORCH_ACTIVATIONS[name](a).sum(), a)
    assert torch.allclose(df(a.detach()), grad, rtol=0, atol=1e-12)


def test_mse_and_its_gradient():
    y = torch.randn(7, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, dtype=torch.float64)
    loss = mse(y, t)
    assert torch.allclose(loss, torch.nn.functional.mse_loss(y, t))
    (grad,) = torch.autograd.grad(loss, y)
    assert torch.allclose(mse_grad(y.detach(), t), grad)
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(3, 1), torch.zeros(3))


def test_layer_params_use_the_book_convention():
    net = MLP(5, [4], 2)
    (w1, b1), (w2, b2) = layer_params(net)
    assert w1.shape == (5, 4) and b1.shape == (4,) and w2.shape == (4, 2)
    x = torch.randn(3, 5)
    assert torch.allclose(net[0](x), x @ w1 + b1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=5),
    st.sampled_from(["sigmoid", "tanh", "relu"]),
    st.integers(0, 10_000),
)
def test_forward_and_backward_match_the_module_and_autograd(sizes, activation, seed):
    torch.manual_seed(seed)
    net = MLP(sizes[0], sizes[1:-1], sizes[-1], activation=activation).double()
    x = torch.randn(8, sizes[0], dtype=torch.float64)
    t = torch.randn(8, sizes[-1], dtype=torch.float64)
    params = layer_params(net)
    y, cache = forward(params, x, activation)
    assert torch.allclose(y, net(x))
    grads = backward(params, cache, mse_grad(y, t), activation)
    mse(net(x), t).backward()
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    for (dw, db), linear in zip(grads, linears):
        assert torch.allclose(dw, linear.weight.grad.T, atol=1e-12)
        assert torch.allclose(db, linear.bias.grad, atol=1e-12)


def test_relu_derivative_at_zero_is_zero_like_autograd_through_relu():
    f, df = ACTIVATION_FUNCTIONS["relu"]
    a = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(a).sum(), a)
    assert grad.tolist() == df(a.detach()).tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_numerical_gradients_match_backward(activation):
    torch.manual_seed(1)
    net = MLP(3, [4, 4], 2, activation=activation).double()
    params = layer_params(net)
    before = [(w.clone(), b.clone()) for w, b in params]
    x = torch.randn(6, 3, dtype=torch.float64)
    t = torch.randn(6, 2, dtype=torch.float64)
    y, cache = forward(params, x, activation)
    exact = backward(params, cache, mse_grad(y, t), activation)
    approx = numerical_gradients(params, x, t, activation, step=1e-6)
    for (dw, db), (nw, nb), (w, b), (w0, b0) in zip(exact, approx, params, before):
        assert nw.shape == dw.shape and nb.shape == db.shape
        # ReLU: no pre-activation lies within the step of its kink for this seed
        assert torch.allclose(nw, dw, rtol=0, atol=1e-8)
        assert torch.allclose(nb, db, rtol=0, atol=1e-8)
        assert torch.equal(w, w0) and torch.equal(b, b0)  # params are not modified
    with pytest.raises(ValueError, match="step must be positive"):
        numerical_gradients(params, x, t, activation, step=0.0)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="unknown activation"):
        forward(layer_params(MLP(2, [], 1)), torch.zeros(1, 2), "swish")


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_least_squares_matches_numpy_lstsq_and_the_normal_equations(seed, d):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(30, d, generator=gen, dtype=torch.float64)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    t = x @ w_true + torch.randn(30, generator=gen, dtype=torch.float64)  # noisy, so no exact fit
    model = least_squares(x, t)
    w, b = model.linear.weight.detach()[0], model.linear.bias.detach()[0]
    design = np.hstack([x.numpy(), np.ones((30, 1))])
    reference, *_ = np.linalg.lstsq(design, t.numpy(), rcond=None)  # independent solver
    assert np.allclose(w.numpy(), reference[:-1], rtol=1e-9, atol=1e-12)
    assert np.isclose(b.item(), reference[-1], rtol=1e-9, atol=1e-12)
    normal = np.linalg.solve(design.T @ design, design.T @ t.numpy())  # the normal equations
    assert np.allclose(reference, normal, rtol=1e-8, atol=1e-10)
    with torch.no_grad():  # the module computes w^T x + b with these numbers
        assert torch.allclose(model(x), x @ w + b, rtol=0, atol=1e-12)
    assert model.linear.weight.dtype == torch.float64


def test_least_squares_fits_an_exact_line_and_leaves_the_random_state_alone():
    x = torch.linspace(-1, 1, 7, dtype=torch.float64).unsqueeze(1)
    t = 3.0 * x[:, 0] - 2.0
    state = torch.get_rng_state()
    model = least_squares(x, t)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.linear.weight.item() == pytest.approx(3.0)
    assert model.linear.bias.item() == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="expected x"):
        least_squares(x, t.unsqueeze(1))
