"""Certify a test set with per-example, resumable logs in Cohen et al.'s TSV format.

Each finished example is one row ``idx label predict radius correct time``, flushed to disk
with the rest of its block (``time`` is a ``H:MM:SS.ffffff`` timedelta as in locuslab/smoothing), so the log is
readable by the reference ``analyze.py`` too. A JSON sidecar ``<log>.json`` stores the
settings; rerunning with the same settings resumes after the last complete row, a torn
last line from a crash is dropped, and rerunning with other settings refuses to mix them.

Reproducibility: the inputs are processed in fixed blocks of ``chunk`` examples and block
``j`` draws its noise from a generator seeded with ``(seed, j)``, so an interrupted and
resumed run writes exactly the rows of an uninterrupted one.
"""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from lib.reporting.tables import LOG_COLUMNS, read_log
from lib.smoothing.smooth import ABSTAIN, Smooth
from lib.utils import atomic_write_json, atomic_write_text, check_count, progress_bar

__all__ = ["certify_dataset", "log_settings"]


def log_settings(smooth: Smooth, n0: int, n: int, alpha: float, **extra) -> dict:
    """The settings stored beside a log: noise, sigma, n0, n, alpha and anything in ``extra``."""
    return {"noise": smooth.noise.name, "sigma": smooth.noise.sigma, "norm": smooth.noise.norm,
            "n0": int(n0), "n": int(n), "alpha": float(alpha), **extra}


def _finished_rows(log: Path) -> int:
    """Number of complete rows in ``log``; rewrites the file without a torn last line."""
    if not log.exists():
        return -1
    text = log.read_text()
    lines = text.splitlines(keepends=True)
    good = [ln for ln in lines if ln.endswith("\n") and len(ln.rstrip("\n").split("\t")) == len(LOG_COLUMNS)]
    if not good or good[0].rstrip("\n").split("\t") != LOG_COLUMNS:
        atomic_write_text(log, "")
        return -1
    if len(good) != len(lines):
        atomic_write_text(log, "".join(good))
    return len(good) - 1


def certify_dataset(smooth: Smooth, xs: torch.Tensor, labels: torch.Tensor, n0: int, n: int, alpha: float,
                    log_path: str | Path, indices: Sequence[int] | None = None, seed: int = 0,
                    chunk: int = 16, batch_size: int | None = None, settings: dict | None = None,
                    progress: bool = True) -> pd.DataFrame:
    """CERTIFY every row of ``xs`` [N, *input_shape] and log it; return the whole log.

    ``indices`` are the dataset indices written in the ``idx`` column (default 0..N-1).
    ``settings`` (a dict) is merged into the sidecar; a mismatch with an existing log raises.
    """
    check_count("chunk", chunk)
    if xs.shape[0] != labels.shape[0]:
        raise ValueError(f"xs has {xs.shape[0]} rows but labels has {labels.shape[0]}")
    indices = list(range(xs.shape[0])) if indices is None else [int(i) for i in indices]
    if len(indices) != xs.shape[0]:
        raise ValueError(f"indices has {len(indices)} entries but xs has {xs.shape[0]} rows")
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    meta = log_settings(smooth, n0, n, alpha, seed=int(seed), chunk=int(chunk), num_points=len(indices),
                        **(settings or {}))
    meta = json.loads(json.dumps(meta, default=str))
    sidecar = log.with_suffix(log.suffix + ".json")
    if sidecar.exists() and log.exists():
        old = json.loads(sidecar.read_text())
        if old != meta:
            diff = {k: (old.get(k), meta.get(k)) for k in set(old) | set(meta) if old.get(k) != meta.get(k)}
            raise ValueError(f"log {log} was written with other settings {diff}; delete it or use another path")
    done = _finished_rows(log)
    if done < 0:
        atomic_write_text(log, "\t".join(LOG_COLUMNS) + "\n")
        done = 0
    atomic_write_json(sidecar, meta)

    blocks = range(done // chunk, (len(indices) + chunk - 1) // chunk)
    bar = progress_bar(total=len(indices), initial=done, desc=log.stem, disable=not progress or done >= len(indices))
    with open(log, "a") as f:
        for j in blocks:
            lo, hi = j * chunk, min(len(indices), (j + 1) * chunk)
            gen = torch.Generator(device=smooth.device).manual_seed(int(seed) * 1_000_003 + j)
            t0 = time.perf_counter()
            preds, radii = smooth.certify_batch(xs[lo:hi], n0, n, alpha, batch_size=batch_size, generator=gen)
            per_example = datetime.timedelta(seconds=(time.perf_counter() - t0) / (hi - lo))
            for i in range(lo, hi):
                if i < done:
                    continue  # finished before an interruption: same draws, already written
                pred, label = int(preds[i - lo]), int(labels[i])
                correct = int(pred == label and pred != ABSTAIN)
                f.write(f"{indices[i]}\t{label}\t{pred}\t{float(radii[i - lo]):.6f}\t{correct}\t{per_example}\n")
            f.flush()  # a block's rows reach the disk together; a torn last line is dropped on resume
            bar.update(hi - max(lo, done))
    bar.close()
    return read_log(log)
