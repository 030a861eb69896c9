"""The empirical-Bayes classifier g[π] against Saremi & Srivastava's Table 1: certification, floors and checks.

* :func:`logit_procedure` -- g[h] of a *linear* h certified by sampling its logits: for
  h(x) = W vec(x) + b under N(0, sigma^2 I), h(x + u) = h(x) + W u with W u ~ N(0, sigma^2 W W^T),
  so the votes have exactly the law of the input-space sampler (``lib.smoothing.noise.LogitGaussian``)
  and the certificate is the same; 10 floats per noisy sample instead of 784. A ``procedure`` of
  :func:`lib.methods.certify_method`: the log is Cohen's TSV, named and resumable as any other.
* :func:`wiener_mse` -- the linear shrinkage (Wiener) bound of denoising, an upper bound on the Bayes error: the best *linear*
  estimator of x from y = x + N(0, sigma^2 I), computed from the training covariance.
* :func:`deen_sweep` -- the DEEN architecture by measured denoising MSE at equal CPU budget.
* :func:`recipe_sensitivity` -- g[h] of linear classifiers trained by several recipes.
* :func:`logit_decision_procedure` -- decision mode (:mod:`lib.smoothing.decision`) for g[h] of a linear h,
  its votes drawn in logit space as :func:`logit_procedure` draws them.
* :func:`certify_pi_sequential` -- g[pi] by sequential CERTIFY with the table's radii as targets;
  :func:`certify_pi_decision` -- g[pi] in decision mode over the same radius grid.
* :func:`fig4_count` -- points where g[h] certifies more than g[pi] (both correct) on a radius grid.
"""
from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from statsmodels.stats.proportion import proportion_confint

from lib.data import datasets
from lib.denoising.energy import EnergyMLP, deen_loss, get_energy_model
from lib.experiments.procedures import sequential_procedure
from lib.methods import certification_mode, certify_method, panels_by_sigma
from lib.profiles import model_settings
from lib.reporting.figures import COLORS, certified_curves_figure, denoising_figure, figure_style, save_figure
from lib.reporting.tables import best_over
from lib.smoothing.logs import read_log, read_settings
from lib.smoothing.decision import decision_procedure
from lib.smoothing.noise import Gaussian, LogitGaussian
from lib.smoothing.smooth import Smooth

__all__ = ["PAPER_FIG4", "fig4_line", "recipe_finding", "logit_procedure", "logit_decision_procedure", "LOGIT_TAG",
           "wiener_mse", "deen_sweep", "deen_curves", "deen_table", "recipe_sensitivity", "certify_pi_sequential",
           "certify_pi_decision", "sequential_targets", "fig4_count", "certified_with_ci", "within_reference",
           "compare_to_paper", "figure2", "certify_both", "table_settings"]

#: the tag of logs written through :func:`logit_procedure` (the log name does not see the procedure)
LOGIT_TAG = "logit"


# ====================================================================== item 1: exact logit-space sampling
def _linear_layer(classifier) -> torch.nn.Linear:
    lin = getattr(classifier, "linear", classifier)
    if not isinstance(lin, torch.nn.Linear):
        raise TypeError(f"logit-space sampling needs a linear classifier (an nn.Linear or a module with "
                        f"`.linear`), got {type(classifier).__name__}")
    return lin


def _logit_smooth(smooth: Smooth) -> Smooth:
    """``Smooth(Identity, K, LogitGaussian(sigma, W))``: the g[h] of ``smooth`` (Gaussian noise, no denoiser,
    h linear) with its votes drawn at the clean logits h(x)."""
    if smooth.denoiser is not None or getattr(smooth, "rejector", None) is not None:
        raise ValueError("logit-space sampling is exact only without a denoiser or rejector")
    if not isinstance(smooth.noise, Gaussian):
        raise ValueError(f"logit-space sampling needs Gaussian noise, got {smooth.noise.name}")
    lin = _linear_layer(smooth.classifier)
    return Smooth(torch.nn.Identity(), smooth.num_classes, LogitGaussian(smooth.noise.sigma, lin.weight),
                  device=smooth.device)


def _at_logits(smooth: Smooth, certify_logits):
    """A ``certify(xs, ...)`` that runs ``certify_logits(h(xs), ...)`` at the clean logits h(xs) [B, K]."""
    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        with torch.no_grad():
            z = smooth.classifier(xs.to(smooth.device))
        return certify_logits(z, n0, n, alpha, batch_size, generator)

    return certify


def logit_procedure(smooth: Smooth):
    """``procedure`` for ``certify_method(..., procedure=logit_procedure, tag=LOGIT_TAG)``.

    ``smooth`` is the input-space g[h] (Gaussian noise, no denoiser, h linear). Returns the
    ``certify(xs [B, *shape], n0, n, alpha, batch_size=, generator=)`` of
    :func:`lib.smoothing.certify_dataset`: CERTIFY of ``Smooth(Identity, K, LogitGaussian(sigma, W))``
    at the clean logits h(xs) [B, K]. Same guarantee (w.p. >= 1 - alpha per point) and radius formula.
    """
    logit = _logit_smooth(smooth)
    return _at_logits(smooth, lambda z, n0, n, alpha, batch_size, generator: logit.certify_batch(
        z, n0, n, alpha, batch_size, generator, allow_large=True, progress=False))


def logit_decision_procedure(radii: Sequence[float], **options):
    """``procedure`` of decision mode at the table ``radii`` (:func:`lib.smoothing.decision_procedure`, n_max =
    the run's n; ``options`` those of :func:`lib.smoothing.certify_decisions`) for the g[h] of a linear h, with
    the votes drawn in logit space as :func:`logit_procedure` draws them (the same law: the same guarantee).
    Use as ``certify_method(..., mode="decision", radii=radii, decide=logit_decision_procedure)``."""
    decide = decision_procedure(radii, **{"allow_large": True, "progress": False, **options})
    return lambda smooth: _at_logits(smooth, decide(_logit_smooth(smooth)))


# ====================================================================== item 2: DEEN against the Wiener bound
@torch.no_grad()
def wiener_mse(train_x: torch.Tensor, test_x: torch.Tensor, sigma: float) -> float:
    """Per-pixel MSE of the best linear denoiser x̂ = mu + S (y - mu), S = C (C + sigma^2 I)^-1, with
    mu, C the mean and covariance of ``train_x`` [N, *shape], averaged *exactly* over the noise on
    ``test_x`` [M, *shape]: E||x - x̂||^2 = ||(I - S)(x - mu)||^2 + sigma^2 tr(S^2)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    a, b = train_x.flatten(1).double(), test_x.flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"train and test images differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")
    mu = a.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov((a - mu).T))
    shrink = evals.clamp_min(0) / (evals.clamp_min(0) + sigma ** 2)  # eigenvalues of S
    resid = ((b - mu) @ evecs) * (1 - shrink)  # (I - S)(x - mu) in the eigenbasis
    per_row = resid.pow(2).sum(1) + sigma ** 2 * shrink.pow(2).sum()
    return float(per_row.mean() / a.shape[1])


def _cpu_seconds_per_step(dataset: str, sigma: float, hidden: Sequence[int], batch_size: int, lr: float,
                          probe_steps: int = 20) -> float:
    """CPU seconds of one DEEN training step (forward, double backward, Adam) of this width."""

    x = datasets.load(dataset, "train", limit=batch_size * (probe_steps + 3))[0]
    model = EnergyMLP(x[0].numel(), sigma, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    for i in range(probe_steps + 3):
        if i == 3:  # after warm-up
            t0 = time.process_time()
        xb = x[i * batch_size:(i + 1) * batch_size]
        loss = deen_loss(model, xb, sigma * torch.randn(xb.shape, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - t0) / probe_steps


def deen_sweep(dataset: str, sigma: float, profile: str, candidates: Mapping[str, Sequence[int]],
               budget_cpu_s: float, seed: int = 0, device=None, train_size: int = 60_000) -> pd.DataFrame:
    """Train each candidate architecture (label -> hidden widths) for the epochs that fit
    ``budget_cpu_s`` CPU-seconds (from a measured per-step cost) and report its held-out MSE.

    The rule of the sweep: at equal CPU budget the architecture with the lowest test MSE wins, and
    its epochs are the budget's (measured MSE per CPU-second). Models are trained through the
    ``deen`` family's cache (``lib.denoising.get_energy_model``), so the winner is reused as is.
    """

    base = model_settings("deen", profile)
    steps_per_epoch = math.ceil(train_size / base["batch_size"])
    rows = []
    for label, hidden in candidates.items():
        per_step = _cpu_seconds_per_step(dataset, sigma, hidden, base["batch_size"], base["lr"])
        epochs = max(1, round(budget_cpu_s / (per_step * steps_per_epoch)))
        _, hist = get_energy_model(dataset, sigma, profile, seed, device, hidden=list(hidden), epochs=epochs)
        rows.append({"architecture": label, "hidden": list(hidden), "epochs": epochs,
                     "probe CPU s / epoch": per_step * steps_per_epoch,
                     "train CPU s": hist.get("train_cpu_seconds"), "test MSE": hist["test_mse"],
                     "noisy MSE": hist["noisy_mse"]})
    return pd.DataFrame(rows).set_index("architecture")


def deen_table(deen: Mapping[float, tuple], floors: Mapping[float, float]) -> pd.DataFrame:
    """One row per DEEN {sigma: (model, config, history)}: MSE of the noisy input, the Wiener bound
    {sigma: MSE}, the held-out MSE of its Bayes estimate, epochs and training CPU seconds."""
    return pd.DataFrame({f"σ = {s:g}": {"MSE of x + ε": hist["noisy_mse"], "Wiener bound": floors[s],
                                        "MSE of x̂(x + ε)": hist["test_mse"], "epochs": len(hist["loss"]),
                                        "train CPU s": hist.get("train_cpu_seconds")}
                         for s, (_, _, hist) in deen.items()}).T


def deen_curves(deen: Mapping[float, tuple], floors: Mapping[float, float], ax=None):
    """Training curves of the DEENs {sigma: (model, config, history)}: per-epoch training MSE per
    pixel (fresh noise every step) and the final held-out MSE, against the Wiener bound {sigma: MSE}."""

    with figure_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.8))
        for i, (s, (model, _, hist)) in enumerate(sorted(deen.items())):
            c = COLORS[i % len(COLORS)]
            loss = np.asarray(hist["loss"]) / model.in_features
            epochs = np.arange(1, len(loss) + 1)
            ax.plot(epochs, loss, color=c, marker="o", label=f"σ = {s:g}: DEEN, training MSE")
            ax.plot([epochs[-1]], [hist["test_mse"]], color=c, marker="*", ms=16, ls="",
                    label=f"σ = {s:g}: DEEN, test MSE")
            ax.axhline(floors[s], color=c, ls="--", label=f"σ = {s:g}: Wiener (best linear) bound")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE per pixel")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    return ax


# ====================================================================== item 3: the linear classifier's recipe
def recipe_sensitivity(recipes: Mapping[str, Mapping], setup, subset, sigmas: Sequence[float], n0: int, n: int,
                       alpha: float, notebook: str, radii: Sequence[float], chunk: int = 100):
    """Certify g[h] (logit-space, :func:`logit_procedure`) for linear classifiers trained by each
    recipe (label -> overrides of the ``linear_h`` family) on the same points. Returns
    (table: test accuracy and certified accuracy best over sigma per radius, {label: [log paths]})."""
    rows, logs = {}, {}
    for label, over in recipes.items():
        s = setup.replace(classifier_overrides={setup.classifier_arch: {**setup.classifier_overrides.get(
            setup.classifier_arch, {}), **over}})
        _, _, hist = s.classifier()
        logs[label] = [certify_method("none", Gaussian(sg), s, subset, n0, n, alpha, notebook, chunk=chunk,
                                      tag=f"{LOGIT_TAG}_recipe", progress=False, procedure=logit_procedure,
                                      settings={"sampler": "logit", "recipe": label}) for sg in sigmas]
        # (own tag: under `full` these points and the main g[h] run's are both the whole test set, and the
        # recipe log must not collide with that run's log, which carries no recipe)
        best = best_over([read_log(p) for p in logs[label]], radii)
        rows[label] = {"test accuracy": hist["test_accuracy"],
                       **{f"r = {r:g}": round(100 * float(v), 1) for r, v in zip(radii, best)}}
    return pd.DataFrame(rows).T, logs


# ====================================================================== g[pi]: sequential, and the Figure 4 count
def sequential_targets(radii: Sequence[float], sigma: float, n_max: int, alpha: float, step: float | None = None,
                       final_share: float = 0.5) -> list[float]:
    """The table's radii (and 0, and every ``step`` between them) that ``n_max`` votes can certify at
    all: r <= r_max(n_max, final_share * alpha). Larger targets could never be reached, and keeping
    them would stop no point early (its upper bound would always 'still reach' them)."""
    grid = sorted({0.0, *map(float, radii)} | (set(np.round(np.arange(0, max(radii) + 1e-9, step), 6))
                                                 if step else set()))
    cap = Gaussian(sigma).max_radius(n_max, final_share * alpha)
    return [float(r) for r in grid if r <= cap]


def certify_pi_sequential(setup, subset, sigmas: Sequence[float], n0: int, n_max: int, alpha: float,
                          notebook: str, radii: Sequence[float], step: float | None = None, chunk: int = 10,
                          method: str = "empirical_bayes") -> dict:
    """Sequential CERTIFY (:meth:`Smooth.certify_sequential`, anytime-valid Clopper-Pearson) of
    ``method`` at each sigma, with :func:`sequential_targets` as targets. {(method, sigma): log}."""
    out = {}
    for s in sigmas:
        targets = sequential_targets(radii, s, n_max, alpha, step)
        out[(method, float(s))] = certify_method(
            method, Gaussian(s), setup, subset, n0, n_max, alpha, notebook, chunk=chunk, tag="sequential",
            progress=False, procedure=sequential_procedure(targets, progress=False), columns=["samples"],
            settings={"procedure": "sequential", "targets": targets})
    return out


def certify_pi_decision(setup, subset, sigmas: Sequence[float], n0: int, n_max: int, alpha: float,
                        notebook: str, radii: Sequence[float], step: float | None = None, chunk: int = 10,
                        method: str = "empirical_bayes") -> dict:
    """Decision mode (:mod:`lib.smoothing.decision`, n_max votes at most) of ``method`` at each sigma, every
    radius of :func:`sequential_targets` decided: the grid that sequential CERTIFY targets, so that certified
    accuracy on it -- all that Figure 2's bars and the Figure 4 count read -- is exact. {(method, sigma): log}."""
    return {(method, float(s)): certify_method(method, Gaussian(s), setup, subset, n0, n_max, alpha, notebook,
                                               chunk=chunk, progress=False, mode="decision",
                                               radii=sequential_targets(radii, s, n_max, alpha, step))
            for s in sigmas}


def _level(radius: np.ndarray, correct: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of grid radii certified (radius >= r) by a correct prediction; -1 when wrong/abstained."""
    return np.where(correct == 1, (grid[None, :] <= radius[:, None]).sum(1), -1)


def fig4_count(log_h, log_pi, grid: Sequence[float]) -> dict:
    """Points of ``log_pi`` where g[h] certifies a larger radius than g[pi], both correct: on the
    ``grid`` of radii (g[h] certifies some grid radius that g[pi] does not), which is what a
    sequential g[pi] log resolves exactly; and in raw radii (meaningful for fixed-n logs only).
    Returns {"points", "grid_count", "raw_count", "indices", "frame" (the merged logs), "both_correct"}."""
    both = read_log(log_pi).merge(read_log(log_h), on="idx", suffixes=("_pi", "_h"))
    g = np.asarray(sorted(grid), dtype=float)
    ok = (both["correct_h"] == 1) & (both["correct_pi"] == 1)
    lh = _level(both["radius_h"].to_numpy(), both["correct_h"].to_numpy(), g)
    lp = _level(both["radius_pi"].to_numpy(), both["correct_pi"].to_numpy(), g)
    grid_hit = ok.to_numpy() & (lh > lp)
    raw_hit = ok & (both["radius_h"] > both["radius_pi"])
    return {"points": len(both), "grid_count": int(grid_hit.sum()), "raw_count": int(raw_hit.sum()),
            "indices": [int(i) for i in both["idx"][grid_hit]], "frame": both, "both_correct": ok.to_numpy()}


def certified_with_ci(logs: Sequence, radii: Sequence[float], alpha: float = 0.05) -> pd.DataFrame:
    """Certified accuracy (best over the logs, in %) at each radius with a (1 - alpha) Clopper-Pearson
    interval over the test points: columns radius, acc, lo, hi, points."""
    frames = [read_log(p) for p in logs]
    num = len(frames[0])
    acc = best_over(frames, radii)
    rows = []
    for r, a in zip(radii, acc):
        k = int(round(float(a) * num))
        lo, hi = proportion_confint(k, num, alpha=alpha, method="beta")
        rows.append({"radius": float(r), "acc": 100 * k / num, "lo": 100 * lo, "hi": 100 * hi, "points": num})
    return pd.DataFrame(rows)


def within_reference(ours: Sequence[float], reference: Sequence[float], tolerance: float,
                     lo: Sequence[float] | None = None, hi: Sequence[float] | None = None) -> list[bool]:
    """Per radius: |ours - reference| <= tolerance (points), or, with an interval (lo, hi), the
    reference lies within [lo - tolerance, hi + tolerance]."""
    out = []
    for i, (o, r) in enumerate(zip(ours, reference)):
        if lo is not None and hi is not None:
            out.append(bool(lo[i] - tolerance <= r <= hi[i] + tolerance))
        else:
            out.append(bool(abs(o - r) <= tolerance))
    return out


def compare_to_paper(logs: Mapping[tuple, object], names: Mapping[str, str], radii: Sequence[float],
                     published: Mapping[str, Sequence[float]], tolerance: float) -> pd.DataFrame:
    """Per method (best over sigma) and radius: ours (%) with its 95% Clopper-Pearson interval over
    the test points, the published number (a reference, never an input), and whether the published
    number lies within ``tolerance`` points of our interval."""
    rows = []
    for m, label in names.items():
        ci = certified_with_ci([p for (mm, _), p in logs.items() if mm == m], radii)
        ok = within_reference(ci["acc"], published[label], tolerance, ci["lo"], ci["hi"])
        for (_, c), ref, w in zip(ci.iterrows(), published[label], ok):
            rows.append({"method": label, "radius": c["radius"], "test points": c["points"], "ours %": c["acc"],
                         "95% CI": f"[{c['lo']:.1f}, {c['hi']:.1f}]", "published %": ref,
                         "ours - published": round(c["acc"] - ref, 1), f"within ±{tolerance:g} of CI": w})
    return pd.DataFrame(rows)


def figure2(logs: Mapping[tuple, object], names: Mapping[str, str], sigmas: Sequence[float],
            bars: Mapping[float, Sequence[float]], radius_caps: Mapping[str, float], max_radius: float, title: str,
            pi_caps: Mapping[float, float] | None = None):
    """Saremi & Srivastava's Figure 2: one panel per sigma, g[h] dashed, g[pi] solid, the r_max cap of
    g[h] dotted grey ({panel title: radius}), that of g[pi] dotted in its colour ({sigma: radius}), and 95%
    Clopper-Pearson error bars (over test points) on each curve at the radii ``bars`` {sigma: radii}."""
    panels = panels_by_sigma(logs, sigmas, methods=list(names), labels=names)
    fig = certified_curves_figure(panels, max_radius=max_radius, title=title, radius_caps=radius_caps,
                                  styles={names["none"]: {"ls": "--"}})
    for ax, s in zip(fig.axes, sigmas):
        for line in ax.get_lines():
            label = line.get_label()
            m = next((k for k, v in names.items() if v == label), None)
            if m is None:
                continue
            ci = certified_with_ci([logs[(m, float(s))]], bars[s])
            ax.errorbar(ci["radius"], ci["acc"] / 100, yerr=[(ci["acc"] - ci["lo"]) / 100, (ci["hi"] - ci["acc"]) / 100],
                        fmt="o", color=line.get_color(), capsize=4, ms=5)
            if m == "empirical_bayes" and pi_caps:
                ax.axvline(pi_caps[s], color=line.get_color(), ls=":", lw=2)
    return fig


# ====================================================================== notebook 04 glue
def certify_both(setup, h_points, pi_points, cfg: Mapping, notebook: str) -> tuple[dict, dict]:
    """Notebook 04's runs: (logs, table_logs), each {(method, sigma): log}.

    ``logs`` (Figure 2, the Figure 4 count): g[h] ("none") on ``h_points`` at n = cfg["n"] by the logit-space
    sampler, fixed n; g[pi] ("empirical_bayes") on ``pi_points`` over the radius grid (:func:`sequential_targets`,
    n_max = cfg["pi_n"]): by sequential CERTIFY when cfg["certify"] is "fixed", in decision mode when it is
    "decision". ``table_logs`` (the tables): ``logs`` when "fixed"; when "decision", g[h] decided at the table
    radii (:func:`logit_decision_procedure`, n_max = n, the same points) beside g[pi]'s decision logs."""
    mode, sigmas, n0, alpha = cfg["certify"], cfg["sigmas"], cfg["n0"], cfg["alpha"]
    if mode not in ("fixed", "decision"):
        raise ValueError(f"cfg['certify'] must be 'fixed' or 'decision', got {mode!r}")

    def g_h(**how):  # logit-space sampler: fixed n (procedure=) or decision mode (mode=, radii=, decide=)
        return {("none", float(s)): certify_method("none", Gaussian(s), setup, h_points, n0, cfg["n"], alpha, notebook,
                                                   chunk=cfg["chunk"], tag=LOGIT_TAG, progress=False,
                                                   settings={"sampler": "logit"}, **how) for s in sigmas}

    pi = certify_pi_sequential if mode == "fixed" else certify_pi_decision
    pi_logs = pi(setup, pi_points, sigmas, n0, cfg["pi_n"], alpha, notebook, cfg["radii"], step=cfg["pi_step"],
                 chunk=cfg["pi_chunk"])
    logs = {**g_h(procedure=logit_procedure), **pi_logs}
    if mode == "fixed":
        return logs, dict(logs)
    return logs, {**g_h(mode="decision", radii=cfg["radii"], decide=logit_decision_procedure), **pi_logs}


def table_settings(cfg: Mapping, h_points, pi_points, h_cfg: Mapping, deen_cfg: Mapping) -> dict:
    """The settings printed under notebook 04's tables: data, models, sigma, n0, n, alpha, profile and how each
    row was certified (``certification``: cfg["certify"], and the procedure of each row)."""
    decision = cfg["certify"] == "decision"
    how = ("g[h] at the table radii (logit-space sampler), g[π] over the radius grid" if decision
           else "g[h] fixed n (logit-space sampler), g[π] sequential CERTIFY over the radius grid")
    return {"data": f"{cfg['dataset']} test: g[h] {len(h_points)} points, g[π] {len(pi_points)} evenly spaced points",
            "model": f"linear h ({h_cfg['optimizer']}), DEEN MLP {deen_cfg['hidden']} per σ", "sigma": cfg["sigmas"],
            "n0": cfg["n0"], "n": f"g[h] {'n_max ' if decision else ''}{cfg['n']}; g[π] n_max {cfg['pi_n']}",
            "alpha": cfg["alpha"], "profile": cfg["profile"], "certification": f"{cfg['certify']}: {how}"}


#: Saremi & Srivastava, Figure 4 caption: the Figure 4 count at sigma = 0.6 (a labelled reference only)
PAPER_FIG4 = {"count": 26, "points": 10_000, "sigma": 0.6,
              "place": "Saremi & Srivastava (2020, arXiv:2005.04504), Figure 4 caption"}


def fig4_line(f4: Mapping, sigma: float, level: float = 0.95) -> str:
    """The Figure 4 count as a rate per 10k with its Clopper-Pearson interval (statsmodels), beside the
    paper's count, and whether the paper's rate lies in our interval."""
    k, m = int(f4["grid_count"]), int(f4["points"])
    if m == 0:
        return f"σ = {sigma:g}: no point certified by both: no Figure 4 count."
    lo, hi = proportion_confint(k, m, alpha=1 - level, method="beta")
    ref = PAPER_FIG4["count"] / PAPER_FIG4["points"]
    inside = lo <= ref <= hi
    return (f"σ = {sigma:g}: g[h] certifies more than g[π] (both correct) on {k} of {m} points on the grid (raw radii: "
            f"{f4['raw_count']}) = {10_000 * k / m:.0f} per 10k, {level:.0%} Clopper-Pearson interval "
            f"[{10_000 * lo:.0f}, {10_000 * hi:.0f}] per 10k. Reference ({PAPER_FIG4['place']}, σ = {PAPER_FIG4['sigma']:g}): "
            f"{PAPER_FIG4['count']} of {PAPER_FIG4['points']:,}, "
            + ("inside our interval." if inside else "outside our interval.")
            + ("" if float(sigma) == PAPER_FIG4["sigma"] else " (Our σ differs from the paper's.)"))


def recipe_finding(recipes: pd.DataFrame, recipe_settings: Mapping[str, Mapping], target: float = 0.9218) -> str:
    """The recipe rule's outcome, from the table of :func:`recipe_sensitivity`: the recipe whose test accuracy is
    closest to ``target`` (the paper's 0.9218, §2.4), the spread of test accuracy, and which recipe the
    notebook's h uses (the ``linear_h`` family's own: the one without overrides)."""
    acc = recipes["test accuracy"].astype(float)
    closest = str((acc - target).abs().idxmin())
    own = [k for k, v in recipe_settings.items() if not v]
    text = (f"Test accuracy by recipe: {', '.join(f'{k} {v:.4f}' for k, v in acc.items())} (spread "
            f"{100 * (acc.max() - acc.min()):.2f} points; the paper's {target}). Closest to it: {closest}. ")
    if own:
        text += (f"The notebook's h is the family's own recipe, {own[0]}: "
                 + ("the rule's choice." if own[0] == closest else "NOT the rule's choice."))
    return text


def fig3_fig4(logs: Mapping[tuple, object], x_test: torch.Tensor, energy, sigma: float, grid: Sequence[float],
              samples: int, seed: int, notebook: str) -> dict:
    """Print the Figure 4 count at ``sigma`` (:func:`fig4_count`) and draw Figure 3 for the first point
    both classify correctly, and the Figure 4 case for the first counted point (if any). Returns the count."""

    f4 = fig4_count(logs[("none", float(sigma))], logs[("empirical_bayes", float(sigma))], grid)
    print(fig4_line(f4, sigma))
    both = f4["frame"].set_index("idx")
    first_ok = [int(i) for i in both.index[f4["both_correct"]]][:1] or [int(both.index[0])]
    for stem, idx in {"fig3_denoising": first_ok[0], **({"fig4_failure_case": f4["indices"][0]} if f4["indices"] else {})}.items():
        row = both.loc[idx]
        fig = denoising_figure(x_test[idx], energy.denoiser(), sigma, samples, seed,
                               title=f"test image {idx}, σ = {sigma:g}: radius of g[h] = {row['radius_h']:.3f}, "
                                     f"of g[π] = {row['radius_pi']:.3f}")
        save_figure(fig, stem, notebook)
        plt.show()
    return {k: f4[k] for k in ("points", "grid_count", "raw_count")}


def notebook_metrics(logs: Mapping[tuple, object], grids: Mapping[float, Sequence[float]], recipes: pd.DataFrame,
                     deen: Mapping[float, tuple], floors: Mapping[float, float], comparison: pd.DataFrame,
                     table_logs: Mapping[tuple, object] | None = None) -> dict:
    """The run-dependent numbers notebook 04 records for its smoke test (besides the sizes); ``certification``:
    the mode of each of the tables' logs (``table_logs``, default ``logs``)."""
    seq = {s: read_log(p)["samples"] for (m, s), p in logs.items() if m == "empirical_bayes"}
    return {"certification": {f"{m}/{s:g}": certification_mode(p) for (m, s), p in (table_logs or logs).items()},
            "pi_grid": {f"{s:g}": list(g) for s, g in grids.items()},
            "pi_mean_votes": {f"{s:g}": float(v.mean()) for s, v in seq.items()},
            "pi_votes_range": {f"{s:g}": [int(v.min()), int(v.max())] for s, v in seq.items()},
            "samplers": {f"{m}/{s:g}": read_settings(p).get("sampler") or read_settings(p).get("procedure")
                         for (m, s), p in logs.items()},
            "recipes": {k: {c: float(v) for c, v in row.items()} for k, row in recipes.iterrows()},
            "deen": {f"{s:g}": {"mse": h["test_mse"], "noisy_mse": h["noisy_mse"], "wiener": floors[s],
                                "epochs": len(h["loss"])} for s, (_, _, h) in deen.items()},
            "paper_check": comparison.to_dict("records")}


def deviation_notes(cfg: Mapping, ours: Mapping, h_cfg: Mapping, deen_cfg: Mapping, r_max: Mapping, device) -> list[str]:
    """Lines naming every setting of notebook 04 that differs from Saremi & Srivastava section 2.4."""
    paper = {"n": 100_000, "alpha": 0.001, "g[h] test points": 10_000, "g[π] test points": 10_000, "n0": 100,
             "test accuracy of h": 0.9218}
    how = (f"g[π]: sequential CERTIFY (anytime-valid Clopper-Pearson, n_max = {cfg['pi_n']:,}) instead of fixed n"
           if cfg.get("certify", "fixed") == "fixed" else
           f"g[π]: decision mode over the radius grid (anytime-valid Clopper-Pearson, n_max = {cfg['pi_n']:,}) "
           f"instead of fixed n; g[h]'s table rows: decision mode at the table radii (n_max = {cfg['n']:,}), "
           "its curves fixed n")
    return [f"{k}: ours {ours[k]:,} vs paper {v:,}" for k, v in paper.items() if ours[k] != v] + [
        how,
        "radius cap r_max of g[h] with our n: " + ", ".join(f"{v:.2f} ({k})" for k, v in r_max.items()) + "; of g[π] "
        "(n_max, alpha/2): " + ", ".join(f"{Gaussian(s).max_radius(cfg['pi_n'], cfg['alpha'] / 2):.2f} (σ = {s:g})"
                                         for s in cfg["sigmas"]),
        f"classifier h: linear, {h_cfg['optimizer']} (lr {h_cfg['lr']:g}, momentum {h_cfg.get('momentum', 0)}), "
        f"{h_cfg['epochs']} epochs, batch {h_cfg['batch_size']}, {h_cfg['train_limit'] or 'all 60k'} images",
        f"DEEN ψ: 784-{'-'.join(map(str, deen_cfg['hidden']))}-1 {deen_cfg['activation']} MLP, {deen_cfg['epochs']} "
        f"epochs of Adam on {deen_cfg['train_limit'] or 'all 60k'} training images", f"device: {device}"]
