"""Certification in forked CPU processes (lib.smoothing.ProcessExecutor): the same log as one
process for every procedure, an error in a child reaches the caller, and certify_dataset forks only
when COMPANION_WORKERS asks for it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.smoothing import (Gaussian, ProcessExecutor, SerialExecutor, Smooth, certify_dataset, local_executor,
                           read_log)
from lib.smoothing.distributed import WORKERS_ENV

N, K = 12, 4


def _smooth(classifier=None):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, K))
    return Smooth(classifier or net, K, Gaussian(0.5))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(N, 1, 8, 8, generator=g), torch.randint(0, K, (N,), generator=g)


def _rows(path):
    return read_log(path).drop(columns=["time"]).to_dict("records")


@pytest.mark.parametrize("procedure", ["certify", "sequential"])
def test_two_processes_write_the_single_process_rows(tmp_path, procedure):
    xs, ys = _data()
    smooth = _smooth()
    certify = None
    if procedure == "sequential":  # any procedure runs in the children unchanged: they inherit it
        def certify(x, n0, n, alpha, batch_size=None, generator=None):
            return smooth.certify_sequential(x, n0, n, alpha, targets=[0.25, 0.5], batch_size=batch_size,
                                             generator=generator)[:2]
    one = certify_dataset(smooth, xs, ys, 10, 300, 0.01, tmp_path / "one.tsv", chunk=3, progress=False,
                          certify=certify, executor=SerialExecutor())
    two = certify_dataset(smooth, xs, ys, 10, 300, 0.01, tmp_path / "two.tsv", chunk=3, progress=False,
                          certify=certify, executor=ProcessExecutor(2))
    assert len(one) == N and _rows(tmp_path / "one.tsv") == _rows(tmp_path / "two.tsv")


def test_an_error_in_a_child_reaches_the_caller(tmp_path):
    xs, ys = _data()
    net = _smooth().classifier

    def nan_on_big_calls(x):  # the input probe (one row) passes; the children's calls return NaN
        out = net(x)
        return out if x.shape[0] == 1 else out * float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        certify_dataset(_smooth(nan_on_big_calls), xs, ys, 10, 100, 0.01, tmp_path / "nan.tsv", chunk=3,
                        progress=False, executor=ProcessExecutor(2))


def test_local_executor_forks_only_when_asked_on_a_cpu(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert isinstance(local_executor("cpu", 4), SerialExecutor)  # the default: this process
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert isinstance(local_executor("cpu", 4), SerialExecutor)
    monkeypatch.setenv(WORKERS_ENV, "3")
    ex = local_executor("cpu", 2)  # at most a process per block
    assert isinstance(ex, ProcessExecutor) and ex.workers == 2
    assert isinstance(local_executor("cpu", 1), SerialExecutor)  # one block: nothing to share
    assert isinstance(local_executor(torch.device("cuda"), 4), SerialExecutor)  # a GPU: one process
    for bad in ("0", "two"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=WORKERS_ENV):
            local_executor("cpu", 2)
    with pytest.raises(ValueError, match="workers"):
        ProcessExecutor(0)


def test_certify_dataset_forks_with_companion_workers(tmp_path, monkeypatch):
    xs, ys = _data()
    calls = []
    real = ProcessExecutor.imap

    def spy(self, *args, **kwargs):
        calls.append(self.workers)
        yield from real(self, *args, **kwargs)
    monkeypatch.setattr(ProcessExecutor, "imap", spy)
    monkeypatch.setenv(WORKERS_ENV, "2")
    certify_dataset(_smooth(), xs, ys, 10, 100, 0.01, tmp_path / "w.tsv", chunk=3, progress=False)
    assert calls == [2]


def test_the_elapsed_time_is_recorded_beside_the_per_example_times(tmp_path):
    from lib.methods.summaries import log_summary
    from lib.smoothing import log_elapsed_seconds, log_seconds
    xs, ys = _data()
    path = tmp_path / "two.tsv"
    certify_dataset(_smooth(), xs, ys, 10, 300, 0.01, path, chunk=3, progress=False, executor=ProcessExecutor(2))
    elapsed, summed = log_elapsed_seconds(path), log_seconds(read_log(path))
    assert 0 < elapsed and 0 < summed  # two processes: the per-example times add up both
    summary = log_summary(path, [0.5])
    assert summary["seconds"] == elapsed and summary["samples_per_second"] == N * 310 / elapsed
