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
    nearest_distances,
    principal_angles,
    roc_auc,
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
