"""Ablations of denoised smoothing: Lee's D.1 (multi-scale vs single-sigma score networks), D.2 (classifier
strength), and the cost side (samples n, annealing levels L). The certification procedures compared on
the same points (sequential and decision mode against fixed n, the two-sided radius) are
:mod:`lib.experiments.procedures`.

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
from statsmodels.stats.multitest import multipletests

from lib.data import load
from lib.denoising import dsm_loss_per_sigma
from lib.methods.runs import certification_mode
from lib.methods import (certify_grid, certify_method, certify_tables, cost_table, grid_metrics, method_label,
                         paired_table, table_settings, test_subset)
from lib.reporting import (paired_difference, plot_certified_curves, plot_cost, read_log, register_table,
                           save_table)
from lib.smoothing import Gaussian

__all__ = ["WorkCounter", "counting_procedure", "WORK_COLUMNS", "d1_denoising_mse", "d1_multiscale", "d2_classifiers",
           "d2_paired", "d2_verdict", "cost_samples", "cost_levels", "work_summary", "cost_figure", "findings", "metrics", "d1_figure",
           "counted_run"]

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


def counted_run(method, noise, setup, subset, c, n, notebook, tag):
    """``certify_method`` with the work counted (:func:`counting_procedure`; the log's ``samples`` and
    ``score_evals`` columns), ``c`` holding n0 and alpha."""
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
            "spearman": {r: (None if v != v else v) for r, v in rho.items()},
            "paired": d2_paired(order, {a: table_logs[a] for a in order}, d2["radii"])}


def d2_paired(order: list, table_logs: Mapping[str, Mapping], radii, alpha: float = 0.05) -> pd.DataFrame:
    """Lee's D.2 claim as tests: every more accurate classifier against every less accurate one (``order``:
    ascending clean accuracy), on the same test points, at the same sigma and table radius.

    ``table_logs[classifier]`` = {(method, sigma): log path}. One row per (pair, sigma, radius): the difference
    of certified accuracies (more minus less accurate, points of %), McNemar's exact p-value of the paired
    certified / not-certified outcomes (:func:`lib.reporting.paired_difference`), the p-value Holm-adjusted
    over all rows (statsmodels ``multipletests``: the family-wise error of the verdicts is <= ``alpha``)
    and the verdict: "more accurate certifies more", "more accurate certifies less" or "not resolved"."""
    rows, diffs = [], []
    for i, weak in enumerate(order):
        for strong in order[i + 1:]:
            for key, path in table_logs[strong].items():
                if key not in table_logs[weak]:
                    continue
                for r in radii:
                    d = paired_difference(path, table_logs[weak][key], radius=r)
                    diffs.append(d["diff"])
                    rows.append({"more accurate": strong, "less accurate": weak, "sigma": key[1], "radius": float(r),
                                 "difference (pts)": round(100 * d["diff"], 1), "McNemar p": d["p"],
                                 "points": d["points"]})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    reject, holm, _, _ = multipletests(out["McNemar p"].to_numpy(float), alpha=alpha, method="holm")
    out["Holm p"] = holm
    out["verdict"] = ["not resolved" if not rej or diff == 0 else
                      "more accurate certifies more" if diff > 0 else "more accurate certifies less"
                      for rej, diff in zip(reject, diffs)]
    return out


def d2_verdict(paired: pd.DataFrame) -> str:
    """The D.2 finding of :func:`d2_paired`'s tests, as a sentence computed from their verdicts."""
    if paired.empty:
        return "D.2: no pair of classifiers shares a sigma: nothing to test."
    counts = paired["verdict"].value_counts()
    more, less = int(counts.get("more accurate certifies more", 0)), int(counts.get("more accurate certifies less", 0))
    open_ = len(paired) - more - less
    head = (f"D.2, tested: McNemar's exact test of each more accurate classifier against each less accurate one, "
            f"same points, same sigma, at each table radius ({len(paired)} tests, Holm-adjusted, family-wise 0.05): "
            f"the more accurate certifies more in {more}, less in {less}, not resolved in {open_}; ")
    if less:
        worst = paired[paired["verdict"] == "more accurate certifies less"]
        cases = ", ".join(f"{a} < {b} at r={r:g}, sigma={s:g}" for a, b, r, s in
                          zip(worst["more accurate"], worst["less accurate"], worst["radius"], worst["sigma"]))
        return head + f"Lee D.2 (a stronger classifier certifies better) is contradicted here in {less} ({cases})."
    if more:
        return head + f"no test contradicts Lee D.2 (a stronger classifier certifies better), and {more} support it."
    return head + "neither Lee D.2 nor its contrary is resolved at this number of test points."


# ====================================================================== cost: samples and levels
def cost_samples(setup, c: Mapping, profile: str, model_note: str, notebook: str) -> dict:
    """Certified accuracy, time and counted work against the number of samples n (``c["n_grid"]``)."""
    sub = test_subset(setup.dataset, c["num_points"])
    noise = Gaussian(c["sigma"])
    logs = {f"n={n}": counted_run(c["n_method"], noise, setup, sub, c, n, notebook, f"work_n{n}") for n in c["n_grid"]}
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
        logs = {f"L={L}": counted_run("multi_step", q, setup.replace(multi_step={**setup.multi_step, "num_levels": L}),
                                       sub, c, c["steps_n"], notebook, f"work_L{L}") for L in c["levels"]}
        logs["one-step"] = counted_run("one_step", q, setup, sub, c, c["steps_n"], notebook, "work")
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
               f"{order[-1]}, certifies best (best over sigma) at {len(top)} of {len(radii)} radii, and certified "
               f"accuracy follows the clean-accuracy order exactly (Spearman 1) at {len(mono)} of {len(radii)} "
               "(descriptive: the tests follow)")
    out.append(d2_verdict(d2["paired"]))
    per = samples["table"]
    out.append("Cost, counted noisy samples per point against n: "
               + str({k2: int(v) for k2, v in (per["samples"] / samples["points"]).items()})
               + "; CPU seconds per point (reported, not asserted): "
               + str((per["CPU seconds"] / samples["points"]).round(3).to_dict()))
    for s, lv in levels.items():
        out.append(f"Cost at sigma={s:g}: counted score evaluations per point against L: "
                   + str({k2: int(v) for k2, v in (lv["table"]["score evals"] / samples["points"]).items()}))
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
                   "spearman": d2["spearman"], "paired": d2["paired"].to_dict(orient="records"),
                   "certification": {label: sorted({certification_mode(p) for p in logs})
                                     for label, logs in d2["table_rows"].items()}},
            "cost": {"points": samples["points"], "samples": samples["table"].to_dict(orient="index"),
                     "steps": {f"{s:g}": lv["table"].to_dict(orient="index") for s, lv in levels.items()}},
            **more}
