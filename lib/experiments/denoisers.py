"""Score networks compared, and every denoiser on every noise: tables and figures of the denoising studies.

Glue that turns the models of :mod:`lib.denoising.score` and the denoisers of
:mod:`lib.denoising.denoise` into the notebooks' tables and figures, so the notebooks hold prose,
parameters and one call per result:

* :func:`compare_architectures` -- network variants trained for equal steps, inference cost counted
  (:func:`count_macs`), one chosen by a stated rule (:func:`choose_architecture`); :func:`per_sigma_table`,
  :func:`image_grid`, :func:`plot_loss_curves`, :func:`plot_per_sigma`, :func:`unseen_sigma_ratios`,
  :func:`langevin_figure`;
* :func:`toy_score_study` -- a small score MLP on a 2-D Gaussian mixture against the exact score;
* :func:`score_models` -- the cached score networks of notebook 02 (multi-scale, single-σ, energy);
* :func:`tune_annealed` -- Lee's step size α searched on validation images, per noise and σ;
* :func:`denoiser_suite` / :func:`compare_denoisers` -- the long table (noise, σ, method, MSE, PSNR, time);
* :func:`unseen_sigma_table`, :func:`plot_metric_vs_sigma`, :func:`plot_score_field`, :func:`denoised_images`,
  :func:`denoiser_grid`.

Every denoiser of one (noise, σ) sees the same noisy images (``evaluate_denoisers`` seeds them).
"""
from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.data import GaussianMixture, datasets as data
from lib.denoising import denoise as dn, score as sc
from lib.models.cache import load_or_train
from lib.smoothing.noise import Gaussian, make_noise
from lib.utils import check_count, check_positive

__all__ = ["per_sigma_table", "inference_seconds", "count_macs", "choose_architecture", "compare_architectures",
           "architecture_finding", "per_sigma_finding",
           "image_grid", "plot_loss_curves", "plot_per_sigma", "unseen_sigma_ratios", "langevin_figure", "toy_score_study", "plot_score_field", "score_models", "tune_annealed", "denoiser_suite",
           "compare_denoisers", "unseen_sigma_table", "plot_metric_vs_sigma", "denoised_images", "denoiser_grid", "GAUSS_APPROX"]

#: suffix of the methods derived for Gaussian noise and applied to Laplace / uniform noise of equal variance
GAUSS_APPROX = " (Gauss. approx.)"


# ---------------------------------------------------------------------- notebook 02: networks compared
def per_sigma_table(models: dict, x: torch.Tensor, sigmas: Sequence[float], seed: int = 0):
    """DataFrame: one row per named model, one column per sigma, of the held-out
    ``MSE(tweedie) / sigma^2`` (:func:`dsm_loss_per_sigma`; 1 = no denoising)."""
    rows = {name: sc.dsm_loss_per_sigma(m, x, sigmas, seed=seed) for name, m in models.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"{s:g}" for s in sigmas])


def inference_seconds(model, x: torch.Tensor, sigma: float = 0.5, repeats: int = 3) -> dict:
    """Wall and process-CPU seconds per image of one score evaluation on the batch ``x``."""
    x = x.to(model.device)
    with torch.no_grad():
        model.score(x[:2], sigma)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            model.score(x, sigma)
    n = repeats * len(x)
    return {"seconds_per_image": (time.perf_counter() - t0) / n, "cpu_seconds_per_image": (time.process_time() - c0) / n}


def count_macs(model: nn.Module, x: torch.Tensor, sigma: float = 0.5) -> int:
    """Multiply-accumulates of one score evaluation per image, counted (not timed): the sum over
    the ``nn.Linear`` and ``nn.Conv2d`` layers run on ``x [B, *shape]`` of their MACs, / B.
    Deterministic, so it ranks architectures the same on every machine."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features
        else:  # Conv2d: every output element costs in_channels / groups * kh * kw MACs
            total[0] += out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model.score(x.to(model.device), sigma)
    finally:
        for h in handles:
            h.remove()
    return total[0] // len(x)


def choose_architecture(table, tolerance: float = 0.05) -> str:
    """The stated rule of notebook 02: among the variants whose mean held-out ratio (column
    ``mean ratio``) is within ``tolerance`` (relative) of the best, the one with the fewest
    counted MACs per image (ties: the better ratio). Uses no clock."""
    best = float(table["mean ratio"].min())
    near = table[table["mean ratio"] <= best * (1 + check_positive("tolerance", tolerance))]
    return str(near.sort_values(["MMAC per image", "mean ratio"]).index[0])


def compare_architectures(spec: dict, eval_sigmas: Sequence[float], dataset: str = "mnist",
                          profile: str = "quick", seed: int = 0, device=None, progress: bool = True):
    """Train each network variant of ``spec["variants"]`` (name -> ``{"arch": "mlp" | "unet",
    "net": {...}}``) with Lee's geometric schedule for the *same number of optimiser steps*
    (``spec["steps"]``; the rest of the training settings: the profile's score family) and
    compare the held-out ``MSE(tweedie)/sigma^2`` at ``eval_sigmas`` on ``spec["n_eval"]``
    validation images with the counted cost of one score evaluation (:func:`count_macs`).

    Returns a DataFrame, one row per variant: parameters, train steps, train seconds and CPU
    seconds (reported beside the quality, never used to choose), the ratio per sigma, ``mean
    ratio``, ``MMAC per image`` and ``chosen`` (:func:`choose_architecture` with
    ``spec["tolerance"]``). The same seed gives the same table except the seconds columns on
    any machine. Models are cached (the steps are in the config).
    """

    steps, n_eval = check_count("steps", spec["steps"]), check_count("n_eval", spec["n_eval"])
    xv, _ = data.load(dataset, "val", limit=n_eval)
    levels = sc._check_sigmas(eval_sigmas)
    rows = {}
    for name, variant in spec["variants"].items():
        config = sc.score_config(dataset, "geometric", profile, arch=variant["arch"], seed=seed)
        config.update(net=dict(variant["net"]), iters=steps)

        def train(model, cfg, name=name):
            return sc._train_score(model, cfg, progress, desc=f"{name} ({steps} steps)", per_sigma=False)

        model, hist = load_or_train(f"score-score-{dataset}-archcmp", config, sc.build_score_model, train,
                                          device=device)
        ratios = sc.dsm_loss_per_sigma(model, xv, levels, seed)
        row = {"arch": variant["arch"], "parameters": sum(t.numel() for t in model.parameters()),
               "train steps": hist["iters"], "train seconds": round(hist["seconds"], 1),
               "train CPU seconds": round(hist.get("cpu_seconds", float("nan")), 1)}
        row.update({f"sigma={s:g}": v for s, v in zip(levels, ratios)})
        row["mean ratio"] = float(np.mean(ratios))
        row["MMAC per image"] = round(count_macs(model, xv[:8]) / 1e6, 3)
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["chosen"] = table.index == choose_architecture(table, spec.get("tolerance", 0.05))
    return table


def architecture_finding(table: pd.DataFrame, spec: Mapping, settings: Mapping) -> str:
    """What the rule of :func:`compare_architectures` chose, and how the profile's default network
    (``settings["arch"]`` with ``settings["nets"]``) compares with it on the same table: mean ratio
    and counted MACs per image. The default is the network notebooks 03-07 load."""
    chosen = str(table.index[table["chosen"]][0])
    arch, net = settings["arch"], dict(settings["nets"][settings["arch"]])
    match = [k for k, v in spec["variants"].items() if v["arch"] == arch and dict(v["net"]) == net]
    text = (f"Rule's choice: {chosen} (mean ratio {table.loc[chosen, 'mean ratio']:.3f}, "
            f"{table.loc[chosen, 'MMAC per image']:g} MMAC per image). ")
    if not match:
        return text + (f"The profile's default network ({arch} {net}) is not among the compared variants, so this "
                       "table does not measure it; the notebooks use the default.")
    d = match[0]
    if d == chosen:
        return text + f"The profile's default network is {d}: the notebooks use the rule's choice."
    r_d, r_c = table.loc[d, "mean ratio"], table.loc[chosen, "mean ratio"]
    m_d, m_c = table.loc[d, "MMAC per image"], table.loc[chosen, "MMAC per image"]
    return text + (f"The profile's default network is {d}, NOT the rule's choice: mean ratio {r_d:.3f} against "
                   f"{r_c:.3f} ({100 * (r_d / r_c - 1):+.0f}%), at {100 * m_d / m_c:.0f}% of its MACs per image. The "
                   "notebooks use the default (every later notebook loads the same cached network); this line is the "
                   "evidence against it.")


def per_sigma_finding(per_sigma: pd.DataFrame, unseen: Sequence[float] = ()) -> list[str]:
    """Per network of :func:`per_sigma_table`: its largest ratio over the grid and at which sigma, and its
    largest ratio over the ``unseen`` sigmas (in no training schedule)."""
    out = []
    unseen_cols = [f"{s:g}" for s in unseen if f"{s:g}" in per_sigma.columns]
    for name, row in per_sigma.iterrows():
        worst = row.idxmax()
        line = f"{name}: largest ratio {row.max():.3f} at sigma={worst}, smallest {row.min():.3f} at sigma={row.idxmin()}"
        if unseen_cols:
            line += f"; at the unseen sigmas {', '.join(unseen_cols)}: at most {row[unseen_cols].max():.3f}"
        out.append(line)
    return out


def image_grid(images: torch.Tensor, nrow: int, pad: int = 1, clip: bool = True) -> np.ndarray:
    """Tile ``images [N, C, H, W]`` into one array ``[rows*(H+pad), nrow*(W+pad)(, C)]`` for
    ``plt.imshow`` (values clipped to [0, 1] if ``clip``)."""
    nrow = check_count("nrow", nrow)
    x = images.detach().cpu().float()
    if clip:
        x = x.clamp(0, 1)
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    out = torch.ones(c, rows * (h + pad) - pad, nrow * (w + pad) - pad)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[:, r * (h + pad): r * (h + pad) + h, k * (w + pad): k * (w + pad) + w] = x[i]
    arr = out.numpy()
    return arr[0] if c == 1 else arr.transpose(1, 2, 0)


# ---------------------------------------------------------------------- notebook 02: figures
def plot_loss_curves(hists: Mapping[str, dict], title: str = "Training loss"):
    """The training-loss curves (``step``, ``loss`` of :func:`lib.models.train_loop`) of named runs."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, h in hists.items():
        ax.plot(h["step"], h["loss"], label=name, lw=1.5)
    ax.set(xlabel="training step", ylabel="DSM loss (eq. 20, per pixel)", yscale="log", title=title)
    ax.legend(fontsize=9)
    return fig


def plateau_table(hists: Mapping[str, dict], tail: float = 0.1, tolerance: float = 0.01,
                  level: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Whether each training run had reached a plateau of its loss when it stopped.

    For each run (``step``, ``loss`` windows of :func:`lib.models.train_loop`), compare the mean
    window loss over the last ``tail`` of the steps with the ``tail`` before it: the relative
    fall ``1 - last / before`` with a ``level`` Welch interval over the windows. Criterion: the
    run is at a plateau when the upper end of that interval is below ``tolerance`` (more steps
    would lower the loss by less than ``tolerance`` per ``tail`` of the run); a run with fewer than
    two windows in either part is left undetermined (``None``). Returns the table and a line
    counting the runs that meet it.
    """
    from scipy import stats
    if not 0 < tail < 0.5 or not 0 < tolerance < 1:
        raise ValueError(f"tail must lie in (0, 0.5) and tolerance in (0, 1), got {tail}, {tolerance}")
    rows = {}
    for name, h in hists.items():
        step, loss = np.asarray(h.get("step", []), float), np.asarray(h.get("loss", []), float)
        total = step[-1] if len(step) else 0
        last = loss[step > (1 - tail) * total]
        before = loss[(step > (1 - 2 * tail) * total) & (step <= (1 - tail) * total)]
        if len(last) < 2 or len(before) < 2:  # too few logged windows to judge (a tiny run)
            rows[name] = {"steps": int(total), f"loss, last {tail:.0%}": float("nan"), "fall": float("nan"),
                          "fall low": float("nan"), "fall high": float("nan"), "at a plateau": None}
            continue
        m1, m0 = last.mean(), before.mean()
        ci = stats.ttest_ind(before, last, equal_var=False).confidence_interval(level)  # Welch: mean before - last
        low, high = ci.low / m0, ci.high / m0
        rows[name] = {"steps": int(total), f"loss, last {tail:.0%}": m1, "fall": 1 - m1 / m0,
                      "fall low": low, "fall high": high, "at a plateau": bool(high < tolerance)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    flat = int((table["at a plateau"] == True).sum())  # noqa: E712 (None: undetermined)
    falling, unknown = int((table["fall low"] > 0).sum()), int(table["at a plateau"].isna().sum())
    line = (f"criterion: the loss over the last {tail:.0%} of the steps is lower than over the {tail:.0%} before by less "
            f"than {tolerance:.0%} (upper end of the {level:.0%} Welch interval); {flat} of {len(table)} runs meet it; "
            f"{falling} of {len(table)} were still improving when they stopped (the interval of the fall above 0)"
            + (f"; {unknown} logged too few loss windows to judge" if unknown else ""))
    return table, line


def plot_per_sigma(per_sigma: pd.DataFrame, sigmas: Sequence[float], unseen: Sequence[float] = ()):
    """:func:`per_sigma_table` against σ (log-log), the σ values of ``unseen`` marked by dotted lines."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name in per_sigma.index:
        ax.plot(sigmas, per_sigma.loc[name].to_numpy(), "o-" if "multi" in name or "DEEN" in name else "s--",
                label=name, lw=1.5, ms=4)
    for s in unseen:
        ax.axvline(s, color="grey", ls=":", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="MSE(Tweedie) / σ²",
           title="Held-out denoising loss per noise level")
    ax.legend(fontsize=8)
    return fig


def unseen_sigma_ratios(model, history: Mapping, x: torch.Tensor, sigmas: Sequence[float], seed: int = 0):
    """Held-out ratio of a multi-scale ``model`` at σ values that are not training levels, beside
    the ratios at the two neighbouring training levels (from ``history["sigmas"/"per_sigma"]``).
    Returns a DataFrame indexed by σ."""
    levels, trained = np.array(history["sigmas"]), list(history["per_sigma"])
    rows = {}
    for s in sigmas:
        if not levels.min() < s < levels.max():
            raise ValueError(f"sigma={s} must lie strictly between the training levels {levels.min():g} and {levels.max():g}")
    for s, v in zip(sigmas, sc.dsm_loss_per_sigma(model, x, sigmas, seed=seed)):
        lo = int(np.argmin(np.where(levels < s, s - levels, np.inf)))
        hi = int(np.argmin(np.where(levels > s, levels - s, np.inf)))
        rows[s] = {"ratio": v, "lower level": levels[lo], "ratio at lower": trained[lo],
                   "upper level": levels[hi], "ratio at upper": trained[hi]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("σ")


def langevin_figure(models: Mapping, shape: Sequence[int], settings: Mapping, seed: int = 0, device=None):
    """Annealed Langevin samples (:func:`lib.denoising.annealed_langevin`, geometric 1 -> 0.01 with
    ``settings``: num_levels, steps_per_level, eps, n) of each named model, one panel each.
    Returns ``(figure, True if every sample is finite)``."""
    levels = sc.geometric_sigmas(1.0, 0.01, settings["num_levels"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 6), squeeze=False)
    finite = True
    for ax, (name, m) in zip(axes[0], models.items()):
        samples = sc.annealed_langevin(m, shape, levels, eps=settings["eps"], steps_per_level=settings["steps_per_level"],
                                       n=settings["n"], seed=seed, device=device)
        finite &= bool(torch.isfinite(samples).all())
        ax.imshow(image_grid(samples, int(np.ceil(np.sqrt(settings["n"])))), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=11)
        ax.axis("off")
    return fig, finite


# ---------------------------------------------------------------------- notebook 03: denoisers compared
def toy_score_study(toy: Mapping, seed: int = 0, extra_sigmas: Sequence[float] = (0.35, 0.7)):
    """Train a score MLP by multi-scale DSM on ``GaussianMixture(mu, sigma0)`` samples (settings
    ``toy``: mu, sigma0, sigmas, iters, hidden, depth, n_train, n_eval) and compare it with the exact
    score at the training levels and ``extra_sigmas``. Returns ``(model, mixture, table)``; the table
    (index σ) holds the relative score error and the one-step MSE, learned vs exact (Bayes)."""
    mixture = GaussianMixture(torch.tensor(toy["mu"]), toy["sigma0"])
    model, _ = sc.fit_toy_score(mixture, toy["sigmas"], iters=toy["iters"], hidden=toy["hidden"], depth=toy["depth"],
                                n_train=toy["n_train"], seed=seed)
    exact = sc.ClosedFormScore(mixture)
    x = mixture.sample(toy["n_eval"], torch.Generator().manual_seed(seed)).float()
    rows = {}
    for s in sorted(set(toy["sigmas"]) | set(extra_sigmas)):
        learned = dn.evaluate_denoiser(dn.tweedie(model, s), x, Gaussian(s), seed=seed)
        bayes = dn.evaluate_denoiser(dn.tweedie(exact, s), x, Gaussian(s), seed=seed)
        rows[s] = {"trained on": s in toy["sigmas"],
                   "relative score error": sc.relative_score_error(model, mixture, s, n=toy["n_eval"], seed=seed),
                   "MSE noisy": learned["mse_noisy"], "MSE Tweedie (learned)": learned["mse"],
                   "MSE Bayes (exact Tweedie)": bayes["mse"]}
    return model, mixture, pd.DataFrame.from_dict(rows, orient="index").rename_axis("σ")


def plot_score_field(model, mixture, sigma: float, lim: float = 2.6):
    """Quiver plot of the learned and exact score of the smoothed 2-D mixture at ``sigma`` over its density."""
    def grid(k):
        t = torch.linspace(-lim, lim, k)
        return torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)

    pts = grid(21)
    with torch.no_grad():
        est, tru = model.score(pts, sigma), mixture.score(pts, sigma)
    dens = mixture.smoothed_log_density(grid(200).double(), sigma).exp().reshape(200, 200)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.contourf(np.linspace(-lim, lim, 200), np.linspace(-lim, lim, 200), dens.numpy(), levels=20, cmap="Greys")
    ax.quiver(pts[:, 0], pts[:, 1], tru[:, 0], tru[:, 1], color="tab:blue", angles="xy", scale=120, width=0.004,
              label="exact score")
    ax.quiver(pts[:, 0], pts[:, 1], est[:, 0], est[:, 1], color="tab:orange", angles="xy", scale=120, width=0.0025,
              label="learned score")
    ax.set(title=f"Score of the smoothed mixture, σ = {sigma}", aspect="equal")
    ax.legend(loc="upper left")
    return fig


def score_models(dataset: str, profile: str, single_sigmas: Sequence[float], seed: int = 0, device=None) -> dict:
    """The cached score networks (``get_score_model``): ``geometric`` (Lee's multi-step network),
    ``uniform`` (one-step), ``energy`` (σ-conditional DEEN) and ``single`` {σ: single-σ network}."""
    def get(**kw):
        return sc.get_score_model(dataset, profile=profile, seed=seed, device=device, **kw)[0]

    return {"geometric": get(schedule="geometric"), "uniform": get(schedule="uniform"),
            "energy": get(schedule="geometric", param="energy"),
            "single": {s: get(schedule="single", sigma=s) for s in single_sigmas}}


def tune_annealed(score, noises: Sequence[str], sigmas: Sequence[float], x_val: torch.Tensor,
                  step_sizes: Sequence[float], steps_per_level: int = 1, seed: int = 0, batch_size: int = 256):
    """Validation MSE of Lee's annealed MAP (geometric L=32) per step size α for every (noise, σ);
    the grid always includes Lee's α. Returns ``(table [alpha x "noise σ=s"], best {(noise, σ): α})``."""
    levels = sc.make_schedule("geometric")
    columns, best = [], {}
    for name in noises:
        for s in sigmas:
            grid = sorted(set(step_sizes) | {dn.LEE_STEP_SIZE[name]}, reverse=True)
            df = dn.tune_step_size(score, make_noise(name, s), levels, x_val, grid, steps_per_level, seed=seed,
                                   batch_size=batch_size)
            best[(name, s)] = float(df["mse"].idxmin())
            columns.append(df["mse"].rename(f"{name} σ={s:g}"))
    return pd.concat(columns, axis=1).sort_index(ascending=False), best


def denoiser_suite(nets: Mapping, noise, alpha: float, walk: Mapping, mse=None, steps_per_level: int = 1,
                   seed: int = 0) -> dict:
    """Every denoiser of the study for one noise (name -> denoiser): none, the MSE DnCNN (``mse``, if
    given), one-step (uniform schedule; single-σ at its own σ; DEEN), multi-step with Lee's α and the
    tuned ``alpha``, and walk-jump (settings ``walk``: sigma_prime, delta, tau). ``nets``: :func:`score_models`."""
    s, approx = noise.sigma, ("" if noise.name == "gaussian" else GAUSS_APPROX)
    levels = sc.make_schedule("geometric")
    dens = {"none": dn.identity()}
    if mse is not None:
        dens["MSE (DnCNN)"] = mse
    dens["one-step, multi-scale" + approx] = dn.tweedie(nets["uniform"], s)
    if s in nets["single"]:
        dens["one-step, single-σ" + approx] = dn.tweedie(nets["single"][s], s)
    dens["one-step, DEEN" + approx] = dn.tweedie(nets["energy"], s)
    dens["multi-step, Lee α"] = dn.annealed_map(nets["geometric"], noise, levels, None, steps_per_level)
    dens["multi-step, tuned α"] = dn.annealed_map(nets["geometric"], noise, levels, alpha, steps_per_level)
    dens["walk-jump" + approx] = dn.walk_jump(nets["geometric"], s, walk["sigma_prime"], walk["delta"], walk["tau"],
                                              seed=seed)
    return dens


def compare_denoisers(nets: Mapping, noises: Sequence[str], sigmas: Sequence[float], x: torch.Tensor,
                      best_alpha: Mapping, walk: Mapping, dataset: str, profile: str, steps_per_level: int = 1,
                      seed: int = 0, batch_size: int = 256, device=None) -> pd.DataFrame:
    """The long table: one row per (noise, σ, denoiser of :func:`denoiser_suite`) with ``mse``, ``psnr``,
    their noisy-input values, seconds per image, ``method`` (the name without the Gaussian-approximation
    mark) and ``setting`` ("noise σ=s"). The MSE denoisers are the cached DnCNNs of ``profile``."""
    rows = []
    for name in noises:
        for s in sigmas:
            noise = make_noise(name, s)
            mse = dn.mse_denoiser(dataset, s, name, profile, seed=seed, device=device)
            dens = denoiser_suite(nets, noise, best_alpha[(name, s)], walk, mse, steps_per_level, seed)
            df = dn.evaluate_denoisers(dens, x, noise, seed=seed, batch_size=batch_size)
            rows.append(df.rename_axis("denoiser").reset_index())
    table = pd.concat(rows, ignore_index=True)
    table["method"] = table["denoiser"].str.replace(GAUSS_APPROX, "", regex=False)
    table["setting"] = table["noise"] + " σ=" + table["sigma"].map("{:g}".format)
    return table


def unseen_sigma_table(nets: Mapping, x: torch.Tensor, sigmas: Sequence[float], seed: int = 0,
                       batch_size: int = 256) -> pd.DataFrame:
    """One-step denoising with each named network of ``nets`` at σ values outside its schedule (Gaussian
    noise): per σ, ``<name> MSE/noisy``, ``<name> PSNR`` and the noisy input's PSNR."""
    out = {}
    for s in sigmas:
        res = {name: dn.evaluate_denoiser(dn.tweedie(m, s), x, Gaussian(s), seed=seed, batch_size=batch_size)
               for name, m in nets.items()}
        row = {f"{n} MSE/noisy": r["mse"] / r["mse_noisy"] for n, r in res.items()}
        row["PSNR noisy"] = next(iter(res.values()))["psnr_noisy"]
        out[s] = {**row, **{f"{n} PSNR": r["psnr"] for n, r in res.items()}}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("σ")


def plot_metric_vs_sigma(table: pd.DataFrame, noises: Sequence[str], sigmas: Sequence[float], value: str = "psnr"):
    """One panel per noise family: ``value`` of each method of :func:`compare_denoisers` against σ."""
    fig, axes = plt.subplots(1, len(noises), figsize=(6 * len(noises), 5), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], noises):
        for method, grp in table[table.noise == name].groupby("method", sort=False):
            ax.plot(grp.sigma, grp[value], "o-" if "multi" in method else "s--", label=method)
        ax.set(title=f"{name} noise", xlabel="σ (per-coordinate std)", xscale="log")
        ax.set_xticks(list(sigmas), [f"{s:g}" for s in sigmas])
    axes[0, 0].set_ylabel(value.upper() + (" (dB)" if value == "psnr" else ""))
    axes[0, -1].legend(fontsize=8, loc="upper right")
    return fig


def denoised_images(panels: Mapping[str, Mapping[str, torch.Tensor]], ncol: int):
    """One figure, one panel per title: each panel stacks labelled rows of ``ncol`` images
    (label -> images [ncol, C, H, W]); the row labels are written on the first panel."""
    nrows = max(len(rows) for rows in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(max(1.5 * ncol, 4.5) * len(panels) + 2, 1.3 * nrows + 1),
                             squeeze=False)
    for i, (ax, (title, rows)) in enumerate(zip(axes[0], panels.items())):
        images = torch.cat([r.detach().cpu() for r in rows.values()])
        h = images.shape[-2] + 1
        ax.imshow(image_grid(images, ncol), cmap="gray", vmin=0, vmax=1)
        ax.set_yticks([h // 2 + h * j for j in range(len(rows))], list(rows) if i == 0 else [])
        ax.set_xticks([])
        ax.set_title(title)
    return fig


def denoiser_grid(nets: Mapping, noises: Sequence[str], sigma: float, x: torch.Tensor, best_alpha: Mapping,
                  walk: Mapping, dataset: str, profile: str, methods: Sequence[str], steps_per_level: int = 1,
                  seed: int = 0, device=None):
    """One panel per noise family at ``sigma``: the clean images ``x [k, C, H, W]``, one noisy draw
    (seeded) and the output of each of ``methods`` (names of :func:`denoiser_suite`, without the
    Gaussian-approximation mark). Returns the figure of :func:`denoised_images`."""
    panels = {}
    for name in noises:
        noise = make_noise(name, sigma)
        y = x + noise.sample(x.shape, generator=torch.Generator(device=x.device).manual_seed(seed), device=x.device)
        mse = dn.mse_denoiser(dataset, sigma, name, profile, seed=seed, device=device, verbose=False)
        dens = denoiser_suite(nets, noise, best_alpha[(name, sigma)], walk, mse, steps_per_level, seed)
        dens = {m.replace(GAUSS_APPROX, ""): d for m, d in dens.items()}
        panels[f"{name}, σ={sigma:g}"] = {"clean": x, "noisy": y, **{m: dens[m](y) for m in methods}}
    return denoised_images(panels, x.shape[0])
