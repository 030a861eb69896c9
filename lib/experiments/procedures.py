"""Certification procedures compared on the same test points: fixed-n CERTIFY (Cohen et al.), sequential
CERTIFY (anytime-valid bounds, a point stops once more votes cannot change its row of a table), decision mode
(:mod:`lib.smoothing.decision`: every table radius decided with at most n votes) and the two-sided radius.

* :func:`sequential_procedure`, :func:`two_sided_procedure` -- ``procedure`` arguments of ``certify_method``;
* :func:`sequential_vs_fixed`, :func:`sequential_runs`, :func:`compare_logs` -- samples per point and certified
  accuracy of the procedures on the same points, with McNemar's test per radius (notebook 07, the benchmark);
* :func:`decision_vs_fixed`, :func:`decision_ratio` -- decision mode beside a notebook's fixed-n logs (04-09);
* :func:`two_sided_gain`, :func:`two_sided_vs_one_sided` -- what the two-sided radius adds (notebook 07).

The fixed-n runs of these comparisons count their work as :mod:`lib.experiments.ablations` does
(:func:`lib.experiments.ablations.counted_run`).
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib.experiments.ablations import counted_run
from lib.methods import certify_method, test_subset
from lib.methods.runs import certification_mode
from lib.reporting import certified_accuracy_table, paired_difference, read_log
from lib.smoothing import Gaussian, fixed_draws, log_seconds, make_certificate, make_noise, read_settings
from lib.utils import config_hash

__all__ = ["sequential_procedure", "two_sided_procedure", "compare_logs", "sequential_vs_fixed", "samples_histogram",
           "two_sided_gain", "two_sided_figure", "two_sided_vs_one_sided", "sequential_findings", "sequential_runs",
           "SEQUENTIAL_BOUNDS", "DECISION_LABEL", "samples_per_point", "decision_vs_fixed", "decision_ratio"]


def sequential_procedure(targets, **options):
    """A ``procedure`` for ``certify_method``: :meth:`Smooth.certify_sequential` with n_max = the run's n
    and the table's radii as ``targets``; logs the samples each point used (n0 included) as ``samples``."""
    def procedure(smooth):
        def certify(xs, n0, n, alpha, batch_size=None, generator=None):
            preds, radii, used = smooth.certify_sequential(xs, n0, n, alpha, targets=targets, batch_size=batch_size,
                                                           generator=generator, **options)
            return preds, radii, {"samples": [int(u) for u in used]}
        return certify
    return procedure


def two_sided_procedure(smooth):
    """A ``procedure`` for ``certify_method``: fixed-n CERTIFY with the two-sided radius."""
    @fixed_draws
    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        return smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator, two_sided=True)[:2]
    return certify


def compare_logs(logs: Mapping[str, object], base: str, radii) -> pd.DataFrame:
    """One row per labelled log on the same points: certified accuracy (%) with its 95% Clopper-Pearson
    interval over the test points at each radius, samples per point (column ``samples`` of the log, else
    n0 + n), wall seconds; and, against the log ``base``, the largest |difference| of certified accuracy
    over the radii and the smallest McNemar p-value (paired, per radius): p >= 0.05 at every radius means
    that no difference is resolved (not that the two are equal). The unrounded smallest p of each label is
    in ``table.attrs["min_p"]``."""

    frames = {k: read_log(p) for k, p in logs.items()}
    table = certified_accuracy_table(frames, list(radii), interval=True)
    table.columns = [f"r={r:g}" for r in radii]
    min_p = {}
    for label, df in frames.items():
        meta = read_settings(logs[label])
        used = df["samples"] if "samples" in df else pd.Series(int(meta["n0"]) + int(meta["n"]), index=df.index)
        # a decision log's radius is a table radius: its ACR would be a lower bound, not the ACR
        table.loc[label, "ACR"] = (np.nan if meta.get("procedure") == "decision"
                                   else round(float((df["radius"] * df["correct"]).mean()), 3))
        table.loc[label, "samples/point"] = round(float(used.mean()), 1)
        table.loc[label, "seconds"] = round(log_seconds(df), 1)
        if label != base:
            diffs = [paired_difference(logs[label], logs[base], float(r)) for r in radii]
            table.loc[label, f"max |Δ| vs {base} (pts of %)"] = round(100 * max(abs(d["diff"]) for d in diffs), 1)
            min_p[label] = float(min(d["p"] for d in diffs))
            table.loc[label, "min McNemar p"] = round(min_p[label], 3)
    base_samples = table.loc[base, "samples/point"]
    table["sample ratio"] = (base_samples / table["samples/point"]).round(2)
    table.attrs["min_p"] = min_p
    return table


def sequential_vs_fixed(setup, method: str, sigma: float, radii, n0: int, n_max: int, alpha: float, num_points: int,
                        notebook: str, bounds: Mapping[str, dict], tag: str = "", decision: bool = True) -> dict:
    """Fixed-n CERTIFY (n = n_max, work counted), sequential CERTIFY (targets = ``radii``, one run per
    entry of ``bounds``: label -> options of ``certify_sequential``) and, with ``decision``, decision mode
    at the table ``radii`` (:mod:`lib.smoothing.decision`, n_max votes at most; row ``DECISION_LABEL``)
    on the same points.

    Returns {"logs", "table" (:func:`compare_logs`), "ratio" {label: fixed samples / sequential samples},
    "within_error" {label: no difference resolved, McNemar p >= 0.05 at every radius}, "max_samples" {label: most samples of a point},
    "n_max", "n0"}."""

    sub = test_subset(setup.dataset, num_points)
    noise = Gaussian(sigma)
    logs = {"fixed n": counted_run(method, noise, setup, sub, {"n0": n0, "alpha": alpha}, n_max, notebook,
                                    f"fixed{tag}")}
    for label, opts in bounds.items():
        key = config_hash({"targets": [float(r) for r in radii], **opts})[:8]
        logs[f"sequential, {label}"] = certify_method(
            method, noise, setup, sub, n0, n_max, alpha, notebook, tag=f"seq{tag}_{key}", progress=False,
            procedure=sequential_procedure([float(r) for r in radii], **opts), columns=["samples"],
            settings={"procedure": "sequential", "targets": [float(r) for r in radii], "options": dict(opts)})
    if decision:
        logs[DECISION_LABEL] = certify_method(method, noise, setup, sub, n0, n_max, alpha, notebook, tag=f"seq{tag}",
                                              progress=False, mode="decision", radii=radii)
    table = compare_logs(logs, "fixed n", radii)
    seq = [k for k in logs if k != "fixed n"]
    return {"logs": logs, "table": table, "n_max": int(n_max), "n0": int(n0), "points": len(sub),
            "ratio": {k: float(table.loc[k, "sample ratio"]) for k in seq},
            "within_error": {k: bool(table.attrs["min_p"][k] >= 0.05) for k in seq},
            "max_samples": {k: int(read_log(logs[k])["samples"].max()) for k in seq}}


def two_sided_vs_one_sided(setup, c: Mapping, notebook: str, one_sided_log) -> pd.DataFrame:
    """Fixed-n CERTIFY with the two-sided radius on the points, method, sigma and largest n of the
    cost section, against the one-sided log of that run (``one_sided_log``): :func:`compare_logs`."""
    n = max(c["n_grid"])
    sub = test_subset(setup.dataset, c["num_points"])
    two = certify_method(c["n_method"], Gaussian(c["sigma"]), setup, sub, c["n0"], n, c["alpha"], notebook,
                         tag="two_sided", progress=False, procedure=two_sided_procedure,
                         settings={"procedure": "two_sided"})
    return compare_logs({"one-sided (Cohen)": one_sided_log, "two-sided": two}, "one-sided (Cohen)", c["radii"])


#: the row of decision-mode certification in the tables of :func:`sequential_vs_fixed`
DECISION_LABEL = "decision mode"


def samples_per_point(log) -> float:
    """Mean noisy samples per test point of a log: its column ``samples`` (decision or sequential
    mode), else n0 + n of its sidecar (fixed-n CERTIFY)."""
    df = read_log(log)
    if "samples" in df:
        return float(df["samples"].mean())
    meta = read_settings(log)
    return float(int(meta["n0"]) + int(meta["n"]))


def decision_vs_fixed(fixed_logs: Mapping, decision_logs: Mapping, radii) -> tuple[pd.DataFrame, str]:
    """Decision mode against fixed-n CERTIFY for every key present in both ``fixed_logs`` and
    ``decision_logs`` ({key: log path}, e.g. (method, sigma) of ``certify_grid``), on the points both logs
    hold: mean samples per point of each, their ratio, and the largest certified-accuracy difference over
    ``radii`` with the smallest McNemar p (paired). A key whose log in ``fixed_logs`` is itself in decision
    mode (e.g. notebook 04's g[π] under ``full``) has no fixed-n run to compare with and is left out.
    Returns (table, one sentence computed from it)."""
    rows, min_p = {}, {}
    for key in [k for k in fixed_logs if k in decision_logs and certification_mode(fixed_logs[k]) != "decision"]:
        f, d = read_log(fixed_logs[key]), read_log(decision_logs[key])
        common = f["idx"].isin(d["idx"])
        fixed_mean = (float(f["samples"][common].mean()) if "samples" in f
                      else samples_per_point(fixed_logs[key]))
        dec_mean = float(d.loc[d["idx"].isin(f["idx"]), "samples"].mean())
        diffs = [paired_difference(decision_logs[key], fixed_logs[key], float(r)) for r in radii]
        min_p[key] = min(x["p"] for x in diffs)
        rows[key] = {"points": int(common.sum()), "fixed n: samples/point": round(fixed_mean, 1),
                     "decision: samples/point": round(dec_mean, 1), "ratio": round(fixed_mean / dec_mean, 2),
                     "max |Δ| (pts of %)": round(100 * max(abs(x["diff"]) for x in diffs), 1),
                     "min McNemar p": round(min(x["p"] for x in diffs), 3)}
    if not rows:
        raise ValueError("no run has both a fixed-n and a decision-mode log")
    table = pd.DataFrame.from_dict(rows, orient="index")
    fixed_total = float((table["fixed n: samples/point"] * table["points"]).sum())
    dec_total = float((table["decision: samples/point"] * table["points"]).sum())
    same = sum(p >= 0.05 for p in min_p.values())  # unrounded
    line = (f"decision mode: {dec_total / table['points'].sum():,.0f} samples per point against fixed n's "
            f"{fixed_total / table['points'].sum():,.0f} ({fixed_total / dec_total:.2f}x fewer) over {len(table)} "
            f"run(s), {int(table['points'].sum())} point-runs; no certified-accuracy difference resolved "
            f"(McNemar p >= 0.05 at every radius) in {same} of {len(table)}, the largest difference "
            f"{table['max |Δ| (pts of %)'].max():.1f} points of %")
    return table, line


def decision_ratio(fixed_logs: Mapping, table_logs: Mapping, radii, run: tuple, setup, subset, n0: int, n: int,
                   alpha: float, notebook: str, noise: str = "gaussian") -> tuple[pd.DataFrame, str]:
    """:func:`decision_vs_fixed` of a notebook's fixed-n logs against its table logs where these are in
    decision mode (``full``); where the tables are fixed-n, ``run`` = (method, sigma) of the table is
    certified once more in decision mode on ``subset`` (the points of its fixed-n log) for the comparison."""
    decision = {k: p for k, p in table_logs.items() if certification_mode(p) == "decision"}
    if not decision:
        m, s = run[0], float(run[1])
        decision = {(m, s): certify_method(m, make_noise(noise, s), setup, subset, n0, n, alpha, notebook, progress=False,
                                           mode="decision", radii=radii)}
    return decision_vs_fixed(fixed_logs, decision, radii)


#: the two anytime-valid bounds of lib.smoothing.sequential compared in notebook 07
SEQUENTIAL_BOUNDS = {"CP over looks": {"bound": "cp"}, "betting CS": {"bound": "betting"}}


def sequential_runs(seq_cfg: Mapping, cfg04: Mapping, cfg05: Mapping, setup04, setup05, notebook: str,
                    bounds: Mapping[str, dict] = SEQUENTIAL_BOUNDS, only: str | None = None) -> dict:
    """:func:`sequential_vs_fixed` in notebook 04's setting (method ``none`` = the linear h of ``setup04``,
    04's sigmas, radii, n0, alpha; ``n_max_04`` and ``points_04`` of ``seq_cfg``) and notebook 05's
    (``one_step`` with ``setup05`` at ``sigmas_05``; 05's radii, n0, alpha; ``n_max_05``, ``points_05``).
    ``only`` = "04" or "05" runs one setting. Returns {run name: result}."""
    out = {}
    if only in (None, "04"):
        for s in cfg04["sigmas"]:
            out[f"04 (linear h), σ={s:g}"] = sequential_vs_fixed(
                setup04, "none", s, cfg04["radii"], cfg04["n0"], seq_cfg["n_max_04"], cfg04["alpha"],
                seq_cfg["points_04"], notebook, bounds, tag="04")
    if only in (None, "05"):
        for s in seq_cfg["sigmas_05"]:
            out[f"05 (one-step), σ={s:g}"] = sequential_vs_fixed(
                setup05, "one_step", s, cfg05["radii"], cfg05["n0"], seq_cfg["n_max_05"], cfg05["alpha"],
                seq_cfg["points_05"], notebook, bounds, tag="05")
    return out


def samples_histogram(runs: Mapping[str, Mapping]):
    """Histogram of the samples each point used, one panel per run of :func:`sequential_vs_fixed`."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.2), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items()):
        top = run["n_max"] + run["n0"]
        bins = np.geomspace(max(1, run["n0"]), top * 1.05, 30)
        for label, path in run["logs"].items():
            if label != "fixed n":
                ax.hist(read_log(path)["samples"], bins=bins, alpha=0.6, label=label)
        ax.axvline(top, color="k", ls="--", lw=1, label=f"fixed n: n0 + n = {top:,}")
        ax.set_xscale("log")
        ax.set(xlabel="noisy samples used by a test point", ylabel="test points", title=name)
        ax.legend(fontsize=9)
    return fig


def two_sided_gain(sigma: float, n: int, alpha: float, num_classes: int = 10, grid: int = 41) -> pd.DataFrame:
    """Two-sided minus one-sided radius at the expected vote counts of n samples, over p_A in (1/2, 1)
    and the runner-up's share s = p_B / (1 - p_A) of the remaining mass (the rest spread evenly over
    the other K - 2 classes): index s, columns p_A. Positive where bounding p_B on its own pays for
    splitting alpha."""
    noise = Gaussian(sigma)
    p_a = np.linspace(0.51, 0.999, grid)
    shares = np.linspace(1.0 / (num_classes - 1), 1.0, grid)
    pa, sh = np.meshgrid(p_a, shares)
    rest = (1 - pa) * (1 - sh) / (num_classes - 2)
    probs = np.concatenate([pa[..., None], ((1 - pa) * sh)[..., None],
                            np.repeat(rest[..., None], num_classes - 2, axis=-1)], -1).reshape(-1, num_classes)
    counts = np.floor(probs * n).astype(np.int64)
    counts[:, 0] += n - counts.sum(1)
    cand = np.zeros(len(counts), dtype=np.int64)
    r1 = make_certificate(noise).certify(counts, cand, n, alpha)[1]
    r2 = make_certificate(noise, two_sided=True).certify(counts, cand, n, alpha)[1]
    return pd.DataFrame((r2 - r1).reshape(pa.shape), index=np.round(shares, 3), columns=np.round(p_a, 3))


def two_sided_figure(gain: pd.DataFrame, sigma: float, n: int, alpha: float):
    """Heat map of :func:`two_sided_gain` (red: the two-sided radius is larger)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    lim = float(np.nanmax(np.abs(gain.to_numpy()))) or 1.0
    im = ax.pcolormesh(gain.columns, gain.index, gain.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
    ax.contour(gain.columns, gain.index, gain.to_numpy(), levels=[0.0], colors="k", linewidths=1)
    fig.colorbar(im, ax=ax, label="two-sided minus one-sided radius")
    ax.set(xlabel="p_A", ylabel="runner-up share p_B / (1 - p_A)",
           title=f"Two-sided radius: gain over Cohen's p_B = 1 - p_A (σ={sigma:g}, n={n:,}, α={alpha:g})")
    return fig


def sequential_findings(seq: Mapping, two_sided: pd.DataFrame) -> list[str]:
    """Sentences on the sample savings of sequential CERTIFY and on the two-sided radius."""
    out = []
    for name, run in seq.items():
        for label, ratio in run["ratio"].items():
            same = ("no certified-accuracy difference resolved at any radius" if run["within_error"][label]
                    else "a certified-accuracy difference resolved at some radius")
            if "table" in run:
                row = run["table"].loc[label]
                delta = next(c for c in run["table"].columns if c.startswith("max |Δ|"))
                same += f" (largest |difference| {row[delta]:.1f} points of %, smallest p {row['min McNemar p']:.3g})"
            out.append(f"{name}, {label}: {ratio:.2f}x fewer samples per point than fixed n = {run['n_max']:,} "
                       f"({run['points']} points; {same}, paired McNemar tests); "
                       f"at most {run['max_samples'][label]:,} samples for a point (n0 + n_max = {run['n0'] + run['n_max']:,})")
    one, two = two_sided.iloc[0], two_sided.iloc[1]
    delta = next(c for c in two_sided.columns if c.startswith("max |Δ|"))
    out.append(f"Two-sided radius on the cost points: ACR {two['ACR']:.3f} vs {one['ACR']:.3f} one-sided; largest "
               f"certified-accuracy difference {two[delta]:.1f} points of %, smallest McNemar p {two['min McNemar p']:.3f}")
    return out
