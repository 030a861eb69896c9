"""Certify a test set with per-example, resumable logs in Cohen et al.'s TSV format.

Each finished example is one row ``idx label predict radius correct time [extras]``, flushed to
disk with the rest of its block (``time`` is a ``H:MM:SS.ffffff`` timedelta as in
locuslab/smoothing), so the log is readable by the reference ``analyze.py`` too. The format,
the sidecars and the lock are owned by :mod:`lib.smoothing.logs`.

Safety: the log is locked for the whole run (a second writer is refused, naming the holder's
pid); every argument is checked before anything is written; the sidecar records the settings
and the identity of the models (a hash of their weights), of the data and of the index list,
and a rerun with anything else is refused; a resumed log must hold exactly the rows of the
first ``k`` indices, in order (otherwise an error names the line; finished rows are never
dropped).

Reproducibility: the inputs are processed in fixed blocks of ``chunk`` examples and block
``j`` draws its noise from a generator seeded with ``(seed, j)``, so an interrupted and
resumed run writes exactly the rows of an uninterrupted one.
"""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from lib.smoothing import logs
from lib.smoothing.distributed import local_executor
from lib.smoothing.smooth import ABSTAIN, Smooth
from lib.utils import check_alpha, check_count, progress_bar

__all__ = ["certify_dataset", "log_settings"]


def log_settings(smooth: Smooth, n0: int, n: int, alpha: float, **extra) -> dict:
    """The settings stored beside a log: noise, sigma, n0, n, alpha and anything in ``extra``."""
    return {"noise": smooth.noise.name, "sigma": smooth.noise.sigma, "norm": smooth.noise.norm,
            "n0": int(n0), "n": int(n), "alpha": float(alpha),
            **({"grid": smooth.grid} if getattr(smooth, "grid", None) is not None else {}), **extra}


def _check_args(smooth, xs, labels, indices, seed, chunk, batch_size, settings, certify, columns):
    if not isinstance(smooth, Smooth):
        raise TypeError(f"smooth must be a lib.smoothing.Smooth, got {type(smooth).__name__}")
    if not isinstance(xs, torch.Tensor) or not xs.is_floating_point() or xs.dim() < 2:
        raise TypeError(f"xs must be a floating-point tensor [N, *input_shape], got "
                        f"{tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise TypeError("labels must be an integer tensor [N]")
    if xs.shape[0] != labels.shape[0]:
        raise ValueError(f"xs has {xs.shape[0]} rows but labels has {labels.shape[0]}")
    if xs.shape[0] == 0:
        raise ValueError("xs holds no example")
    check_count("seed", seed, minimum=0)
    check_count("chunk", chunk)
    if batch_size is not None:
        check_count("batch_size", batch_size)
    indices = list(range(xs.shape[0])) if indices is None else [int(i) for i in indices]
    if len(indices) != xs.shape[0]:
        raise ValueError(f"indices has {len(indices)} entries but xs has {xs.shape[0]} rows")
    if len(set(indices)) != len(indices):
        raise ValueError("indices must be unique (one log row per test point)")
    if settings is not None and not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    if certify is not None and not callable(certify):
        raise TypeError("certify must be callable like Smooth.certify_batch")
    columns = [str(c) for c in columns]
    bad = [c for c in columns if c in logs.LOG_COLUMNS or not c.isidentifier()]
    if bad or len(set(columns)) != len(columns):
        raise ValueError(f"extra columns must be distinct identifiers other than {logs.LOG_COLUMNS}, got {columns}")
    return indices, columns


def certify_dataset(smooth: Smooth, xs: torch.Tensor, labels: torch.Tensor, n0: int, n: int, alpha: float,
                    log_path: str | Path, indices: Sequence[int] | None = None, seed: int = 0,
                    chunk: int = 16, batch_size: int | None = None, settings: dict | None = None,
                    progress: bool = True, certify: Callable | None = None,
                    columns: Sequence[str] = (), executor=None) -> pd.DataFrame:
    """CERTIFY every row of ``xs`` [N, *input_shape] and log it; return the whole log.

    ``indices`` are the dataset indices written in the ``idx`` column (default 0..N-1).
    ``settings`` (a dict) is merged into the sidecar; a mismatch with an existing log raises.
    ``certify`` replaces ``smooth.certify_batch`` (same arguments: block [B, ...], n0, n, alpha,
    batch_size=, generator=); it returns (predictions [B], radii [B]) or (predictions, radii,
    extras) with ``extras`` = {column: B values} for the extra ``columns`` written after
    Cohen's six (e.g. ``samples`` of a sequential test, ``n_a``/``n_r`` of a rejector).
    ``executor`` runs the blocks: by default :func:`lib.smoothing.distributed.local_executor` (this
    process; on a CPU, forked processes splitting each block by inputs when ``certify`` has fixed draws
    and the run draws 10,000 samples or more, or as ``COMPANION_WORKERS`` says), or on many GPUs / machines with
    :class:`lib.smoothing.distributed.RayExecutor`; the log's rows are the same either way
    (block ``j`` always draws from the generator seeded with ``(seed, j)``).
    """
    n0, n, alpha = check_count("n0", n0), check_count("n", n), check_alpha(alpha)
    indices, columns = _check_args(smooth, xs, labels, indices, seed, chunk, batch_size, settings, certify, columns)
    log = Path(log_path)
    meta = log_settings(smooth, n0, n, alpha, seed=int(seed), chunk=int(chunk), num_points=len(indices),
                        batch_size=batch_size, columns=columns, log_format=logs.LOG_FORMAT,
                        indices_hash=logs.array_hash(indices), data_hash=logs.array_hash(xs, labels),
                        model_fingerprint=logs.model_fingerprint(smooth.classifier, smooth.denoiser,
                                                                 getattr(smooth, "rejector", None)),
                        **(settings or {}))
    try:
        json.dumps(meta, default=str)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"settings must be JSON-serialisable: {exc}") from None
    certify = certify or smooth.certify_batch

    with logs.log_lock(log):
        done = logs.prepare_log(log, meta, indices, logs.LOG_COLUMNS + columns)
        # resume at the block holding the first missing row (its draws are redone, its written rows
        # skipped); a complete log runs no block at all
        blocks = range(done // chunk, (len(indices) + chunk - 1) // chunk) if done < len(indices) else range(0)
        bar = progress_bar(total=len(indices), initial=done, desc=log.stem,
                           disable=not progress or done >= len(indices))
        cpu, written, t_start = 0.0, 0, time.perf_counter()
        job = {"n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size, "seed": int(seed)}
        todo = [(j, j * chunk, min(len(indices), (j + 1) * chunk)) for j in blocks]
        executor = executor or local_executor(smooth.device, len(todo), certify,
                                              samples=(len(indices) - done) * (n0 + n))
        with open(log, "a") as f:
            for (j, lo, hi), out, seconds, cpu_s in executor.imap(smooth, certify, xs, todo, job,
                                                                  meta["model_fingerprint"]):
                preds, radii, extras = _unpack(out, columns, hi - lo)
                per_example = datetime.timedelta(seconds=seconds / (hi - lo))
                for i in range(lo, hi):
                    if i < done:
                        continue  # finished before an interruption: same draws, already written
                    pred, label = int(preds[i - lo]), int(labels[i])
                    correct = int(pred == label and pred != ABSTAIN)
                    f.write(logs.format_row(indices[i], label, pred, float(radii[i - lo]), correct, per_example,
                                            [extras[c][i - lo] for c in columns]))
                f.flush()  # a block's rows reach the disk together; a torn last line is cut on resume
                cpu += cpu_s
                written += hi - max(lo, done)
                bar.update(hi - max(lo, done))
        bar.close()
        logs.add_cpu_seconds(log, cpu, written, elapsed=time.perf_counter() - t_start)
        return logs.read_log(log)


def _unpack(out, columns: list[str], rows: int):
    """(predictions, radii, {column: values}) from what a certify function returned."""
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise TypeError("certify must return (predictions, radii) or (predictions, radii, extras)")
    preds, radii = out[0], out[1]
    extras = dict(out[2]) if len(out) == 3 else {}
    if set(extras) != set(columns):
        raise ValueError(f"certify returned extra columns {sorted(extras)} but the log declares {columns}")
    for name, values in [("predictions", preds), ("radii", radii), *extras.items()]:
        if len(values) != rows:
            raise ValueError(f"certify returned {len(values)} {name} for a block of {rows} inputs")
    return preds, radii, extras
