"""Data sets (MNIST, Fashion-MNIST, CIFAR-10: fetch, verify, load) and synthetic densities."""
from .datasets import (  # noqa: F401
    DATASETS, SPLITS, CACHE_FORMAT, DOWNLOAD_TIMEOUT, MNIST_MIRRORS, MNIST_FILES,
    MNIST_WHEEL, MNIST_SOURCE_ORDER, FASHION_MNIST_MIRRORS, FASHION_MNIST_FILES, FASHION_MNIST_DEBIAN_DIR, CIFAR10_URL,
    CIFAR10_ARCHIVE, CIFAR10_SHA256, CIFAR10_MD5, VAL_SIZE, ChecksumError, DataUnavailableError,
    CorruptCacheError, image_shape, num_classes, class_names, cache_path, read_idx,
    read_cifar10_archive, cache_info, fetch, fetch_all, load, GaussianData,
    GaussianMixture, main,
)
