"""File formats of the image data sets: IDX files, pickles (restricted), the CIFAR-10 archive,
and the lossless byte quantisation of float images."""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .info import VAL_SIZE, ChecksumError, num_classes

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
