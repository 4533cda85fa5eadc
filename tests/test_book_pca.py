"""vaelib.book.pca against the eigendecomposition of the covariance, scikit-learn and direct sums."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelib.book.pca import (
    covariance,
    linear_autoencoder_loss,
    pca,
    pca_decode,
    pca_encode,
    train_linear_autoencoder,
    truncate,
    with_directions,
)


def _data(seed: int, n: int = 200, d: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 0.2, d, dtype=torch.float64)  # distinct variances
    return torch.randn(n, d, generator=gen, dtype=torch.float64) * scales + 1.5


def test_components_are_the_top_right_singular_vectors_of_the_centred_data():
    x = _data(0)
    p = pca(x, 3)
    centred = x - x.mean(0)
    _, singular_values, vt = torch.linalg.svd(centred, full_matrices=False)
    assert torch.allclose(p.variances, singular_values[:3] ** 2 / len(x), atol=1e-10)
    overlap = (p.components.T @ vt[:3].T).abs()  # equal up to sign
    assert torch.allclose(overlap, torch.eye(3, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(p.components.T @ p.components, torch.eye(3, dtype=torch.float64))
    assert p.total_variance.item() == pytest.approx((singular_values**2).sum().item() / len(x))


def test_matches_sklearn_up_to_sign_and_the_variance_convention():
    decomposition = pytest.importorskip("sklearn.decomposition")
    x = _data(1)
    p = pca(x, 4)
    reference = decomposition.PCA(n_components=4).fit(x.numpy())
    overlap = np.abs(p.components.numpy().T @ reference.components_.T)
    assert np.allclose(overlap, np.eye(4), atol=1e-8)
    n = len(x)  # scikit-learn divides by N - 1, vaelib by N
    assert np.allclose(p.variances.numpy(), reference.explained_variance_ * (n - 1) / n)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_reconstruction_error_is_the_sum_of_the_discarded_variances(seed, num_components):
    x = _data(seed)
    p = pca(x, num_components)
    full = pca(x, x.shape[1])
    x_hat = pca_decode(p, pca_encode(p, x))
    error = ((x_hat - x) ** 2).sum(1).mean()
    discarded = full.variances[num_components:].sum().item()
    assert error.item() == pytest.approx(discarded, rel=1e-9, abs=1e-12)


def test_signs_are_fixed():
    x = _data(2)
    p = pca(x, 3)
    rows = p.components.abs().argmax(0)
    assert (p.components[rows, torch.arange(3)] > 0).all()
    assert torch.equal(pca(-x + 0.0, 3).components, p.components)  # same subspace, same basis


def test_rejects_too_many_components():
    with pytest.raises(ValueError, match="at most"):
        pca(torch.randn(4, 6), 7)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_linear_autoencoder_loss_equals_the_mean_over_the_data(seed, z_dim):
    x = _data(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    w_e = torch.randn(6, z_dim, generator=gen, dtype=torch.float64)
    w_d = torch.randn(z_dim, 6, generator=gen, dtype=torch.float64)
    centred = x - x.mean(0)
    cov = centred.T @ centred / len(x)
    direct = ((centred @ w_e @ w_d - centred) ** 2).sum(1).mean()
    assert linear_autoencoder_loss(w_e, w_d, cov).item() == pytest.approx(direct.item(), rel=1e-10)


def test_linear_autoencoder_loss_gradient_matches_the_direct_form():
    x = _data(3)
    centred = x - x.mean(0)
    cov = centred.T @ centred / len(x)
    w_e = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    w_d = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    fast = torch.autograd.grad(linear_autoencoder_loss(w_e, w_d, cov), (w_e, w_d))
    direct = ((centred @ w_e @ w_d - centred) ** 2).sum(1).mean()
    slow = torch.autograd.grad(direct, (w_e, w_d))
    assert all(torch.allclose(a, b) for a, b in zip(fast, slow))


def test_linear_autoencoder_loss_checks_shapes():
    with pytest.raises(ValueError, match="expected encoder_weight"):
        linear_autoencoder_loss(torch.randn(6, 2), torch.randn(6, 2), torch.eye(6))


def test_covariance_divides_by_n_and_is_what_pca_decomposes():
    x = _data(4)
    cov = covariance(x)
    assert torch.allclose(cov, torch.cov(x.T, correction=0), atol=1e-12)
    p = pca(x, 6)
    rebuilt = p.components @ torch.diag(p.variances) @ p.components.T
    assert torch.allclose(rebuilt, cov, atol=1e-10)
    assert p.total_variance.item() == pytest.approx(torch.trace(cov).item())
    with pytest.raises(ValueError, match="matrix"):
        covariance(torch.randn(3, 4, 5))


def test_truncate_equals_a_fit_with_fewer_components():
    x = _data(5)
    big, small = pca(x, 5), pca(x, 2)
    cut = truncate(big, 2)
    assert cut.components.shape == (6, 2) and cut.variances.shape == (2,)
    for a, b in zip(cut, small):
        assert torch.allclose(a, b, atol=1e-10)
    assert big.components.shape == (6, 5)  # the original is left alone
    with pytest.raises(ValueError, match="at most"):
        truncate(big, 6)


def test_with_directions_of_the_top_eigenvectors_is_pca():
    x = _data(9)
    p = pca(x, 3)
    same = with_directions(x, p.components)
    for a, b in zip(same, p):
        assert torch.allclose(a, b, atol=1e-10)


def test_with_directions_gives_the_projection_onto_any_orthonormal_directions():
    x = _data(10)
    gen = torch.Generator().manual_seed(0)
    directions, _ = torch.linalg.qr(torch.randn(6, 2, generator=gen, dtype=torch.float64))
    q = with_directions(x, directions)
    centred = x - x.mean(0)
    projected = centred @ directions @ directions.T  # the orthogonal projection, by hand
    assert torch.allclose(pca_decode(q, pca_encode(q, x)), x.mean(0) + projected, atol=1e-12)
    assert torch.allclose(q.variances, (centred @ directions).var(0, unbiased=False), atol=1e-12)
    error = ((x - pca_decode(q, pca_encode(q, x))) ** 2).sum(1).mean()
    assert error.item() == pytest.approx((q.total_variance - q.variances.sum()).item(), rel=1e-10)
    best = pca(x, 2)  # no two directions lose less than the top two eigenvectors
    assert q.total_variance - q.variances.sum() > best.total_variance - best.variances.sum()
    with pytest.raises(ValueError, match="orthonormal"):
        with_directions(x, 2 * directions)
    with pytest.raises(ValueError, match="expected x"):
        with_directions(x, directions.T)


def test_train_linear_autoencoder_is_gradient_descent_on_the_cost():
    x = _data(6)
    cov = covariance(x)
    run = train_linear_autoencoder(cov, 2, steps=3, lr=0.01, init_std=0.1, seed=7, every=2)
    assert run.steps.tolist() == [0, 2, 3]
    gen = torch.Generator().manual_seed(7)  # redo the steps by hand
    w_e = 0.1 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    w_d = 0.1 * torch.randn(2, 6, generator=gen, dtype=torch.float64)
    costs, snapshots = [], []
    for _ in range(4):
        w_e.requires_grad_(True)
        w_d.requires_grad_(True)
        cost = linear_autoencoder_loss(w_e, w_d, cov)
        costs.append(cost.item())
        snapshots.append((w_e.detach(), w_d.detach()))
        g_e, g_d = torch.autograd.grad(cost, (w_e, w_d))
        w_e, w_d = w_e.detach() - 0.01 * g_e, w_d.detach() - 0.01 * g_d
    assert torch.allclose(run.costs, torch.tensor(costs, dtype=torch.float64)[[0, 2, 3]])
    assert torch.equal(run.encoder_weights[0], snapshots[0][0])
    assert torch.allclose(run.encoder_weight, snapshots[3][0])
    assert torch.allclose(run.decoder_weight, snapshots[3][1])
    assert torch.equal(run.decoder_weights[-1], run.decoder_weight)


def test_train_linear_autoencoder_reaches_the_pca_subspace():
    x = _data(8)
    cov = covariance(x)
    p = pca(x, 2)
    run = train_linear_autoencoder(cov, 2, steps=3000, lr=0.02, seed=0, every=1000)
    q, _ = torch.linalg.qr(run.decoder_weight.T)
    overlap = torch.linalg.svdvals(q.T @ p.components)  # cosines of the principal angles
    assert torch.allclose(overlap, torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert run.costs[-1].item() == pytest.approx(
        (p.total_variance - p.variances.sum()).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="square"):
        train_linear_autoencoder(torch.ones(3, 4), 2, steps=1, lr=0.1)
