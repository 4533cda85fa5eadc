"""Speed of ``vaelib.train.fit`` against the usual Dataset + DataLoader training loop.

The model is the one of the PyTorch example (pytorch/examples vae/main.py): 784-400-20, ReLU,
Bernoulli decoder, Adam with lr 1e-3, batches of 128, loss BCE + KL. It is trained on the
4,000 embedded MNIST training digits, from the same initial weights, four ways:

1. ``vaelib.fit``: batches sliced from the in-memory tensor (fused Adam);
2. a plain loop over the same in-memory slices (default Adam);
3. the example's loop: torchvision's ``MNIST`` dataset, whose ``__getitem__`` turns one uint8
   image into a PIL image and back into a tensor (``transforms.ToTensor``; emulated here with
   PIL, since torchvision is not a dependency), a ``DataLoader`` with ``shuffle=True`` collating
   128 of them, ``loss.item()`` after every step;
4. the same loop with a lighter ``Dataset`` that returns a view of a float tensor per item.

It prints samples per second, the speed-ups, and a floor: the matrix products alone need
``3 * 2 * sum(in * out)`` FLOP per example (forward + backward), so the machine's measured
matmul GFLOP/s bound the samples per second. Then the test ELBO of each run after the same
number of epochs. Run with ``python benchmarks/bench_train.py`` (a script, not a test) on an
otherwise idle machine: with 2 threads, other busy processes slow every method by 10x or more.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vaelib.data import load_mnist
from vaelib.models import VAE, VAEConfig
from vaelib.objectives import elbo
from vaelib.train import evaluate, fit

CONFIG = VAEConfig(x_dim=784, hidden_dim=400, z_dim=20, likelihood="bernoulli",
                   activation="relu")


class TorchvisionStyleMNIST(Dataset):
    """What ``torchvision.datasets.MNIST(transform=transforms.ToTensor())`` does per item:
    uint8 ``(28, 28)`` -> PIL image -> float tensor ``(1, 28, 28)`` in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.data, self.targets = images, labels  # uint8 (N, 28, 28), int64 (N,)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy())  # mode "L": 8-bit grey
        # transforms.ToTensor() for a mode-"L" image
        pixels = torch.from_numpy(np.array(img, np.uint8, copy=True))
        pixels = pixels.view(img.size[1], img.size[0], 1).permute(2, 0, 1).contiguous()
        return pixels.float().div(255), target


class TensorDigits(Dataset):
    """A lighter per-item dataset: a view of one row of a float tensor ``(N, 784)``."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.x[index], 0


def new_model(seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(CONFIG)


def loss_function(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """BCE + KL averaged over the batch: the negative ELBO, as in ``fit``."""
    return -elbo(model, x).elbo.mean()


Run = tuple[VAE, list[float]]  # the trained model and the seconds of each epoch


def train_with_fit(x: torch.Tensor, epochs: int, batch_size: int, seed: int) -> Run:
    model = new_model(seed)
    history = fit(model, x, epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed,
                  progress="none")
    return model, history["seconds"]


def train_plain_loop(x: torch.Tensor, epochs: int, batch_size: int, seed: int) -> Run:
    model = new_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), batch_size):
            loss = loss_function(model, x[perm[i : i + batch_size]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return model.eval(), seconds


def train_with_dataloader(dataset: Dataset, epochs: int, batch_size: int, seed: int) -> Run:
    """The loop of pytorch/examples vae/main.py (``num_workers=0`` on a CPU, as there)."""
    model = new_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model.train()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_loss = 0.0
        for data, _ in train_loader:
            optimizer.zero_grad()
            loss = loss_function(model, data.view(-1, 784))
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return model.eval(), seconds


def flop_per_sample(model: nn.Module) -> int:
    """Matmul FLOP per example for forward + backward: ``3 * 2 * sum(in * out)``."""
    macs = sum(m.in_features * m.out_features for m in model.modules()
               if isinstance(m, nn.Linear))
    return 3 * 2 * macs


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The machine's float32 matmul speed, best of ``repeats`` ``n x n`` products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gflops = matmul_gflops()  # first, while nothing else of ours has run
    x, y = load_mnist("train")
    settings = (args.epochs, args.batch_size, args.seed)
    # warm-up: the first optimizer and the first steps pay one-time costs (imports, allocator)
    train_plain_loop(x[:512], 1, args.batch_size, args.seed)

    x_test, _ = load_mnist("test")
    images = (x * 255).round().to(torch.uint8).reshape(-1, 28, 28)  # the bytes of the file
    example_dataset, tensor_dataset = TorchvisionStyleMNIST(images, y), TensorDigits(x)
    runs: dict[str, Callable[[], Run]] = {
        "vaelib.fit": lambda: train_with_fit(x, *settings),
        "plain in-memory loop": lambda: train_plain_loop(x, *settings),
        "DataLoader (example)": lambda: train_with_dataloader(example_dataset, *settings),
        "DataLoader (tensors)": lambda: train_with_dataloader(tensor_dataset, *settings),
    }
    # The methods take turns, `repeats` times; each keeps its fastest total and its fastest
    # epoch. On a shared machine the fastest epoch is the robust figure: other processes that
    # wake up mid-run slow a whole run, rarely every epoch of every repeat.
    total = dict.fromkeys(runs, float("inf"))
    epoch = dict.fromkeys(runs, float("inf"))
    models: dict[str, VAE] = {}
    for _ in range(args.repeats):
        for name, train in runs.items():
            start = time.perf_counter()
            models[name], seconds = train()
            total[name] = min(total[name], time.perf_counter() - start)
            epoch[name] = min([epoch[name], *seconds])
    rows = []
    for name in runs:
        test_elbo = evaluate(models[name], x_test, seed=args.seed)["elbo"]
        rows.append((name, len(x) / epoch[name], args.epochs * len(x) / total[name],
                     total[name], test_elbo))

    flop = flop_per_sample(new_model(args.seed))
    floor = gflops * 1e9 / flop
    rate = {name: r for name, r, *_ in rows}
    fit_rate = rate["vaelib.fit"]

    print(f"VAE 784-400-20 (ReLU, Bernoulli), Adam lr 1e-3, batch {args.batch_size}, "
          f"{args.epochs} epochs on {len(x):,} digits, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, best of {args.repeats}")
    print()
    print(f"| {'method':<22} | {'samples/s':>9} | {'(whole run)':>11} | {'seconds':>7} "
          f"| {'test ELBO':>9} |")
    print(f"|{'-' * 24}|{'-' * 10}:|{'-' * 12}:|{'-' * 8}:|{'-' * 10}:|")
    for name, r, r_run, seconds, test_elbo in rows:
        print(f"| {name:<22} | {r:>9,.0f} | {r_run:>11,.0f} | {seconds:>7.2f} "
              f"| {test_elbo:>9.2f} |")
    print(f"| {'matmul floor':<22} | {floor:>9,.0f} | {'':>11} | {'':>7} | {'':>9} |")
    print()
    print("samples/s: fastest epoch; (whole run): all epochs, fastest repeat; seconds: that run")
    print(f"fit / DataLoader (example): {fit_rate / rate['DataLoader (example)']:.2f}x "
          f"(target >= 2.5x); fit / DataLoader (tensors): "
          f"{fit_rate / rate['DataLoader (tensors)']:.2f}x; "
          f"fit / plain loop: {fit_rate / rate['plain in-memory loop']:.2f}x")
    print(f"floor: {flop / 1e6:.3f} MFLOP per sample (3 x 2 x {flop // 6:,} multiply-adds), "
          f"matmul {gflops:.1f} GFLOP/s -> {floor:,.0f} samples/s; fit reaches "
          f"{fit_rate / floor:.0%} of it")
    print("test ELBO: nats per example on the 1,000 test digits (higher is better)")


if __name__ == "__main__":
    main()
