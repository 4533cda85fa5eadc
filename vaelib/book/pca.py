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

Chapter 3 shows that a linear autoencoder learns the same subspace; :func:`linear_autoencoder_loss`
computes its cost from :math:`S` so that full-batch gradient descent is cheap.

Rows are examples: ``x`` is ``(N, D)``, codes ``z`` are ``(N, k)``. The variances use
:math:`1/N` (not :math:`1/(N-1)`), so that they add up to the mean squared error per example.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vaelib._checks import check_data, check_positive_int

__all__ = ["PCA", "linear_autoencoder_loss", "pca", "pca_decode", "pca_encode"]


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


def pca(x: torch.Tensor, k: int) -> PCA:
    r"""Fit a ``k``-component PCA to ``x`` ``(N, D)``: the top eigenvectors of the covariance.

    Forms :math:`S = \frac1N (X - \bar x)^\top (X - \bar x)` ``(D, D)`` and takes its
    eigendecomposition; the ``k`` eigenvectors with the largest eigenvalues are the components
    and the eigenvalues their variances. Each component's sign is fixed so that its
    largest-magnitude entry is positive, which makes the result reproducible. Computed in
    ``x``'s dtype; use float64 for tight comparisons (the smallest eigenvalues of a float32
    covariance carry an absolute error of about :math:`10^{-7} \lambda_1`).
    """
    check_data(x)
    check_positive_int(k, "k")
    if x.dim() != 2:
        raise ValueError(f"x must be a matrix (N, D), got shape {tuple(x.shape)}.")
    n, d = x.shape
    if k > d:
        raise ValueError(f"k must be at most D = {d}, got {k}.")
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / n  # (D, D)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    variances = eigenvalues.flip(0)[:k].clamp(min=0.0)  # rounding can make zeros negative
    components = eigenvectors.flip(1)[:, :k]  # (D, k)
    idx = components.abs().argmax(0)
    signs = torch.sign(components[idx, torch.arange(k)])
    components = components * torch.where(signs == 0, 1.0, signs)
    return PCA(mean, components, variances, torch.trace(cov))


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

    For centred data :math:`\tilde x = x - \bar x`, the linear autoencoder with code
    :math:`z = \tilde x W_e` and output :math:`\hat x = \bar x + z W_d` has the cost

    .. math::
        \frac1N \sum_{n=1}^N \lVert \tilde x_n W_e W_d - \tilde x_n \rVert^2
        = \operatorname{tr}\bigl((W_e W_d - I)^\top S\, (W_e W_d - I)\bigr)
        = \operatorname{tr} S - 2 \operatorname{tr}(W_d S W_e)
          + \operatorname{tr}\bigl((W_e^\top S W_e)(W_d W_d^\top)\bigr),

    evaluated in :math:`O(D^2 k)` without ever forming a :math:`D \times D` product of weights.

    Args:
        encoder_weight: :math:`W_e`, ``(D, k)`` (the book's convention: ``z = x @ W_e``; a
            ``torch.nn.Linear`` stores its transpose).
        decoder_weight: :math:`W_d`, ``(k, D)``.
        cov: :math:`S`, ``(D, D)``, symmetric.

    Returns:
        A 0-d tensor, differentiable in both weights.
    """
    d, k = encoder_weight.shape
    if decoder_weight.shape != (k, d) or cov.shape != (d, d):
        raise ValueError(
            f"expected encoder_weight (D, k), decoder_weight (k, D) and cov (D, D), got "
            f"{tuple(encoder_weight.shape)}, {tuple(decoder_weight.shape)}, {tuple(cov.shape)}."
        )
    s_we = cov @ encoder_weight  # (D, k)
    return (
        torch.trace(cov)
        - 2 * torch.sum(decoder_weight.T * s_we)  # tr(W_d S W_e)
        + torch.sum((encoder_weight.T @ s_we) * (decoder_weight @ decoder_weight.T))
    )
