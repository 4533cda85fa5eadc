r"""Measurements of the warm-up chapters: accuracy, cluster purity, ROC curves and subspace angles.

* :func:`accuracy`, :func:`cluster_purity` — how well predicted classes or clusters match the
  labels (Chapter 1).
* :func:`roc_curve`, :func:`roc_auc` — how well a score separates positives from negatives, e.g.
  a reconstruction error flagging anomalies (Chapter 3); :func:`roc_auc_null_std` — how far
  from 0.5 the AUC of a score without information scatters.
* :func:`principal_angles`, :func:`subspace_distance` — how far apart two linear subspaces are,
  e.g. the span of a linear autoencoder's decoder and the top principal components (Chapter 3).
* :func:`nearest_distances` — how far each point lies from its nearest neighbour in a reference
  set, e.g. random codes from the codes of the training data (Chapter 3).

All functions take tensors or arrays and return Python floats or tensors; none has side effects.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata

__all__ = [
    "accuracy",
    "cluster_purity",
    "nearest_distances",
    "principal_angles",
    "roc_auc",
    "roc_auc_null_std",
    "roc_curve",
    "subspace_distance",
]


def _as_numpy_1d(values: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {arr.shape}.")
    return arr


def _check_same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{names} must have the same length, got {len(a)} and {len(b)}.")
    if len(a) == 0:
        raise ValueError(f"{names} are empty.")


def accuracy(predicted: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    r"""Share of correct predictions, :math:`\frac1N \sum_n [\hat t_n = t_n]`.

    Shapes: ``predicted`` and ``target`` ``(N,)`` class labels.
    """
    predicted = _as_numpy_1d(predicted, "predicted")
    target = _as_numpy_1d(target, "target")
    _check_same_length(predicted, target, "predicted and target")
    return float(np.mean(predicted == target))


def cluster_purity(
    labels: torch.Tensor | np.ndarray, clusters: torch.Tensor | np.ndarray
) -> float:
    r"""Purity of a clustering: each cluster votes for its most common label.

    .. math::
        \text{purity} = \frac1N \sum_k \max_c \bigl|\{n : \text{cluster}_n = k,\ t_n = c\}\bigr|

    1 means every cluster holds one class only; a clustering that ignores the labels scores
    about the share of the largest class. Purity never decreases with more clusters (one
    cluster per example scores 1), so compare clusterings with the same number of clusters.

    Shapes: ``labels`` (the true classes) and ``clusters`` (cluster indices) ``(N,)``.
    """
    labels = _as_numpy_1d(labels, "labels")
    clusters = _as_numpy_1d(clusters, "clusters")
    _check_same_length(labels, clusters, "labels and clusters")
    _, label_idx = np.unique(labels, return_inverse=True)
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    counts = np.zeros((cluster_idx.max() + 1, label_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_idx, label_idx), 1)  # contingency table: clusters × labels
    return float(counts.max(axis=1).sum() / len(labels))


def _binary_targets(is_positive: torch.Tensor | np.ndarray) -> np.ndarray:
    positive = _as_numpy_1d(is_positive, "is_positive")
    if not np.all((positive == 0) | (positive == 1)):
        raise ValueError("is_positive must hold only 0/1 or False/True.")
    positive = positive.astype(bool)
    if positive.all() or not positive.any():
        raise ValueError("the ROC needs at least one positive and one negative example.")
    return positive


def roc_auc(scores: torch.Tensor | np.ndarray, is_positive: torch.Tensor | np.ndarray) -> float:
    r"""Area under the ROC curve: the probability that a random positive scores higher.

    .. math::
        \mathrm{AUC} = P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)
        = \frac{R^+ - n^+(n^+ + 1)/2}{n^+ n^-},

    with :math:`R^+` the sum of the ranks of the positives among all scores (ties get their
    average rank): the Mann–Whitney U statistic divided by :math:`n^+ n^-`. 0.5 is chance,
    1 a perfect separation.

    Shapes: ``scores`` (higher means "more likely positive") and ``is_positive`` ``(N,)``.
    """
    scores = _as_numpy_1d(scores, "scores").astype(np.float64)
    positive = _binary_targets(is_positive)
    _check_same_length(scores, positive, "scores and is_positive")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values.")
    ranks = rankdata(scores)  # 1-based, ties averaged
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_null_std(is_positive: torch.Tensor | np.ndarray) -> float:
    r"""Standard deviation of the AUC of a score that carries no information.

    If the scores of the :math:`n^+` positives and :math:`n^-` negatives are exchangeable (all
    orderings equally likely, no ties), the AUC is the Mann–Whitney statistic divided by
    :math:`n^+ n^-`; its mean is :math:`\tfrac12` and its standard deviation

    .. math::
        \sqrt{\frac{n^+ + n^- + 1}{12\, n^+ n^-}} .

    An AUC several of these away from 0.5 is not chance.

    Shapes: ``is_positive`` ``(N,)``, 0/1 or False/True.
    """
    positive = _binary_targets(is_positive)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


def roc_curve(
    scores: torch.Tensor | np.ndarray, is_positive: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve: false- and true-positive rates as the threshold sweeps down the scores.

    Flag every example whose score is at least a threshold; lowering the threshold from
    above the largest score to the smallest traces the curve from (0, 0) to (1, 1). Tied
    scores are flagged together (one diagonal segment), so the trapezoidal area under the
    returned points equals :func:`roc_auc`.

    Returns:
        ``(fpr, tpr)``, each ``(n + 1,)`` for ``n`` distinct scores, starting at 0.
    """
    scores = _as_numpy_1d(scores, "scores").astype(np.float64)
    positive = _binary_targets(is_positive)
    _check_same_length(scores, positive, "scores and is_positive")
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]  # keep one point per distinct score
    tp = np.cumsum(positive)[last_of_tie]
    fp = np.cumsum(~positive)[last_of_tie]
    tpr = np.r_[0.0, tp / positive.sum()]
    fpr = np.r_[0.0, fp / (~positive).sum()]
    return fpr, tpr


def _orthonormal_basis(a: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        a = torch.as_tensor(np.asarray(a))
    if a.dim() != 2 or a.shape[1] == 0 or a.shape[1] > a.shape[0]:
        raise ValueError(
            f"{name} must be a (D, k) matrix whose k <= D columns span the subspace, "
            f"got shape {tuple(a.shape)}."
        )
    q, r = torch.linalg.qr(a.to(torch.float64))
    diag = torch.diagonal(r).abs()
    if diag.min() <= 1e-12 * diag.max():
        raise ValueError(f"the columns of {name} are linearly dependent (rank < {a.shape[1]}).")
    return q


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The principal angles between the column spaces of ``a`` and ``b``, in radians, ascending.

    With orthonormal bases :math:`Q_a, Q_b` (QR), the cosines of the angles are the singular
    values of :math:`Q_a^\top Q_b` and the sines those of :math:`Q_b - Q_a Q_a^\top Q_b`; the
    angle is taken as :math:`\operatorname{atan2}(\sin, \cos)`, which stays accurate for tiny
    angles (where :math:`\arccos` of a cosine near 1 would lose half the digits).

    Args:
        a: ``(D, k_a)``, columns spanning the first subspace (any basis, not only orthonormal).
        b: ``(D, k_b)``, the second.

    Returns:
        ``(min(k_a, k_b),)`` angles in :math:`[0, \pi/2]`, float64. All zero iff one subspace
        contains the other; :math:`\pi/2` for a direction orthogonal to the other subspace.
    """
    qa, qb = _orthonormal_basis(a, "a"), _orthonormal_basis(b, "b")
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"a and b live in different spaces: D = {qa.shape[0]} vs {qb.shape[0]}.")
    if qb.shape[1] > qa.shape[1]:
        qa, qb = qb, qa  # qb is the smaller subspace: its residual has exactly k_b sines
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0)  # descending
    sines = torch.linalg.svdvals(qb - qa @ (qa.T @ qb)).clamp(max=1.0).flip(0)  # ascending
    return torch.atan2(sines, cosines)


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    r"""Euclidean distance from each row of ``queries`` to its nearest row of ``reference``.

    :math:`d_i = \min_k \lVert q_i - r_k \rVert`, e.g. for codes of size :math:`J`. Shapes:
    ``queries`` ``(n, J)``, ``reference`` ``(r, J)``; returns ``(n,)``.
    """
    if queries.dim() != 2 or reference.dim() != 2 or queries.shape[1] != reference.shape[1]:
        raise ValueError(
            f"queries (n, J) and reference (r, J) must be matrices with the same number of "
            f"columns, got shapes {tuple(queries.shape)} and {tuple(reference.shape)}."
        )
    distances = torch.cdist(queries, reference, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.min(dim=1).values


def subspace_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Distance between the column spaces of ``a`` and ``b`` (same dimension ``k``).

    .. math::
        d(a, b) = \tfrac{1}{\sqrt 2}\,\lVert P_a - P_b \rVert_F
        = \Bigl(\sum_{i=1}^k \sin^2\theta_i\Bigr)^{1/2},

    where :math:`P = Q Q^\top` is the orthogonal projection onto a subspace and
    :math:`\theta_i` are the :func:`principal_angles`. 0 for the same subspace,
    :math:`\sqrt k` for orthogonal ones.

    Shapes: ``a``, ``b`` ``(D, k)``.
    """
    qa, qb = _orthonormal_basis(a, "a"), _orthonormal_basis(b, "b")
    if qa.shape != qb.shape:
        raise ValueError(
            f"subspace_distance compares subspaces of the same dimension in the same space, "
            f"got shapes {tuple(qa.shape)} and {tuple(qb.shape)}; use principal_angles."
        )
    diff = qa @ qa.T - qb @ qb.T  # (D, D)
    return float(torch.linalg.matrix_norm(diff) / math.sqrt(2.0))
