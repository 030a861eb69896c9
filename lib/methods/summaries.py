"""Summaries of certification logs: per-log numbers, timing and cost tables, table rows by
method, paired comparisons of two methods on the same test points, recorded metrics.

Everything here is derived from the per-example logs (:mod:`lib.smoothing.logs`); fractions
everywhere except the display columns of tables, which say "%" in their names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from lib.methods.registry import method_label
from lib.methods.runs import TestSubset
from lib.reporting.tables import certified_accuracy, paired_difference
from lib.smoothing import logs as logs_lib
from lib.smoothing.logs import log_cpu_seconds, log_elapsed_seconds, log_seconds, read_log

__all__ = ["average_certified_radius", "log_summary", "table_settings", "timing_table", "rows_by_method",
           "paired_table", "grid_metrics", "best_difference", "cost_table"]


def average_certified_radius(df: pd.DataFrame) -> float:
    """ACR: mean over test points of (radius if correct else 0) (Zhai et al. 2020)."""
    return float((df["radius"].to_numpy(float) * df["correct"].to_numpy(bool)).mean()) if len(df) else float("nan")


def log_summary(path: str | Path, radii: Sequence[float]) -> dict:
    """Numbers of one log: certified accuracy (fractions) at ``radii`` and 0, ACR, points,
    seconds (elapsed, or the per-example times summed where the elapsed time is unknown) and noisy
    samples per second: n0 + n per point, n0 + the ``samples`` column of a sequential log, the
    ``samples`` column alone of a decision-mode log (it counts the candidate's votes too); NaN
    when the sizes are unknown (a log without sidecar, e.g. locuslab's)."""
    df = read_log(path)
    meta = logs_lib.read_settings(path)
    secs = log_elapsed_seconds(path)
    secs = log_seconds(df) if secs != secs else secs
    if "n0" in meta and ("samples" in df.columns or "n" in meta):
        per_point = df["samples"].to_numpy(float) if "samples" in df.columns else float(meta["n"])
        first = 0 if meta.get("procedure") == "decision" else int(meta["n0"])  # a decision log counts them
        samples = float(np.sum(first + per_point * np.ones(len(df))))
    else:
        samples = float("nan")
    acc = certified_accuracy(df, [0.0] + [float(r) for r in radii])
    return {"points": len(df), "clean": float(acc[0]), "certified": {f"{r:g}": float(a) for r, a in zip(radii, acc[1:])},
            "acr": average_certified_radius(df), "seconds": secs, "cpu_seconds": log_cpu_seconds(path),
            "samples_per_second": samples / secs if secs > 0 else float("nan")}


def _round(x: float, digits: int | None = None) -> float:
    """``round`` that keeps NaN (an unknown rate stays unknown, never 0)."""
    return x if x != x else round(x, digits) if digits is not None else round(x)


def table_settings(subset: TestSubset, profile: str, model: str, sigma, n0: int, n, alpha: float,
                   **extra) -> dict:
    """The settings printed under a registered table (``register_table(settings=...)``), in
    one order for every notebook: data, model, sigma, n0, n, alpha, test points, profile, extras."""
    return {"data": f"{subset.dataset} {subset.split}, {len(subset)} points", "model": model, "sigma": sigma,
            "n0": n0, "n": n, "alpha": alpha, "test points": len(subset), "profile": profile, **extra}


def timing_table(logs: Mapping[tuple, str | Path]) -> pd.DataFrame:
    """One row per (method, sigma) log: points, n, elapsed wall seconds, CPU seconds (of every
    process), noisy samples per second."""
    rows = []
    for (m, s), path in logs.items():
        meta, summ = logs_lib.read_settings(path), log_summary(path, [])
        rows.append({"method": method_label(m), "noise": meta.get("noise"), "sigma": s, "points": summ["points"],
                     "n": meta.get("n"), "seconds": round(summ["seconds"], 1),
                     "CPU seconds": round(summ["cpu_seconds"], 1), "samples/s": _round(summ["samples_per_second"])})
    return pd.DataFrame(rows)


def rows_by_method(logs: Mapping[tuple, str | Path], labels: Mapping[str, str] | None = None,
                   suffix: str = "") -> dict:
    """{label: [log paths over sigma]} for ``register_table`` (best over sigma per radius).

    ``logs``: {(method, sigma): path} of :func:`certify_grid`; the label of a method is
    ``labels[method]`` or its registry label, followed by ``suffix`` (e.g. ", Laplace")."""
    out: dict[str, list] = {}
    for (m, _s), path in logs.items():
        label = (labels or {}).get(m, method_label(m)) + suffix
        out.setdefault(label, []).append(str(path))
    return out


def rows_by_noise(logs: Mapping[str, Mapping[tuple, str | Path]], names: Mapping[str, str]) -> dict:
    """:func:`rows_by_method` over several noises: ``logs`` = {noise: {(method, sigma): path}}, each
    label followed by ", " and ``names[noise]``; noises in their order."""
    return {label: paths for q, lg in logs.items() for label, paths in rows_by_method(lg, suffix=f", {names[q]}").items()}


def rows_by_sigma(logs: Mapping[tuple, str | Path], labels: Mapping[str, str] | None = None) -> dict:
    """{"label, σ=s": [path]} for a per-sigma ``register_table``: one row per run of ``logs``
    ({(method, sigma): path}), ordered by sigma, the methods of one sigma in their order; a method's
    label is ``labels[method]`` or its registry label."""
    return {f"{(labels or {}).get(m, method_label(m))}, σ={s:g}": [p]
            for (m, s), p in sorted(logs.items(), key=lambda kv: kv[0][1])}


def panels_by_sigma(logs: Mapping[tuple, str | Path], sigmas: Sequence[float], methods: Sequence[str] | None = None,
                    labels: Mapping[str, str] | None = None) -> dict:
    """{"σ = s": {label: [path]}}, the panels of ``lib.reporting.certified_curves_figure``: one per sigma of
    ``sigmas``, each with the runs of ``methods`` at that sigma (``logs`` = {(method, sigma): path}; every
    method of ``logs`` that ran at it, in their order, when ``methods`` is None); a method's label is
    ``labels[method]`` or its registry label."""
    def label(m):
        return (labels or {}).get(m, method_label(m))
    if methods is None:
        return {f"σ = {s:g}": {label(m): [p] for (m, ss), p in logs.items() if ss == s} for s in sigmas}
    return {f"σ = {s:g}": {label(m): [logs[(m, float(s))]] for m in methods} for s in sigmas}


def paired_table(logs: Mapping[tuple, str | Path], pairs: Sequence[tuple[str, str]],
                 radius: float | None = None) -> pd.DataFrame:
    """:func:`lib.reporting.paired_difference` of method A minus method B at every sigma both were
    run at; ``logs`` = {(method, sigma): path}. One row per (A, B, sigma): ACR differences with the
    95% paired t interval and its p-value, or with ``radius`` certified-accuracy differences (points of
    %) with McNemar's exact p-value (column ``p``). Each row's verdict is its own test at 5%; the column ``Holm p`` adjusts the
    rows' p-values for their number (Holm, statsmodels ``multipletests``), for reading the table as a whole."""
    rows = []
    scale = 100.0 if radius is not None else 1.0
    for a, b in pairs:
        for (m, s), path in logs.items():
            if m != a or (b, s) not in logs:
                continue
            d = paired_difference(path, logs[(b, s)], radius)
            row = {"A": method_label(a), "B": method_label(b), "sigma": s, "A - B": round(scale * d["diff"], 3)}
            if radius is None:
                row["95% CI"] = f"[{d['lo']:.3f}, {d['hi']:.3f}]"
            row["p"] = d["p"]  # the paired t test's, or McNemar's with ``radius``
            row["verdict"] = (d["verdict"].replace("A better", f"{method_label(a)} better")
                              .replace("B better", f"{method_label(b)} better"))
            rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table["Holm p"] = multipletests(table["p"].to_numpy(), method="holm")[1]
        table[["p", "Holm p"]] = table[["p", "Holm p"]].round(4)
    return table


def grid_metrics(logs: Mapping[tuple, str | Path], radii: Sequence[float], curve_grid: Sequence[float]) -> dict:
    """Numbers a notebook records for its smoke test, from {(method, sigma): log path}:

    ``certified[method][sigma]`` = {"clean", "acr", "r": {radius: accuracy}} (fractions),
    ``curves[method][sigma]`` = certified accuracy on ``curve_grid``, ``seconds[method][sigma]``,
    ``best_over_sigma[method]`` = {radius: max over sigma}."""
    cert, curves, secs, best = {}, {}, {}, {}
    grid = [float(r) for r in curve_grid]
    for (m, sig), path in logs.items():
        df = read_log(path)
        summ = log_summary(path, radii)
        key = f"{sig:g}"
        cert.setdefault(m, {})[key] = {"clean": summ["clean"], "acr": summ["acr"], "r": summ["certified"],
                                      "points": summ["points"], "max_radius": float(df["radius"].max())}
        curves.setdefault(m, {})[key] = [float(v) for v in certified_accuracy(df, grid)]
        secs.setdefault(m, {})[key] = summ["seconds"]
        b = best.setdefault(m, {})
        for r, v in summ["certified"].items():
            b[r] = max(b.get(r, 0.0), v)
    return {"certified": cert, "curves": curves, "curve_grid": grid, "seconds": secs, "best_over_sigma": best}



def best_difference(a: Mapping, b: Mapping, method: str) -> dict:
    """Certified accuracy of ``method``, best over sigma, of :func:`grid_metrics` ``a`` minus ``b``, in
    points of %, per radius: {radius: difference rounded to 0.1}."""
    best_a, best_b = a["best_over_sigma"][method], b["best_over_sigma"][method]
    return {r: round(100 * (best_a[r] - best_b[r]), 1) for r in best_a}

def cost_table(logs: Mapping[str, str | Path], radii: Sequence[float]) -> pd.DataFrame:
    """One row per labelled log: clean and certified accuracy (%) at ``radii``, ACR, wall
    seconds, seconds per test point and noisy samples per second -- accuracy beside cost."""
    rows = {}
    for label, path in logs.items():
        summ = log_summary(path, radii)
        rows[label] = {"clean": round(100 * summ["clean"], 1),
                       **{f"r={r}": round(100 * v, 1) for r, v in summ["certified"].items()},
                       "ACR": round(summ["acr"], 3), "seconds": round(summ["seconds"], 1),
                       "CPU seconds": round(summ["cpu_seconds"], 1),
                       "s/point": round(summ["seconds"] / max(summ["points"], 1), 3),
                       "samples/s": _round(summ["samples_per_second"])}
    return pd.DataFrame.from_dict(rows, orient="index")
