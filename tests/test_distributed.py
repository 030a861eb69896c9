"""Certification sharded over a local Ray cluster: the same log as one process, and a dead worker
costs only its block. Ray is a test dependency (the ``ray`` extra); CI installs it."""
from __future__ import annotations

import functools
import os

import pytest
import torch
from torch import nn

from lib.smoothing import Gaussian, RayExecutor, Smooth, certify_dataset, read_log

import ray  # noqa: E402  (a test dependency: ./run_tests.sh installs the project's `test` extra)

N, D, K = 24, 6, 3


def _model():
    torch.manual_seed(3)
    return nn.Linear(D, K)


def _data():
    g = torch.Generator().manual_seed(7)
    return torch.randn(N, D, generator=g), torch.randint(0, K, (N,), generator=g)


def build_smooth(sigma: float, crash_flag: str | None = None) -> Smooth:
    """The factory the workers call: the same model as the driver's (seeded construction)."""
    model = _model()
    if crash_flag is None:
        return Smooth(model, K, Gaussian(sigma))

    def classifier(x):  # kills its worker once: the first worker to see the flag removes it and dies
        if os.path.exists(crash_flag):
            os.remove(crash_flag)
            os._exit(1)
        return model(x)
    classifier.model = model  # fingerprinted like the driver's model
    return Smooth(classifier, K, Gaussian(sigma))


@pytest.fixture(scope="module")
def cluster():
    # the workers import this module's factory by name: put tests/ on their path
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": here}})
    yield
    ray.shutdown()


def _rows(df):
    return df.drop(columns=["time"]).to_dict("records")


def test_two_workers_write_the_single_process_rows(tmp_path, cluster):
    xs, ys = _data()
    single = certify_dataset(build_smooth(0.5), xs, ys, 20, 200, 0.01, tmp_path / "one.tsv", seed=1, chunk=5,
                             progress=False)
    ex = RayExecutor(functools.partial(build_smooth, 0.5), num_workers=2)
    try:
        sharded = certify_dataset(build_smooth(0.5), xs, ys, 20, 200, 0.01, tmp_path / "ray.tsv", seed=1, chunk=5,
                                  progress=False, executor=ex)
    finally:
        ex.close()
    assert _rows(sharded) == _rows(single)
    assert list(sharded["idx"]) == list(range(N))
    assert sharded["predict"].nunique() > 1  # not a degenerate model: the comparison can fail


def test_a_killed_worker_loses_only_its_block(tmp_path, cluster):
    xs, ys = _data()
    single = certify_dataset(build_smooth(0.5), xs, ys, 20, 200, 0.01, tmp_path / "one.tsv", seed=2, chunk=4,
                             progress=False)
    flag = tmp_path / "crash-once"
    flag.write_text("")
    ex = RayExecutor(functools.partial(build_smooth, 0.5, str(flag)), num_workers=2)
    try:
        driver = build_smooth(0.5, str(tmp_path / "no-flag"))  # the workers' pipeline, never crashing
        sharded = certify_dataset(driver, xs, ys, 20, 200, 0.01, tmp_path / "ray.tsv", seed=2, chunk=4,
                                  progress=False, executor=ex)
    finally:
        ex.close()
    assert not flag.exists()  # a worker did die
    assert _rows(sharded) == _rows(single)
    assert _rows(read_log(tmp_path / "ray.tsv")) == _rows(single)


def test_workers_with_other_models_are_refused(tmp_path, cluster):
    xs, ys = _data()
    ex = RayExecutor(functools.partial(build_smooth, 0.5), num_workers=1)
    other = Smooth(nn.Linear(D, K), K, Gaussian(0.5))  # unseeded: other weights than the workers'
    try:
        with pytest.raises(Exception, match="fingerprint"):
            certify_dataset(other, xs, ys, 20, 100, 0.01, tmp_path / "bad.tsv", seed=0, chunk=8, progress=False,
                            executor=ex)
    finally:
        ex.close()
