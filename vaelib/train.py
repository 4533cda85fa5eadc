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

Nothing is lost when training goes wrong: an epoch whose ELBO is NaN, infinite or falls far
below the untrained model's rolls the model back to the end of the last good epoch and raises
:class:`TrainingDiverged`, which carries the history of the finished epochs (an ELBO that
*climbs* without limit, as with an unbounded learned decoder variance, is not caught before it
overflows: see :func:`fit`); Ctrl-C (``KeyboardInterrupt``) rolls back to the last finished
epoch and returns the history so far; with ``checkpoint=path`` every finished epoch is saved
(atomically, and a write that has started is finished before Ctrl-C takes effect) and a later
call with the same settings resumes from it.

Data, tensors and numpy arrays alike, are converted to the floating dtype of the model's
parameters and moved to its device, whole, before training starts.
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
    r"""Per-epoch record of :func:`fit`: ``history["train_elbo"]`` is a list, one float per epoch.

    Keys for a VAE: ``epoch`` (1-based), ``samples`` (training examples processed so far),
    ``train_elbo``, ``train_log_px``, ``train_kl``, the same with ``test_`` when test data was
    given, ``active_units`` and ``seconds`` (training time of the epoch, without the
    evaluation); ``kl_weight`` when it is not 1, ``train_iwae`` for ``objective="iwae"``. For an
    Autoencoder: ``train_loss`` (and ``test_loss``). A history returned by :func:`fit` has all
    of its keys from the start, so the history of a run that stopped in its first epoch
    (``TrainingDiverged``, Ctrl-C) gives ``history["train_elbo"] == []``.

    ``active_units`` counts the dimensions :math:`j` with
    :math:`A_j = \operatorname{Cov}_x(\mathbb E_q[z_j]) > 0.01` (see
    :func:`vaelib.diagnostics.active_units`) at the end of each epoch, on at most
    ``ACTIVE_UNITS_EXAMPLES`` (1,000) training examples: all of them when :math:`N \le 1000`,
    else a random subset drawn once from ``fit``'s ``seed`` (the same rows in every epoch and
    after a resume), so the order of the data does not matter. ``kl_weight`` is the weight
    :math:`\beta` used at the *last* optimizer step of the epoch (with a schedule it changed
    during the epoch: ``kl_weight(t)`` at step :math:`t = eT - 1` for epoch :math:`e` of
    :math:`T` steps).

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
        if not len(self) or not all(self.metrics.values()):
            raise ValueError("the history is empty: no epoch has finished yet.")
        return {key: values[-1] for key, values in self.metrics.items()}

    def to_dict(self) -> dict[str, list[float]]:
        return {key: list(values) for key, values in self.metrics.items()}

    @classmethod
    def from_dict(cls, metrics: dict[str, Sequence[float]], stopped: str | None = None,
                  best_epoch: int | None = None) -> History:
        return cls({k: [float(v) for v in vs] for k, vs in metrics.items()}, stopped, best_epoch)

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.metrics[key]
        except KeyError:
            raise KeyError(f"History has no {key!r}; available: {sorted(self.metrics)}") from None

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
    finished epochs, ``epoch`` the one that failed and ``elbo`` (a float, possibly NaN or
    infinite) the failed epoch's mean training ELBO per example that stopped the run (for an
    :class:`~vaelib.models.Autoencoder`, its mean training loss).
    """

    def __init__(self, message: str, history: History, epoch: int,
                 elbo: float = math.nan) -> None:
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.elbo = float(elbo)


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
    """Validate data for ``model`` once, up front; return it on the model's device, in the
    model's floating dtype (``vaelib._checks.as_data``)."""
    x = as_data(_as_tensor(data, name), model, name)
    checker = getattr(model, "check_input", None)
    if callable(checker):
        checker(x, name) if _accepts_name(checker) else checker(x)
    else:
        x_shape = getattr(model, "x_shape", None)
        x_dim = getattr(model, "x_dim", None) if x_shape is None else None
        check_data(x, x_dim, name=name,
                   x_shape=tuple(x_shape) if x_shape is not None else None)
        _check_range(model, x, name)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty batch of examples (N, ...), got shape "
            f"{tuple(x.shape)}."
        )
    return x


def _check_range(model: nn.Module, x: torch.Tensor, name: str) -> None:
    """The range check of a model of the protocol that declares ``input_range = (low, high)``,
    in that model's terms (vaelib's own models check their data with ``check_input``)."""
    value_range = getattr(model, "input_range", None)
    if value_range is None or x.device.type == "meta" or not x.numel():
        return
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"{type(model).__name__}.input_range must be None or a pair (low, high), got "
            f"{value_range!r}."
        ) from None
    smallest, largest = float(x.min()), float(x.max())
    if smallest < low or largest > high:
        raise ValueError(
            f"{name} must lie in [{low:g}, {high:g}], the input_range that "
            f"{type(model).__name__} declares, got values in [{smallest:.3g}, {largest:.3g}]; "
            "rescale the data (e.g. divide 8-bit pixels by 255), or change the model's "
            "input_range if it can model such values."
        )


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
        data: ``(N, D)`` (or ``(N, *x_shape)``) tensor or numpy array, or an ``(x, y)`` pair;
            converted to the model's device and floating dtype (as in :func:`fit`).
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
    r"""NaN, infinite, or an ELBO more than 100 times further below the untrained model's than
    its size (or the data dimension D) — no legitimate training step goes there.

    Only the downward direction is tested: a large positive ELBO can be legitimate (a Gaussian
    density exceeds 1 wherever :math:`\sigma < 1/\sqrt{2\pi}`), and :math:`\log p(x|z)` has an
    upper bound only when the decoder's variance has a floor (see :func:`fit`)."""
    if not all(math.isfinite(v) for v in means):
        return True
    return means[0] < reference - 100.0 * max(abs(reference), float(x_numel_per_example))


def _active_units_rows(n: int, seed: int) -> torch.Tensor | None:
    """The training rows on which :func:`fit` counts active units: ``None`` (all ``n``, in
    order) when ``n <= ACTIVE_UNITS_EXAMPLES``, else ``ACTIVE_UNITS_EXAMPLES`` rows drawn
    without replacement from ``seed`` (sorted), the same on every call with that seed."""
    if n <= ACTIVE_UNITS_EXAMPLES:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:ACTIVE_UNITS_EXAMPLES].sort().values


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _collapse_message(history: History) -> str:
    """The text of the :class:`~vaelib.diagnostics.CollapseWarning` for a history whose last
    epoch has no active unit: it says whether units were active earlier, and that an untrained
    model has none either."""
    units = history["active_units"]
    epochs = _plural(len(units), "epoch")
    what = "A_j = Cov_x(E_q[z_j]) <= 0.01 for every j"
    remedy = ("lower the KL weight, warm it up (kl_weight=vaelib.linear_warmup(...)), or use "
              "free_bits.")
    peak = max(units)
    if peak > 0:
        return (f"posterior collapse: no latent dimension is active after {epochs} ({what}), "
                f"though {_plural(int(peak), 'dimension')} {'was' if peak == 1 else 'were'} "
                f"active after epoch {units.index(peak) + 1}: q(z|x) has stopped depending on "
                f"x and the decoder ignores z. To keep them, {remedy}")
    never = f"no latent dimension is active after {epochs} ({what}), nor was one in any epoch."
    untrained = ("the model has not started to use z yet (an untrained VAE has no active "
                 "dimension either: its encoder's means hardly move with x)")
    beta = history["kl_weight"][-1] if "kl_weight" in history else 1.0
    if beta > 1:
        return (f"{never} With a KL weight of {beta:g} (> 1), which pulls every q(z|x) towards "
                "the prior, this is most likely posterior collapse: q(z|x) ignores x and the "
                f"decoder ignores z; {remedy} After a very short run it may also just mean "
                f"that {untrained}.")
    return (f"{never} If training was long enough, this is posterior collapse: q(z|x) ignores "
            f"x and the decoder ignores z; {remedy} If training was short, it may only mean "
            f'that {untrained}: train longer and watch history["active_units"].')


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block has finished, then deliver it as before.

    Keeps an epoch's bookkeeping and its checkpoint write whole: the history, the model's
    snapshot and the checkpoint always agree on the last finished epoch. Outside the main
    thread, or when SIGINT is not handled by Python, the block runs unprotected.
    """
    import signal
    import threading

    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    received: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        previous(*received[0])  # Python's default handler raises KeyboardInterrupt


# steps at which a kl_weight schedule is compared with the checkpoint's (1, 2, 5, 10, ... 1e6)
_SCHEDULE_PROBES = (0, *(m * 10**e for e in range(7) for m in (1, 2, 5) if m * 10**e <= 10**6))


def _settings(*, optimizer: str, lr: float, batch_size: int, num_samples: int, objective: str,
              schedule: Callable[[int], float], free_bits: float, weight_prior: float | None,
              seed: int, x: torch.Tensor) -> dict[str, Any]:
    """What a run must keep to be resumed from a checkpoint (stored in it)."""
    return {
        "optimizer": optimizer,
        "lr": lr,
        "batch_size": batch_size,
        "num_samples": num_samples,
        "objective": objective,
        "kl_weight": [float(schedule(t)) for t in _SCHEDULE_PROBES],
        "free_bits": free_bits,
        "weight_prior": weight_prior,
        "seed": seed,
        "train_size": len(x),
        "train_shape": list(x.shape[1:]),
    }


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
            pair (labels ignored); values in [0, 1] for a Bernoulli decoder. Tensors and
            arrays alike are converted to the dtype of the model's parameters (float64 data
            for a float32 model become float32, as ``x.to(torch.float32)`` would).
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
            schedule ``step -> beta`` (``step`` counts optimizer steps from 0, across epochs)
            such as :func:`linear_warmup`. History values are always the unweighted ELBO; the
            history's ``kl_weight`` is the weight of each epoch's last step. Not with
            ``objective="wake-sleep"``, which has no KL term (a weight other than 1 raises
            ``ValueError``).
        free_bits: :math:`\lambda \ge 0` nats: each latent dimension's KL, averaged over the
            minibatch, enters the loss as :math:`\max(\lambda, \mathrm{KL}_j)` (Kingma et al. 2016),
            so the optimizer gains nothing by pushing a dimension below :math:`\lambda`.
            ``objective="elbo"`` only (another objective with ``free_bits > 0`` raises
            ``ValueError``).
        weight_prior: ``None``, or the precision :math:`\tau` of a Gaussian prior
            :math:`\mathcal N(0, \tau^{-1} I)` on every parameter, encoder's and decoder's, as
            the paper's weight decay (Sec. 5: :math:`\tau = 1`; the paper names a prior
            :math:`p(\theta)` on the decoder only): adds :math:`\frac{\tau}{2N}\lVert\theta\rVert^2` to the
            per-example loss.
        early_stopping: ``None``, or a patience in epochs: stop when the test ELBO has not
            improved for that many epochs and restore the parameters of the best epoch (needs
            ``test``).
        callbacks: functions ``callback(history, model)`` called after each epoch; one that
            returns ``True`` stops training.
        checkpoint: a file path: after every epoch the model, optimizer, history, random
            state and the settings of the run are saved there atomically; if the file exists
            when ``fit`` starts, training resumes from it. Resuming needs the same model
            configuration and the same ``optimizer``, ``lr``, ``batch_size``, ``num_samples``,
            ``objective``, ``kl_weight`` (a schedule is compared by its values at a few
            steps), ``free_bits``, ``weight_prior``, ``seed`` and training data size and shape
            (``N`` and one example's shape); on a mismatch ``fit`` raises
            ``vaelib.checkpoints.CheckpointMismatch`` before touching the model. Only
            ``epochs``, ``test``, ``early_stopping``, ``callbacks``, ``device`` and
            ``progress`` may change. To start afresh, delete the file or pass another path.
            Ctrl-C never leaves the checkpoint behind the returned history: a write in progress
            is finished first.
        device: where to train (default: where the model is). The model is moved there, and
            the training and test data are copied there whole, at once, before the first
            epoch (they must fit in the device's memory; minibatches are then sliced on the
            device, with no per-batch transfer).
        progress: ``None`` — a progress bar (terminal or Jupyter), or log lines when the
            environment variable ``VAELIB_BOOK_BUILD`` is set; ``True``/``"bar"``;
            ``False``/``"log"`` — about ten short lines; ``"none"``.

    Returns:
        :class:`History` with one entry per finished epoch. The model is left in ``eval()``
        mode.

    Raises:
        TrainingDiverged: the objective became NaN or infinite, or the ELBO fell more than a
            hundred times the untrained model's size below it; the model is rolled back to the
            last good epoch and the exception carries the history. Only a *falling* ELBO is
            caught: a Gaussian decoder that learns its variance can make the ELBO climb without
            limit (the density at a value it predicts exactly grows without bound as
            :math:`\sigma \to 0`; a pixel that is the same in every image, such as a blank
            border pixel, is enough), and nothing tells such a climb from good training,
            since a Gaussian density may legitimately exceed 1; it is caught only once the
            numbers overflow to NaN or infinity. Bound the
            variance instead (``VAEConfig(decoder_variance_floor=...)``, ``decoder_logvar_bounds``
            or a fixed ``decoder_logvar``): with :math:`\sigma^2 \ge \sigma^2_{\min}`, every
            ELBO is at most :math:`\frac D2 \log\frac{1}{2\pi\sigma^2_{\min}}`; or stop
            the run with a callback that watches ``history["train_elbo"]``.
        ValueError: bad arguments or data; ``vaelib.checkpoints.CheckpointMismatch`` (a
            ``ValueError``) when ``checkpoint`` holds a run of another model or with other
            settings.

    Warns:
        vaelib.diagnostics.CollapseWarning: no latent dimension is active (``active_units`` is
            0) after the last epoch. It is issued whenever that happens, as real posterior
            collapse must not go unnoticed, and says whether units were active in an earlier
            epoch; an untrained VAE has no active unit either, so after a short run it may only
            mean that the model has not started to use ``z`` yet.
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
    if not ae and free_bits and objective != "elbo":
        raise ValueError(f'free_bits applies to objective="elbo" only (it floors the closed-form '
                         f'KL of each latent dimension); objective="{objective}" would ignore '
                         "it. Use free_bits=0, or objective=\"elbo\".")
    if not ae and weighted and objective == "wake-sleep":
        raise ValueError('kl_weight applies to objective="elbo" and "iwae"; wake-sleep has no KL '
                         "term to weight. Use kl_weight=1.")
    if ae and (objective != "elbo" or weighted or free_bits or early_stopping):
        raise ValueError("an Autoencoder is trained on its squared error only: objective, "
                         "kl_weight, free_bits and early_stopping apply to VAEs.")
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"every callback must be callable, got {callback!r}.")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no trainable parameters; fit trains "
                         "model.parameters() (register them as nn.Parameter or submodules).")
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
    terms = AE_TERMS if ae else VAE_TERMS
    settings = _settings(optimizer=optimizer, lr=lr, batch_size=batch_size,
                         num_samples=num_samples, objective=objective, schedule=schedule,
                         free_bits=free_bits, weight_prior=weight_prior, seed=seed, x=x)
    opt = _make_optimizer(optimizer, list(model.parameters()), lr)
    batch_order = torch.Generator().manual_seed(seed)
    keys = ["epoch", "samples", *(f"train_{k}" for k in terms)]
    if objective == "iwae" and not ae:
        keys.append("train_iwae")
    if x_test is not None:
        keys += [f"test_{k}" for k in terms]
    if not ae:
        keys += ["active_units", "kl_weight"] if weighted else ["active_units"]
    history = History({key: [] for key in [*keys, "seconds"]})  # every key, even if empty
    step = 0
    best: tuple[float, int, tuple[dict, dict]] | None = None
    rng_state: torch.Tensor | None = None
    if ckpt is not None and ckpt.exists():
        from vaelib.checkpoints import load_training_state

        state = load_training_state(ckpt, model, opt, settings)  # checks before it loads
        history, step = state["history"], state["step"]
        batch_order.set_state(state["batch_order"])
        rng_state = state["rng"]
        if state.get("best") is not None:
            best = (state["best"]["elbo"], state["best"]["epoch"],
                    (state["best"]["model"], state["best"]["optimizer"]))
        if mode != "none":
            print(f"resuming from {ckpt} after epoch {len(history)}", flush=True)

    step_loss = None if ae else _StepLoss(model, objective, num_samples, schedule, free_bits,
                                          weight_prior, n)
    first_epoch = len(history) + 1
    log_every = max(1, math.ceil(epochs / 10))
    timed = not os.environ.get("VAELIB_BOOK_BUILD")
    au_rows = _active_units_rows(n, seed)  # the same rows in every epoch (and after a resume)
    au_x = None if ae else x if au_rows is None else x[au_rows.to(x.device)]
    reference = None
    if not ae:
        with torch.no_grad(), _seeded(seed, x.device), unchecked(model):
            reference = elbo(model, au_x).elbo.mean().item()
    per_example = x[0].numel()
    bar = None
    if mode == "bar" and first_epoch <= epochs:
        from tqdm.auto import tqdm  # lazy: only when a bar is shown

        bar = tqdm(total=epochs, initial=first_epoch - 1, desc="fit", unit="epoch")
    model.train()
    good = _snapshot(model, opt)
    saved = len(history)  # epochs held by the checkpoint file
    good_state: tuple[int, torch.Tensor, torch.Tensor] | None = None
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
                        history, epoch, means[0])
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
                stop = None
                with _interrupts_deferred():  # the history and the snapshot move together
                    history.append(row)
                    good = _snapshot(model, opt)
                    good_state = (step, batch_order.get_state(), torch.get_rng_state())
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

                    with _interrupts_deferred():  # a started write is finished
                        save_training_state(ckpt, model, opt, history, step, batch_order,
                                            torch.get_rng_state(), best, settings)
                        saved = len(history)
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
        where = ""
        if ckpt is not None and saved < len(history) and good_state is not None:
            # Ctrl-C came after the epoch was recorded, before its checkpoint (in a callback):
            # save it now, so that the checkpoint holds the epochs that are reported
            from vaelib.checkpoints import save_training_state

            try:
                with _interrupts_deferred():
                    save_training_state(ckpt, model, opt, history, *good_state, best, settings)
                    saved = len(history)
            except OSError as err:
                warnings.warn(f"could not save epoch {len(history)} to {ckpt}: {err}",
                              RuntimeWarning, stacklevel=2)
        if ckpt is not None:
            where = f"; {ckpt} holds epoch {saved}"
        history.stopped = "interrupted"
        if mode != "none":
            print(f"interrupted: the model holds the parameters after epoch {len(history)}"
                  f"{where}; the history so far is returned.", flush=True)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    if best is not None:
        model.load_state_dict(best[2][0])
        history.best_epoch = best[1]
    if not ae and len(history) and history["active_units"][-1] == 0:
        message = _collapse_message(history)
        warnings.warn(message, CollapseWarning, stacklevel=2)
        if mode == "log":
            print(f"warning: {message}", flush=True)
    return history
