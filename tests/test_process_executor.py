"""Certification in forked CPU processes (lib.smoothing.ProcessExecutor): the same log as one
process for every procedure, a fixed-draw block split by inputs with the rows of a whole one, an
error in a child reaches the caller, and certify_dataset forks where COMPANION_WORKERS asks for it or,
unset, for fixed-draw runs of some size only."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.smoothing import (Gaussian, ProcessExecutor, SerialExecutor, Smooth, certify_dataset, fixed_draws,
                           has_fixed_draws, local_executor, read_log)
from lib.smoothing.distributed import AUTO_MIN_SAMPLES, WORKERS_ENV, split_block

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


def test_evaluating_draws_every_input_and_votes_only_for_its_chunks():
    xs, _ = _data()
    smooth = _smooth()
    rows = []
    smooth.classifier.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    g_whole, g_part = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    whole = smooth.sample_counts(xs, 30, batch_size=64, generator=g_whole)  # chunks of 2 inputs x 30 copies
    whole_rows, rows[:] = sum(rows), []
    with smooth.evaluating(4, 6):
        part = smooth.sample_counts(xs, 30, batch_size=64, generator=g_part)
    assert torch.equal(part[4:6], whole[4:6]) and part[:4].sum() == 0 and part[6:].sum() == 0
    assert sum(rows) <= whole_rows // 4  # one chunk of six evaluated
    assert torch.equal(g_part.get_state(), g_whole.get_state())  # the generator advanced as in a whole call
    assert smooth._evaluated is None  # restored
    with pytest.raises(ValueError, match="lo < hi"):
        with smooth.evaluating(3, 3):
            pass


def test_a_split_block_has_the_rows_of_a_whole_one(tmp_path):
    """Blocks of 7 in 3 parts (2, 2, 3 inputs) with chunks of 3 inputs in the n0 phase: a chunk across a
    part's edge is evaluated by both parts; a rejector and the extra columns of a marked certify function."""
    xs, ys = _data()
    torch.manual_seed(2)
    smooth = Smooth(_smooth().classifier, K, Gaussian(0.5), rejector=nn.Sequential(nn.Flatten(), nn.Linear(64, K)))

    @fixed_draws
    def certify(x, n0, n, alpha, batch_size=None, generator=None):
        p, r, extra = smooth.certify_batch(x, n0, n, alpha, batch_size=batch_size, generator=generator,
                                           return_counts=True)
        return p, r, {"n_a": extra["n_a"].tolist(), "n_r": extra["n_r"].tolist()}
    assert split_block(7, 14, 3) == [(7, 9), (9, 11), (11, 14)] and split_block(0, 2, 3) == [(0, 1), (1, 2)]
    kw = dict(chunk=7, batch_size=60, progress=False, certify=certify, columns=["n_a", "n_r"])
    certify_dataset(smooth, xs, ys, 20, 120, 0.01, tmp_path / "one.tsv", executor=SerialExecutor(), **kw)
    certify_dataset(smooth, xs, ys, 20, 120, 0.01, tmp_path / "three.tsv", executor=ProcessExecutor(3), **kw)
    assert _rows(tmp_path / "one.tsv") == _rows(tmp_path / "three.tsv")
    assert read_log(tmp_path / "one.tsv")["n_a"].sum() > 0


def test_which_certify_functions_have_fixed_draws():
    from lib.experiments.learned_empirical_bayes import walk_jump_procedure
    from lib.experiments.procedures import sequential_procedure, two_sided_procedure
    from lib.experiments.rejection import _certify_with_counts
    from lib.smoothing.decision import decision_procedure
    smooth = _smooth()
    assert has_fixed_draws(smooth.certify_batch)
    assert has_fixed_draws(two_sided_procedure(smooth)) and has_fixed_draws(_certify_with_counts(smooth))
    # a test that stops an input by its votes, or a denoiser drawing from the block's generator: never split
    for proc in (sequential_procedure([0.5]), decision_procedure([0.5]), walk_jump_procedure):
        assert not has_fixed_draws(proc(smooth))


def test_by_default_only_fixed_draw_runs_of_some_size_fork(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    smooth = _smooth()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    ex = local_executor("cpu", 1, smooth.certify_batch, samples=AUTO_MIN_SAMPLES)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 2  # one block, split by inputs
    assert isinstance(local_executor("cpu", 4, smooth.certify_batch, samples=AUTO_MIN_SAMPLES - 1), SerialExecutor)
    assert isinstance(local_executor("cpu", 4, lambda *a, **k: None, samples=AUTO_MIN_SAMPLES), SerialExecutor)
    assert isinstance(local_executor("cuda", 4, smooth.certify_batch, samples=AUTO_MIN_SAMPLES), SerialExecutor)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert isinstance(local_executor("cpu", 4, smooth.certify_batch, samples=AUTO_MIN_SAMPLES), SerialExecutor)


def test_an_error_in_a_child_reaches_the_caller(tmp_path):
    xs, ys = _data()
    net = _smooth().classifier

    def nan_on_big_calls(x):  # the input probe (one row) passes; the children's calls return NaN
        out = net(x)
        return out if x.shape[0] == 1 else out * float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        certify_dataset(_smooth(nan_on_big_calls), xs, ys, 10, 100, 0.01, tmp_path / "nan.tsv", chunk=3,
                        progress=False, executor=ProcessExecutor(2))


def test_local_executor_forks_when_asked_on_a_cpu(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert isinstance(local_executor("cpu", 4), SerialExecutor)  # the default, for a procedure: this process
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
