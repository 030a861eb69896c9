"""Certification sharded over processes on this machine or over a Ray cluster, one Cohen-format log.

A test set is certified in fixed blocks of ``chunk`` inputs, and block ``j`` draws its noise from a
generator seeded with ``(seed, j)`` (:mod:`lib.smoothing.certify`). The rows of a block therefore
do not depend on who computes it, which makes sharding trivial and exact:

* :class:`RayExecutor` starts ``num_workers`` Ray actors (``ray.init()`` locally by default, or a
  cluster ``address``). Each actor builds the smoothed classifier once from a picklable
  ``smooth_factory`` (so the models sit on the actor's own GPU, ``num_gpus=1`` when the cluster has
  GPUs, else a CPU worker) and certifies whole blocks.
* The driver (``certify_dataset(..., executor=RayExecutor(...))``) keeps the one per-example log:
  it takes the log's lock, resumes after the last finished block, and writes blocks strictly in
  index order as they arrive, so the log has exactly the rows a single-process run writes (only
  the ``time`` column, a measurement, differs).
* A worker that dies mid-block loses only that block: the actor is replaced and the block redone
  (at most ``max_retries`` times per block), with the same seed, hence the same rows.

* :class:`ProcessExecutor` forks ``workers`` processes of one torch thread each on this machine's
  CPU; they inherit the driver's pipeline and certify function (no pickling, no model loading).
  A certify function whose draws do not depend on the votes (:func:`lib.smoothing.fixed_draws`:
  ``Smooth.certify_batch``, CERTIFY with fixed n) has every block split by inputs, one part per
  process: each part draws the whole block's noise from the block's generator (cheap beside the
  pipeline) and runs the pipeline only on the chunks of its own inputs (``Smooth.evaluating``), so its
  rows are those of a whole call, and a block of 64 inputs keeps both cores busy where whole blocks
  (64, 64, 22 of 150 points) would leave one idle. Any other procedure (sequential, decision mode, a
  walk-jump denoiser drawing inside the pipeline) runs in whole blocks.
  :func:`local_executor` picks it by default for fixed-draw CPU runs of at least
  :data:`AUTO_MIN_SAMPLES` noisy samples, a process per torch thread (measured in
  docs/performance.md), and for every run with ``COMPANION_WORKERS=N``.

Ray is optional (``pip install 'smoothing-companion[ray]'``); nothing here imports it before an
executor is created.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from contextlib import nullcontext
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from lib.smoothing._batching import has_fixed_draws
from lib.smoothing.logs import model_fingerprint

__all__ = ["SerialExecutor", "ProcessExecutor", "RayExecutor", "local_executor", "block_generator", "certify_block",
           "WORKERS_ENV"]

#: environment variable: processes of a local CPU certification (unset or 1: this process)
WORKERS_ENV = "COMPANION_WORKERS"

#: a block: (j, lo, hi) -- block number and the half-open range of positions it covers
Block = tuple[int, int, int]


def block_generator(device: torch.device | str, seed: int, j: int) -> torch.Generator:
    """The generator of block ``j``: seeded with ``(seed, j)``, whoever certifies the block."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed) * 1_000_003 + int(j))


def certify_block(certify: Callable, device, xs: torch.Tensor, job: dict, j: int) -> tuple[object, float, float]:
    """Certify one block xs [m, *input_shape] with the block's own generator.

    ``certify`` is called like ``Smooth.certify_batch``: ``certify(xs, n0, n, alpha, batch_size=,
    generator=)``; ``job`` holds ``n0, n, alpha, batch_size, seed``. Returns (what certify
    returned, wall seconds, CPU seconds of this process).
    """
    gen = block_generator(device, job["seed"], j)
    t0, c0 = time.perf_counter(), time.process_time()
    out = certify(xs, job["n0"], job["n"], job["alpha"], batch_size=job["batch_size"], generator=gen)
    return out, time.perf_counter() - t0, time.process_time() - c0


def _certifier(built) -> tuple[object, Callable]:
    """(smooth, certify function) from what a factory built: a Smooth, or (Smooth, certify)."""
    if isinstance(built, tuple):
        return built
    return built, built.certify_batch


class SerialExecutor:
    """Certify blocks one after another in this process (the default of ``certify_dataset``)."""

    def imap(self, smooth, certify: Callable, xs: torch.Tensor, blocks: Sequence[Block], job: dict,
             fingerprint: str | None = None) -> Iterator[tuple[Block, object, float, float]]:
        for j, lo, hi in blocks:
            yield (j, lo, hi), *certify_block(certify, smooth.device, xs[lo:hi], job, j)

    def close(self) -> None:
        pass


#: what the forked children of a :class:`ProcessExecutor` certify: set before the fork, inherited
_FORKED: dict = {}


def _forked_child() -> None:
    torch.set_num_threads(1)  # one process per core: a thread each


def _forked_part(task):
    j, lo, hi, a, b = task
    c = _FORKED
    whole = (a, b) == (lo, hi)
    with nullcontext() if whole else c["smooth"].evaluating(a - lo, b - lo):
        out, seconds, cpu = certify_block(c["certify"], c["device"], c["xs"][lo:hi], c["job"], j)
    return task, (out if whole else rows_of(out, a - lo, b - lo)), seconds, cpu


def split_block(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """The positions lo..hi-1 of a block in at most ``parts`` consecutive ranges of near-equal size."""
    parts = max(1, min(int(parts), hi - lo))
    cuts = [lo + (hi - lo) * k // parts for k in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def rows_of(out, a: int, b: int):
    """Rows a..b-1 of what a certify function returned: (predictions, radii[, {column: values}])."""
    if not isinstance(out, tuple):
        raise TypeError("certify must return (predictions, radii) or (predictions, radii, extras)")
    return tuple({k: v[a:b] for k, v in part.items()} if isinstance(part, dict) else part[a:b] for part in out)


def join_rows(outs: Sequence):
    """The inverse of :func:`rows_of` over consecutive ranges: one result from its parts, in order."""
    if len(outs) == 1:
        return outs[0]

    def cat(values):
        if isinstance(values[0], torch.Tensor):
            return torch.cat(list(values))
        if isinstance(values[0], np.ndarray):
            return np.concatenate(values)
        return [v for part in values for v in part]

    return tuple({k: cat([p[i][k] for p in outs]) for k in first} if isinstance(first, dict)
                 else cat([p[i] for p in outs]) for i, first in enumerate(outs[0]))


class ProcessExecutor:
    """Certify blocks in ``workers`` forked processes of one torch thread each; yields them in block
    order. CPU only, and only where ``fork`` exists (Linux, macOS): the children inherit the
    driver's ``smooth`` and ``certify`` as they are, so every procedure (sequential, decision mode,
    logit space ...) runs unchanged. A ``certify`` with fixed draws (:func:`lib.smoothing.fixed_draws`)
    has each block split by inputs into ``workers`` parts (:func:`split_block`, ``Smooth.evaluating``);
    any other runs whole blocks. Block ``j`` draws from the generator of ``(seed, j)`` wherever it runs,
    with the rows per call of a one-process run; a multi-threaded run can differ in single votes where
    a layer's float results depend on the thread count (see :func:`lib.utils.configure_threads`)."""

    def __init__(self, workers: int = 2):
        if isinstance(workers, bool) or int(workers) < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if "fork" not in multiprocessing.get_all_start_methods():
            raise RuntimeError("ProcessExecutor needs the fork start method (Linux or macOS)")
        self.workers = int(workers)

    def imap(self, smooth, certify: Callable, xs: torch.Tensor, blocks: Sequence[Block], job: dict,
             fingerprint: str | None = None) -> Iterator[tuple[Block, object, float, float]]:
        if smooth.device.type != "cpu":
            raise ValueError(f"ProcessExecutor forks CPU processes; the pipeline is on {smooth.device}")
        # a certify function with fixed draws: every block split by inputs into one part per process
        parts = self.workers if has_fixed_draws(certify) else 1
        tasks = [(j, lo, hi, a, b) for j, lo, hi in blocks for a, b in split_block(lo, hi, parts)]
        _FORKED.update(smooth=smooth, certify=certify, device=smooth.device, xs=xs, job=job)
        try:
            sys.stdout.flush(), sys.stderr.flush()  # nothing buffered is printed twice
            with multiprocessing.get_context("fork").Pool(min(self.workers, len(tasks)), _forked_child) as pool:
                done: list = []  # the parts of the current block (imap returns them in task order)
                for (j, lo, hi, a, b), out, seconds, cpu in pool.imap(_forked_part, tasks):
                    done.append((out, seconds, cpu))
                    if b == hi:
                        outs, secs, cpus = zip(*done)
                        done = []
                        yield (j, lo, hi), join_rows(outs), max(secs), sum(cpus)
        finally:
            _FORKED.clear()

    def close(self) -> None:
        pass


#: noisy samples a certification must draw before the default executor forks processes for it
AUTO_MIN_SAMPLES = 10_000


def local_executor(device: torch.device | str, blocks: int, certify: Callable | None = None,
                   samples: int | None = None):
    """The executor of a certification on this machine.

    With ``COMPANION_WORKERS=N`` (N > 1): a :class:`ProcessExecutor` of N processes for a CPU run of
    ``certify`` with fixed draws (each block split by inputs), or of at most one per block for any other
    run of two blocks or more; ``1``: this process (:class:`SerialExecutor`).
    Unset: a :class:`ProcessExecutor` with a process per torch thread of this one
    (:func:`lib.utils.configure_threads`) for a CPU run of ``certify`` with fixed draws
    (:func:`lib.smoothing.fixed_draws`, e.g. ``Smooth.certify_batch``: the draws and the rows of every
    pipeline call as in one process) of at least :data:`AUTO_MIN_SAMPLES` noisy ``samples``, on two
    threads or more; else this process. One thread per process then replaces several in one, which can
    move the last bits of a layer whose float results depend on the thread count
    (:func:`lib.utils.configure_threads`); the quick profile's logs were identical either way (a whole
    quick run, docs/performance.md; ``benchmarks/bench_cpu.py`` checks its architectures)."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    try:
        workers = int(env) if env else None
    except ValueError:
        raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {env!r}") from None
    if workers is not None and workers < 1:
        raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {env!r}")
    fixed = certify is not None and has_fixed_draws(certify)
    if torch.device(device).type != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return SerialExecutor()
    if workers is None:  # the default: fixed-draw runs of some size, a process per thread of this one
        if not fixed or samples is None or samples < AUTO_MIN_SAMPLES:
            return SerialExecutor()
        workers = torch.get_num_threads()
    if workers < 2:
        return SerialExecutor()
    if fixed:  # every block split by inputs
        return ProcessExecutor(workers)
    return ProcessExecutor(min(workers, blocks)) if blocks >= 2 else SerialExecutor()


class RayExecutor:
    """Certify blocks on ``num_workers`` Ray actors; yields them in block order.

    Parameters
    ----------
    smooth_factory : picklable callable () -> Smooth, or () -> (Smooth, certify function)
        Called once per actor, e.g. a ``functools.partial`` of a function that loads the cached
        models and builds the ``Smooth`` (the second form for another procedure, such as
        ``Smooth.certify_sequential`` wrapped like ``certify_batch``). Every actor checks that its
        models have the fingerprint recorded in the log's sidecar, so the workers certify with
        exactly the driver's models.
    address : str or None
        A Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local cluster.
    num_workers : int or None
        Actors to start; default: the cluster's GPUs if it has any, else its CPUs.
    max_retries : int
        How many times one block is redone after its worker died.
    """

    def __init__(self, smooth_factory: Callable[[], Callable], address: str | None = None,
                 num_workers: int | None = None, max_retries: int = 3, device: str | None = None):
        try:
            import ray
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("RayExecutor needs Ray: pip install ray "
                              "(or the project's extra: pip install -e '.[ray]')") from e
        if not callable(smooth_factory):
            raise TypeError("smooth_factory must be a picklable callable returning a Smooth")
        if num_workers is not None and (isinstance(num_workers, bool) or int(num_workers) < 1):
            raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, configure_logging=False)
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        self.num_workers = int(num_workers or (gpus if gpus else max(1, int(res.get("CPU", 1)))))
        self.max_retries = int(max_retries)
        self.device = device or ("cuda" if gpus else "cpu")
        self._actor_cls = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1 if not gpus else 0,
                                     max_restarts=0)(_Worker)
        self._factory = smooth_factory
        self._actors = [self._new_actor() for _ in range(self.num_workers)]

    def _new_actor(self):
        return self._actor_cls.remote(self._factory, self.device)

    def imap(self, smooth, certify, xs: torch.Tensor, blocks: Sequence[Block], job: dict,
             fingerprint: str | None = None) -> Iterator[tuple[Block, object, float, float]]:
        """Certify every block on the actors; yield (block, output, seconds, cpu seconds) in block
        order. ``smooth`` and ``certify`` (the driver's) are not used: each actor has its own."""
        ray = self._ray
        pending: dict = {}  # object ref -> (block, actor index)
        retries: dict[int, int] = {}
        queue, free = list(blocks), list(range(len(self._actors)))
        ready: dict[int, tuple] = {}
        order = [b[0] for b in blocks]
        nxt = 0

        def submit():
            while queue and free:
                blk, a = queue.pop(0), free.pop(0)
                pending[self._actors[a].run.remote(xs[blk[1]:blk[2]], job, blk[0], fingerprint)] = (blk, a)

        submit()
        while nxt < len(order):
            if order[nxt] in ready:
                yield ready.pop(order[nxt])
                nxt += 1
                continue
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            blk, a = pending.pop(ref)
            try:
                out, seconds, cpu = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as err:
                retries[blk[0]] = retries.get(blk[0], 0) + 1
                if retries[blk[0]] > self.max_retries:
                    raise RuntimeError(f"block {blk[0]} failed {retries[blk[0]]} times; last error: {err}") from err
                self._actors[a] = self._new_actor()  # replace the dead worker; redo only this block
                queue.insert(0, blk)
            else:
                ready[blk[0]] = (blk, out, seconds, cpu)
            free.append(a)
            submit()

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []


class _Worker:
    """A Ray actor: builds the smoothed classifier once, then certifies blocks."""

    def __init__(self, factory, device):
        self.smooth, self.certify = _certifier(factory())
        self.device = device

    def run(self, xs: torch.Tensor, job: dict, j: int, fingerprint: str | None):
        if fingerprint is not None:
            mine = model_fingerprint(self.smooth.classifier, self.smooth.denoiser,
                                     getattr(self.smooth, "rejector", None))
            if mine != fingerprint:
                raise ValueError(f"worker models have fingerprint {mine}, the log was started with {fingerprint}: "
                                 "the smooth_factory must build the driver's models")
        return certify_block(self.certify, self.device, xs, job, j)
