"""Training speed of AEVB, wake-sleep and Monte Carlo EM at the paper's model sizes.

Kingma & Welling (2014) report 20-40 minutes per million training samples on a 2014 Xeon. This
script measures samples per second for the three algorithms of chapter 9 with the paper's
settings (tanh, N(0, 0.01^2) init, Adagrad, weight prior, M = 100, L = 1):

* MNIST 784-500-J (J = 3, 20, 200) and Frey Face 560-200-J (J = 2, 20): AEVB and wake-sleep
  through ``vaelib.fit``;
* Fig. 3's 784-100-3 model on 1,000 digits: AEVB, wake-sleep and MCEM (10 leapfrog steps of HMC,
  then 5 weight updates per minibatch: ``vaelib.baselines.MCEM``).

Each row also gives the matmul floor: the forward and backward matrix products need
``3 * 2 * sum(in * out)`` FLOP per sample (AEVB; wake-sleep adds the dreams' encoder and decoder
passes), and the machine's float32 matmul speed bounds the samples per second. Run with
``python benchmarks/bench_paper.py`` on an otherwise idle machine (``--threads`` sets torch's
threads; the book's ``make reproduce`` uses one thread per process).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from bench_train import flop_per_sample, matmul_gflops

from vaelib.baselines import MCEM
from vaelib.book.paper import load_data, paper_model
from vaelib.diagnostics import CollapseWarning
from vaelib.train import fit

# a few epochs of a speed test are no evidence of collapse
warnings.simplefilter("ignore", CollapseWarning)


def rate_fit(dataset: str, z_dim: int, method: str, epochs: int, hidden: int | None = None,
             num_train: int | None = None) -> tuple[float, int]:
    x, _ = load_data(dataset, num_train)
    model = paper_model(dataset, z_dim, hidden)
    objective = "elbo" if method == "aevb" else "wake-sleep"
    fit(model, x[:200], epochs=1, optimizer="adagrad", lr=0.01, objective=objective,
        progress="none")  # warm-up: imports, allocations
    history = fit(model, x, epochs=epochs, optimizer="adagrad", lr=0.01, weight_prior=1.0,
                  objective=objective, progress="none")
    best_epoch = min(history["seconds"])  # robust against a busy machine
    flop = flop_per_sample(model) * (2 if method == "wake-sleep" else 1)
    return len(x) / best_epoch, flop


def rate_mcem(epochs: int) -> tuple[float, int]:
    x, _ = load_data("mnist", 1000)
    model = paper_model("mnist", 3, 100)
    mcem = MCEM(model, x, lr=0.02)
    mcem.fit(epochs=1)  # warm-up
    history = mcem.fit(epochs=epochs)
    best_epoch = min(history["seconds"])
    # per minibatch: 10 leapfrog gradients of log p(x, z) in z (decoder forward and backward)
    # and 5 weight updates (decoder forward and backward), per sample
    decoder_flop = flop_per_sample(model.decoder)
    return len(x) / best_epoch, (10 + 5) * decoder_flop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gflops = matmul_gflops()
    rows = []
    for dataset, z_dims in (("mnist", (3, 20, 200)), ("frey", (2, 20))):
        for z_dim in z_dims:
            for method in ("aevb", "wake-sleep"):
                rate, flop = rate_fit(dataset, z_dim, method, args.epochs)
                rows.append((f"{dataset} {784 if dataset == 'mnist' else 560}-"
                             f"{500 if dataset == 'mnist' else 200}-{z_dim}", method, rate, flop))
    for method in ("aevb", "wake-sleep"):
        rate, flop = rate_fit("mnist", 3, method, args.epochs * 3, hidden=100, num_train=1000)
        rows.append(("fig3 784-100-3, N=1000", method, rate, flop))
    rate, flop = rate_mcem(args.epochs)
    rows.append(("fig3 784-100-3, N=1000", "mcem", rate, flop))
    print(f"torch {torch.__version__}, {args.threads} thread(s), matmul {gflops:.1f} GFLOP/s\n")
    print(f"| {'model':<24} | {'method':<10} | {'samples/s':>9} | {'floor':>9} | {'of floor':>8} "
          f"| {'min per 1e6':>11} |")
    print(f"|{'-' * 26}|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 13}|")
    for model, method, rate, flop in rows:
        floor = gflops * 1e9 / flop
        print(f"| {model:<24} | {method:<10} | {rate:9,.0f} | {floor:9,.0f} | {rate / floor:8.0%} "
              f"| {1e6 / rate / 60:11.1f} |")
    print("\nThe paper: 20-40 minutes per million samples (Kingma & Welling 2014, Sec. 5).")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
