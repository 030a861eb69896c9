"""Names, shapes, classes and split sizes of the image data sets, and the errors of ``lib.data``."""
from __future__ import annotations

import sys

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SPLITS = ("train", "val", "test", "trainval")

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
