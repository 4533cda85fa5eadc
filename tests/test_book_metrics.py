"""vaelib.book.metrics against scikit-learn and scipy (independent implementations) and exact cases."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import subspace_angles

from vaelib.book.metrics import (
    accuracy,
    cluster_purity,
    knn_accuracy,
    knn_predict,
    nearest_distances,
    principal_angles,
    roc_auc,
    roc_auc_difference,
    roc_auc_null_std,
    roc_curve,
    subspace_distance,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_accuracy_counts_matches():
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])


def test_cluster_purity_against_the_contingency_table():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    clusters = (labels + (rng.random(500) < 0.3) * rng.integers(0, 10, 500)) % 7
    table = sklearn_metrics.cluster.contingency_matrix(labels, clusters)  # labels × clusters
    assert cluster_purity(labels, clusters) == pytest.approx(table.max(axis=0).sum() / 500)
    assert cluster_purity(labels, labels) == 1.0
    assert cluster_purity(labels, np.zeros(500)) == pytest.approx(np.bincount(labels).max() / 500)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(p for _, p in rows) < len(rows)
    )
)
def test_roc_auc_matches_sklearn_with_ties(rows):
    scores = np.array([s for s, _ in rows], dtype=float)  # few distinct values: many ties
    positive = np.array([p for _, p in rows])
    expected = sklearn_metrics.roc_auc_score(positive, scores)
    assert roc_auc(scores, positive) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(-scores, positive) == pytest.approx(1 - expected, abs=1e-12)
    fpr, tpr = roc_curve(scores, positive)
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-12)


def test_roc_curve_matches_sklearn_points_and_ends():
    rng = np.random.default_rng(1)
    positive = rng.random(300) < 0.2
    scores = rng.normal(size=300) + positive
    fpr, tpr = roc_curve(torch.tensor(scores), torch.tensor(positive))
    sk_fpr, sk_tpr, _ = sklearn_metrics.roc_curve(positive, scores, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0.1, 0.2], [0, 2])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 4))
def test_principal_angles_match_scipy(seed, ka, kb):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(9, ka)), rng.normal(size=(9, kb))
    expected = np.sort(subspace_angles(a, b))
    got = principal_angles(torch.tensor(a), torch.tensor(b)).numpy()
    assert np.allclose(got, expected, atol=1e-10)


def test_principal_angles_are_accurate_for_tiny_angles():
    theta = 1e-9  # arccos of cos(1e-9) would give 0 or 2e-8 in float64
    a = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(theta)], [math.sin(theta)], [0.0]], dtype=torch.float64)
    assert principal_angles(a, b).item() == pytest.approx(theta, rel=1e-6)


def test_principal_angles_ignore_the_basis():
    rng = np.random.default_rng(2)
    a = torch.tensor(rng.normal(size=(20, 3)))
    mixing = torch.tensor(rng.normal(size=(3, 3)))  # invertible with probability 1
    assert torch.allclose(principal_angles(a, a @ mixing), torch.zeros(3, dtype=torch.float64), atol=1e-7)
    orthogonal = torch.eye(6, dtype=torch.float64)
    angles = principal_angles(orthogonal[:, :2], orthogonal[:, 2:4])
    assert torch.allclose(angles, torch.full((2,), math.pi / 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="linearly dependent"):
        principal_angles(torch.ones(5, 2), a[:5])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_subspace_distance_is_the_norm_of_the_sines(seed, k):
    rng = np.random.default_rng(seed)
    a, b = torch.tensor(rng.normal(size=(10, k))), torch.tensor(rng.normal(size=(10, k)))
    sines = torch.sin(principal_angles(a, b))
    assert subspace_distance(a, b) == pytest.approx(float(sines.norm()), abs=1e-10)
    assert subspace_distance(a, a @ torch.tensor(rng.normal(size=(k, k)))) < 1e-7


def test_subspace_distance_needs_equal_dimensions():
    with pytest.raises(ValueError, match="same dimension"):
        subspace_distance(torch.randn(5, 2), torch.randn(5, 3))


@pytest.mark.parametrize("n_pos, n_neg", [(1, 1), (2, 3), (3, 4), (4, 4)])
def test_roc_auc_null_std_is_the_spread_over_all_orderings(n_pos, n_neg):
    from itertools import combinations

    n = n_pos + n_neg
    scores = np.arange(n, dtype=float)  # distinct scores; every set of positive ranks equally likely
    aucs = []
    for chosen in combinations(range(n), n_pos):
        positive = np.zeros(n, dtype=bool)
        positive[list(chosen)] = True
        aucs.append(roc_auc(scores, positive))
    positive = np.r_[np.ones(n_pos, dtype=bool), np.zeros(n_neg, dtype=bool)]
    assert np.mean(aucs) == pytest.approx(0.5)
    assert roc_auc_null_std(positive) == pytest.approx(np.std(aucs), rel=1e-12)
    assert roc_auc_null_std(torch.tensor(positive)) == roc_auc_null_std(positive)


def test_nearest_distances_against_a_loop():
    gen = torch.Generator().manual_seed(3)
    queries, reference = torch.randn(7, 3, generator=gen), torch.randn(11, 3, generator=gen)
    expected = torch.tensor([min((q - r).norm().item() for r in reference) for q in queries])
    assert torch.allclose(nearest_distances(queries, reference), expected, atol=1e-6)
    assert torch.equal(nearest_distances(reference, reference), torch.zeros(11))
    with pytest.raises(ValueError, match="same number of columns"):
        nearest_distances(torch.randn(4, 3), torch.randn(4, 2))


def _knn_by_loop(train, labels, test, k):
    """Brute force: sort the training examples by (distance, index), vote, smallest label wins."""
    predicted = []
    for q in test:
        order = sorted(range(len(train)), key=lambda i: (float(np.sum((train[i] - q) ** 2)), i))
        votes = {}
        for i in order[:k]:
            votes[int(labels[i])] = votes.get(int(labels[i]), 0) + 1
        best = max(votes.values())
        predicted.append(min(label for label, count in votes.items() if count == best))
    return np.array(predicted)


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_knn_predict_breaks_ties_as_documented(k):
    rng = np.random.default_rng(k)
    train = rng.integers(-2, 3, size=(40, 2)).astype(float)  # a 5 x 5 grid: many equal distances
    labels = rng.integers(3, 7, size=40)  # labels need not start at 0
    test = rng.integers(-2, 3, size=(30, 2)).astype(float)
    expected = _knn_by_loop(train, labels, test, k)
    got = knn_predict(torch.tensor(train), torch.tensor(labels), torch.tensor(test), k)
    assert np.array_equal(got.numpy(), expected)


def test_knn_accuracy_matches_sklearn_and_the_loop():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 3))
    train_labels, test_labels = rng.integers(0, 4, 200), rng.integers(0, 4, 80)
    train = centres[train_labels] + rng.normal(size=(200, 3))  # overlapping classes
    test = centres[test_labels] + rng.normal(size=(80, 3))
    for k in (1, 4, 10):  # k = 4 has tied votes, which both give to the smallest label
        knn = neighbors.KNeighborsClassifier(n_neighbors=k).fit(train, train_labels)
        got = knn_accuracy(torch.tensor(train, dtype=torch.float32), torch.tensor(train_labels),
                           torch.tensor(test, dtype=torch.float32), torch.tensor(test_labels), k)
        assert got == pytest.approx(knn.score(test, test_labels), abs=1e-12)
        expected = np.mean(_knn_by_loop(train, train_labels, test, k) == test_labels)
        assert got == pytest.approx(expected, abs=1e-12)


def test_knn_predict_recovers_the_training_labels_with_one_neighbour():
    gen = torch.Generator().manual_seed(4)
    train, labels = torch.randn(50, 5, generator=gen), torch.randint(0, 10, (50,), generator=gen)
    assert torch.equal(knn_predict(train, labels, train, 1), labels)
    assert knn_accuracy(train, labels, train, labels, 1) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(train, labels, train, 0)
    with pytest.raises(ValueError, match="same number of columns"):
        knn_predict(train, labels, train[:, :3], 1)


def _delong_se(a, b, positive):
    """DeLong et al. (1988): the standard error of AUC_a - AUC_b from the pairwise comparisons."""
    def components(s):
        pos, neg = s[positive], s[~positive]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # (n+, n-)
        return psi.mean(1), psi.mean(0)  # per positive, per negative

    (va_pos, va_neg), (vb_pos, vb_neg) = components(a), components(b)
    var = (np.var(va_pos - vb_pos, ddof=1) / positive.sum()
           + np.var(va_neg - vb_neg, ddof=1) / (~positive).sum())
    return math.sqrt(var)


def test_roc_auc_difference_against_delong():
    rng = np.random.default_rng(6)
    positive = np.r_[np.ones(100, dtype=bool), np.zeros(300, dtype=bool)]
    shared = rng.normal(size=400)  # both scores see the same examples: correlated errors
    a = positive + shared + 0.5 * rng.normal(size=400)
    b = 0.7 * positive + shared + 0.5 * rng.normal(size=400)
    difference, se = roc_auc_difference(a, b, positive, num_resamples=4000)
    assert difference == pytest.approx(roc_auc(a, positive) - roc_auc(b, positive), abs=1e-15)
    assert se == pytest.approx(_delong_se(a, b, positive), rel=0.1)  # bootstrap scatter ~1%
    unpaired = math.sqrt(_delong_se(a, np.zeros(400), positive) ** 2
                         + _delong_se(b, np.zeros(400), positive) ** 2)
    assert se < 0.8 * unpaired  # pairing removes the shared part


def test_roc_auc_difference_of_a_score_with_itself_is_exactly_zero():
    positive = torch.tensor([True, False, True, False, False])
    scores = torch.tensor([0.3, 0.1, 0.2, 0.2, 0.0])
    assert roc_auc_difference(scores, scores, positive, num_resamples=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same length"):
        roc_auc_difference(scores, scores[:4], positive)
