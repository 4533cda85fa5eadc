r"""Training and evaluation: the AEVB algorithm of Kingma & Welling (2014), Algorithm 1.

Each step draws a minibatch :math:`X^M` of ``M = batch_size`` examples, one noise draw
:math:`\varepsilon \sim \mathcal N(0, I)` per example (``num_samples`` of them), and follows the
gradient of the minibatch estimate of the ELBO,

.. math::
    \mathcal L(\theta, \phi; X^M) \approx \frac1M \sum_{i=1}^M \tilde{\mathcal L}(\theta, \phi; x^{(i)}),

i.e. the loss is ``-elbo(model, x, num_samples).elbo.mean()`` (sum over pixels and latent
dimensions, mean over the batch). An :class:`~vaelib.models.Autoencoder` is trained on its
per-example squared error ``model.loss(x).mean()`` instead.

Batches are sliced from the in-memory tensor with one ``torch.randperm`` per epoch — no
``DataLoader``, no per-example Python work — which is what makes training on a CPU fast.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vaelib._checks import check_data, check_positive_int
from vaelib.models import Autoencoder
from vaelib.objectives import elbo

__all__ = ["History", "evaluate", "fit"]

OPTIMIZERS = ("adam", "adagrad")
VAE_TERMS = ("elbo", "log_px", "kl")  # what evaluate() reports for a VAE, nats per example
AE_TERMS = ("loss",)  # ... and for an Autoencoder (summed squared error per example)


@dataclass
class History:
    """Per-epoch record of :func:`fit`: ``history["train_elbo"]`` is a list, one float per epoch.

    Keys for a VAE: ``epoch`` (1-based), ``train_elbo``, ``train_log_px``, ``train_kl``, the
    same with ``test_`` when test data was given, and ``seconds`` (training time of the epoch,
    without the test evaluation). For an Autoencoder: ``train_loss`` (and ``test_loss``).
    Train values are the mean over the epoch's minibatches (the parameters move during the
    epoch, as in the paper's Fig. 2); test values are computed with :func:`evaluate` at the
    end of the epoch. All in nats per example.
    """

    metrics: dict[str, list[float]] = field(default_factory=dict)

    def append(self, row: dict[str, float]) -> None:
        """Add one epoch's values."""
        for key, value in row.items():
            self.metrics.setdefault(key, []).append(float(value))

    def keys(self) -> list[str]:
        return list(self.metrics)

    def last(self) -> dict[str, float]:
        """The values of the final epoch."""
        return {key: values[-1] for key, values in self.metrics.items()}

    def to_dict(self) -> dict[str, list[float]]:
        return {key: list(values) for key, values in self.metrics.items()}

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    def __contains__(self, key: object) -> bool:
        return key in self.metrics

    def __len__(self) -> int:
        return len(self.metrics.get("epoch", []))

    def __getattr__(self, name: str) -> list[float]:  # history.train_elbo
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(f"History has no {name!r}; available: {sorted(metrics)}")


# --------------------------------------------------------------------------------------------
# Input checks


def _as_tensor(data: Any, name: str) -> torch.Tensor:
    """``x`` from a tensor or an ``(x, y)`` pair (labels are ignored)."""
    if isinstance(data, (tuple, list)):
        if not data:
            raise ValueError(f"{name} is empty; pass a tensor (N, D) or an (x, y) pair.")
        data = data[0]
    return data


def _is_autoencoder(model: nn.Module) -> bool:
    if isinstance(model, Autoencoder):
        return True
    if hasattr(model, "encode") and hasattr(model, "log_px_given_z"):
        return False
    raise TypeError(
        f"fit/evaluate train a vaelib VAE or Autoencoder, got {type(model).__name__}; a custom "
        "model needs encode(x) -> (mu, logvar) and log_px_given_z(x, z)."
    )


def _check_input(model: nn.Module, data: Any, name: str) -> torch.Tensor:
    """Validate data for ``model`` once, up front; return it on the model's device."""
    x = _as_tensor(data, name)
    x_dim = getattr(model, "x_dim", None)
    bernoulli = getattr(getattr(model, "config", None), "likelihood", None) == "bernoulli"
    check_data(x, x_dim, name=name, unit_interval=bernoulli)
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty matrix (N, {x_dim}), got shape {tuple(x.shape)}; "
            f"flatten images with {name}.reshape(len({name}), -1)."
        )
    param = next(model.parameters())
    if x.dtype != param.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model's parameters are {param.dtype}; "
            f"convert with {name}.to({param.dtype})."
        )
    return x.to(param.device)


def _progress_mode(progress: bool | str | None) -> str:
    if progress is None:
        return "log" if os.environ.get("VAELIB_BOOK_BUILD") else "bar"
    if progress is True or progress == "bar":
        return "bar"
    if progress is False or progress == "log":
        return "log"
    if progress == "none":
        return "none"
    raise ValueError(
        f'progress must be None (auto), True/"bar", False/"log" or "none", got {progress!r}.'
    )


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (the reparameterization noise) and restore the caller's state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# --------------------------------------------------------------------------------------------
# Evaluation


def _batch_terms(
    model: nn.Module, x: torch.Tensor, num_samples: int, ae: bool
) -> tuple[torch.Tensor, ...]:
    """Per-example terms, each ``(B,)``: (elbo, log_px, kl) for a VAE, (loss,) for an
    Autoencoder; the first is what training maximises (VAE) or minimises (Autoencoder)."""
    if ae:
        return (model.loss(x),)
    return tuple(elbo(model, x, num_samples))


def _epoch_means(parts: list[tuple[torch.Tensor, ...]], n: int) -> list[float]:
    """Means over the ``n`` examples of per-example terms collected batch by batch."""
    return [torch.cat(column).sum(dtype=torch.float64).item() / n for column in zip(*parts)]


@contextmanager
def _checked_once(model: nn.Module) -> Iterator[None]:
    """Skip the model's per-batch ``check_input`` while the data, already checked in full, is
    fed batch by batch: the check reads every pixel again (about 7% of a training step)."""
    if not callable(getattr(model, "check_input", None)) or "check_input" in model.__dict__:
        yield
        return
    model.check_input = _no_check  # an instance attribute shadows the method
    try:
        yield
    finally:
        del model.check_input


def _no_check(x: torch.Tensor) -> None:
    return None


def evaluate(
    model: nn.Module,
    data: Any,
    batch_size: int = 1000,
    num_samples: int = 1,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """Mean ELBO terms over ``data``, in nats per example, without gradients.

    The Monte-Carlo noise comes from ``seed`` (the caller's RNG state is restored), so the
    same model and data give the same numbers.

    Args:
        model: a VAE (or Autoencoder).
        data: ``(N, D)`` tensor or an ``(x, y)`` pair.
        batch_size: examples per forward pass (memory only; the result does not depend on it
            beyond the noise draw).
        num_samples: samples of ``z`` per example.
        seed: seed of the noise.

    Returns:
        ``{"elbo", "log_px", "kl"}`` (VAE) or ``{"loss"}`` (Autoencoder): means over ``N``.
    """
    ae = _is_autoencoder(model)
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_samples, "num_samples")
    x = _check_input(model, data, "data")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _seeded(seed, x.device), _checked_once(model):
            parts = [_batch_terms(model, xb, num_samples, ae) for xb in x.split(batch_size)]
    finally:
        model.train(was_training)
    return dict(zip(AE_TERMS if ae else VAE_TERMS, _epoch_means(parts, len(x))))


# --------------------------------------------------------------------------------------------
# Training


def _make_optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam or Adagrad (the paper's choice, Sec. 5). The fused implementation (one kernel for
    all parameters: the same update, about 4x faster than the default on a CPU) when the
    device supports it."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")
    cls = torch.optim.Adam if name == "adam" else torch.optim.Adagrad
    try:
        return cls(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return cls(params, lr=lr)


def _log_line(epoch: int, epochs: int, row: dict[str, float], ae: bool) -> str:
    key = "loss" if ae else "elbo"
    width = len(str(epochs))
    line = f"epoch {epoch:>{width}}/{epochs}  train {key} {row[f'train_{key}']:9.2f}"
    if f"test_{key}" in row:
        line += f"  test {key} {row[f'test_{key}']:9.2f}"
    if not ae:
        line += f"  kl {row['train_kl']:6.2f}"
    return line + f"  ({row['seconds']:.1f} s)"


def fit(
    model: nn.Module,
    train: Any,
    test: Any = None,
    *,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    optimizer: str = "adam",
    seed: int = 0,
    num_samples: int = 1,
    progress: bool | str | None = None,
) -> History:
    r"""Train ``model`` by minibatch stochastic gradient ascent on the ELBO (AEVB, Algorithm 1).

    Loss per step: ``-elbo(model, x, num_samples).elbo.mean()`` for a VAE,
    ``model.loss(x).mean()`` for an Autoencoder. A fresh optimizer is made on each call.

    Args:
        model: a :class:`~vaelib.models.VAE` or :class:`~vaelib.models.Autoencoder`.
        train: ``(N, D)`` float tensor, or an ``(x, y)`` pair (labels ignored); values in
            [0, 1] for a Bernoulli decoder.
        test: the same, evaluated after every epoch, or ``None``.
        epochs: passes over ``train``.
        batch_size: ``M``, examples per step (the last step of an epoch may have fewer).
        lr: learning rate.
        optimizer: ``"adam"`` or ``"adagrad"`` (the paper's).
        seed: seeds the batch order and the reparameterization noise; the same seed gives the
            same history and parameters, bit for bit, on one machine. The caller's global RNG
            state is left as it was.
        num_samples: ``L``, samples of ``z`` per example and step (the paper: 1).
        progress: ``None`` — a progress bar (terminal or Jupyter), or log lines when the
            environment variable ``VAELIB_BOOK_BUILD`` is set; ``True``/``"bar"``;
            ``False``/``"log"`` — about ten short lines; ``"none"``.

    Returns:
        :class:`History` with one entry per epoch. The model is left in ``eval()`` mode.
    """
    ae = _is_autoencoder(model)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_samples, "num_samples")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}; try 1e-3 for Adam.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}.")
    mode = _progress_mode(progress)
    x = _check_input(model, train, "train")
    x_test = None if test is None else _check_input(model, test, "test")

    opt = _make_optimizer(optimizer, list(model.parameters()), lr)
    batch_order = torch.Generator().manual_seed(seed)
    n = len(x)
    terms = AE_TERMS if ae else VAE_TERMS
    sign = 1.0 if ae else -1.0  # minimise the AE loss, maximise the ELBO
    log_every = max(1, math.ceil(epochs / 10))
    history = History()
    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm  # lazy: only when a bar is shown

        bar = tqdm(total=epochs, desc="fit", unit="epoch")
    model.train()
    try:
        with _seeded(seed, x.device), _checked_once(model):
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                perm = torch.randperm(n, generator=batch_order).to(x.device)
                parts = []
                for i in range(0, n, batch_size):
                    values = _batch_terms(model, x[perm[i : i + batch_size]], num_samples, ae)
                    loss = sign * values[0].mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    parts.append(tuple(v.detach() for v in values))  # no work, no sync
                means = _epoch_means(parts, n)  # summed once per epoch
                seconds = time.perf_counter() - start
                if not all(math.isfinite(v) for v in means):
                    raise FloatingPointError(
                        f"the training objective became NaN or infinite in epoch {epoch}; "
                        f"lower the learning rate (lr={lr}) or check the data."
                    )
                row = {"epoch": epoch, **{f"train_{k}": v for k, v in zip(terms, means)}}
                if x_test is not None:
                    scores = evaluate(model, x_test, num_samples=num_samples, seed=seed)
                    row.update({f"test_{k}": v for k, v in scores.items()})
                    model.train()
                row["seconds"] = seconds
                history.append(row)
                if bar is not None:
                    key = "loss" if ae else "elbo"
                    shown = {k: f"{row[k]:.2f}" for k in (f"train_{key}", f"test_{key}")
                             if k in row}
                    bar.set_postfix(shown, refresh=False)
                    bar.update(1)
                elif mode == "log" and (epoch % log_every == 0 or epoch in (1, epochs)):
                    print(_log_line(epoch, epochs, row, ae), flush=True)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return history
