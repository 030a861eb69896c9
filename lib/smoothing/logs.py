"""Per-example certification logs: the one module that owns their format, names and sidecars.

A log is a TSV file with Cohen et al.'s columns (locuslab/smoothing's ``certify.py``), one row per
test point, in the order the points were certified::

    idx  label  predict  radius  correct  time      [extra columns, e.g. samples | n_a n_r]

``predict`` is ``-1`` (``ABSTAIN``) when the smoothed classifier abstains, ``radius`` is 0 then,
``correct`` is 1 iff ``predict == label``, and ``time`` is the wall time per point as a
``H:MM:SS.ffffff`` timedelta (locuslab's own published logs also use plain seconds, ``15.4``;
:func:`parse_time` reads both). Extra per-example columns of a certification procedure
(the number of samples a sequential test drew, the accepted / rejected counts of a rejector)
come *after* the six, so that locuslab's ``analyze.py`` still reads the file.

Beside ``<log>`` live:

* ``<log>.json``, the *sidecar*: every setting that determines the rows (noise, sigma, n0, n,
  alpha, seed, chunk, batch_size), the identity of the models (:func:`model_fingerprint`, a hash
  of their weights), of the data (dataset, split, a hash of the index list and of the inputs) and
  ``num_points``; written once, before the first row, and compared on every resume;
* ``<log>.cpu.json``: process CPU seconds spent writing the rows (steadier than wall time on a
  shared machine), see :func:`log_cpu_seconds`, and the elapsed seconds, which are less than the
  per-example times summed when several processes certified (:func:`log_elapsed_seconds`);
* ``<log>.lock``: held (``fcntl.flock``) by the one process writing the log, see :func:`log_lock`.

Names: ``LOGS/<notebook>/<dataset>-<method>[-<tag>]-<noise>-s<sigma>-<profile>-<key>.tsv``, where
``<key>`` (:func:`log_key`) hashes everything that determines the rows; a log of the same name
written by another notebook is the same run and is found by :func:`find_log`.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib import paths
from lib.utils import atomic_write_json, atomic_write_text, config_hash

__all__ = ["LOG_COLUMNS", "LOG_FORMAT", "LogError", "LogLockedError", "sidecar_path", "read_settings",
           "parse_time", "read_log", "log_seconds", "log_lock", "model_fingerprint", "array_hash", "log_key",
           "log_path", "find_log", "add_cpu_seconds", "log_cpu_seconds", "log_elapsed_seconds", "prepare_log",
           "format_row"]

#: Cohen et al.'s columns, in their order
LOG_COLUMNS = ["idx", "label", "predict", "radius", "correct", "time"]
#: version of the sidecar layout (a sidecar without it was written before model fingerprints)
LOG_FORMAT = 2
#: sidecar keys that a log of the first format did not have
_NEW_KEYS = ("log_format", "model_fingerprint", "indices_hash", "data_hash", "batch_size", "columns")


class LogError(ValueError):
    """A log or its sidecar is malformed, incomplete, or was written with other settings."""


class LogLockedError(RuntimeError):
    """Another process is writing the log."""


# ====================================================================== sidecars
def sidecar_path(log: str | os.PathLike) -> Path:
    """``<log>.json``, the settings sidecar."""
    return Path(str(log) + ".json")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LogError(f"sidecar {path} is not valid JSON ({exc}); delete the log and its sidecars and rerun") from None
    if not isinstance(value, dict):
        raise LogError(f"sidecar {path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_settings(log: str | os.PathLike) -> dict:
    """The settings sidecar of ``log`` ({} when there is none, e.g. for locuslab's logs)."""
    side = sidecar_path(log)
    return _read_json(side) if side.exists() else {}


# ====================================================================== reading
def parse_time(values) -> np.ndarray:
    """Seconds of a log's ``time`` column: ``H:MM:SS[.ffffff]``, ``D day(s), H:MM:SS`` or plain seconds."""
    s = pd.Series(values)
    if len(s) == 0:
        return np.zeros(0)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float)
    as_number = pd.to_numeric(s, errors="coerce")
    out = np.empty(len(s))
    numeric = as_number.notna().to_numpy()
    out[numeric] = as_number[numeric].to_numpy(dtype=float)
    if (~numeric).any():
        text = s[~numeric].astype(str).str.replace(r"\bday(s)?,", r"day\1", regex=True)
        out[~numeric] = pd.to_timedelta(text).dt.total_seconds().to_numpy()
    return out


def _bad_row(path, frame_row: int, column: str, value, what: str) -> LogError:
    return LogError(f"log {path}, line {frame_row + 2}: column {column!r} holds {value!r}, expected {what}")


def read_log(path: str | os.PathLike, complete: bool = True) -> pd.DataFrame:
    """Read and validate a log (ours or locuslab's); the frame has Cohen's columns first.

    Checks: the six columns exist; ``idx``, ``label``, ``predict`` and ``correct`` are integers
    (``correct`` in {0, 1}), ``radius`` a finite number >= 0, ``time`` a duration; ``idx`` is
    unique; and, when a sidecar gives ``num_points`` and ``complete`` is true, the log has exactly
    that many rows (an interrupted run is reported, not read as a smaller test set). Every
    failure raises :class:`LogError` naming the file and, for a bad value, its line.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LogError(f"log {path} cannot be parsed as a TSV log: {exc}") from None
    missing = [c for c in LOG_COLUMNS if c not in df.columns]
    if missing:
        raise LogError(f"log {path} lacks columns {missing} (has {list(df.columns)})")
    out = df.copy()
    for col in ("idx", "label", "predict", "correct"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() | (num != np.floor(num))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _bad_row(path, i, col, df[col].iloc[i], "an integer")
        out[col] = num.astype(np.int64)
    bad = ~out["correct"].isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _bad_row(path, i, "correct", df["correct"].iloc[i], "0 or 1")
    radius = pd.to_numeric(df["radius"], errors="coerce")
    bad = radius.isna() | ~np.isfinite(radius) | (radius < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _bad_row(path, i, "radius", df["radius"].iloc[i], "a finite number >= 0")
    out["radius"] = radius.astype(float)
    try:
        parse_time(df["time"])
    except (ValueError, TypeError):
        i = next(i for i, v in enumerate(df["time"]) if not _parses(v))
        raise _bad_row(path, i, "time", df["time"].iloc[i], "a duration (H:MM:SS.ffffff or seconds)") from None
    for col in df.columns[len(LOG_COLUMNS):]:  # extra columns: numbers when they look like numbers
        num = pd.to_numeric(df[col], errors="coerce")
        if num.notna().all():
            out[col] = num
    dup = out["idx"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise LogError(f"log {path}, line {i + 2}: idx {int(out['idx'].iloc[i])} appears twice")
    meta = read_settings(path)
    if complete and "num_points" in meta and len(out) != int(meta["num_points"]):
        raise LogError(f"log {path} has {len(out)} rows but its sidecar says num_points={meta['num_points']} "
                       "(an interrupted run: rerun the certification to resume it)")
    return out


def _parses(value) -> bool:
    try:
        parse_time([value])
        return True
    except (ValueError, TypeError):
        return False


def log_seconds(log: str | os.PathLike | pd.DataFrame) -> float:
    """Wall time of certification recorded in a log (a path or a frame read from one): the sum of
    its per-example times."""
    df = log if isinstance(log, pd.DataFrame) else read_log(log)
    return float(parse_time(df["time"]).sum())


# ====================================================================== identities and names
def _modules_of(obj, depth: int = 3) -> list[nn.Module]:
    """The ``nn.Module`` objects that make up a classifier or denoiser: the object itself, or the
    modules held by a wrapper's attributes, a bound method's object, a ``functools.partial``'s
    arguments or a closure's cells (a few levels deep)."""
    if obj is None or depth == 0:
        return []
    if isinstance(obj, nn.Module):
        return [obj]
    children = list(getattr(obj, "__dict__", {}).values())
    children += [c.cell_contents for c in (getattr(obj, "__closure__", None) or ()) if _has_contents(c)]
    children += [obj.func, *getattr(obj, "args", ())] if hasattr(obj, "func") else []
    children += [obj.__self__] if hasattr(obj, "__self__") else []
    return [m for child in children for m in _modules_of(child, depth - 1)]


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def model_fingerprint(*models) -> str:
    """A SHA-256 (first 16 hex digits) of the weights of the given models (classifier, denoiser,
    rejector; None skipped): names, dtypes, shapes and bytes of every state-dict tensor, so a
    retrained, edited or corrupted checkpoint gets another fingerprint. A callable without any
    module reachable through its attributes, closure cells or partial arguments contributes only its
    qualified name (e.g. a lambda that calls a global model)."""
    h = hashlib.sha256()
    for m in models:
        if m is None:
            h.update(b"<none>")
            continue
        mods = _modules_of(m)
        if not mods:
            h.update(f"{type(m).__module__}.{getattr(m, '__qualname__', type(m).__qualname__)}".encode())
        for mod in mods:
            h.update(type(mod).__qualname__.encode())
            for k, v in mod.state_dict().items():
                v = v.detach().cpu().contiguous()
                h.update(f"{k}|{v.dtype}|{tuple(v.shape)}".encode())
                h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def array_hash(*arrays) -> str:
    """A SHA-256 (first 16 hex digits) of tensors / arrays / index lists (values and shapes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().contiguous() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
        h.update(f"{a.dtype}|{tuple(a.shape)}".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def log_key(method: str, noise, models: Mapping, subset: str, n0: int, n: int, alpha: float, seed: int) -> str:
    """The hash in a log's name: method, noise and sigma, the models' configs, the test subset
    (:attr:`lib.methods.TestSubset.key`), n0, n, alpha and the seed."""
    return config_hash({"method": method, "noise": noise.name, "sigma": noise.sigma, "models": models,
                        "subset": subset, "n0": int(n0), "n": int(n), "alpha": float(alpha), "seed": int(seed)})


_NAME_PART = re.compile(r"[A-Za-z0-9_.]+")


def log_path(notebook: str, dataset: str, method: str, noise, profile: str, key: str, tag: str = "") -> Path:
    """``LOGS/<notebook>/<dataset>-<method>[-<tag>]-<noise>-s<sigma>-<profile>-<key>.tsv``."""
    if tag and not _NAME_PART.fullmatch(tag):
        raise ValueError(f"tag may hold letters, digits, '_' and '.', got {tag!r}")
    for name, part in (("notebook", notebook), ("dataset", dataset), ("method", method), ("profile", profile),
                       ("key", key)):
        if not isinstance(part, str) or not _NAME_PART.fullmatch(part):
            raise ValueError(f"{name} may hold letters, digits, '_' and '.', got {part!r}")
    name = "-".join(p for p in (dataset, method, tag, noise.name, f"s{noise.sigma:g}", profile, key) if p)
    return paths.LOGS / notebook / f"{name}.tsv"


def find_log(path: str | os.PathLike) -> Path:
    """``path`` if it exists, else a log of the same name (hence the same run: the name carries
    :func:`log_key`) written by another notebook under ``paths.LOGS``, else ``path`` itself.
    This is how notebook 06 reuses the Gaussian runs of 05 without naming 05."""
    path = Path(path)
    if path.exists() or not paths.LOGS.exists():
        return path
    same = sorted(p for p in paths.LOGS.glob(f"*/{path.name}") if p != path and sidecar_path(p).exists())
    return same[0] if same else path


# ====================================================================== CPU-time sidecar
def _cpu_path(log) -> Path:
    return Path(str(log) + ".cpu.json")


def add_cpu_seconds(log: str | os.PathLike, seconds: float, rows: int, elapsed: float | None = None) -> None:
    """Accumulate the CPU time (of every process) spent writing ``rows`` new rows of ``log``, and
    the ``elapsed`` wall time they took (unknown from then on when a call does not give it)."""
    if rows <= 0:
        return
    side = _cpu_path(log)
    old = _read_json(side) if side.exists() else {"cpu_seconds": 0.0, "rows": 0, "elapsed_seconds": 0.0}
    new = {"cpu_seconds": old["cpu_seconds"] + float(seconds), "rows": old["rows"] + int(rows)}
    if elapsed is not None and old.get("elapsed_seconds") is not None:
        new["elapsed_seconds"] = old["elapsed_seconds"] + float(elapsed)
    atomic_write_json(side, new)


def log_elapsed_seconds(log: str | os.PathLike) -> float:
    """Elapsed wall seconds of certification per test point x points of the log: with several
    processes, less than :func:`log_seconds` (the per-example times summed); NaN if unknown."""
    side = _cpu_path(log)
    d = _read_json(side) if side.exists() else {}
    if d.get("elapsed_seconds") is None:
        return float("nan")
    return d["elapsed_seconds"] / max(d["rows"], 1) * len(read_log(log, complete=False))


def log_cpu_seconds(log: str | os.PathLike) -> float:
    """Process CPU seconds of certification per test point x points of the log (NaN if unknown)."""
    side = _cpu_path(log)
    if not side.exists():
        return float("nan")
    d = _read_json(side)
    return d["cpu_seconds"] / max(d["rows"], 1) * len(read_log(log, complete=False))


# ====================================================================== writing
@contextmanager
def log_lock(log: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``log`` (``<log>.lock``, ``fcntl.flock``) for the block.

    A second writer, in this or another process, gets :class:`LogLockedError` naming the log and
    the pid of the holder. The lock dies with its process, so a crash leaves no stale lock.
    """
    log = Path(log)
    lock = Path(str(log) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            try:
                holder = lock.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise LogLockedError(f"log {log} is being written by another process (pid {holder}); "
                                 "wait for it to finish or certify into another path") from None
        try:  # the file we locked may have been removed by the previous holder meanwhile
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield log
    finally:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def format_row(idx: int, label: int, predict: int, radius: float, correct: int, time: str,
               extras: Sequence = ()) -> str:
    """One TSV line (with its newline)."""
    cells = [str(int(idx)), str(int(label)), str(int(predict)), f"{float(radius):.6f}", str(int(correct)), str(time)]
    cells += [_cell(v) for v in extras]
    return "\t".join(cells) + "\n"


def _cell(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _finished_rows(log: Path, columns: list[str], indices: Sequence[int]) -> int:
    """Number of finished rows of ``log``, which must carry exactly ``indices[:k]`` in order.

    A torn last line (a crash in mid-write: no newline) is cut off with a warning; anything else
    that does not fit raises :class:`LogError` naming the line -- finished rows are never dropped.
    """
    text = log.read_text()
    if text == "":
        atomic_write_text(log, "\t".join(columns) + "\n")
        return 0
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    header = lines[0].split("\t") if lines else torn.split("\t")
    if header != columns:
        raise LogError(f"log {log}, line 1: header {header} differs from the expected {columns}; "
                       "the file is not a log of this run (move it away to start over)")
    if not lines:  # only a torn header
        atomic_write_text(log, "\t".join(columns) + "\n")
        return 0
    rows = lines[1:]
    if len(rows) > len(indices):
        raise LogError(f"log {log} has {len(rows)} rows but the run has {len(indices)} points")
    for i, line in enumerate(rows):
        fields = line.split("\t")
        if len(fields) != len(columns) or fields[0] != str(indices[i]):
            raise LogError(f"log {log}, line {i + 2}: expected the row of idx {indices[i]} with {len(columns)} "
                           f"fields, found {line!r}; the log does not match this run (move it away to start over)")
    if torn:
        warnings.warn(f"log {log}: dropped a torn last line {torn!r} (an interrupted write); "
                      f"resuming after {len(rows)} finished rows", stacklevel=3)
        atomic_write_text(log, "\n".join(lines) + "\n")
    return len(rows)


def prepare_log(log: str | os.PathLike, meta: Mapping, indices: Sequence[int], columns: Sequence[str]) -> int:
    """Check ``log`` against the run described by ``meta`` (the sidecar to write) and return the
    number of finished rows to resume after (0 for a new log). Call it holding :func:`log_lock`.

    * no log: the sidecar, then the header, are written;
    * a log without its sidecar, or with a sidecar of other settings: :class:`LogError`
      (a first-format sidecar whose settings agree is upgraded, with a warning);
    * rows that are not exactly ``indices[:k]``: :class:`LogError` naming the line.
    """
    log = Path(log)
    meta = json.loads(json.dumps(dict(meta), default=str))
    columns = list(columns)
    side = sidecar_path(log)
    if log.exists():
        if not side.exists():
            raise LogError(f"log {log} has no sidecar {side.name}: its settings are unknown, so it cannot be "
                           "resumed; move it away (or delete it) to certify again")
        old = _read_json(side)
        if "log_format" not in old:  # first format: no identities recorded
            diff = {k: (old[k], meta.get(k)) for k in old if old[k] != meta.get(k)}
            if diff:
                raise LogError(f"log {log} was written with other settings {diff}; delete it or use another path")
            warnings.warn(f"log {log}: its sidecar predates model and data fingerprints; adopting it with "
                          "today's fingerprints (the settings it recorded agree)", stacklevel=3)
            atomic_write_json(side, meta)
        elif old != meta:
            diff = {k: (old.get(k), meta.get(k)) for k in sorted(set(old) | set(meta)) if old.get(k) != meta.get(k)}
            raise LogError(f"log {log} was written with other settings {diff}; delete it or use another path")
        return _finished_rows(log, columns, indices)
    atomic_write_json(side, meta)
    atomic_write_text(log, "\t".join(columns) + "\n")
    return 0
