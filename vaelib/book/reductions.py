r"""Sums and means in a VAE loss, and what an optimizer makes of them (chapter 8).

The per-example ELBO sums over the :math:`D` data dimensions and the :math:`J` latent ones; a
minibatch of :math:`M` examples is reduced by its mean. Implementations that *sum* over the batch
multiply the loss, and its gradient, by :math:`M`. For plain SGD that is the same as a learning
rate :math:`M` times larger. Adam divides each step by a running root-mean-square of the gradient
(Kingma & Ba 2015), and Adagrad by the root of its running sum of squares (Duchi et al. 2011), so
a constant factor on the loss cancels, up to their small :math:`\varepsilon`.

:func:`train_steps` runs the same minibatches, with the same noise, through an optimizer for a
given scale of the loss, so the chapter can compare the parameters it reaches.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from vaelib.objectives import elbo

__all__ = ["train_steps"]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad}


def train_steps(
    model: nn.Module,
    batches: Sequence[torch.Tensor],
    optimizer: str,
    lr: float,
    loss_scale: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """Train a copy of ``model`` for one step per batch on ``loss_scale * (-elbo.mean())``.

    Args:
        model: a VAE; it is not changed (a deep copy is trained).
        batches: minibatches ``(M, D)``, one optimizer step each.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adagrad"`` (PyTorch's defaults otherwise).
        lr: learning rate.
        loss_scale: factor on the batch-mean loss: ``M`` gives the batch-summed loss.
        seed: seed of the reparameterization noise (the same for every call).

    Returns:
        all parameters after the last step, flattened into one vector.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}.")
    trained = copy.deepcopy(model)
    opt = OPTIMIZERS[optimizer](trained.parameters(), lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x in batches:
            loss = -loss_scale * elbo(trained, x).elbo.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return torch.cat([p.detach().flatten() for p in trained.parameters()])
