"""Same seed -> same weights and same certification logs; thread count does not change the logs.

The per-example logs carry a ``time`` column (wall time of each point): a measurement, not a result,
so it is the one column these tests leave out of the comparison.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import lib
from lib import models
from lib.denoising import denoise, nets, score

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def mnist():
    from lib.data import datasets as data

    x, y = data.load("mnist", "train", limit=600)
    xt, yt = data.load("mnist", "test", limit=12)
    return x, y, xt, yt


def _train(mnist, seed=0):
    """A small CNN classifier (Gaussian augmentation) and a small score network, both trained by
    the one training loop from ``seed``."""
    x, y, _, _ = mnist
    cfg = {"arch": "cnn", "width": 4, "hidden": 16, "in_shape": [1, 28, 28], "num_classes": 10, "epochs": 2,
           "batch_size": 64, "noise": "gaussian", "sigma": 0.5, "seed": seed}
    clf = models.build_classifier(cfg)
    hist = models.train_classifier(clf, cfg, data=(x, y), test_data=(x[:50], y[:50]), progress=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sm = score.NoiseConditionalScore(nets.build_net("mlp", (1, 28, 28), hidden=32, depth=1, emb_dim=8), 0.13, 0.31)
    dsm = score.train_dsm(sm, x, [0.25, 0.5, 1.0], 40, batch_size=32, ema=0.9, seed=seed, progress=False)
    return clf.eval(), sm.eval(), hist, dsm


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _certify(clf, sm, xt, yt, path):
    smooth = lib.Smooth(clf, 10, lib.Gaussian(0.5), denoiser=denoise.tweedie(sm, 0.5))
    df = lib.certify_dataset(smooth, xt, yt, n0=10, n=60, alpha=0.01, log_path=path, seed=3, chunk=4,
                             batch_size=30, progress=False)
    return df.drop(columns="time").reset_index(drop=True)


def test_training_twice_from_one_seed_gives_identical_weights(mnist):
    clf1, sm1, h1, d1 = _train(mnist)
    clf2, sm2, h2, d2 = _train(mnist)
    assert _same_weights(clf1, clf2) and _same_weights(sm1, sm2)
    assert h1["loss"] == h2["loss"] and h1["test_accuracy"] == h2["test_accuracy"] and d1["loss"] == d2["loss"]
    clf3, *_ = _train(mnist, seed=1)  # the test can fail: another seed gives other weights
    assert not _same_weights(clf1, clf3)


def test_certifying_twice_from_one_seed_gives_identical_logs(mnist, tmp_path):
    clf, sm, _, _ = _train(mnist)
    _, _, xt, yt = mnist
    a = _certify(clf, sm, xt, yt, tmp_path / "a.tsv")
    b = _certify(clf, sm, xt, yt, tmp_path / "b.tsv")
    assert len(a) == len(xt)
    pd.testing.assert_frame_equal(a, b)
    raw = [(tmp_path / f).read_text().splitlines() for f in ("a.tsv", "b.tsv")]
    strip_time = lambda lines: [l.rsplit("\t", 1)[0] if "\t" in l else l for l in lines]  # noqa: E731
    assert strip_time(raw[0]) == strip_time(raw[1])  # byte for byte, but for the time column


def test_certification_logs_do_not_depend_on_the_thread_count(mnist, tmp_path):
    clf, sm, _, _ = _train(mnist)
    _, _, xt, yt = mnist
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _certify(clf, sm, xt, yt, tmp_path / "t1.tsv")
        torch.set_num_threads(2)
        two = _certify(clf, sm, xt, yt, tmp_path / "t2.tsv")
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(one, two)


def test_configure_threads_reads_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(lib.utils.THREADS_ENV, "1")
        assert lib.utils.configure_threads() == 1 and torch.get_num_threads() == 1
        assert lib.utils.configure_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv(lib.utils.THREADS_ENV, "two")
        with pytest.raises(ValueError, match=lib.utils.THREADS_ENV):
            lib.utils.configure_threads()
        monkeypatch.delenv(lib.utils.THREADS_ENV)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        import os

        assert 1 <= lib.utils.free_cores() <= lib.utils.usable_cores() <= (os.cpu_count() or 1)
        monkeypatch.setattr(lib.utils, "usable_cores", lambda: 2)
        monkeypatch.setattr(lib.utils, "free_cores", lambda: 1)  # a busy machine: one free core
        # the count is the machine's, not its load's: the numbers must not depend on what else runs
        assert lib.utils.configure_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("busy, want", [(0.1, 2), (0.9, 1), (1.7, 1), (None, None)])
def test_free_cores_subtracts_the_busy_cores(monkeypatch, busy, want):
    """Cores now busy (``/proc/stat``) are not offered to torch; without that reading, the load average."""
    monkeypatch.setattr(lib.utils.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(lib.utils, "_busy_cores", lambda window: busy)
    monkeypatch.setattr(lib.utils.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert lib.utils.free_cores() == (want if want is not None else 1)  # load average 1.2 on 2 cores: 1 free


def test_busy_cores_reads_proc_stat():
    import os

    busy = lib.utils._busy_cores(0.05)
    if not os.path.exists("/proc/stat"):
        assert busy is None
    else:
        assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9


def test_a_busy_machine_waits_passively_and_keeps_its_threads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert lib.utils.wait_policy(2, 2) is None  # idle: torch's default (spinning) is the faster
    assert lib.utils.wait_policy(1, 2) == "PASSIVE"  # a core busy: sleep instead of spinning on it
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert lib.utils.wait_policy(1, 2) is None  # the user's choice stands
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "run_all.sh").read_text()
    assert 'export OMP_WAIT_POLICY="$WAIT_POLICY"' in script and "u.wait_policy(f, c)" in script
