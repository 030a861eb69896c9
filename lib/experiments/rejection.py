"""Sample rejection (Sheikholeslami et al.) against Salman et al.'s stability denoisers: certification
with vote counts, Theorem 3.1 radii recomputed from the logs, training costs and the rejector's gains.

The methods themselves (``mse_stab``, ``mse_stab_query``, ``stab``, ``mse_rejector``,
``mse_stab_rejector``, ``one_step_rejector``) are in :mod:`lib.methods.registry`.
A rejector method is certified with Theorem 3.1 (``Smooth(..., rejector=...)``, from the rejector
slot of its :class:`Pipeline`), through the same ``certify_method`` as every method. Its logs carry two columns after
Cohen's six: ``n_a`` (votes for c_A among the n) and ``n_r`` (votes for the reject class R; 0 without
a rejector), from which :func:`theorem_3_1_radii` recomputes every radius (notebook 08's test) and
Figure 6 is drawn.

Model settings come from ``lib.profiles.model_settings("rejector" | "stability", profile)``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import beta, norm

from lib.data import load
from lib.methods import (Pipeline, REJECTOR_BASES, Setup, TestSubset, build_pipeline, certify_method, method_label,
                         rejector_model, rejector_pipeline, stability_model, table_settings)
from lib.reporting import budget_comparison, certified_accuracy, paired_difference, quote, register_table
from lib.smoothing import Gaussian, fixed_draws, log_seconds, read_log

__all__ = ["PAPER_EPOCHS", "PAPER_N", "two_bound_cost", "certify_rejection", "certify_rejection_grid", "theorem_3_1_radii",
           "training_histories", "training_time_table", "rejector_gains", "claim_check", "count_histograms",
           "rejector_variants", "rejector_budget", "curve_styles"]

#: training epochs of Sheikholeslami et al. Table 1 (DnCNN rows), for projecting our per-epoch costs
PAPER_EPOCHS = {"mse": 90, "stab_finetune": 20, "rejector": 20, "stab": 600}


def _pipeline(method: str, noise, setup: Setup, rejector_overrides: Mapping | None = None) -> Pipeline:
    """The pipeline of a registered method, or of a rejector variant with ``rejector_overrides``."""
    if rejector_overrides and method in REJECTOR_BASES:
        return rejector_pipeline(method, noise, setup, rejector_overrides)
    return build_pipeline(method, noise, setup)


def _certify_with_counts(smooth):
    """A ``certify`` for ``certify_dataset`` that also returns the columns n_a and n_r (fixed draws:
    ``certify_batch``'s)."""
    @fixed_draws
    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        preds, radii, extra = smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator,
                                                   return_counts=True)
        n_r = extra.get("n_r", torch.zeros_like(extra["n_a"]))
        return preds, radii, {"n_a": extra["n_a"].tolist(), "n_r": n_r.tolist()}
    return certify


def certify_rejection(method: str, sigma: float, setup: Setup, subset: TestSubset, n0: int, n: int, alpha: float,
                      notebook: str, rejector_overrides: Mapping | None = None, tag: str = "",
                      batch_size: int | None = None, progress: bool = False) -> Path:
    """CERTIFY ``subset`` with ``method`` under Gaussian noise ``sigma`` (Theorem 3.1 when the method
    has a rejector, Cohen's bound otherwise) and return the log path. The log has the columns
    ``n_a`` and ``n_r`` after Cohen's six; it is reused when complete and resumed when partial."""
    noise = Gaussian(sigma)
    pipe = _pipeline(method, noise, setup, rejector_overrides)
    certificate = "theorem_3_1" if pipe.rejector is not None else "cohen"
    path = certify_method(method, noise, setup, subset, n0, n, alpha, notebook, tag=tag, batch_size=batch_size,
                          progress=progress, procedure=_certify_with_counts, columns=["n_a", "n_r"],
                          settings={"certificate": certificate}, pipeline=pipe)
    return path


def certify_rejection_grid(methods: Sequence[str], sigmas: Sequence[float], setup: Setup, subset: TestSubset,
                           n0: int, n: int, alpha: float, notebook: str, verbose: bool = True, **kwargs) -> dict:
    """:func:`certify_rejection` for every (method, sigma); returns {(method, sigma): log path}."""
    out = {}
    for m in methods:
        for s in sigmas:
            out[(m, float(s))] = path = certify_rejection(m, s, setup, subset, n0, n, alpha, notebook, **kwargs)
            if verbose:
                print(f"{setup.dataset:<14} {method_label(m):<34} sigma={s:<5g} {len(subset)} points, n={n}: "
                      f"{log_seconds(path):6.1f} s certifying")
    return out


# ---------------------------------------------------------------------- checks and summaries
def theorem_3_1_radii(n_a, n_r, n: int, alpha: float, sigma: float, rejector: bool) -> np.ndarray:
    """Radii recomputed from logged counts, independently of ``Smooth``: with a rejector
    sigma/2 (Phi^-1(p_A) + Phi^-1(p_{A+R})) with one-sided Clopper-Pearson bounds at alpha/2 each
    (Theorem 3.1, Algorithm 2); without, Cohen's sigma Phi^-1(p_A) at alpha. 0 where <= 0 (abstain)."""
    n_a, n_r = np.asarray(n_a, dtype=float), np.asarray(n_r, dtype=float)

    def lower(k, level):  # one-sided Clopper-Pearson lower bound (the Beta quantile)
        return np.where(k > 0, beta.ppf(level, np.maximum(k, 1), n - k + 1), 0.0)

    if rejector:
        r = sigma / 2 * (norm.ppf(lower(n_a, alpha / 2)) + norm.ppf(lower(n_a + n_r, alpha / 2)))
    else:
        r = sigma * norm.ppf(lower(n_a, alpha))
    return np.where(np.isfinite(r) & (r > 0), r, 0.0)


def training_time_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """Sheikholeslami et al. Table 1 counterpart from training histories: {label: history} ->
    training images, epochs, seconds per epoch, seconds per 1,000 training images and epoch (the
    models train on sets of different sizes; a rejector's image brings T draws), total seconds (as
    measured when the model was trained; a cached model keeps the times of the run that trained it)."""
    out = {}
    for label, h in rows.items():
        h = h or {}
        secs, epochs = float(h.get("seconds", float("nan"))), float(h.get("epochs", float("nan")))
        images = float(h.get("images", float("nan")))
        per = secs / epochs if epochs == epochs and epochs else float("nan")
        out[label] = {"images": images, "epochs": round(epochs, 2), "s / epoch": round(per, 1),
                      "s / 1k images": round(1000 * per / images, 2), "total s": round(secs, 1)}
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "model"
    return df


def count_histograms(logs: Mapping[float, str | Path], n: int, title: str = "", bins: int = 20):
    """Figure 6: per sigma, the 2-D histogram of (n_A, n_R) over test points with the n_A + n_R = n
    diagonal. ``logs``: {sigma: log path with n_a / n_r}. Returns the figure."""
    fig, axes = plt.subplots(1, len(logs), figsize=(4.2 * len(logs), 4), squeeze=False)
    for ax, (s, p) in zip(axes[0], sorted(logs.items())):
        df = read_log(p)
        h = ax.hist2d(df["n_r"], df["n_a"], bins=bins, range=[[0, n], [0, n]], cmin=1, cmap="viridis")
        ax.plot([0, n], [n, 0], "r--", lw=1, label="$n_A + n_R = N$")
        ax.set_xlabel("rejected votes $n_R$")
        ax.set_ylabel("top-class votes $n_A$ (not rejected)")
        ax.set_title(f"σ = {s:g}")
        ax.legend(loc="upper right", fontsize=8)
        fig.colorbar(h[3], ax=ax, label="test points")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_histories(setup: Setup, sigma: float, methods: Sequence[str]) -> dict:
    """{row label: training history} for the Table 1 counterpart at ``sigma``: the MSE DnCNN, the
    stability fine-tuning (and Stab from scratch), and each rejector among ``methods``. Every
    history has ``seconds`` and ``epochs`` (passes over the training images; a rejector's epoch
    carries T noise draws per image). Models are loaded (or trained) through the cache."""
    noise = Gaussian(sigma)

    def images(cfg):  # the size of a model's training set (its config's n_train, None: all)
        return len(load(setup.dataset, "train", limit=cfg.get("n_train"))[1])

    _, mse_cfg, mse_hist = setup.mse_denoiser(noise)
    n_mse = images(mse_cfg)
    rows = {"DnCNN, MSE": {**mse_hist, "epochs": mse_hist.get("iters", 0) * mse_cfg["batch_size"] / n_mse,
                           "images": n_mse}}
    for m, label in (("mse_stab", "DnCNN, + Stab fine-tuning"), ("stab", "DnCNN, Stab from scratch")):
        if m in methods or (m == "mse_stab" and "mse_stab_rejector" in methods):
            den, cfg = stability_model(setup, sigma, "mse" if m == "mse_stab" else "scratch", "full")
            rows[label] = {**den.history, "images": images(cfg)}
    for m, base in REJECTOR_BASES.items():
        if m in methods:
            rej = rejector_model(setup, base, noise)[0]
            rows[f"+ rejector ({method_label(base)})"] = {**rej.history, "images": images(rej.config)}
    return rows


def rejector_gains(logs: Mapping[tuple, str | Path], radii: Sequence[float]) -> pd.DataFrame:
    """For every rejector method and sigma in ``logs`` ({(method, sigma): path}) whose base method
    was certified too: certified accuracy (%) without and with the rejector at r = 0 and ``radii``, the
    paired difference at r = 0 (clean accuracy) and at the smallest radius with McNemar's exact p, and
    the paired difference of the ACR with its 95% interval (both on the same test points, n and alpha)."""

    rows = []
    grid = [0.0] + [float(r) for r in radii]
    for (m, s), path in logs.items():
        base = REJECTOR_BASES.get(m)
        if base is None or (base, s) not in logs:
            continue
        a = certified_accuracy(read_log(path), grid)
        b = certified_accuracy(read_log(logs[(base, s)]), grid)
        d = paired_difference(path, logs[(base, s)])
        row = {"denoiser": method_label(base), "sigma": s}
        for r, va, vb in zip(grid, a, b):
            row[f"r={r:g}: without"] = round(100 * vb, 1)
            row[f"r={r:g}: with"] = round(100 * va, 1)
        for r in sorted({0.0, float(radii[0])}):  # clean accuracy and the smallest radius: paired McNemar
            pr = paired_difference(path, logs[(base, s)], radius=r)
            row[f"r={r:g}: gain (pts)"] = round(100 * pr["diff"], 1)
            row[f"r={r:g}: McNemar p"] = round(pr["p"], 4)
        row.update({"ACR gain": round(d["diff"], 3), "95% CI": f"[{d['lo']:.3f}, {d['hi']:.3f}]",
                    "verdict": {"A better": "rejector helps", "B better": "rejector hurts"}.get(d["verdict"],
                                                                                              "not resolved")})
        rows.append(row)
    return pd.DataFrame(rows)


def _gain_word(g: float, p: float, alpha: float = 0.05) -> str:
    return f"{g:+.1f} pts (McNemar p={p:.3g}, " + ("resolved" if p < alpha else "not resolved") + ")"


def claim_check(gains: pd.DataFrame, times: pd.DataFrame | None = None, alpha: float = 0.05) -> str:
    """The paper's two statements of where the rejector helps, each quoted with its place and checked on
    our numbers (paired on the same test points, n and alpha): §6.3, sigma 0.25 or 0.5, most at radius 0
    (clean accuracy) and small radii, compared with the largest sigma; the abstract, natural accuracy at
    medium and large sigma, compared with the smallest. Then the ACR per denoiser, and the training cost
    against the stability objective. Returns one paragraph."""
    if gains.empty:
        return "No rejector method was certified beside its base method: nothing to check."
    small = [c for c in gains.columns if c.endswith(": gain (pts)") and c != "r=0: gain (pts)"]
    sig = sorted(gains["sigma"].unique())
    parts = [f"What the paper says (1) {quote('rejection_experiments')}"]
    for den, g in gains.groupby("denoiser", sort=False):
        g = g.set_index("sigma")
        where = [x for x in (0.25, 0.5) if x in g.index]
        other = [x for x in g.index if x not in (0.25, 0.5)]
        if not where:
            parts.append(f"{den}: not certified at sigma 0.25 or 0.5, so §6.3's statement is not tested")
            continue
        cells = [f"sigma={x:g}: r=0 {_gain_word(g.loc[x, 'r=0: gain (pts)'], g.loc[x, 'r=0: McNemar p'], alpha)}"
                 + (f", {small[0].split(':')[0]} {_gain_word(g.loc[x, small[0]], g.loc[x, small[0].replace('gain (pts)', 'McNemar p')], alpha)}"
                    if small else "") for x in where]
        resolved = [x for x in where if g.loc[x, "r=0: gain (pts)"] > 0 and g.loc[x, "r=0: McNemar p"] < alpha]
        line = f"{den}: " + "; ".join(cells)
        if other:
            top = max(g.loc[where, "r=0: gain (pts)"])
            line += (f"; at sigma={', '.join(f'{x:g}' for x in other)} the r=0 gain is "
                     + ", ".join(f"{g.loc[x, 'r=0: gain (pts)']:+.1f} pts" for x in other)
                     + (" (below the largest point estimate at 0.25/0.5"
                        if all(g.loc[x, "r=0: gain (pts)"] < top for x in other)
                        else " (not below the point estimates at 0.25/0.5")
                     + "; an ordering of point estimates, not tested)")
        line += (f". A resolved clean-accuracy gain at {len(resolved)} of {len(where)} of these noise levels"
                 + (": agrees with §6.3 there" if resolved else ": §6.3's gain is not resolved by our sample"))
        parts.append(line)
    parts.append(f"What the paper says (2) {quote('rejection_abstract')}")
    if len(sig) >= 2:
        lo_s, hi_s = sig[0], sig[1:]
        for den, g in gains.groupby("denoiser", sort=False):
            g = g.set_index("sigma")
            if lo_s not in g.index:
                continue
            here = [x for x in hi_s if x in g.index]
            gain, p = g["r=0: gain (pts)"], g["r=0: McNemar p"]
            up = [x for x in here if gain[x] > gain[lo_s]]
            res = [x for x in here if gain[x] > 0 and p[x] < alpha]
            parts.append(f"{den}: natural-accuracy (r=0) gain at the medium/large sigma "
                         + ", ".join(f"{x:g}: {_gain_word(gain[x], p[x], alpha)}" for x in here)
                         + f" against {gain[lo_s]:+.1f} pts at sigma={lo_s:g}: a larger point estimate at "
                         f"{len(up)} of {len(here)} (an ordering not tested), a gain resolved above 0 at {len(res)} of "
                         f"{len(here)}")
    for den, g in gains.groupby("denoiser", sort=False):
        helps, hurts = (g["verdict"] == "rejector helps").sum(), (g["verdict"] == "rejector hurts").sum()
        best = g.loc[g["ACR gain"].idxmax()]
        parts.append(f"{den}: the rejector raises the ACR significantly (paired 95% interval above 0) at {helps} of "
                     f"{len(g)} noise levels and lowers it significantly at {hurts}; largest ACR difference "
                     f"{best['ACR gain']:+.3f} at sigma={best['sigma']:g}")
    text = ". ".join(parts) + "."
    if times is not None and {"DnCNN, MSE", "DnCNN, + Stab fine-tuning"} <= set(times.index):
        rej = [i for i in times.index if i.startswith("+ rejector")]
        col = "s / 1k images"  # per image and epoch: the models train on sets of different sizes
        per = {k: times.loc[k, col] for k in ("DnCNN, MSE", "DnCNN, + Stab fine-tuning")}
        if rej:
            per["rejector"] = times.loc[rej, col].mean()
            e, n_k = PAPER_EPOCHS, times.loc["DnCNN, MSE", "images"] / 1000  # one epoch = the MSE's training set
            with_rej = n_k * (e["mse"] * per["DnCNN, MSE"] + e["rejector"] * per["rejector"])
            stab = n_k * e["stab"] * per["DnCNN, + Stab fine-tuning"]
            text += (f" Cost per epoch of 1,000 images on this machine: MSE {per['DnCNN, MSE']:.2f} s, stability "
                     f"{per['DnCNN, + Stab fine-tuning']:.2f} s, rejector (T draws per image) {per['rejector']:.2f} s. "
                     f"At the paper's epoch counts (Table 1: MSE 90, +Stab 20, rejector 20, Stab alone 600) over "
                     f"{1000 * n_k:.0f} images that projects to MSE + rejector {with_rej:.0f} s against Stab alone "
                     f"{stab:.0f} s: the rejector route is " + ("cheaper" if with_rej < stab else "NOT cheaper")
                     + " here, as far as per-epoch costs go (the seconds are of a shared machine; the rejector's "
                     "cost is at our T draws per image, and grows with T up to the paper's T = 20; Stab alone is "
                     "costed at the per-epoch cost of our Stab fine-tuning).")
    return text


def rejector_variants(setup: Setup, subset: TestSubset, method: str, sigma: float, variants: Mapping[str, Mapping],
                      n0: int, n: int, alpha: float, notebook: str) -> dict:
    """Figure 9 and other rejector ablations: for every {label: overrides of the rejector settings}
    (e.g. ``{"T = 4": {"draws": 4}}``, ``{"head f(D(x+e))": {"head": "noisy"}}``), a rejector of
    ``method`` trained with those settings (all else equal), certified on ``subset`` at ``sigma``.
    Returns {label: log path}."""
    if method not in REJECTOR_BASES:
        raise ValueError(f"method must be a rejector method {sorted(REJECTOR_BASES)}, got {method!r}")
    return {label: certify_rejection(method, sigma, setup, subset, n0, n, alpha, notebook,
                                     rejector_overrides=dict(over), tag=_overrides_tag(over))
            for label, over in variants.items()}


def _overrides_tag(overrides: Mapping) -> str:
    """A log-name tag for rejector overrides ({"draws": 8} -> "draws8")."""
    return re.sub(r"[^A-Za-z0-9_.]", "", "_".join(f"{k}{v}" for k, v in sorted(dict(overrides).items())))


def rejector_budget(setup: Setup, subset: TestSubset, b: Mapping, n0: int, alpha: float, profile: str,
                    model_note: str, notebook: str, radii: Sequence[float]) -> dict:
    """Is the rejector's effect an artefact of our budgets? Certify ``b["method"]`` (a rejector method,
    A) and its base method (B) at ``b["sigma"]`` on the same ``subset`` at growing budgets
    ``b["budgets"]`` = {label: {"budget": k (ascending, the first 1 = the notebook's own), "n": votes,
    "rejector": overrides of the rejector's training settings (e.g. more images)}}, and register the
    table with its budget finding (:func:`lib.reporting.budget_finding`: shrinks, holds or grows, with
    paired intervals) against the paper's claim that the rejector raises the certified accuracy.
    Returns {"runs", "comparison" (:func:`lib.reporting.budget_comparison`), "stem"}."""

    method, sigma, radius = b["method"], float(b["sigma"]), float(b["radius"])
    if method not in REJECTOR_BASES:
        raise ValueError(f"method must be a rejector method {sorted(REJECTOR_BASES)}, got {method!r}")
    steps = sorted(b["budgets"].items(), key=lambda kv: float(kv[1]["budget"]))
    if len(steps) < 2 or float(steps[0][1]["budget"]) != 1.0:
        raise ValueError(f"budgets need at least two steps, the first at budget 1, got {dict(b['budgets'])}")
    base, runs, rows = REJECTOR_BASES[method], [], {}
    for _, st in steps:
        over, n = dict(st.get("rejector", {})), int(st["n"])
        a = certify_rejection(method, sigma, setup, subset, n0, n, alpha, notebook, rejector_overrides=over,
                              tag=_overrides_tag(over))
        o = certify_rejection(base, sigma, setup, subset, n0, n, alpha, notebook)
        what = f"n = {n:,}" + (", rejector " + ", ".join(f"{k}={v}" for k, v in over.items()) if over else "")
        runs.append({"sigma": sigma, "budget": float(st["budget"]), "a": str(a), "b": str(o), "iters": what})
        rows[f"A = {method_label(method)}, ×{float(st['budget']):g} ({what})"] = [a]
        rows[f"B = {method_label(base)}, ×{float(st['budget']):g} (n = {n:,})"] = [o]
    stem = f"rejector_budget_{setup.dataset}"
    finding = {"kind": "budget", "a": method_label(method), "b": method_label(base), "radius": radius,
               "claim": f"checked where the paper places the gain, sigma={sigma:g} and radius {radius:g}; "
                        f"{quote('rejection_experiments')}", "kind_of_claim": "better", "metric": "radius", "runs": runs,
               "budget_unit": "the rejector's training budget and the votes n grown together (see the rows)"}
    register_table(notebook, stem, rows, radii,
                   title=f"Against the budget: {method_label(method)} vs {method_label(base)} ({setup.dataset}, "
                         f"sigma={sigma:g})",
                   settings=table_settings(subset, profile, model_note, sigma, n0, [int(st["n"]) for _, st in steps],
                                           alpha, certificate="Theorem 3.1 with a rejector, Cohen et al. without"),
                   reference_source="none: the paper publishes curves for CIFAR-10 only", finding=finding)
    return {"runs": runs, "comparison": budget_comparison(runs, radius, claim="better", metric="radius"), "stem": stem}


def curve_styles(methods: Sequence[str]) -> dict:
    """{label: matplotlib style}: a denoiser and its rejector share a colour, the rejector dashed
    (the layout of Sheikholeslami et al. Figures 4 and 7)."""
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    bases = []
    for m in methods:
        b = REJECTOR_BASES.get(m, m)
        if b not in bases:
            bases.append(b)
    return {method_label(m): {"color": colors[bases.index(REJECTOR_BASES.get(m, m)) % len(colors)],
                              "ls": "--" if m in REJECTOR_BASES else "-"} for m in methods}


#: Sheikholeslami et al., §6: N = 10,000 draws, alpha = 0.01
PAPER_N = 10_000


def two_bound_cost(n: int, alpha: float, paper_n: int = PAPER_N) -> str:
    """What Theorem 3.1's two bounds at alpha/2 each cost when the rejector rejects nothing: the largest
    radius (every vote for c_A, in units of sigma) with Cohen's one bound at alpha against two at alpha/2,
    at this run's n and at the paper's."""
    g = Gaussian(1.0)
    parts = [f"n = {m:,}: {g.max_radius(m, alpha):.2f}σ (Cohen, α = {alpha:g}) against {g.max_radius(m, alpha / 2):.2f}σ "
             f"(Theorem 3.1, two bounds at α/2, nothing rejected)" for m in dict.fromkeys((int(n), int(paper_n)))]
    return "Largest certifiable radius with every vote for c_A — " + "; ".join(parts)

