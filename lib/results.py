"""From per-example logs to certified-accuracy curves, tables and figures.

The per-example TSV logs of :mod:`lib.certify` (Cohen et al.'s columns
``idx label predict radius correct time``) are the source of truth; every table and figure
is derived from them here.

* certified accuracy at radius r = fraction of test points that are correct with radius >= r
  (abstentions count as wrong), reported with a Clopper-Pearson interval over test points;
* "best over sigma" = for every radius, the best certified accuracy among several logs;
* :func:`save_table` writes CSV + Markdown + LaTeX, :func:`save_figure` PNG + PDF, both with
  deterministic names prefixed by the notebook number (``04_table1.csv``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import paths
from .stats import proportion_interval
from .utils import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["read_log", "certified_accuracy", "certified_accuracy_table", "best_over",
           "accuracy_curve", "save_table", "save_figure", "record_metrics", "read_metrics",
           "prefixed", "markdown_table"]

LOG_COLUMNS = ["idx", "label", "predict", "radius", "correct", "time"]


def read_log(path: str | Path) -> pd.DataFrame:
    """Read a Cohen-format TSV log (also readable by locuslab/smoothing's analyze.py)."""
    df = pd.read_csv(path, sep="\t")
    missing = set(LOG_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"log {path} lacks columns {sorted(missing)}")
    return df


def certified_accuracy(df: pd.DataFrame, radii: Sequence[float] | float) -> np.ndarray:
    """Fraction of rows with ``correct == 1`` and ``radius >= r`` for each r (vectorised)."""
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    correct = df["correct"].to_numpy().astype(bool)
    radius = df["radius"].to_numpy(dtype=float)
    if len(df) == 0:
        return np.full(radii.shape, np.nan)
    return (correct[None, :] & (radius[None, :] >= radii[:, None])).mean(1)


def accuracy_curve(df: pd.DataFrame, max_radius: float | None = None, num: int = 200):
    """(radii, certified accuracy) on a fine grid from 0 to ``max_radius``."""
    top = float(df["radius"].max()) if max_radius is None else max_radius
    grid = np.linspace(0, max(top, 1e-9) * 1.02, num)
    return grid, certified_accuracy(df, grid)


def certified_accuracy_table(logs: Mapping[str, pd.DataFrame], radii: Sequence[float],
                             interval: bool = False, alpha: float = 0.05) -> pd.DataFrame:
    """One row per log, one column per radius, in percent (rounded to 1 decimal).

    With ``interval=True`` every cell reads "acc [lo, hi]", the two-sided (1 - alpha)
    Clopper-Pearson interval over the test points of that log.
    """
    rows = {}
    for name, df in logs.items():
        acc = certified_accuracy(df, radii)
        if interval:
            k = np.round(acc * len(df)).astype(int)
            lo, hi = proportion_interval(k, len(df), alpha)
            rows[name] = [f"{100*a:.1f} [{100*l:.0f}, {100*h:.0f}]" for a, l, h in zip(acc, lo, hi)]
        else:
            rows[name] = list(np.round(100 * acc, 1))
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"{r:g}" for r in radii])


def best_over(logs: Iterable[pd.DataFrame], radii: Sequence[float]) -> np.ndarray:
    """Per radius, the best certified accuracy among ``logs`` (e.g. over sigma)."""
    accs = np.stack([certified_accuracy(df, radii) for df in logs])
    return accs.max(0)


# ---------------------------------------------------------------------- writing outputs
def prefixed(notebook: str, stem: str) -> str:
    """Deterministic output name: notebook '04_empirical_bayes...' + 'table1' -> '04_table1'."""
    prefix = str(notebook).split("_")[0]
    return stem if stem.startswith(prefix + "_") else f"{prefix}_{stem}"


def markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    """A GitHub Markdown table (no dependency on ``tabulate``)."""
    frame = df.reset_index() if index else df
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, stem: str, notebook: str, caption: str = "",
               folder: str | Path | None = None) -> dict:
    """Write ``df`` as CSV, Markdown (caption below) and LaTeX into ``figures/``."""
    folder = paths.ensure(Path(folder) if folder is not None else paths.FIGURES)
    name = prefixed(notebook, stem)
    out = {}
    with atomic_path(folder / f"{name}.csv") as tmp:
        df.to_csv(tmp)
    out["csv"] = folder / f"{name}.csv"
    md = markdown_table(df) + (f"\n{caption}\n" if caption else "")
    out["md"] = atomic_write_text(folder / f"{name}.md", md)
    latex = df.to_latex(escape=True, caption=caption or None, label=f"tab:{name}")
    out["tex"] = atomic_write_text(folder / f"{name}.tex", latex)
    return out


def save_figure(fig, stem: str, notebook: str, folder: str | Path | None = None, dpi: int = 150) -> dict:
    """Save a matplotlib figure as PNG and PDF with a notebook-prefixed name."""
    folder = paths.ensure(Path(folder) if folder is not None else paths.FIGURES)
    name = prefixed(notebook, stem)
    out = {}
    for ext in ("png", "pdf"):
        with atomic_path(folder / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        out[ext] = folder / f"{name}.{ext}"
    return out


def _metrics_path(notebook: str) -> Path:
    return paths.OUTPUTS / "metrics" / f"{prefixed(notebook, 'metrics')}.json"


def record_metrics(notebook: str, **values) -> Path:
    """Merge named numbers into ``outputs/metrics/NN_metrics.json`` (read by the smoke tests)."""
    path = _metrics_path(notebook)
    current = read_metrics(notebook) if path.exists() else {}
    current.update({k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()})
    return atomic_write_json(path, current)


def read_metrics(notebook: str) -> dict:
    return json.loads(_metrics_path(notebook).read_text())
