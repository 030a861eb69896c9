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

from lib import paths
from lib.smoothing.stats import proportion_interval
from lib.utils import atomic_path, atomic_write_json, atomic_write_text

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


# ---------------------------------------------------------------------- tables from logs
def _log_rel(path: str | Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(paths.OUTPUTS))
    except ValueError:
        return str(path)


def _log_abs(rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else paths.OUTPUTS / p


def log_settings_of(path: str | Path) -> dict:
    """The JSON sidecar written by :func:`lib.certify.certify_dataset` beside a log."""
    side = Path(str(path) + ".json")
    return json.loads(side.read_text()) if side.exists() else {}


def best_over_logs(rows: Mapping[str, Sequence[str | Path]], radii: Sequence[float], alpha: float = 0.05,
                   clean: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(accuracy, lower, upper) as fractions, one row per label and one column per radius
    (``"clean"`` first when ``clean``). A row given several logs takes, at each radius, the
    best log ("best over sigma"); lower/upper are the two-sided (1 - alpha) Clopper-Pearson
    interval over the test points of that log."""
    radii = [float(r) for r in radii]
    cols = (["clean"] if clean else []) + [f"{r:g}" for r in radii]
    grid = ([0.0] if clean else []) + radii
    acc, lo, hi = {}, {}, {}
    for label, logs in rows.items():
        dfs = [read_log(_log_abs(str(p))) for p in logs]
        accs = np.stack([certified_accuracy(df, grid) for df in dfs])
        best = accs.argmax(0)
        acc[label] = accs[best, np.arange(len(grid))]
        ns = [len(dfs[b]) for b in best]
        lo[label], hi[label] = zip(*(proportion_interval(int(round(a * n)), n, alpha) for a, n in zip(acc[label], ns)))

    def frame(d):
        return pd.DataFrame.from_dict({k: list(v) for k, v in d.items()}, orient="index", columns=cols)

    return frame(acc), frame(lo), frame(hi)


def table_from_logs(rows: Mapping[str, Sequence[str | Path]], radii: Sequence[float],
                    interval: bool = True, alpha: float = 0.05, clean: bool = True) -> pd.DataFrame:
    """Certified accuracy (%) per row label, best over the row's logs (:func:`best_over_logs`);
    with ``interval`` each cell reads "acc [lower, upper]" (Clopper-Pearson over test points).
    ``clean`` adds a column with the clean accuracy of the smoothed classifier (radius 0)."""
    acc, lo, hi = best_over_logs(rows, radii, alpha, clean)
    if not interval:
        return (100 * acc).round(1)
    return pd.DataFrame([[f"{100*a:.1f} [{100*l:.0f}, {100*h:.0f}]" for a, l, h in zip(*r)]
                         for r in zip(acc.to_numpy(), lo.to_numpy(), hi.to_numpy())],
                        index=acc.index, columns=acc.columns)


def register_table(notebook: str, stem: str, rows: Mapping[str, Sequence[str | Path]], radii: Sequence[float],
                   title: str, settings: Mapping[str, object], reference: Mapping[str, Sequence] | None = None,
                   reference_source: str = "", interval: bool = True, clean: bool = True) -> pd.DataFrame:
    """Build a certified-accuracy table from logs, save it (CSV/MD/TeX) and register its spec.

    The spec (``outputs/tables/<NN_stem>.json``) lets ``10_tables`` rebuild every table of the
    companion from the per-example logs and write ``figures/RESULTS.md``. ``reference`` rows
    (published numbers) are appended as ``"<label> (published)"`` and never mixed with ours.
    """
    spec = {"notebook": notebook, "stem": stem, "title": title, "radii": [float(r) for r in radii],
            "rows": {k: [_log_rel(p) for p in v] for k, v in rows.items()}, "settings": dict(settings),
            "reference": {k: list(v) for k, v in (reference or {}).items()},
            "reference_source": reference_source, "interval": interval, "clean": clean}
    # unsorted keys: rows, reference rows and settings keep the order they were given in
    atomic_write_json(paths.OUTPUTS / "tables" / f"{prefixed(notebook, stem)}.json", spec, sort_keys=False)
    table = render_table(spec)
    save_table(table, stem, notebook, caption=table_caption(spec))
    return table


def render_table(spec: Mapping) -> pd.DataFrame:
    """Ours (from the logs) and the published reference rows of a registered table spec."""
    ours = table_from_logs(spec["rows"], spec["radii"], interval=spec.get("interval", True),
                           clean=spec.get("clean", True))
    ref = spec.get("reference") or {}
    if ref:
        cols = list(ours.columns)
        rows = {}
        for label, values in ref.items():
            values = list(values)
            pad = len(cols) - len(values)  # references may lack the clean column
            rows[f"{label} (published)"] = ["–"] * pad + [str(v) for v in values]
        ours = pd.concat([ours.astype(str), pd.DataFrame.from_dict(rows, orient="index", columns=cols)])
    return ours


def table_caption(spec: Mapping) -> str:
    s = spec.get("settings", {})
    parts = ", ".join(f"{k}={v}" for k, v in s.items())
    text = (f"{spec['title']}. Certified accuracy (%) at the given radii"
            + (" with a 95% Clopper-Pearson interval over test points" if spec.get("interval", True) else "")
            + f". Settings: {parts}.")
    if spec.get("reference"):
        text += f" Rows marked (published) are references from {spec.get('reference_source', 'the paper')}, not our results."
    return text


def load_table_spec(notebook: str, stem: str) -> dict:
    """The spec that :func:`register_table` wrote for one table."""
    return json.loads((paths.OUTPUTS / "tables" / f"{prefixed(notebook, stem)}.json").read_text())


def load_table_specs() -> list[dict]:
    folder = paths.OUTPUTS / "tables"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
