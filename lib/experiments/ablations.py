"""Ablations of denoised smoothing: Lee's D.1 (multi-scale vs single-sigma score networks), D.2 (classifier
strength), and the cost side (samples n, annealing levels L, sequential and decision-mode vs fixed-n
CERTIFY).

Each section is one call that certifies (reusing logs), registers its tables and returns a small
dict of frames, log paths and the numbers the notebook records; the notebook holds prose,
parameters and these calls.

**Work, not clocks**. The cost runs count the work in the code that does it
(:class:`WorkCounter`): noisy samples drawn (rows of ``noise.sample``), rows through the denoiser
and score-network evaluations (rows through the denoiser's ``score``). Their logs carry the
per-example columns ``samples`` and ``score_evals`` after Cohen's six, so a rerun that reuses
the logs reads the same counts; wall and CPU seconds stay as reported figures.
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from lib.data import load
from lib.denoising import dsm_loss_per_sigma
from lib.methods.runs import certification_mode
from lib.methods import (certify_grid, certify_method, certify_tables, cost_table, grid_metrics, method_label,
                         paired_table, table_settings, test_subset)
from lib.reporting import (certified_accuracy_table, paired_difference, plot_certified_curves, plot_cost, read_log,
                           register_table, save_table)
from lib.smoothing import Gaussian, log_seconds, make_certificate, make_noise, read_settings
from lib.utils import config_hash

__all__ = ["WorkCounter", "counting_procedure", "WORK_COLUMNS", "d1_denoising_mse", "d1_multiscale", "d2_classifiers",
           "cost_samples", "cost_levels", "work_summary", "cost_figure", "findings", "metrics", "d1_figure",
           "sequential_procedure", "two_sided_procedure", "compare_logs", "sequential_vs_fixed", "samples_histogram",
           "two_sided_gain", "two_sided_figure", "two_sided_vs_one_sided",
           "sequential_findings", "sequential_runs", "SEQUENTIAL_BOUNDS", "DECISION_LABEL", "samples_per_point",
           "decision_vs_fixed", "decision_ratio"]

#: the extra log columns of the counted cost runs
WORK_COLUMNS = ["samples", "score_evals"]
NO_COST_REF = "none: the papers do not report certified accuracy against n or the number of levels L"


# ====================================================================== counting work
class WorkCounter:
    """Counts the work of a ``Smooth`` while attached (:meth:`attached`): ``floats`` of noise drawn,
    ``denoised`` rows through the denoiser (the one-input probe of each call included) and
    ``score_evals`` rows through the denoiser's score network."""

    def __init__(self):
        self.floats = self.denoised = self.score_evals = 0

    def _count_score(self, score):
        def counted(x, sigma):
            self.score_evals += int(x.shape[0])
            return score(x, sigma)
        return counted

    @contextmanager
    def attached(self, smooth):
        """Swap counting copies of ``smooth.noise`` and ``smooth.denoiser`` in for the block; the
        originals (possibly shared with other runs) are never modified and are restored after."""
        noise, den = smooth.noise, smooth.denoiser
        counted_noise = copy.copy(noise)

        def sample(shape, *args, **kwargs):
            self.floats += math.prod(shape)
            return type(noise).sample(counted_noise, shape, *args, **kwargs)

        counted_noise.sample = sample
        smooth.noise = counted_noise
        if den is not None:
            inner = copy.copy(den)
            if callable(getattr(den, "score", None)):
                inner.score = self._count_score(den.score)

            class _Counted:
                requires_grad = getattr(den, "requires_grad", False)

                def __call__(_, y):  # noqa: N805 - the counter is self
                    self.denoised += int(y.shape[0])
                    return inner(y)

            smooth.denoiser = _Counted()
        try:
            yield self
        finally:
            smooth.noise, smooth.denoiser = noise, den


def counting_procedure(smooth):
    """A ``certify`` for :func:`lib.smoothing.certify_dataset` (via ``certify_method(procedure=...)``):
    CERTIFY a block and return per example the noisy ``samples`` drawn (counted floats / input size /
    block size) and ``score_evals`` (samples x score evaluations per denoised row, both counted)."""
    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        counter = WorkCounter()
        with counter.attached(smooth):
            preds, radii = smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator)[:2]
        b, d = xs.shape[0], xs[0].numel()
        samples = counter.floats // (d * b)
        per_row = counter.score_evals / counter.denoised if counter.denoised else 0.0
        return preds, radii, {"samples": [int(samples)] * b, "score_evals": [int(round(samples * per_row))] * b}
    return certify


def _counted_run(method, noise, setup, subset, c, n, notebook, tag):
    return certify_method(method, noise, setup, subset, c["n0"], n, c["alpha"], notebook, tag=tag, progress=False,
                          procedure=counting_procedure, columns=WORK_COLUMNS, settings={"counted": WORK_COLUMNS})


def work_summary(logs: Mapping[str, object]) -> pd.DataFrame:
    """Counted work per labelled log: total noisy samples and score evaluations, and per point."""
    rows = {}
    for label, path in logs.items():
        df = read_log(path)
        rows[label] = {"points": len(df), "samples": int(df["samples"].sum()), "score evals": int(df["score_evals"].sum()),
                       "samples/point": float(df["samples"].mean()), "score evals/point": float(df["score_evals"].mean())}
    return pd.DataFrame.from_dict(rows, orient="index")


# ====================================================================== D.1 multi-scale vs single sigma
def d1_denoising_mse(setup, d1: Mapping, seed: int, notebook: str) -> tuple[pd.DataFrame, str]:
    """Held-out DSM loss (one-step MSE / sigma^2) of the multi-scale and single-sigma networks per
    sigma, saved as a table, and a line stating the training budgets compared."""

    multi, multi_cfg, _ = setup.score_model()
    xval, _ = load(setup.dataset, "val", limit=d1["val_points"])
    rel = {}
    for s in d1["sigmas"]:
        single, single_cfg, _ = setup.score_model(schedule="single", sigma=s)
        rel[f"σ={s:g}"] = {"multi-scale": dsm_loss_per_sigma(multi, xval, [s], seed=seed)[0],
                           "single-σ": dsm_loss_per_sigma(single, xval, [s], seed=seed)[0]}
    rel = pd.DataFrame(rel).T.round(4)
    save_table(rel, "d1_denoising_mse", notebook,
               caption="Held-out MSE of the one-step denoiser divided by sigma^2 (lower is better).")
    k = len(d1["sigmas"])
    budgets = (f"training steps: multi-scale {multi_cfg['iters']} (over {len(multi_cfg['sigmas'])} levels), "
               f"single-sigma {single_cfg['iters']} each ({k} networks, {k * single_cfg['iters']} in all); "
               f"batch {multi_cfg['batch_size']}")
    return rel, budgets


def d1_multiscale(setup, d1: Mapping, profile: str, model_note: str, notebook: str) -> dict:
    """Certify the one-step denoiser from the multi-scale network (notebook 05's logs are found and
    reused where the settings agree: ``lib.smoothing.find_log``) and from the single-sigma networks:
    fixed n on ``d1["curve_points"]`` (``logs``: the curves, the paired ACR differences), and the table on
    ``d1["num_points"]`` as ``d1["certify"]`` says (``table_logs``, :func:`lib.methods.certify_tables`:
    the fixed-n logs again where they hold its points); register the table; paired ACR differences."""
    methods = ["one_step", "one_step_single"]
    curve_sub, sub = test_subset(setup.dataset, d1["curve_points"]), test_subset(setup.dataset, d1["num_points"])
    logs = certify_grid(methods, "gaussian", d1["sigmas"], setup, curve_sub, d1["n0"], d1["n"], d1["alpha"], notebook)
    table_logs = certify_tables(methods, "gaussian", d1["sigmas"], setup, sub, d1["n0"], d1["n"], d1["alpha"], notebook,
                                d1["radii"], d1["certify"], fixed_logs=logs)
    rows = {f"{'multi-scale' if m == 'one_step' else 'single-σ'}, σ={s:g}": [p]
            for (m, s), p in sorted(table_logs.items(), key=lambda kv: (kv[0][1], kv[0][0]))}
    register_table(notebook, "d1_multiscale", rows, d1["radii"],
                   title=f"Lee D.1: one-step denoiser from a multi-scale vs a single-sigma score network ({setup.dataset})",
                   settings=table_settings(sub, profile, model_note, d1["sigmas"], d1["n0"], d1["n"], d1["alpha"],
                                           certification=d1["certify"]),
                   reference_source="Lee (2021) appendix D.1 shows this comparison only as curves (Figure 2, CIFAR-10), with no numbers")
    paired = paired_table(logs, [("one_step", "one_step_single")])
    verdicts = paired["verdict"].tolist()
    wins = verdicts.count(f"{method_label('one_step')} better")
    losses = verdicts.count(f"{method_label('one_step_single')} better")
    return {"logs": logs, "table_logs": table_logs, "paired": paired, "wins": wins, "losses": losses,
            "metrics": grid_metrics(logs, d1["radii"], [0.0] + list(d1["radii"]))}


def d1_figure(d1: Mapping, logs: Mapping):
    """One panel per sigma: certified accuracy of the multi-scale and the single-sigma denoiser."""
    fig, axes = plt.subplots(1, len(d1["sigmas"]), figsize=(5.5 * len(d1["sigmas"]), 4.5), sharey=True)
    for ax, s in zip(np.atleast_1d(axes), d1["sigmas"]):
        plot_certified_curves({"multi-scale": [logs[("one_step", s)]], "single-σ": [logs[("one_step_single", s)]]},
                              ax=ax, max_radius=max(d1["radii"]) * 1.3, title=f"σ = {s:g}",
                              styles={"single-σ": {"ls": "--"}})
    fig.suptitle("Lee D.1 (Figure 2): multi-scale vs single-σ score networks, one-step denoiser")
    return fig


# ====================================================================== D.2 classifier strength
def d2_classifiers(setup, d2: Mapping, profile: str, notebook: str) -> dict:
    """The one-step multi-scale denoiser in front of several classifiers, ordered by their measured clean
    accuracy: fixed n on ``d2["curve_points"]`` (``rows``: the curves) and the table on ``d2["num_points"]`` as
    ``d2["certify"]`` says (``table_rows``); registers the table (best over sigma) and returns accuracies,
    logs and the table's certified accuracies (``best``, whose order the Spearman correlations test)."""
    curve_sub, sub = test_subset(setup.dataset, d2["curve_points"]), test_subset(setup.dataset, d2["num_points"])
    logs, table_logs, accs = {}, {}, {}
    for arch in d2["archs"]:
        s_arch = setup.replace(classifier_arch=arch)
        accs[arch] = s_arch.classifier()[2]["test_accuracy"]
        logs[arch] = certify_grid(["one_step"], "gaussian", d2["sigmas"], s_arch, curve_sub, d2["n0"], d2["n"],
                                  d2["alpha"], notebook, tag=arch)
        table_logs[arch] = certify_tables(["one_step"], "gaussian", d2["sigmas"], s_arch, sub, d2["n0"], d2["n"],
                                          d2["alpha"], notebook, d2["radii"], d2["certify"], fixed_logs=logs[arch],
                                          tag=arch)
    order = sorted(d2["archs"], key=lambda a: accs[a])
    label = {a: f"{a} (clean test acc {100 * accs[a]:.1f}%)" for a in order}
    rows = {label[a]: [str(p) for p in logs[a].values()] for a in order}
    table_rows = {label[a]: [str(p) for p in table_logs[a].values()] for a in order}
    register_table(notebook, "d2_classifiers", table_rows, d2["radii"],
                   title=f"Lee D.2: classifiers ordered by measured clean accuracy, same denoiser, best over sigma ({setup.dataset})",
                   settings=table_settings(sub, profile, "one-step multi-scale score + " + ", ".join(order), d2["sigmas"],
                                           d2["n0"], d2["n"], d2["alpha"], certification=d2["certify"]),
                   reference_source="Lee (2021) appendix D.2 shows this only as curves (Figure 3, CIFAR-10: ResNet-110, ResNet-18, WRN-40-10, WRN-28-10), with no numbers")
    best = {a: grid_metrics(table_logs[a], d2["radii"], d2["radii"])["best_over_sigma"]["one_step"] for a in order}
    rho = {r: float(spearmanr([accs[a] for a in order], [best[a][r] for a in order]).statistic) for r in best[order[0]]}
    return {"rows": rows, "table_rows": table_rows, "accs": accs, "order": order, "best": best,
            "spearman": {r: (None if v != v else v) for r, v in rho.items()}}


# ====================================================================== cost: samples and levels
def cost_samples(setup, c: Mapping, profile: str, model_note: str, notebook: str) -> dict:
    """Certified accuracy, time and counted work against the number of samples n (``c["n_grid"]``)."""
    sub = test_subset(setup.dataset, c["num_points"])
    noise = Gaussian(c["sigma"])
    logs = {f"n={n}": _counted_run(c["n_method"], noise, setup, sub, c, n, notebook, f"work_n{n}") for n in c["n_grid"]}
    table = cost_table(logs, c["radii"]).join(work_summary(logs)[["samples", "score evals"]])
    save_table(table, "cost_samples", notebook,
               caption=f"Certified accuracy (%), time and counted work against n ({method_label(c['n_method'])}, sigma={c['sigma']}).")
    register_table(notebook, "cost_samples", {k: [v] for k, v in logs.items()}, c["radii"],
                   title=f"Cost: certified accuracy against samples n ({method_label(c['n_method'])}, {setup.dataset})",
                   settings=table_settings(sub, profile, model_note, c["sigma"], c["n0"], c["n_grid"], c["alpha"]),
                   reference_source=NO_COST_REF)
    caps = {n: round(noise.max_radius(n, c["alpha"]), 3) for n in c["n_grid"]}
    return {"logs": logs, "table": table, "radius_caps": caps, "points": len(sub)}


def cost_levels(setup, c: Mapping, profile: str, model_note: str, notebook: str) -> dict:
    """The multi-step denoiser against its number of annealing levels L (T = 1), with the one-step
    denoiser beside it, at each sigma of ``c["steps_sigmas"]``: {sigma: {"logs", "table"}}."""
    sub = test_subset(setup.dataset, c["num_points"])
    out = {}
    for s in c["steps_sigmas"]:
        q = Gaussian(s)
        logs = {f"L={L}": _counted_run("multi_step", q, setup.replace(multi_step={**setup.multi_step, "num_levels": L}),
                                       sub, c, c["steps_n"], notebook, f"work_L{L}") for L in c["levels"]}
        logs["one-step"] = _counted_run("one_step", q, setup, sub, c, c["steps_n"], notebook, "work")
        table = cost_table(logs, c["radii"]).join(work_summary(logs)[["samples", "score evals"]])
        save_table(table, f"cost_steps_s{s:g}", notebook,
                   caption=f"Multi-step denoiser: certified accuracy (%), time and counted work against the number of "
                           f"levels L (T=1, sigma={s}, n={c['steps_n']}).")
        register_table(notebook, f"cost_steps_s{s:g}", {k: [v] for k, v in logs.items()}, c["radii"],
                       title=f"Cost: multi-step denoiser against annealing levels L, sigma={s:g} ({setup.dataset})",
                       settings=table_settings(sub, profile, model_note, s, c["n0"], c["steps_n"], c["alpha"],
                                               levels=c["levels"]),
                       reference_source=NO_COST_REF)
        out[s] = {"logs": logs, "table": table}
    return out


def cost_figure(c: Mapping, samples: Mapping, levels: Mapping):
    """Accuracy and time against n (left) and against L at each sigma (right)."""
    # constrained layout: each panel's twin y-axis label keeps clear of the next panel
    fig, axes = plt.subplots(1, 1 + len(levels), figsize=(7.5 * (1 + len(levels)), 5), layout="constrained")
    rk = f"r={c['radii'][len(c['radii']) // 2]}"
    plot_cost(samples["table"], c["n_grid"], "samples n", rk, ax=axes[0])
    axes[0].set_title(f"{method_label(c['n_method'])}, σ = {c['sigma']}")
    for ax, (s, lv) in zip(axes[1:], levels.items()):
        plot_cost(lv["table"].loc[[f"L={L}" for L in c["levels"]]], c["levels"], "annealing levels L (T = 1)", rk, ax=ax)
        ax.axhline(lv["table"].loc["one-step", rk], color="tab:orange", ls=":", lw=1.5)
        ax.set_title(f"multi-step, σ = {s:g}, n = {c['steps_n']} (dotted: one-step)")
    return fig


# ====================================================================== sequential vs fixed n, two-sided radius
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
    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        return smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator, two_sided=True)[:2]
    return certify


def compare_logs(logs: Mapping[str, object], base: str, radii) -> pd.DataFrame:
    """One row per labelled log on the same points: certified accuracy (%) with its 95% Clopper-Pearson
    interval over the test points at each radius, samples per point (column ``samples`` of the log, else
    n0 + n), wall seconds; and, against the log ``base``, the largest |difference| of certified accuracy
    over the radii and the smallest McNemar p-value (paired, per radius): p >= 0.05 at every radius means
    "equal within sampling error"."""

    frames = {k: read_log(p) for k, p in logs.items()}
    table = certified_accuracy_table(frames, list(radii), interval=True)
    table.columns = [f"r={r:g}" for r in radii]
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
            table.loc[label, "min McNemar p"] = round(min(d["p"] for d in diffs), 3)
    base_samples = table.loc[base, "samples/point"]
    table["sample ratio"] = (base_samples / table["samples/point"]).round(2)
    return table


def sequential_vs_fixed(setup, method: str, sigma: float, radii, n0: int, n_max: int, alpha: float, num_points: int,
                        notebook: str, bounds: Mapping[str, dict], tag: str = "", decision: bool = True) -> dict:
    """Fixed-n CERTIFY (n = n_max, work counted), sequential CERTIFY (targets = ``radii``, one run per
    entry of ``bounds``: label -> options of ``certify_sequential``) and, with ``decision``, decision mode
    at the table ``radii`` (:mod:`lib.smoothing.decision`, n_max votes at most; row ``DECISION_LABEL``)
    on the same points.

    Returns {"logs", "table" (:func:`compare_logs`), "ratio" {label: fixed samples / sequential samples},
    "within_error" {label: McNemar p >= 0.05 at every radius}, "max_samples" {label: most samples of a point},
    "n_max", "n0"}."""

    sub = test_subset(setup.dataset, num_points)
    noise = Gaussian(sigma)
    logs = {"fixed n": _counted_run(method, noise, setup, sub, {"n0": n0, "alpha": alpha}, n_max, notebook,
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
            "within_error": {k: bool(table.loc[k, "min McNemar p"] >= 0.05) for k in seq},
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
    rows = {}
    for key in [k for k in fixed_logs if k in decision_logs and certification_mode(fixed_logs[k]) != "decision"]:
        f, d = read_log(fixed_logs[key]), read_log(decision_logs[key])
        common = f["idx"].isin(d["idx"])
        fixed_mean = (float(f["samples"][common].mean()) if "samples" in f
                      else samples_per_point(fixed_logs[key]))
        dec_mean = float(d.loc[d["idx"].isin(f["idx"]), "samples"].mean())
        diffs = [paired_difference(decision_logs[key], fixed_logs[key], float(r)) for r in radii]
        rows[key] = {"points": int(common.sum()), "fixed n: samples/point": round(fixed_mean, 1),
                     "decision: samples/point": round(dec_mean, 1), "ratio": round(fixed_mean / dec_mean, 2),
                     "max |Δ| (pts of %)": round(100 * max(abs(x["diff"]) for x in diffs), 1),
                     "min McNemar p": round(min(x["p"] for x in diffs), 3)}
    if not rows:
        raise ValueError("no run has both a fixed-n and a decision-mode log")
    table = pd.DataFrame.from_dict(rows, orient="index")
    fixed_total = float((table["fixed n: samples/point"] * table["points"]).sum())
    dec_total = float((table["decision: samples/point"] * table["points"]).sum())
    same = int((table["min McNemar p"] >= 0.05).sum())
    line = (f"decision mode: {dec_total / table['points'].sum():,.0f} samples per point against fixed n's "
            f"{fixed_total / table['points'].sum():,.0f} ({fixed_total / dec_total:.2f}x fewer) over {len(table)} "
            f"run(s), {int(table['points'].sum())} point-runs; certified accuracy equal within sampling error "
            f"(McNemar p >= 0.05 at every radius) in {same} of {len(table)}")
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


# ====================================================================== findings
def findings(d1: Mapping, d2: Mapping, samples: Mapping, levels: Mapping) -> list[str]:
    """The findings of the notebook as sentences computed from its results."""
    k = len(d1["paired"])
    agree = "; this agrees with Lee D.1." if d1["wins"] > k / 2 else "; Lee D.1 (multi-scale better) is NOT reproduced here."
    out = [f"D.1: the multi-scale network gives a larger ACR than the single-sigma one at {d1['wins']}/{k} noise levels, "
           f"a smaller one at {d1['losses']}, and the difference is not resolved at {k - d1['wins'] - d1['losses']} "
           f"(paired 95% intervals){agree}",
           "D.2: Spearman correlation of certified accuracy with clean test accuracy, per radius: "
           + str({r: (None if v is None else round(v, 2)) for r, v in d2["spearman"].items()})]
    order, best = d2["order"], d2["best"]
    radii = list(best[order[0]])
    top = [r for r in radii if best[order[-1]][r] >= max(best[a][r] for a in order)]
    mono = [r for r in radii if d2["spearman"][r] is not None and d2["spearman"][r] >= 1 - 1e-9]
    out.append(f"D.2: clean test accuracy orders the classifiers {' < '.join(order)} (measured); the most accurate, "
               f"{order[-1]}, certifies best at {len(top)} of {len(radii)} radii, and certified accuracy follows the "
               f"clean-accuracy order exactly (Spearman 1) at {len(mono)} of {len(radii)}; "
               + ("this agrees with Lee D.2 at every radius." if len(mono) == len(radii)
                  else "Lee D.2 (a stronger classifier certifies better) is NOT reproduced at the other radii."))
    per = samples["table"]
    out.append("Cost, counted noisy samples per point against n: "
               + str({k2: int(v) for k2, v in (per["samples"] / samples["points"]).items()})
               + "; CPU seconds per point (reported, not asserted): "
               + str((per["CPU seconds"] / samples["points"]).round(3).to_dict()))
    for s, lv in levels.items():
        out.append(f"Cost at sigma={s:g}: counted score evaluations per point against L: "
                   + str({k2: int(v) for k2, v in (lv["table"]["score evals"] / samples["points"]).items()}))
    return out


def sequential_findings(seq: Mapping, two_sided: pd.DataFrame) -> list[str]:
    """Sentences on the sample savings of sequential CERTIFY and on the two-sided radius."""
    out = []
    for name, run in seq.items():
        for label, ratio in run["ratio"].items():
            same = "equal within sampling error" if run["within_error"][label] else "NOT equal within sampling error"
            out.append(f"{name}, {label}: {ratio:.2f}x fewer samples per point than fixed n = {run['n_max']:,} "
                       f"({run['points']} points; certified accuracy {same} at every radius, paired McNemar tests); "
                       f"at most {run['max_samples'][label]:,} samples for a point (n0 + n_max = {run['n0'] + run['n_max']:,})")
    one, two = two_sided.iloc[0], two_sided.iloc[1]
    delta = next(c for c in two_sided.columns if c.startswith("max |Δ|"))
    out.append(f"Two-sided radius on the cost points: ACR {two['ACR']:.3f} vs {one['ACR']:.3f} one-sided; largest "
               f"certified-accuracy difference {two[delta]:.1f} points of %, smallest McNemar p {two['min McNemar p']:.3f}")
    return out


def metrics(rel_mse: pd.DataFrame, d1: Mapping, d2: Mapping, samples: Mapping, levels: Mapping,
            seq: Mapping | None = None, two_sided: pd.DataFrame | None = None) -> dict:
    """The numbers notebook 07 records for its smoke test (``record_metrics(notebook, **metrics(...))``), with the
    certification mode of each D.1 log and of each D.2 row of the tables (``certification``)."""
    more = {}
    if seq is not None:
        more["sequential"] = {name: {k: run[k] for k in ("ratio", "within_error", "max_samples", "n_max", "n0", "points")}
                              | {"table": run["table"].to_dict(orient="index")} for name, run in seq.items()}
    if two_sided is not None:
        more["two_sided"] = two_sided.to_dict(orient="index")
    return {"d1": {"relative_mse": rel_mse.to_dict(orient="index"), "multi_scale_wins": int(d1["wins"]),
                   "multi_scale_losses": int(d1["losses"]), "paired": d1["paired"].to_dict(orient="records"),
                   "certification": {f"{m}/{s:g}": certification_mode(p) for (m, s), p in d1["table_logs"].items()},
                   **d1["metrics"]},
            "d2": {"test_accuracy": d2["accs"], "best_over_sigma": d2["best"], "order": d2["order"],
                   "spearman": d2["spearman"],
                   "certification": {label: sorted({certification_mode(p) for p in logs})
                                     for label, logs in d2["table_rows"].items()}},
            "cost": {"points": samples["points"], "samples": samples["table"].to_dict(orient="index"),
                     "steps": {f"{s:g}": lv["table"].to_dict(orient="index") for s, lv in levels.items()}},
            **more}
