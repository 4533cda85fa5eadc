"""Speed of ``vaelib.train.fit`` against the usual Dataset + DataLoader training loop.

The model is the one of the PyTorch example (pytorch/examples vae/main.py): 784-400-20, ReLU,
Bernoulli decoder, Adam with lr 1e-3, batches of 128, loss BCE + KL. It is trained on the
4,000 embedded MNIST training digits three ways, from the same initial weights:

1. ``vaelib.fit``: batches sliced from the in-memory tensor;
2. a plain loop over the same in-memory slices (what ``fit`` should match);
3. the example's loop: a ``Dataset`` whose ``__getitem__`` returns one image, a ``DataLoader``
   with ``shuffle=True`` collating 128 of them, ``loss.item()`` after every step.

It prints samples per second, the speed-up, and a floor: the matrix products alone need
``3 * 2 * sum(in * out)`` FLOP per example (forward + backward), so the machine's measured
matmul GFLOP/s bound the samples per second. Then the test ELBO of each run after the same
number of epochs. Run with ``python benchmarks/bench_train.py`` (a script, not a test).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vaelib.data import load_mnist
from vaelib.models import VAE, VAEConfig
from vaelib.objectives import elbo
from vaelib.train import evaluate, fit

CONFIG = VAEConfig(x_dim=784, hidden_dim=400, z_dim=20, likelihood="bernoulli",
                   activation="relu")


class Digits(Dataset):
    """One image per item, as torchvision's MNIST hands them to a DataLoader."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.x[index], 0  # (image, label), the label unused


def new_model(seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(CONFIG)


def loss_function(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """BCE + KL averaged over the batch: the negative ELBO, as in ``fit``."""
    return -elbo(model, x).elbo.mean()


def train_with_fit(x: torch.Tensor, epochs: int, batch_size: int, seed: int) -> VAE:
    model = new_model(seed)
    fit(model, x, epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, progress="none")
    return model


def train_plain_loop(x: torch.Tensor, epochs: int, batch_size: int, seed: int) -> VAE:
    model = new_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), batch_size):
            loss = loss_function(model, x[perm[i : i + batch_size]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def train_with_dataloader(x: torch.Tensor, epochs: int, batch_size: int, seed: int) -> VAE:
    """The loop of pytorch/examples vae/main.py."""
    model = new_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(Digits(x), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model.train()
    for _ in range(epochs):
        train_loss = 0.0
        for data, _ in loader:
            optimizer.zero_grad()
            loss = loss_function(model, data)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    return model.eval()


def flop_per_sample(model: nn.Module) -> int:
    """Matmul FLOP per example for forward + backward: ``3 * 2 * sum(in * out)``."""
    macs = sum(m.in_features * m.out_features for m in model.modules()
               if isinstance(m, nn.Linear))
    return 3 * 2 * macs


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matmul speed, best of ``repeats`` ``n x n`` products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def timed(run: Callable[[], VAE], repeats: int) -> tuple[VAE, float]:
    """Best wall time of ``repeats`` runs (the runs are identical: same seeds)."""
    best, model = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        model = run()
        best = min(best, time.perf_counter() - start)
    return model, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="report the best of N runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x, _ = load_mnist("train")
    x_test, _ = load_mnist("test")
    # warm-up: the first optimizer and the first steps pay one-time costs (imports, allocator)
    train_plain_loop(x[:512], 1, args.batch_size, args.seed)

    runs = {
        "vaelib.fit": train_with_fit,
        "plain in-memory loop": train_plain_loop,
        "Dataset + DataLoader": train_with_dataloader,
    }
    rows = []
    for name, train in runs.items():
        model, seconds = timed(lambda t=train: t(x, args.epochs, args.batch_size, args.seed),
                               args.repeats)
        rate = args.epochs * len(x) / seconds
        rows.append((name, rate, seconds, evaluate(model, x_test, seed=args.seed)["elbo"]))

    flop = flop_per_sample(new_model(args.seed))
    gflops = matmul_gflops()
    floor = gflops * 1e9 / flop
    fit_rate, loader_rate = rows[0][1], rows[2][1]

    print(f"VAE 784-400-20 (ReLU, Bernoulli), Adam lr 1e-3, batch {args.batch_size}, "
          f"{args.epochs} epochs on {len(x):,} digits, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print()
    print(f"| {'method':<22} | {'samples/s':>9} | {'seconds':>7} | {'test ELBO':>9} |")
    print(f"|{'-' * 24}|{'-' * 10}:|{'-' * 8}:|{'-' * 10}:|")
    for name, rate, seconds, test_elbo in rows:
        print(f"| {name:<22} | {rate:>9,.0f} | {seconds:>7.2f} | {test_elbo:>9.2f} |")
    print(f"| {'matmul floor':<22} | {floor:>9,.0f} | {'':>7} | {'':>9} |")
    print()
    print(f"fit / DataLoader speed-up: {fit_rate / loader_rate:.2f}x "
          f"(target >= 2.5x); fit / plain loop: {fit_rate / rows[1][1]:.2f}")
    print(f"floor: {flop / 1e6:.3f} MFLOP per sample (3 x 2 x {flop // 6:,} multiply-adds), "
          f"matmul {gflops:.1f} GFLOP/s -> {floor:,.0f} samples/s; fit reaches "
          f"{fit_rate / floor:.0%} of it")
    print("test ELBO: nats per example on the 1,000 test digits (higher is better)")


if __name__ == "__main__":
    main()
