r"""Principal component analysis, and the cost of a linear autoencoder in terms of the covariance.

PCA (Chapter 1) finds the :math:`k` orthonormal directions :math:`U = (u_1, \dots, u_k) \in
\mathbb R^{D\times k}` that lose the least squared error when the data are projected onto them:
the code of :math:`x` is :math:`z = (x - \bar x) U`, its reconstruction
:math:`\hat x = \bar x + z U^\top`, and the minimum of the mean squared error

.. math::
    \frac1N \sum_{n=1}^N \lVert x_n - \hat x_n \rVert^2 = \sum_{i > k} \lambda_i

is reached by the eigenvectors of the covariance matrix
:math:`S = \frac1N \sum_n (x_n - \bar x)^\top (x_n - \bar x)` with the :math:`k` largest
eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \dots` (Bishop 2006, Sec. 12.1).

Chapter 3 shows that a linear autoencoder with a code of :math:`J` numbers learns the subspace
of the top :math:`J` components: :func:`linear_autoencoder_loss` computes its cost from :math:`S`
so that full-batch gradient descent is cheap, and :func:`train_linear_autoencoder` runs that
descent.

Rows are examples: ``x`` is ``(N, D)``, codes ``z`` are ``(N, k)``. The covariance and the
variances use :math:`1/N` (not :math:`1/(N-1)`), so that they add up to the mean squared error
per example; :func:`covariance` is the one place that convention is written down.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vaelib._checks import check_data, check_positive_int

__all__ = [
    "PCA",
    "LinearAutoencoderRun",
    "covariance",
    "linear_autoencoder_loss",
    "pca",
    "pca_decode",
    "pca_encode",
    "train_linear_autoencoder",
    "truncate",
]


class PCA(NamedTuple):
    """A fitted PCA.

    Attributes:
        mean: :math:`\\bar x`, ``(D,)``.
        components: :math:`U`, ``(D, k)``, orthonormal columns, by decreasing variance.
        variances: :math:`\\lambda_1 \\ge \\dots \\ge \\lambda_k`, ``(k,)``: the variance of the
            data along each component (eigenvalues of the covariance matrix).
        total_variance: :math:`\\operatorname{tr} S = \\sum_i \\lambda_i` over all ``D``
            directions, a 0-d tensor; ``variances / total_variance`` is the explained share.
    """

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor
    total_variance: torch.Tensor


def covariance(x: torch.Tensor) -> torch.Tensor:
    r"""The covariance matrix :math:`S = \frac1N \sum_n (x_n - \bar x)^\top (x_n - \bar x)` of the
    rows of ``x`` ``(N, D)``: ``(D, D)``, in ``x``'s dtype, with :math:`1/N` (not :math:`1/(N-1)`)."""
    check_data(x)
    if x.dim() != 2:
        raise ValueError(f"x must be a matrix (N, D), got shape {tuple(x.shape)}.")
    centred = x - x.mean(0)
    return centred.T @ centred / len(x)


def pca(x: torch.Tensor, k: int) -> PCA:
    r"""Fit a ``k``-component PCA to ``x`` ``(N, D)``: the top eigenvectors of the covariance.

    Forms :math:`S` ``(D, D)`` with :func:`covariance` and takes its eigendecomposition; the
    ``k`` eigenvectors with the largest eigenvalues are the components and the eigenvalues
    their variances. Each component's sign is fixed so that its
    largest-magnitude entry is positive, which makes the result reproducible. Computed in
    ``x``'s dtype; use float64 for tight comparisons (the smallest eigenvalues of a float32
    covariance carry an absolute error of about :math:`10^{-7} \lambda_1`).
    """
    check_data(x)
    check_positive_int(k, "k")
    if x.dim() != 2:
        raise ValueError(f"x must be a matrix (N, D), got shape {tuple(x.shape)}.")
    d = x.shape[1]
    if k > d:
        raise ValueError(f"k must be at most D = {d}, got {k}.")
    cov = covariance(x)  # (D, D)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    variances = eigenvalues.flip(0)[:k].clamp(min=0.0)  # rounding can make zeros negative
    components = eigenvectors.flip(1)[:, :k]  # (D, k)
    idx = components.abs().argmax(0)
    signs = torch.sign(components[idx, torch.arange(k)])
    components = components * torch.where(signs == 0, 1.0, signs)
    return PCA(x.mean(0), components, variances, torch.trace(cov))


def truncate(p: PCA, k: int) -> PCA:
    """The PCA ``p`` restricted to its first ``k`` components (and their ``k`` variances).

    Fitting ``k`` components from the start gives the same result; this only saves a second
    eigendecomposition when a larger fit is at hand.
    """
    check_positive_int(k, "k")
    if k > len(p.variances):
        raise ValueError(f"k must be at most the {len(p.variances)} components of p, got {k}.")
    return p._replace(components=p.components[:, :k], variances=p.variances[:k])


def pca_encode(p: PCA, x: torch.Tensor) -> torch.Tensor:
    r"""Codes :math:`z = (x - \bar x) U`: ``(N, D)`` → ``(N, k)``."""
    return (x - p.mean) @ p.components


def pca_decode(p: PCA, z: torch.Tensor) -> torch.Tensor:
    r"""Reconstructions :math:`\hat x = \bar x + z U^\top`: ``(N, k)`` → ``(N, D)``."""
    return p.mean + z @ p.components.T


def linear_autoencoder_loss(
    encoder_weight: torch.Tensor, decoder_weight: torch.Tensor, cov: torch.Tensor
) -> torch.Tensor:
    r"""Mean squared error per example of the linear autoencoder, from the covariance matrix.

    The linear autoencoder with a code of :math:`J` numbers, :math:`z = (x - \bar x) W_e`, and
    output :math:`\hat x = \bar x + z W_d` (the best biases for any weights) has the cost

    .. math::
        \frac1N \sum_{n=1}^N \lVert (x_n - \bar x) W_e W_d - (x_n - \bar x) \rVert^2
        = \operatorname{tr}\bigl((W_e W_d - I)^\top S\, (W_e W_d - I)\bigr)
        = \operatorname{tr} S - 2 \operatorname{tr}(W_d S W_e)
          + \operatorname{tr}\bigl((W_e^\top S W_e)(W_d W_d^\top)\bigr),

    evaluated in :math:`O(D^2 J)` without ever forming a :math:`D \times D` product of weights.

    Args:
        encoder_weight: :math:`W_e`, ``(D, J)`` (the book's convention: ``z = x @ W_e``; a
            ``torch.nn.Linear`` stores its transpose).
        decoder_weight: :math:`W_d`, ``(J, D)``.
        cov: :math:`S`, ``(D, D)``, symmetric.

    Returns:
        A 0-d tensor, differentiable in both weights.
    """
    d, z_dim = encoder_weight.shape
    if decoder_weight.shape != (z_dim, d) or cov.shape != (d, d):
        raise ValueError(
            f"expected encoder_weight (D, J), decoder_weight (J, D) and cov (D, D), got "
            f"{tuple(encoder_weight.shape)}, {tuple(decoder_weight.shape)}, {tuple(cov.shape)}."
        )
    s_we = cov @ encoder_weight  # (D, J)
    return (
        torch.trace(cov)
        - 2 * torch.sum(decoder_weight.T * s_we)  # tr(W_d S W_e)
        + torch.sum((encoder_weight.T @ s_we) * (decoder_weight @ decoder_weight.T))
    )


class LinearAutoencoderRun(NamedTuple):
    """The result of :func:`train_linear_autoencoder`.

    Attributes:
        encoder_weight: the final :math:`W_e`, ``(D, J)``.
        decoder_weight: the final :math:`W_d`, ``(J, D)``.
        steps: the steps at which the weights were recorded, ``(T,)``: 0, ``every``, ...,
            and the last step.
        costs: the cost :func:`linear_autoencoder_loss` at those steps, ``(T,)``.
        encoder_weights: :math:`W_e` at those steps, ``(T, D, J)``.
        decoder_weights: :math:`W_d` at those steps, ``(T, J, D)``.
    """

    encoder_weight: torch.Tensor
    decoder_weight: torch.Tensor
    steps: torch.Tensor
    costs: torch.Tensor
    encoder_weights: torch.Tensor
    decoder_weights: torch.Tensor


def train_linear_autoencoder(
    cov: torch.Tensor,
    z_dim: int,
    *,
    steps: int,
    lr: float,
    init_std: float = 1e-3,
    seed: int = 0,
    every: int = 10,
) -> LinearAutoencoderRun:
    r"""Plain full-batch gradient descent on the linear autoencoder's cost, from small weights.

    Both weight matrices start with independent :math:`\mathcal N(0, \texttt{init\_std}^2)`
    entries drawn from a generator seeded with ``seed``; each step moves them against the
    gradient of :func:`linear_autoencoder_loss`,
    :math:`W \leftarrow W - \eta\, \partial E / \partial W`. The biases are not trained: for
    any weights, :math:`b_e = -\bar x W_e` and :math:`b_d = \bar x` are optimal, and
    :func:`linear_autoencoder_loss` is the cost with them.

    Args:
        cov: :math:`S`, ``(D, D)``; the weights take its dtype (use float64).
        z_dim: :math:`J`, the size of the code.
        steps: number of gradient steps.
        lr: :math:`\eta`.
        init_std: standard deviation of the initial weights.
        seed: seed of the initial weights.
        every: record the cost and the weights every ``every`` steps (and after the last).
    """
    d = cov.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"cov must be a square matrix (D, D), got shape {tuple(cov.shape)}.")
    check_positive_int(z_dim, "z_dim")
    check_positive_int(steps, "steps")
    check_positive_int(every, "every")
    gen = torch.Generator().manual_seed(seed)
    w_e = init_std * torch.randn(d, z_dim, generator=gen, dtype=cov.dtype)  # (D, J)
    w_d = init_std * torch.randn(z_dim, d, generator=gen, dtype=cov.dtype)  # (J, D)
    recorded = []  # (step, cost, W_e, W_d)
    for step in range(steps + 1):
        w_e.requires_grad_(True)
        w_d.requires_grad_(True)
        cost = linear_autoencoder_loss(w_e, w_d, cov)
        if step % every == 0 or step == steps:
            recorded.append((step, cost.item(), w_e.detach(), w_d.detach()))
        if step < steps:  # one gradient-descent step
            grad_e, grad_d = torch.autograd.grad(cost, (w_e, w_d))
            w_e = w_e.detach() - lr * grad_e
            w_d = w_d.detach() - lr * grad_d
    recorded_steps, costs, encoder_weights, decoder_weights = zip(*recorded)
    return LinearAutoencoderRun(
        encoder_weight=encoder_weights[-1],
        decoder_weight=decoder_weights[-1],
        steps=torch.tensor(recorded_steps),
        costs=torch.tensor(costs, dtype=cov.dtype),
        encoder_weights=torch.stack(encoder_weights),
        decoder_weights=torch.stack(decoder_weights),
    )
