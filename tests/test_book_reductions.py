"""vaelib.book.reductions: a factor on the loss under SGD, Adam and Adagrad."""

import pytest
import torch

from vaelib import VAE, VAEConfig
from vaelib.book.reductions import train_steps


@pytest.fixture
def setup():
    model = VAE(VAEConfig(x_dim=20, hidden_dim=16, z_dim=3, seed=0)).double()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(10, 20, generator=gen, dtype=torch.float64).round() for _ in range(5)]
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    return model, batches, start


def test_sgd_with_a_summed_loss_is_sgd_with_a_larger_learning_rate(setup):
    model, batches, start = setup
    summed = train_steps(model, batches, "sgd", lr=1e-3, loss_scale=10)
    larger_lr = train_steps(model, batches, "sgd", lr=1e-2)
    mean = train_steps(model, batches, "sgd", lr=1e-3)
    assert torch.allclose(summed, larger_lr, rtol=0, atol=1e-12)
    assert (summed - start).norm() > 5 * (mean - start).norm()


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_adaptive_optimizers_ignore_a_constant_factor(setup, optimizer):
    model, batches, start = setup
    mean = train_steps(model, batches, optimizer, lr=1e-2)
    summed = train_steps(model, batches, optimizer, lr=1e-2, loss_scale=10)
    assert (summed - mean).norm() < 1e-4 * (mean - start).norm()
    assert torch.equal(torch.cat([p.detach().flatten() for p in model.parameters()]), start)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_steps(model, batches, "rmsprop", lr=1e-3)
