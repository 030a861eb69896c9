"""Certification runs: fixed test subsets, one method x noise x sigma into one log, grids of runs.

:func:`certify_method` certifies a fixed test subset with one registered method (see
:mod:`lib.methods.registry`), noise and sigma and returns the path of its per-example log
(Cohen's TSV format, written by :func:`lib.smoothing.certify_dataset`), named by
:func:`lib.smoothing.logs.log_path`: ``LOGS/<notebook>/<dataset>-<method>[-<tag>]-<noise>-
s<sigma>-<profile>-<key>.tsv`` where ``<key>`` hashes everything that determines the rows (model
configs, n0, n, alpha, seed, test indices). Rerunning with the same settings reuses (or
resumes) the log -- also one written by another notebook (:func:`lib.smoothing.logs.find_log`)
-- so tables are rebuilt from logs, never from memory.

``mode`` picks the certification: ``"fixed"`` (CERTIFY with n votes, Cohen et al.) or ``"decision"``
(:mod:`lib.smoothing.decision`: every table radius decided with at most n votes; the log's
``radius`` is the largest certified table radius and its column ``samples`` the votes a point
used). A decision log carries its own tag and sidecar settings (``procedure: decision``), so it is
never read as a fixed-n log; certified accuracy at the table radii means the same in both. Curves
of certified accuracy as a function of r need fixed-n logs.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lib.data import datasets as data
from lib.methods.registry import _as_noise, _method, build_smooth, method_label
from lib.methods.setup import Setup
from lib.smoothing import logs as logs_lib
from lib.smoothing.certify import certify_dataset
from lib.smoothing.decision import decision_procedure, decision_settings
from lib.smoothing.logs import log_seconds
from lib.smoothing.noise import NoiseDistribution, make_noise
from lib.utils import check_alpha, check_count, config_hash, estimate_seconds, synchronize

__all__ = ["CERTIFY_MODES", "certification_mode", "certify_tables", "TestSubset", "test_subset", "log_path", "certify_method", "certify_grid", "measure_throughput",
           "smooth_factory", "estimate_certification"]


#: the certification modes of :func:`certify_method`
CERTIFY_MODES = ("fixed", "decision")


def _check_mode(mode: str, radii) -> None:
    if mode not in CERTIFY_MODES:
        raise ValueError(f"mode must be one of {CERTIFY_MODES}, got {mode!r}")
    if mode == "decision" and (radii is None or len(radii) == 0):
        raise ValueError("decision mode needs the table's radii (radii=[...])")


def certification_mode(log) -> str:
    """``"decision"`` for a decision-mode log (its sidecar says ``procedure: decision``), else ``"fixed"``."""
    return "decision" if logs_lib.read_settings(log).get("procedure") == "decision" else "fixed"


@dataclass
class TestSubset:
    """A fixed subset of a test split: xs [N, C, H, W], ys [N], and their dataset ``indices``."""

    __test__ = False  # not a pytest class

    xs: torch.Tensor
    ys: torch.Tensor
    indices: list
    dataset: str
    split: str = "test"

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def key(self) -> str:
        """A short hash of (dataset, split, indices): two subsets with the same key are the same points."""
        return config_hash([self.dataset, self.split, [int(i) for i in self.indices]])


def test_subset(dataset: str, num: int | None, split: str = "test") -> TestSubset:
    """Every ``skip``-th point of the split (Cohen et al.'s ``--skip``), ``num`` points in all;
    ``num=None`` takes the whole split. The same points for every method of a notebook."""
    x, y = data.load(dataset, split)
    total = len(y)
    if num is None:
        idx = np.arange(total)
    else:
        num = check_count("num", num)
        if num > total:
            raise ValueError(f"num={num} exceeds the {total} points of {dataset}/{split}")
        idx = np.arange(0, total, total // num)[:num]
    sel = torch.as_tensor(idx)
    return TestSubset(x[sel], y[sel], [int(i) for i in idx], dataset, split)


def _log_key(method: str, noise: NoiseDistribution, pipe_config: dict, subset_key: str, n0: int, n: int,
             alpha: float, seed: int) -> str:
    return logs_lib.log_key(method, noise, pipe_config, subset_key, n0, n, alpha, seed)


def log_path(notebook: str, dataset: str, method: str, noise: NoiseDistribution, profile: str, key: str,
             tag: str = "") -> Path:
    """``LOGS/<notebook>/<dataset>-<method>[-<tag>]-<noise>-s<sigma>-<profile>-<key>.tsv``."""
    _method(method)
    return logs_lib.log_path(str(notebook), dataset, method, noise, profile, key, tag)


def certify_method(method: str, noise: NoiseDistribution, setup: Setup, subset: TestSubset, n0: int, n: int,
                   alpha: float, notebook: str, batch_size: int | None = None,
                   chunk: int | None = None, tag: str = "", progress: bool = True, procedure=None,
                   columns: Sequence[str] = (), settings: dict | None = None, executor=None,
                   pipeline=None, mode: str = "fixed", radii: Sequence[float] | None = None, decide=None) -> Path:
    """CERTIFY every point of ``subset`` with ``method`` under ``noise``; return the log path.

    ``executor``: where the blocks run (default: this process), e.g.
    ``lib.smoothing.RayExecutor(smooth_factory(method, noise, setup), address="auto")`` to
    shard over a Ray cluster; the log is the same (not with a ``procedure``).

    ``procedure(smooth)`` (optional) returns the ``certify`` function of
    :func:`lib.smoothing.certify_dataset` (e.g. sequential CERTIFY, or one that counts work) and
    ``columns`` its extra log columns; ``settings`` are added to the sidecar. Give such runs their
    own ``tag``: the log name does not see the procedure. ``pipeline``: an already built
    :class:`Pipeline` of ``method`` (e.g. a variant with other settings), else the registry's.

    ``mode="decision"`` decides each of the table ``radii`` (``decide(radii)``, by default
    :func:`lib.smoothing.decision_procedure`, n_max = n; another factory ``radii -> procedure`` draws
    the votes its own way, e.g. notebook 04's logit-space sampler); it takes no ``procedure`` or
    ``executor``, and its log name carries ``decision``.

    The log (Cohen's TSV: ``idx label predict radius correct time``) is reused when it is
    complete, resumed when it is partial, and written otherwise. Its sidecar JSON records
    the method, the configs of its models, the profile and the sizes.
    """
    noise = _as_noise(noise)
    n0, n = check_count("n0", n0), check_count("n", n)
    alpha = check_alpha(alpha)
    if executor is not None and procedure is not None:
        raise ValueError("an executor runs Smooth.certify_batch on its workers; it cannot take a procedure")
    _check_mode(mode, radii)
    if decide is not None and mode != "decision":
        raise ValueError("decide is the procedure factory of decision mode: give it with mode='decision'")
    if mode == "decision":
        if procedure is not None or executor is not None:
            raise ValueError("decision mode is its own procedure: give neither procedure nor executor")
        radii = sorted(float(r) for r in radii)
        side = decision_settings(radii)
        procedure, columns = (decide or decision_procedure)(radii), ["samples"]
        settings = {**side, **(settings or {})}
        tag = "_".join(t for t in (tag, "decision" + config_hash(side)[:6]) if t)
    if not isinstance(subset, TestSubset):
        raise TypeError(f"subset must be a TestSubset (lib.methods.test_subset), got {type(subset).__name__}")
    if subset.dataset != setup.dataset:
        raise ValueError(f"subset is from {subset.dataset!r} but setup.dataset is {setup.dataset!r}")
    smooth, pipe = build_smooth(method, noise, setup, pipeline=pipeline)
    key = _log_key(method, noise, pipe.config, subset.key, n0, n, alpha, setup.seed)
    path = log_path(notebook, setup.dataset, method, noise, setup.profile, key, tag)
    if chunk is None:  # keep blocks small enough for frequent checkpoints, big enough for batching
        chunk = max(1, min(64, (1 << 16) // max(n, 1)))
    settings = {"method": method, "method_label": method_label(method), "dataset": setup.dataset,
                "split": subset.split, "subset": subset.key, "profile": setup.profile, "log_key": key,
                "models": pipe.config, **(settings or {})}
    path = logs_lib.find_log(path)  # the same run written by another notebook (e.g. 06 reusing 05)
    if setup.profile == "full" and executor is None and not path.exists():  # long work: say how long first
        estimate_certification(smooth, subset, n0, n, batch_size, f"{method_label(method)}, {noise.name} "
                               f"sigma={noise.sigma:g}, {len(subset)} points, n0+n={n0 + n}"
                               + (" (decision mode: at most; it stops each point once its radii are decided)"
                                  if mode == "decision" else ""))
    certify_dataset(smooth, subset.xs, subset.ys, n0, n, alpha, path, indices=subset.indices, seed=setup.seed,
                    chunk=chunk, batch_size=batch_size, settings=settings, progress=progress,
                    certify=procedure(smooth) if procedure is not None else None, columns=columns,
                    executor=executor)
    return path


def estimate_certification(smooth, subset: TestSubset, n0: int, n: int, batch_size: int | None = None,
                           label: str = "certification", cpu_probe: int = 256) -> float:
    """Print (and return) the estimated seconds of certifying ``subset`` at n0 + n samples per
    point on ``smooth``'s device, from one synchronised probe (:func:`lib.utils.estimate_seconds`)
    on the first point: one pipeline call of the size the real chunks use (``batch_size``, else the
    memory-aware size on CUDA), capped by n0 + n, and by ``cpu_probe`` samples on a CPU."""
    x = subset.xs[:1].to(smooth.device)
    rows = batch_size or smooth.memory_batch_size(x[0])
    probe = max(1, min(n0 + n, rows, cpu_probe if smooth.device.type == "cpu" else rows))
    gen = torch.Generator(device=smooth.device).manual_seed(0)
    return estimate_seconds(label, lambda: smooth.sample_counts(x, probe, batch_size, gen), probe,
                            len(subset) * (n0 + n), smooth.device)


def _smooth(method: str, noise: NoiseDistribution, setup: Setup):
    """The ``Smooth`` of ``method`` (models from the cache): what a Ray worker builds."""
    return build_smooth(method, noise, setup)[0]


def smooth_factory(method: str, noise: NoiseDistribution, setup: Setup):
    """A picklable factory ``() -> Smooth`` for :class:`lib.smoothing.RayExecutor`: every worker
    builds the same models (trained models come from the cache, keyed by their configs)."""
    return functools.partial(_smooth, method, _as_noise(noise), setup)


def certify_grid(methods: Sequence[str], noise: str, sigmas: Sequence[float], setup: Setup, subset: TestSubset,
                 n0: int, n: int, alpha: float, notebook: str, verbose: bool = True, progress: bool = False,
                 **kwargs) -> dict:
    """:func:`certify_method` for every (method, sigma) of the grid of noise family ``noise`` (a name)
    and ``sigmas``; returns {(method, sigma): log path}.

    ``kwargs`` go to :func:`certify_method` (e.g. ``mode="decision", radii=cfg["radii"]``).
    Methods that do not support ``noise`` are skipped. With ``verbose`` prints one line per
    run with its wall time (the sum of the per-example times in its log); ``progress`` shows
    a progress bar per run instead.
    """
    out = {}
    for m in methods:
        if noise not in _method(m).noises:
            continue
        for s in sigmas:
            t0 = time.perf_counter()
            path = certify_method(m, make_noise(noise, s), setup, subset, n0, n, alpha, notebook, progress=progress,
                                  **kwargs)
            out[(m, float(s))] = path
            if verbose:
                mode = "" if kwargs.get("mode", "fixed") == "fixed" else ", decision mode"
                print(f"{method_label(m):<34} {noise} sigma={s:<5g} {len(subset)} points, n={n}{mode}: "
                      f"{log_seconds(path):7.1f} s certifying (this call {time.perf_counter() - t0:6.1f} s)")
    return out


def certify_tables(methods: Sequence[str], noise: str, sigmas: Sequence[float], setup: Setup, subset: TestSubset,
                   n0: int, n: int, alpha: float, notebook: str, radii: Sequence[float], mode: str,
                   fixed_logs: dict | None = None, **kwargs) -> dict:
    """The logs a certified-accuracy table reads: :func:`certify_grid` of ``subset`` in ``mode``
    (``"decision"``: each of the table ``radii`` decided with at most n votes). ``fixed_logs``
    ({(method, sigma): path}, the notebook's fixed-n runs, e.g. for its curves) are returned as they
    are when ``mode`` is ``"fixed"`` and they hold the points of ``subset``: no run twice."""
    _check_mode(mode, radii)
    if mode == "fixed" and fixed_logs is not None:
        keys = [(m, float(s)) for m in methods if noise in _method(m).noises for s in sigmas]
        if all(k in fixed_logs and logs_lib.read_settings(fixed_logs[k]).get("subset") == subset.key for k in keys):
            return {k: fixed_logs[k] for k in keys}
    return certify_grid(methods, noise, sigmas, setup, subset, n0, n, alpha, notebook, mode=mode,
                        radii=None if mode == "fixed" else radii, **kwargs)


def measure_throughput(method: str, noise: NoiseDistribution, setup: Setup, xs: torch.Tensor, num: int = 256,
                       batch_size: int | None = None) -> float:
    """Noisy samples per second of a method (denoiser + classifier): ``num`` votes for each of
    ``xs`` [B, *shape], timed after one warm-up call."""
    smooth, _ = build_smooth(method, noise, setup)
    gen = torch.Generator(device=smooth.device).manual_seed(0)
    smooth.sample_counts(xs[:1], min(num, 16), batch_size, gen)
    synchronize(smooth.device)  # CUDA runs asynchronously: time finished work only
    t0 = time.perf_counter()
    smooth.sample_counts(xs, num, batch_size, gen)
    synchronize(smooth.device)
    return xs.shape[0] * num / (time.perf_counter() - t0)
