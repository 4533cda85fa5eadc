r"""Measurements of the warm-up chapters: accuracy, cluster purity, ROC curves and subspace angles.

* :func:`accuracy`, :func:`cluster_purity` — how well predicted classes or clusters match the
  labels (Chapter 1).
* :func:`roc_curve`, :func:`roc_auc` — how well a score separates positives from negatives, e.g.
  a reconstruction error flagging anomalies (Chapter 3); :func:`roc_auc_null_std` — how far
  from 0.5 the AUC of a score without information scatters.
* :func:`principal_angles`, :func:`subspace_distance` — how far apart two linear subspaces are,
  e.g. the span of a linear autoencoder's decoder and the top principal components (Chapter 3).
* :func:`roc_auc_difference` — the difference of two scores' AUCs on the same examples, with a
  paired bootstrap standard error, e.g. an autoencoder's anomaly score against PCA's (Chapter 3).
* :func:`nearest_distances` — how far each point lies from its nearest neighbour in a reference
  set, e.g. random codes from the codes of the training data (Chapter 3).
* :func:`knn_predict`, :func:`knn_accuracy` — classify by a vote of the nearest training
  examples, e.g. to measure how well codes separate the classes (Chapter 3).

All functions take tensors or arrays and return Python floats or tensors; none has side effects.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from scipy.stats import rankdata

__all__ = [
    "accuracy",
    "cluster_purity",
    "knn_accuracy",
    "knn_predict",
    "nearest_distances",
    "principal_angles",
    "roc_auc",
    "roc_auc_difference",
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


def roc_auc_difference(
    scores_a: torch.Tensor | np.ndarray,
    scores_b: torch.Tensor | np.ndarray,
    is_positive: torch.Tensor | np.ndarray,
    num_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    r"""The difference of two scores' AUCs on the same examples, and its bootstrap standard error.

    Returns :math:`\mathrm{AUC}_a - \mathrm{AUC}_b` (:func:`roc_auc` of each score) and the
    standard deviation of that difference over ``num_resamples`` *paired* bootstrap resamples:
    each resample draws :math:`n^+` positives from the positives and :math:`n^-` negatives from
    the negatives, with replacement, and recomputes both AUCs on the same drawn examples. Pairing
    matters: two scores of the same examples usually err on the same hard examples, and the
    difference then scatters less than either AUC. Keeping :math:`n^+` and :math:`n^-` fixed
    (stratified resampling) treats the numbers of positives and negatives as given, as
    :func:`roc_auc_null_std` does.

    Shapes: ``scores_a``, ``scores_b`` (higher means "more likely positive") and ``is_positive``
    ``(N,)``. The resamples come from a NumPy generator seeded with ``seed``.
    """
    a = _as_numpy_1d(scores_a, "scores_a").astype(np.float64)
    b = _as_numpy_1d(scores_b, "scores_b").astype(np.float64)
    positive = _binary_targets(is_positive)
    _check_same_length(a, positive, "scores_a and is_positive")
    _check_same_length(b, positive, "scores_b and is_positive")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("scores contain NaN or infinite values.")
    if num_resamples < 2:
        raise ValueError(f"num_resamples must be at least 2, got {num_resamples}.")
    rng = np.random.default_rng(seed)
    pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
    n_pos, n_neg = len(pos_idx), len(neg_idx)
    idx = np.concatenate(  # (num_resamples, N): the positives first, then the negatives
        [rng.choice(pos_idx, (num_resamples, n_pos)), rng.choice(neg_idx, (num_resamples, n_neg))],
        axis=1,
    )

    def resampled_aucs(scores: np.ndarray) -> np.ndarray:  # (num_resamples,)
        ranks = rankdata(scores[idx], axis=1)  # ties averaged, within each resample
        return (ranks[:, :n_pos].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    differences = resampled_aucs(a) - resampled_aucs(b)
    return roc_auc(a, positive) - roc_auc(b, positive), float(differences.std(ddof=1))


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


def knn_predict(
    train_codes: torch.Tensor,
    train_labels: torch.Tensor,
    test_codes: torch.Tensor,
    k: int,
) -> torch.Tensor:
    r"""The class of each test example by a vote of its ``k`` nearest training examples.

    Distances are Euclidean, computed in float64 as
    :math:`(\lVert a\rVert^2 + \lVert b\rVert^2 - 2 a^\top b)^{1/2}` (fast; distances that are
    equal in exact arithmetic can differ by rounding, except for small integer coordinates).
    Ties are broken by two documented rules:

    * among training examples at the same distance as the ``k``-th nearest one, those with the
      smaller index in ``train_codes`` count as nearer (so exactly ``k`` examples vote);
    * a tied vote goes to the smallest label among the tied ones (as in scikit-learn's
      ``KNeighborsClassifier`` with uniform weights).

    Shapes: ``train_codes`` ``(N, J)``, ``train_labels`` ``(N,)`` integer classes,
    ``test_codes`` ``(n, J)``; returns ``(n,)`` labels, with ``train_labels``' dtype.
    """
    train_codes, test_codes = torch.as_tensor(train_codes), torch.as_tensor(test_codes)
    train_labels = torch.as_tensor(train_labels)
    matrices = train_codes.dim() == 2 and test_codes.dim() == 2
    if not matrices or train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(
            f"train_codes (N, J) and test_codes (n, J) must be matrices with the same number of "
            f"columns, got shapes {tuple(train_codes.shape)} and {tuple(test_codes.shape)}."
        )
    if train_labels.shape != (len(train_codes),):
        raise ValueError(
            f"train_labels must have shape ({len(train_codes)},), got {tuple(train_labels.shape)}."
        )
    is_integer = isinstance(k, numbers.Integral) and not isinstance(k, bool)
    if not is_integer or not 1 <= k <= len(train_codes):
        raise ValueError(f"k must be an integer from 1 to N = {len(train_codes)}, got {k!r}.")
    k = int(k)
    classes, label_idx = torch.unique(train_labels, sorted=True, return_inverse=True)
    one_hot = torch.nn.functional.one_hot(label_idx, len(classes)).to(torch.float64)  # (N, C)
    reference = train_codes.detach().to(torch.float64)
    predicted = []
    for queries in test_codes.detach().to(torch.float64).split(1024):  # bounded memory
        dist = torch.cdist(queries, reference, compute_mode="use_mm_for_euclid_dist")  # (b, N)
        kth = dist.topk(k, dim=1, largest=False).values[:, -1:]  # (b, 1) the k-th smallest
        nearer = dist < kth  # (b, N) fewer than k examples
        tied = dist == kth  # at the k-th distance: take the first ones, by index
        still_needed = k - nearer.sum(1, keepdim=True)  # (b, 1), at least 1
        votes = nearer | (tied & (tied.cumsum(1) <= still_needed))  # exactly k per row
        counts = votes.to(torch.float64) @ one_hot  # (b, C) votes per class
        predicted.append(classes[counts.argmax(1)])  # argmax: the first, i.e. smallest, label
    return torch.cat(predicted)


def knn_accuracy(
    train_codes: torch.Tensor,
    train_labels: torch.Tensor,
    test_codes: torch.Tensor,
    test_labels: torch.Tensor,
    k: int,
) -> float:
    r"""Share of test examples whose :func:`knn_predict` vote (``k`` neighbours) is their label.

    A measure of how well the codes (features) separate the classes: chance is about the share
    of the most common class. Shapes: ``train_codes`` ``(N, J)``, ``train_labels`` ``(N,)``,
    ``test_codes`` ``(n, J)``, ``test_labels`` ``(n,)``.
    """
    predicted = knn_predict(train_codes, train_labels, test_codes, k)
    return accuracy(predicted, torch.as_tensor(test_labels))


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
