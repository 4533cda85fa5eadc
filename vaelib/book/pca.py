r"""Principal component analysis, and the cost of a linear autoencoder in terms of the covariance.

PCA (Chapter 1) finds the :math:`J` orthonormal directions :math:`V = (v_1, \dots, v_J) \in
\mathbb R^{D\times J}` that lose the least squared error when the data are projected onto them:
the code of :math:`x` is :math:`z = (x - \bar x) V`, its reconstruction
:math:`\hat x = \bar x + z V^\top`, and the minimum of the mean squared error

.. math::
    \frac1N \sum_{n=1}^N \lVert x_n - \hat x_n \rVert^2 = \sum_{j > J} \lambda_j

is reached by the eigenvectors of the covariance matrix
:math:`C = \frac1N \sum_n (x_n - \bar x)^\top (x_n - \bar x)` with the :math:`J` largest
eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \dots` (Bishop 2006, Sec. 12.1).

Chapter 3 shows that a linear autoencoder with a code of :math:`J` numbers learns the subspace
of the top :math:`J` components: :func:`linear_autoencoder_loss` computes its cost from :math:`C`
so that full-batch gradient descent is cheap, and :func:`train_linear_autoencoder` runs that
descent.

Rows are examples: ``x`` is ``(N, D)``, codes ``z`` are ``(N, J)``. The covariance and the
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
    "with_directions",
]


class PCA(NamedTuple):
    """A fitted PCA.

    Attributes:
        mean: :math:`\\bar x`, ``(D,)``.
        components: :math:`V = (v_1, \\dots, v_J)`, ``(D, J)``, orthonormal columns, by
            decreasing variance.
        variances: :math:`\\lambda_1 \\ge \\dots \\ge \\lambda_J`, ``(J,)``: the variance of the
            data along each component (eigenvalues of the covariance matrix :math:`C`).
        total_variance: :math:`\\operatorname{tr} C = \\sum_j \\lambda_j` over all ``D``
            directions, a 0-d tensor; ``variances / total_variance`` is the explained share.
    """

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor
    total_variance: torch.Tensor


def covariance(x: torch.Tensor) -> torch.Tensor:
    r"""The covariance matrix :math:`C = \frac1N \sum_n (x_n - \bar x)^\top (x_n - \bar x)` of the
    rows of ``x`` ``(N, D)``: ``(D, D)``, in ``x``'s dtype, with :math:`1/N` (not :math:`1/(N-1)`)."""
    check_data(x)
    if x.dim() != 2:
        raise ValueError(f"x must be a matrix (N, D), got shape {tuple(x.shape)}.")
    centred = x - x.mean(0)
    return centred.T @ centred / len(x)


def pca(x: torch.Tensor, num_components: int) -> PCA:
    r"""Fit a PCA with :math:`J` = ``num_components`` components to ``x`` ``(N, D)``: the top
    eigenvectors of the covariance.

    Forms :math:`C` ``(D, D)`` with :func:`covariance` and takes its eigendecomposition; the
    :math:`J` eigenvectors with the largest eigenvalues are the components and the eigenvalues
    their variances. Each component's sign is fixed so that its
    largest-magnitude entry is positive, which makes the result reproducible. Computed in
    ``x``'s dtype; use float64 for tight comparisons (the smallest eigenvalues of a float32
    covariance carry an absolute error of about :math:`10^{-7} \lambda_1`).
    """
    check_data(x)
    check_positive_int(num_components, "num_components")
    if x.dim() != 2:
        raise ValueError(f"x must be a matrix (N, D), got shape {tuple(x.shape)}.")
    d = x.shape[1]
    if num_components > d:
        raise ValueError(f"num_components must be at most D = {d}, got {num_components}.")
    cov = covariance(x)  # C, (D, D)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    # rounding can make a zero eigenvalue slightly negative
    variances = eigenvalues.flip(0)[:num_components].clamp(min=0.0)
    components = eigenvectors.flip(1)[:, :num_components]  # V, (D, J)
    idx = components.abs().argmax(0)
    signs = torch.sign(components[idx, torch.arange(num_components)])
    components = components * torch.where(signs == 0, 1.0, signs)
    return PCA(x.mean(0), components, variances, torch.trace(cov))


def truncate(p: PCA, num_components: int) -> PCA:
    """The PCA ``p`` restricted to its first :math:`J` = ``num_components`` components (and
    their :math:`J` variances).

    Fitting :math:`J` components from the start gives the same result; this only saves a second
    eigendecomposition when a larger fit is at hand.
    """
    check_positive_int(num_components, "num_components")
    if num_components > len(p.variances):
        raise ValueError(
            f"num_components must be at most the {len(p.variances)} components of p, "
            f"got {num_components}."
        )
    return PCA(
        p.mean, p.components[:, :num_components], p.variances[:num_components], p.total_variance
    )


def with_directions(x: torch.Tensor, directions: torch.Tensor) -> PCA:
    r"""The linear description of ``x`` ``(N, D)`` by given orthonormal directions, as a
    :class:`PCA` that :func:`pca_encode` and :func:`pca_decode` accept.

    ``directions`` ``(D, J)`` must have orthonormal columns; they become the components, and
    the variances are the data's variances along them, the diagonal of :math:`V^\top C V` (not
    sorted). With the top :math:`J` eigenvectors of :math:`C` this is :func:`pca` ``(x, J)``;
    with any other :math:`V` it gives the codes :math:`z = (x - \bar x) V` and reconstructions
    :math:`\hat x = \bar x + z V^\top` of that :math:`V`, so that its reconstruction error can be
    compared with PCA's.
    """
    check_data(x)
    if x.dim() != 2 or directions.dim() != 2 or directions.shape[0] != x.shape[1]:
        raise ValueError(
            f"expected x (N, D) and directions (D, J), got {tuple(x.shape)} and "
            f"{tuple(directions.shape)}."
        )
    gram = directions.T @ directions
    eye = torch.eye(directions.shape[1], dtype=gram.dtype)
    if not torch.allclose(gram, eye, rtol=0, atol=torch.finfo(gram.dtype).eps ** 0.5):
        raise ValueError("directions must have orthonormal columns (V^T V = I).")
    cov = covariance(x)
    variances = ((cov @ directions) * directions).sum(0)  # diag(V^T C V), (J,)
    return PCA(x.mean(0), directions, variances, torch.trace(cov))


def pca_encode(p: PCA, x: torch.Tensor) -> torch.Tensor:
    r"""Codes :math:`z = (x - \bar x) V`: ``(N, D)`` → ``(N, J)``."""
    return (x - p.mean) @ p.components


def pca_decode(p: PCA, z: torch.Tensor) -> torch.Tensor:
    r"""Reconstructions :math:`\hat x = \bar x + z V^\top`: ``(N, J)`` → ``(N, D)``."""
    return p.mean + z @ p.components.T


def linear_autoencoder_loss(
    encoder_weight: torch.Tensor, decoder_weight: torch.Tensor, cov: torch.Tensor
) -> torch.Tensor:
    r"""Mean squared error per example of the linear autoencoder, from the covariance matrix.

    The linear autoencoder with a code of :math:`J` numbers, :math:`z = (x - \bar x) W_e`, and
    output :math:`\hat x = \bar x + z W_d` (the best biases for any weights) has the cost

    .. math::
        \frac1N \sum_{n=1}^N \lVert (x_n - \bar x) W_e W_d - (x_n - \bar x) \rVert^2
        = \operatorname{tr}\bigl((W_e W_d - I)^\top C\, (W_e W_d - I)\bigr)
        = \operatorname{tr} C - 2 \operatorname{tr}(W_d C W_e)
          + \operatorname{tr}\bigl((W_e^\top C W_e)(W_d W_d^\top)\bigr),

    evaluated in :math:`O(D^2 J)` without ever forming a :math:`D \times D` product of weights.

    Args:
        encoder_weight: :math:`W_e`, ``(D, J)`` (the book's convention: ``z = x @ W_e``; a
            ``torch.nn.Linear`` stores its transpose).
        decoder_weight: :math:`W_d`, ``(J, D)``.
        cov: :math:`C`, ``(D, D)``, symmetric.

    Returns:
        A 0-d tensor, differentiable in both weights.
    """
    d, z_dim = encoder_weight.shape
    if decoder_weight.shape != (z_dim, d) or cov.shape != (d, d):
        raise ValueError(
            f"expected encoder_weight (D, J), decoder_weight (J, D) and cov (D, D), got "
            f"{tuple(encoder_weight.shape)}, {tuple(decoder_weight.shape)}, {tuple(cov.shape)}."
        )
    c_we = cov @ encoder_weight  # (D, J)
    return (
        torch.trace(cov)
        - 2 * torch.sum(decoder_weight.T * c_we)  # tr(W_d C W_e)
        + torch.sum((encoder_weight.T @ c_we) * (decoder_weight @ decoder_weight.T))
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
        cov: :math:`C`, ``(D, D)``; the weights take its dtype (use float64).
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
