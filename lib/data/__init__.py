"""Data sets (MNIST, Fashion-MNIST, CIFAR-10: fetch, verify, load) and synthetic densities.

Modules: ``datasets`` (caches with SHA-256 manifests, fetch/load, the ``python -m lib.data`` CLI),
``sources`` (pinned URLs and hashes, verified downloads, builders), ``readers`` (IDX, pickles,
the CIFAR-10 archive), ``info`` (names, shapes, errors), ``synthetic`` (closed-form Gaussian data
and mixtures).
"""
from .info import (  # noqa: F401
    DATASETS, SPLITS, VAL_SIZE, ChecksumError, DataUnavailableError, CorruptCacheError, image_shape,
    num_classes, class_names,
)
from .readers import read_idx, read_cifar10_archive  # noqa: F401
from .sources import (  # noqa: F401
    DOWNLOAD_TIMEOUT, MNIST_MIRRORS, MNIST_FILES, MNIST_WHEEL, MNIST_SOURCE_ORDER, FASHION_MNIST_MIRRORS,
    FASHION_MNIST_FILES, FASHION_MNIST_DEBIAN_DIR, CIFAR10_URL, CIFAR10_ARCHIVE, CIFAR10_SHA256, CIFAR10_MD5,
)
from .datasets import (  # noqa: F401
    CACHE_FORMAT, cache_path, manifest_path, cache_info, fetch, fetch_all, load, main,
)
from .synthetic import GaussianData, GaussianMixture  # noqa: F401
