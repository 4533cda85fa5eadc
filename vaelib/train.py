r"""Training and evaluation: the AEVB algorithm of Kingma & Welling (2014), Algorithm 1.

Each step draws a minibatch :math:`X^M` of ``M = batch_size`` examples, ``L = num_samples`` noise
draws :math:`\varepsilon \sim \mathcal N(0, I)` per example, and follows the gradient of the
minibatch estimate of the ELBO,

.. math::
    \mathcal L(\theta, \phi; X^M) \approx \frac1M \sum_{i=1}^M \tilde{\mathcal L}(\theta, \phi; x^{(i)}),

i.e. the loss is ``-elbo(model, x, num_samples).elbo.mean()`` (sum over data and latent
dimensions, mean over the batch). Options change the objective: a KL weight (constant or a
warm-up schedule), free bits, the importance-weighted bound, wake-sleep, a Gaussian prior on the
weights. An :class:`~vaelib.models.Autoencoder` is trained on its per-example squared error
``model.loss(x).mean()`` instead.

Batches are sliced from the in-memory tensor with one ``torch.randperm`` per epoch — no
``DataLoader``, no per-example Python work — which is what makes training on a CPU fast.

Nothing is lost when training goes wrong: an epoch whose ELBO is NaN, infinite or explodes rolls
the model back to the end of the last good epoch and raises :class:`TrainingDiverged`, which
carries the history of the finished epochs; Ctrl-C (``KeyboardInterrupt``) rolls back to the
last finished epoch and returns the history so far; with ``checkpoint=path`` every finished
epoch is saved (atomically) and a later call resumes from it.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaelib._checks import as_data, check_data, check_number, check_positive_int
from vaelib.diagnostics import CollapseWarning, active_units
from vaelib.distributions import (
    gaussian_log_prob,
    kl_normal_standard_per_dim,
    reparameterize,
    standard_normal_log_prob,
)
from vaelib.models import Autoencoder, unchecked
from vaelib.objectives import ELBO, elbo

__all__ = [
    "History",
    "LinearWarmup",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "linear_warmup",
]

OPTIMIZERS = ("adam", "adagrad")
OBJECTIVES = ("elbo", "iwae", "wake-sleep")
VAE_TERMS = ("elbo", "log_px", "kl")  # what evaluate() reports for a VAE, nats per example
AE_TERMS = ("loss",)  # ... and for an Autoencoder (summed squared error per example)
ACTIVE_UNITS_EXAMPLES = 1000  # training examples on which active units are counted each epoch


@dataclass
class History:
    """Per-epoch record of :func:`fit`: ``history["train_elbo"]`` is a list, one float per epoch.

    Keys for a VAE: ``epoch`` (1-based), ``samples`` (training examples processed so far),
    ``train_elbo``, ``train_log_px``, ``train_kl``, the same with ``test_`` when test data was
    given, ``active_units`` and ``seconds`` (training time of the epoch, without the
    evaluation); ``kl_weight`` when it is not 1, ``train_iwae`` for ``objective="iwae"``. For an
    Autoencoder: ``train_loss`` (and ``test_loss``).

    **What the train and test values mean.** ``train_*`` are the means over the epoch's
    minibatches, taken while the parameters move during the epoch; ``test_*`` are computed with
    :func:`evaluate` at the end of the epoch. In the first epochs the model improves a lot
    within an epoch, so the running train value is worse than the test value (a lower ELBO, a
    higher autoencoder loss) even when the model fits both sets equally well; to compare like
    with like, evaluate both sets with the final parameters (``evaluate(model, x_train)``). ELBO
    terms are nats per example; an Autoencoder's loss is its squared error per example, summed
    over the D pixels.

    Attributes:
        stopped: why training ended early: ``None`` (ran all epochs), ``"early_stopping"``,
            ``"callback"`` or ``"interrupted"`` (Ctrl-C).
        best_epoch: with early stopping, the epoch whose parameters the model holds.
    """

    metrics: dict[str, list[float]] = field(default_factory=dict)
    stopped: str | None = None
    best_epoch: int | None = None

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

    @classmethod
    def from_dict(cls, metrics: dict[str, Sequence[float]], stopped: str | None = None,
                  best_epoch: int | None = None) -> History:
        return cls({k: [float(v) for v in vs] for k, vs in metrics.items()}, stopped, best_epoch)

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


class TrainingDiverged(FloatingPointError):
    """The training objective became NaN, infinite or exploded.

    The model holds the parameters of the end of the last good epoch; ``history`` holds the
    finished epochs and ``epoch`` the one that failed.
    """

    def __init__(self, message: str, history: History, epoch: int) -> None:
        super().__init__(message)
        self.history = history
        self.epoch = epoch


# --------------------------------------------------------------------------------------------
# KL weight schedules


@dataclass(frozen=True)
class LinearWarmup:
    r"""A KL weight that rises linearly from ``start`` to ``end`` over ``steps`` optimizer steps,
    then stays at ``end``: :math:`\beta_t = \text{start} + (\text{end} - \text{start})
    \min(1, t / \text{steps})` at step :math:`t = 0, 1, \dots` (Bowman et al. 2016; Sønderby et
    al. 2016)."""

    steps: int
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_positive_int(self.steps, "steps"))
        object.__setattr__(self, "start", check_number(self.start, "start", nonnegative=True))
        object.__setattr__(self, "end", check_number(self.end, "end", nonnegative=True))

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * min(1.0, step / self.steps)


def linear_warmup(steps: int, start: float = 0.0, end: float = 1.0) -> LinearWarmup:
    """A KL weight for :func:`fit` that warms up linearly over ``steps`` steps (see
    :class:`LinearWarmup`)."""
    return LinearWarmup(steps, start, end)


def _kl_weight_schedule(kl_weight: Any) -> Callable[[int], float]:
    if callable(kl_weight):
        return kl_weight
    value = check_number(kl_weight, "kl_weight", nonnegative=True,
                         hint=" Pass a number (1: the ELBO) or a schedule such as "
                         "vaelib.linear_warmup(steps).")
    return lambda step: value


# --------------------------------------------------------------------------------------------
# Input checks


def _as_tensor(data: Any, name: str) -> Any:
    """``x`` from a tensor/array or an ``(x, y)`` pair (labels are ignored)."""
    if isinstance(data, tuple):
        if not data:
            raise ValueError(f"{name} is empty; pass a tensor (N, D) or an (x, y) pair.")
        return data[0]
    return data


def _is_autoencoder(model: nn.Module) -> bool:
    if isinstance(model, Autoencoder):
        return True
    if hasattr(model, "encode") and hasattr(model, "log_px_given_z"):
        return False
    raise TypeError(
        f"fit/evaluate train a vaelib model or a model of the protocol (encode(x) -> (mu, "
        f"logvar), log_px_given_z(x, z)); got {type(model).__name__}, which has neither "
        "(see vaelib.objectives.LatentVariableModel)."
    )


def _check_input(model: nn.Module, data: Any, name: str) -> torch.Tensor:
    """Validate data for ``model`` once, up front; return it on the model's device."""
    x = as_data(_as_tensor(data, name), model, name)
    x_shape = getattr(model, "x_shape", None)
    x_dim = getattr(model, "x_dim", None) if x_shape is None else None
    checker = getattr(model, "check_input", None)
    if callable(checker):
        checker(x, name) if _accepts_name(checker) else checker(x)
    else:
        unit = getattr(model, "input_range", None) == (0, 1)
        check_data(x, x_dim, name=name, unit_interval=unit,
                   x_shape=tuple(x_shape) if x_shape is not None else None)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty batch of examples (N, ...), got shape "
            f"{tuple(x.shape)}."
        )
    param = next(model.parameters())
    if x.dtype != param.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model's parameters are {param.dtype}; "
            f"convert with {name}.to({param.dtype})."
        )
    return x


def _accepts_name(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        return "name" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


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


def _batch_terms(model: nn.Module, x: torch.Tensor, num_samples: int,
                 ae: bool) -> tuple[torch.Tensor, ...]:
    """Per-example terms, each ``(B,)``: (elbo, log_px, kl) for a VAE, (loss,) for an
    Autoencoder."""
    if ae:
        return (model.loss(x),)
    return tuple(elbo(model, x, num_samples))


def _epoch_means(parts: list[tuple[torch.Tensor, ...]], n: int) -> list[float]:
    """Means over the ``n`` examples of per-example terms collected batch by batch."""
    return [torch.cat(column).sum(dtype=torch.float64).item() / n for column in zip(*parts)]


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
        model: a VAE (any model of the protocol) or an Autoencoder.
        data: ``(N, D)`` (or ``(N, *x_shape)``) tensor or numpy array, or an ``(x, y)`` pair.
        batch_size: examples per forward pass (memory only; the result does not depend on it
            beyond the noise draw).
        num_samples: ``L``, samples of ``z`` per example.
        seed: seed of the noise.

    Returns:
        ``{"elbo", "log_px", "kl"}`` (VAE) or ``{"loss"}`` (Autoencoder): means over ``N``.
    """
    ae = _is_autoencoder(model)
    batch_size = check_positive_int(batch_size, "batch_size")
    num_samples = check_positive_int(num_samples, "num_samples")
    x = _check_input(model, data, "data")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _seeded(seed, x.device), unchecked(model):
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
    except (RuntimeError, ValueError, TypeError):  # no fused kernel here (or an older torch)
        return cls(params, lr=lr)


def _log_line(epoch: int, epochs: int, row: dict[str, float], ae: bool, timed: bool) -> str:
    key = "loss" if ae else "elbo"
    width = len(str(epochs))
    line = f"epoch {epoch:>{width}}/{epochs}  train {key} {row[f'train_{key}']:9.2f}"
    if f"test_{key}" in row:
        line += f"  test {key} {row[f'test_{key}']:9.2f}"
    if not ae:
        line += f"  train kl {row['train_kl']:6.2f}"
    if "active_units" in row:
        line += f"  active units {int(row['active_units'])}"
    if timed:
        line += f"  ({row['seconds']:.1f} s)"
    return line


class _StepLoss:
    """The minibatch loss of one objective, and the per-example ELBO terms it reports."""

    def __init__(self, model: nn.Module, objective: str, num_samples: int,
                 kl_weight: Callable[[int], float], free_bits: float, weight_prior: float | None,
                 n_train: int) -> None:
        self.model, self.objective, self.num_samples = model, objective, num_samples
        self.kl_weight, self.free_bits = kl_weight, free_bits
        self.weight_prior, self.n_train = weight_prior, n_train
        if objective == "wake-sleep":
            from vaelib.baselines import wake_sleep_loss

            self._wake_sleep = wake_sleep_loss

    def __call__(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...],
                                                           float]:
        model, beta = self.model, float(self.kl_weight(step))
        extra: tuple[torch.Tensor, ...] = ()
        if self.objective == "wake-sleep":
            loss, terms = self._wake_sleep(model, x)
        elif self.objective == "iwae":
            mu, logvar = model.encode(x)
            eps = torch.randn((self.num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
            z = reparameterize(mu, logvar, eps)  # (K, B, J)
            log_px = model.log_px_given_z(x, z)  # (K, B)
            kl_mc = gaussian_log_prob(z, mu, logvar) - standard_normal_log_prob(z)  # (K, B)
            log_w = log_px - beta * kl_mc
            bound = torch.logsumexp(log_w, 0) - math.log(self.num_samples)  # (B,)
            loss = -bound.mean()
            terms = ELBO((log_px - kl_mc).mean(0), log_px.mean(0), kl_mc.mean(0))
            extra = (bound.detach(),)
        else:
            mu, logvar = model.encode(x)
            eps = torch.randn((self.num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
            log_px = model.log_px_given_z(x, reparameterize(mu, logvar, eps)).mean(0)  # (B,)
            kl_dims = kl_normal_standard_per_dim(mu, logvar)  # (B, J)
            kl = kl_dims.sum(-1)
            if self.free_bits > 0:  # max(lambda, batch-mean KL_j) per dimension (Kingma 2016)
                penalty = kl_dims.mean(0).clamp(min=self.free_bits).sum()
                loss = -log_px.mean() + beta * penalty
            else:
                loss = -(log_px - beta * kl).mean()
            terms = ELBO(log_px - kl, log_px, kl)
        if self.weight_prior is not None:  # (1/N) * (-log N(theta | 0, I / precision))
            squares = sum(p.pow(2).sum() for p in model.parameters())
            loss = loss + 0.5 * self.weight_prior * squares / self.n_train
        return loss, tuple(terms) + extra, beta


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def _restore(model: nn.Module, opt: torch.optim.Optimizer, snap: tuple[dict, dict]) -> None:
    model.load_state_dict(snap[0])
    opt.load_state_dict(snap[1])


def _diverged(means: Sequence[float], reference: float, x_numel_per_example: int) -> bool:
    """NaN, infinite, or an ELBO more than 100 times further below the untrained model's than
    its size (or the data dimension D) — no legitimate training step goes there."""
    if not all(math.isfinite(v) for v in means):
        return True
    return means[0] < reference - 100.0 * max(abs(reference), float(x_numel_per_example))


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
    objective: str = "elbo",
    kl_weight: float | Callable[[int], float] = 1.0,
    free_bits: float = 0.0,
    weight_prior: float | None = None,
    early_stopping: int | None = None,
    callbacks: Sequence[Callable[[History, nn.Module], bool | None]] = (),
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    progress: bool | str | None = None,
) -> History:
    r"""Train ``model`` by minibatch stochastic gradient steps (AEVB, Algorithm 1, by default).

    A VAE climbs the ELBO (its loss is the negative ELBO, minimised); an Autoencoder minimises
    its reconstruction loss; ``objective`` selects the IWAE bound or wake-sleep instead.

    Loss per step (``objective="elbo"``, the defaults): ``-elbo(model, x, num_samples).elbo.mean()``;
    ``model.loss(x).mean()`` for an Autoencoder. A fresh optimizer is made on each call (or
    restored from ``checkpoint``).

    Args:
        model: a :class:`~vaelib.models.VAE`, :class:`~vaelib.models.ConvVAE`, any model of the
            protocol :class:`~vaelib.objectives.LatentVariableModel`, or an
            :class:`~vaelib.models.Autoencoder`.
        train: ``(N, D)`` (or ``(N, *x_shape)``) float tensor or numpy array, or an ``(x, y)``
            pair (labels ignored); values in [0, 1] for a Bernoulli decoder.
        test: the same, evaluated after every epoch, or ``None``.
        epochs: passes over ``train`` (in total: a resumed run trains the missing ones).
        batch_size: ``M``, examples per step (the last step of an epoch may have fewer).
        lr: learning rate.
        optimizer: ``"adam"`` or ``"adagrad"`` (the paper's).
        seed: seeds the batch order and the reparameterization noise. With the same initial
            parameters (build the model with ``VAEConfig(seed=...)``), the same seed gives the
            same history and parameters, bit for bit, on one machine. The caller's global RNG
            state is left as it was.
        num_samples: ``L``, samples of ``z`` per example and step (the paper: 1); for
            ``objective="iwae"`` it is ``K``, the importance samples.
        objective: ``"elbo"`` (AEVB), ``"iwae"`` (the importance-weighted bound
            :math:`\mathcal L_K` of Burda et al. 2016) or ``"wake-sleep"`` (Hinton et al. 1995:
            the decoder follows :math:`\log p(x|z)` with :math:`z \sim q(z|x)`, the encoder fits
            the model's own dreams; see :func:`vaelib.baselines.wake_sleep_loss`).
        kl_weight: :math:`\beta`, the weight of the KL term: a number (1: the ELBO) or a
            schedule ``step -> beta`` such as :func:`linear_warmup`. History values are always
            the unweighted ELBO.
        free_bits: :math:`\lambda \ge 0` nats: each latent dimension's KL, averaged over the
            minibatch, enters the loss as :math:`\max(\lambda, \mathrm{KL}_j)` (Kingma et al. 2016),
            so the optimizer gains nothing by pushing a dimension below :math:`\lambda`.
        weight_prior: ``None``, or the precision :math:`\tau` of a Gaussian prior
            :math:`\mathcal N(0, \tau^{-1} I)` on every parameter, as the paper's weight decay
            (Sec. 5: :math:`\tau = 1`): adds :math:`\frac{\tau}{2N}\lVert\theta\rVert^2` to the
            per-example loss.
        early_stopping: ``None``, or a patience in epochs: stop when the test ELBO has not
            improved for that many epochs and restore the parameters of the best epoch (needs
            ``test``).
        callbacks: functions ``callback(history, model)`` called after each epoch; one that
            returns ``True`` stops training.
        checkpoint: a file path: after every epoch the model, optimizer, history and random
            state are saved there atomically; if the file exists when ``fit`` starts, training
            resumes from it.
        device: where to train (default: where the model is); the model is moved there.
        progress: ``None`` — a progress bar (terminal or Jupyter), or log lines when the
            environment variable ``VAELIB_BOOK_BUILD`` is set; ``True``/``"bar"``;
            ``False``/``"log"`` — about ten short lines; ``"none"``.

    Returns:
        :class:`History` with one entry per finished epoch. The model is left in ``eval()``
        mode.

    Raises:
        TrainingDiverged: the objective became NaN, infinite or exploded; the model is rolled
            back to the last good epoch and the exception carries the history.
    """
    ae = _is_autoencoder(model)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    num_samples = check_positive_int(num_samples, "num_samples")
    lr = check_number(lr, "lr", positive=True, hint=" Try 1e-3 for Adam, 0.02 for Adagrad.")
    seed = check_positive_int(seed, "seed", minimum=0)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}.")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}.")
    schedule = _kl_weight_schedule(kl_weight)
    weighted = callable(kl_weight) or schedule(0) != 1.0
    free_bits = check_number(free_bits, "free_bits", nonnegative=True)
    if weight_prior is not None:
        weight_prior = check_number(weight_prior, "weight_prior", positive=True)
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
        if test is None:
            raise ValueError("early_stopping watches the test ELBO: pass test data too.")
    if ae and (objective != "elbo" or weighted or free_bits or early_stopping):
        raise ValueError("an Autoencoder is trained on its squared error only: objective, "
                         "kl_weight, free_bits and early_stopping apply to VAEs.")
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"every callback must be callable, got {callback!r}.")
    if device is not None:
        model.to(device)
    mode = _progress_mode(progress)
    x = _check_input(model, train, "train")
    x_test = None if test is None else _check_input(model, test, "test")
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None:
        from vaelib.checkpoints import check_writable

        check_writable(ckpt)  # fail now, not after hours of training

    n = len(x)
    opt = _make_optimizer(optimizer, list(model.parameters()), lr)
    batch_order = torch.Generator().manual_seed(seed)
    history = History()
    step = 0
    best: tuple[float, int, tuple[dict, dict]] | None = None
    rng_state: torch.Tensor | None = None
    if ckpt is not None and ckpt.exists():
        from vaelib.checkpoints import load_training_state

        state = load_training_state(ckpt, model, opt)
        history, step = state["history"], state["step"]
        batch_order.set_state(state["batch_order"])
        rng_state = state["rng"]
        if state.get("best") is not None:
            best = (state["best"]["elbo"], state["best"]["epoch"],
                    (state["best"]["model"], state["best"]["optimizer"]))
        if mode != "none":
            print(f"resuming from {ckpt} after epoch {len(history)}", flush=True)

    terms = AE_TERMS if ae else VAE_TERMS
    step_loss = None if ae else _StepLoss(model, objective, num_samples, schedule, free_bits,
                                          weight_prior, n)
    first_epoch = len(history) + 1
    log_every = max(1, math.ceil(epochs / 10))
    timed = not os.environ.get("VAELIB_BOOK_BUILD")
    au_x = None if ae else x[:ACTIVE_UNITS_EXAMPLES]
    reference = None
    if not ae:
        with torch.no_grad(), _seeded(seed, x.device), unchecked(model):
            reference = elbo(model, x[:ACTIVE_UNITS_EXAMPLES]).elbo.mean().item()
    per_example = x[0].numel()
    bar = None
    if mode == "bar" and first_epoch <= epochs:
        from tqdm.auto import tqdm  # lazy: only when a bar is shown

        bar = tqdm(total=epochs, initial=first_epoch - 1, desc="fit", unit="epoch")
    model.train()
    good = _snapshot(model, opt)
    try:
        with _seeded(seed, x.device), unchecked(model):
            if rng_state is not None:
                torch.set_rng_state(rng_state)
            for epoch in range(first_epoch, epochs + 1):
                start = time.perf_counter()
                perm = torch.randperm(n, generator=batch_order).to(x.device)
                parts = []
                beta = 1.0
                for i in range(0, n, batch_size):
                    xb = x[perm[i : i + batch_size]]
                    if ae:
                        values = (model.loss(xb),)
                        loss = values[0].mean()
                    else:
                        loss, values, beta = step_loss(xb, step)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    parts.append(tuple(v.detach() for v in values))  # no work, no sync
                means = _epoch_means(parts, n)  # summed once per epoch
                seconds = time.perf_counter() - start
                if not ae and _diverged(means, reference, per_example) or \
                        ae and not all(math.isfinite(v) for v in means):
                    _restore(model, opt, good)
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch}: the mean train "
                        f"{'loss' if ae else 'ELBO'} was {means[0]:.4g} per example. The model "
                        f"is rolled back to the end of epoch {epoch - 1}, and this error's "
                        f".history holds the {epoch - 1} finished epoch(s). Lower the learning "
                        f"rate (lr={lr:g}); for a Gaussian decoder with a learned variance, "
                        "bound it (VAEConfig(decoder_variance_floor=..., "
                        "decoder_logvar_bounds=...) or a fixed decoder_logvar).",
                        history, epoch)
                row = {"epoch": epoch, "samples": epoch * n}
                row.update({f"train_{k}": v for k, v in zip(terms, means)})
                if objective == "iwae" and not ae:
                    row["train_iwae"] = means[3]
                if x_test is not None:
                    scores = evaluate(model, x_test, num_samples=num_samples if objective ==
                                      "elbo" else 1, seed=seed)
                    row.update({f"test_{k}": v for k, v in scores.items()})
                    model.train()
                if not ae:
                    row["active_units"] = active_units(model, au_x).count
                    model.train()
                    if weighted:
                        row["kl_weight"] = beta
                row["seconds"] = seconds
                history.append(row)
                good = _snapshot(model, opt)
                stop = None
                if early_stopping is not None:
                    if best is None or row["test_elbo"] > best[0]:
                        best = (row["test_elbo"], epoch, good)
                    elif epoch - best[1] >= early_stopping:
                        stop = "early_stopping"
                for callback in callbacks:
                    if callback(history, model):
                        stop = stop or "callback"
                    model.train()
                if ckpt is not None:
                    from vaelib.checkpoints import save_training_state

                    save_training_state(ckpt, model, opt, history, step, batch_order,
                                        torch.get_rng_state(), best)
                if bar is not None:
                    key = "loss" if ae else "elbo"
                    shown = {k: f"{row[k]:.2f}" for k in (f"train_{key}", f"test_{key}")
                             if k in row}
                    bar.set_postfix(shown, refresh=False)
                    bar.update(1)
                elif mode == "log" and (epoch % log_every == 0 or epoch in (1, epochs) or stop):
                    print(_log_line(epoch, epochs, row, ae, timed), flush=True)
                if stop:
                    history.stopped = stop
                    break
    except KeyboardInterrupt:
        _restore(model, opt, good)
        history.stopped = "interrupted"
        if mode != "none":
            print(f"interrupted: the model holds the parameters after epoch {len(history)}; "
                  "the history so far is returned.", flush=True)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    if best is not None:
        model.load_state_dict(best[2][0])
        history.best_epoch = best[1]
    if not ae and len(history) and history["active_units"][-1] == 0:
        message = (
            "posterior collapse: no latent dimension is active (Cov_x(E_q[z_j]) <= 0.01 for "
            "all j): q(z|x) ignores x and the decoder ignores z. Lower the KL weight, warm it "
            "up (kl_weight=vaelib.linear_warmup(...)), or use free_bits."
        )
        warnings.warn(message, CollapseWarning, stacklevel=2)
        if mode == "log":
            print(f"warning: {message}", flush=True)
    return history
