"""From per-example logs to certified accuracies, tables, paired comparisons and metrics.

The per-example TSV logs (:mod:`lib.smoothing.logs`, Cohen et al.'s columns
``idx label predict radius correct time``) are the source of truth; every table is derived
from them here (figures in :mod:`lib.reporting.figures`, registered tables and RESULTS.md in
:mod:`lib.reporting.findings`).

* certified accuracy at radius r = fraction of test points that are correct with radius >= r
  (abstentions count as wrong), reported with a Clopper-Pearson interval over test points;
* "best over sigma" = for every radius, the best certified accuracy among several logs;
* :func:`paired_difference` compares two methods on the same test points: a paired t interval
  (``scipy.stats.ttest_rel``) for radius differences, McNemar's exact test (statsmodels) for
  certified / not-certified outcomes at a radius;
* :func:`save_table` writes CSV + Markdown + LaTeX with deterministic names prefixed by the
  notebook number (``04_table1.csv``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel
from statsmodels.stats.contingency_tables import mcnemar

from lib import paths
from lib.smoothing.logs import LOG_COLUMNS, read_log, read_settings
from lib.smoothing.stats import proportion_interval
from lib.utils import atomic_path, atomic_write_json, atomic_write_text, check_alpha

__all__ = ["read_log", "certified_accuracy", "certified_accuracy_table", "best_over", "best_over_logs",
           "table_from_logs", "accuracy_curve", "save_table", "record_metrics", "read_metrics", "prefixed",
           "markdown_table", "log_settings_of", "paired_difference"]


def interval_cell(acc: float, lo: float, hi: float) -> str:
    """A table cell "acc [lo, hi]" in %: the estimate to 0.1, the interval rounded *outward* to whole
    percent (floor of lo, ceiling of hi), so the printed interval always contains the estimate."""
    return f"{100 * acc:.1f} [{np.floor(100 * lo + 1e-9):.0f}, {np.ceil(100 * hi - 1e-9):.0f}]"

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
            rows[name] = [interval_cell(a, l, h) for a, l, h in zip(acc, lo, hi)]
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
    if index and df.index.nlevels == 1 and df.index.name is None:
        df = df.rename_axis("row")  # a header for the row labels, not pandas' "index"
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
    """The JSON sidecar beside a log ({} if none): :func:`lib.smoothing.logs.read_settings`."""
    return read_settings(path)


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
    return pd.DataFrame([[interval_cell(a, l, h) for a, l, h in zip(*r)]
                         for r in zip(acc.to_numpy(), lo.to_numpy(), hi.to_numpy())],
                        index=acc.index, columns=acc.columns)


# ---------------------------------------------------------------------- paired comparisons
def paired_outcomes(path_a: str | Path, path_b: str | Path, radius: float | None = None):
    """(scores of A, scores of B) on the test points both logs hold (matched on ``idx``): the
    certified radius if correct, else 0 (means: the ACRs); with ``radius``, 1[correct and
    R >= radius] (means: the certified accuracies at ``radius``)."""
    a, b = read_log(_log_abs(str(path_a))).set_index("idx"), read_log(_log_abs(str(path_b))).set_index("idx")
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ValueError(f"the logs {path_a} and {path_b} share no test point")

    def score(df):
        ok = df["correct"].to_numpy(bool)
        rad = df["radius"].to_numpy(float)
        return (ok & (rad >= radius)).astype(float) if radius is not None else rad * ok

    return score(a.loc[common]), score(b.loc[common])


def paired_t(sa: np.ndarray, sb: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(mean of A - B, lo, hi, p): the (1 - alpha) paired t interval of ``scipy.stats.ttest_rel`` and its
    p-value for per-point scores ``sa``, ``sb`` of the same points (an interval of zero width where every
    point's difference is the same; the whole line with one point)."""
    d = sa - sb
    mean = float(d.mean())
    if len(d) < 2:
        return mean, -np.inf, np.inf, 1.0
    if np.all(d == d[0]):  # no spread: the t interval degenerates
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    test = ttest_rel(sa, sb)
    ci = test.confidence_interval(1 - alpha)
    return mean, float(ci.low), float(ci.high), float(test.pvalue)


def paired_difference(path_a: str | Path, path_b: str | Path, radius: float | None = None,
                      alpha: float = 0.05) -> dict:
    """Method A minus method B on the *same* test points (matched on ``idx``).

    Without ``radius``: the mean difference of the per-point scores radius*correct (the ACR
    difference) with the (1 - alpha) paired t interval of ``scipy.stats.ttest_rel`` (``lo``,
    ``hi``) and its p-value. With ``radius``: the difference of certified accuracies at
    ``radius`` and McNemar's exact test (statsmodels) of the paired certified / not-certified
    outcomes (``p``; ``lo``/``hi`` are NaN: no interval is claimed). ``verdict`` is "A better",
    "B better" or "not resolved" (interval containing 0, or p >= alpha); ``points`` the pairs."""
    alpha = check_alpha(alpha)
    sa, sb = paired_outcomes(path_a, path_b, radius)
    d = sa - sb
    mean = float(d.mean())
    if radius is None:
        mean, lo, hi, p = paired_t(sa, sb, alpha)
        verdict = "A better" if lo > 0 else "B better" if hi < 0 else "not resolved"
    else:
        only_a, only_b = int(((sa == 1) & (sb == 0)).sum()), int(((sa == 0) & (sb == 1)).sum())
        both, neither = int(((sa == 1) & (sb == 1)).sum()), int(((sa == 0) & (sb == 0)).sum())
        p = float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue) if only_a + only_b else 1.0
        lo = hi = float("nan")
        verdict = "not resolved" if p >= alpha or mean == 0 else "A better" if mean > 0 else "B better"
    return {"diff": mean, "lo": lo, "hi": hi, "p": p, "points": int(len(d)), "verdict": verdict}
