"""Projector-friendly figures for the theory notebooks (00, 01).

:func:`set_style` sets large fonts once; the ``plot_*`` functions each build one figure
from numbers computed by :mod:`lib.theory` and return it (notebooks save it with
``lib.results.save_figure``). No backend is forced here.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Circle
from scipy.stats import norm

__all__ = ["set_style", "CLASS_COLORS", "plot_regions", "plot_certified", "plot_weierstrass_1d",
           "plot_weierstrass_2d", "plot_stein_convergence", "plot_lipschitz", "plot_radii",
           "plot_certify_tradeoff", "plot_certify_toy", "plot_concentration", "plot_training", "plot_contraction", "plot_prop23",
           "plot_mog_estimator", "plot_collapse", "plot_lee_bound", "plot_prop23_offset", "plot_lemma26_extremal"]

#: colour-blind-safe class colours (Okabe-Ito)
CLASS_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]


def set_style(font_size: int = 14) -> None:
    """Large fonts, thick lines and a light grid: legible on a projector."""
    plt.rcParams.update({
        "font.size": font_size, "axes.titlesize": font_size + 1, "axes.labelsize": font_size,
        "xtick.labelsize": font_size - 1, "ytick.labelsize": font_size - 1,
        "legend.fontsize": max(font_size - 2, 12), "lines.linewidth": 2.2, "lines.markersize": 7,
        "axes.grid": True, "grid.alpha": 0.3, "figure.figsize": (10, 5.5), "figure.dpi": 100,
        "savefig.bbox": "tight", "axes.spines.top": False, "axes.spines.right": False,
    })


def _color(i: int) -> str:
    """Colour of class / curve ``i`` (the palette repeats after len(CLASS_COLORS))."""
    return CLASS_COLORS[i % len(CLASS_COLORS)]


def _cmap(k: int) -> ListedColormap:
    return ListedColormap([_color(i) for i in range(k)])


def plot_regions(ax, axes: Sequence[np.ndarray], probs: np.ndarray, title: str = "",
                 shade: bool = True) -> None:
    """Decision regions argmax_k probs[..., k] on a 2-D grid; lighter where the top probability
    is lower (so G's uncertainty is visible). probs: [len(axes[0]), len(axes[1]), K]."""
    k = probs.shape[-1]
    labels = probs.argmax(-1)
    ext = [axes[0][0], axes[0][-1], axes[1][0], axes[1][-1]]
    ax.imshow(labels.T, origin="lower", extent=ext, cmap=_cmap(k), vmin=-0.5, vmax=k - 0.5,
              alpha=0.85, interpolation="nearest", aspect="equal")
    if shade:
        top = probs.max(-1)
        white = np.ones(top.shape + (4,))
        white[..., 3] = np.clip((1 - top) * 1.6, 0, 0.85)
        ax.imshow(np.transpose(white, (1, 0, 2)), origin="lower", extent=ext, interpolation="bilinear",
                  aspect="equal")
    ax.set_title(title)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_certified(ax, xs: np.ndarray, preds: np.ndarray, radii: np.ndarray, max_circles: int | None = None) -> None:
    """Certified l2 balls (circles of the certified radius, at most ``max_circles`` of them, spread over the
    radii), points coloured by their certified class, and abstentions (black crosses)."""
    idx = np.flatnonzero(preds >= 0)
    if max_circles is not None and len(idx) > max_circles:
        idx = idx[np.argsort(radii[idx])][np.linspace(0, len(idx) - 1, max_circles).round().astype(int)]
    for i in idx:
        ax.add_patch(Circle(tuple(xs[i]), radii[i], fill=False, color="black", lw=1.8))
        ax.plot(*xs[i], "o", color=_color(int(preds[i])), mec="black", ms=9)
    abst = preds < 0
    ax.plot(xs[abst, 0], xs[abst, 1], "x", color="black", ms=14, mew=3.5, ls="none")


def _class_legend(ax, k: int, extra=()) -> None:
    from matplotlib.lines import Line2D  # noqa: PLC0415
    handles = [Line2D([], [], marker="s", ls="none", ms=13, color=_color(i), label=f"class {i}") for i in range(k)]
    ax.legend(handles=handles + list(extra), loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _sigma_bar(ax, axes, sigma: float) -> None:
    """A scale bar of length sigma in the lower left corner of a 2-D panel."""
    x0 = axes[0][0] + 0.06 * (axes[0][-1] - axes[0][0])
    y0 = axes[1][0] + 0.06 * (axes[1][-1] - axes[1][0])
    ax.plot([x0, x0 + sigma], [y0, y0], color="black", lw=4, solid_capstyle="butt")
    ax.text(x0 + sigma / 2, y0 + 0.04 * (axes[1][-1] - axes[1][0]), rf"$\sigma$ = {sigma:g}", ha="center",
            fontsize=13, bbox=dict(facecolor="white", alpha=0.7, lw=0))


def plot_certify_toy(axes, base: np.ndarray, smoothed: np.ndarray, points: np.ndarray, preds: np.ndarray,
                     radii: np.ndarray, sigma: float, max_circles: int = 14):
    """Left: the base classifier's regions; right: the smoothed classifier's regions (exact G on
    the grid) with CERTIFY's certified balls (at most ``max_circles``), abstentions as crosses, a class legend."""
    from matplotlib.lines import Line2D  # noqa: PLC0415
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(15, 6.4))
    plot_regions(a0, axes, base, "base classifier f", shade=False)
    n_abst = int((preds < 0).sum())
    n_cert = int((preds >= 0).sum())
    shown = n_cert if max_circles is None else min(n_cert, max_circles)
    plot_regions(a1, axes, smoothed, rf"smoothed g ($\sigma$={sigma:g}): {shown} of {n_cert} certified balls drawn")
    plot_certified(a1, points, preds, radii, max_circles)
    for ax in (a0, a1):
        ax.set_xlim(axes[0][0], axes[0][-1])
        ax.set_ylim(axes[1][0], axes[1][-1])
    _sigma_bar(a1, axes, sigma)
    extra = [Line2D([], [], marker="x", ls="none", ms=13, mew=3, color="black", label=f"abstain ({n_abst})"),
             Line2D([], [], marker="o", ls="none", ms=13, mfc="none", mec="black", label="certified ball")]
    _class_legend(a1, base.shape[-1], extra)
    fig.tight_layout()
    return fig


def plot_weierstrass_1d(xs: np.ndarray, curves: Mapping[str, np.ndarray]):
    """Soft classifiers on R: one panel per entry of ``curves`` (title -> [N, K] probabilities),
    drawn as stacked class probabilities (F for a hard classifier is a one-hot step)."""
    n = len(curves)
    fig, axs = plt.subplots(1, n, figsize=(4.2 * n, 4.2), sharey=True)
    for ax, (title, p) in zip(np.atleast_1d(axs), curves.items()):
        ax.stackplot(xs, p.T, colors=[_color(k) for k in range(p.shape[1])], alpha=0.85,
                     labels=[f"class {k}" for k in range(p.shape[1])])
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylim(0, 1)
    np.atleast_1d(axs)[0].set_ylabel("probability")
    np.atleast_1d(axs)[-1].legend(loc="lower right", framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_weierstrass_2d(axes, panels: Mapping[str, np.ndarray], sigmas: Sequence[float | None] | None = None):
    """One panel per entry (title -> [H, W, K] class probabilities on the grid ``axes``), a class legend,
    and in each panel with a ``sigmas`` entry a scale bar of that length."""
    n = len(panels)
    fig, axs = plt.subplots(1, n, figsize=(4.3 * n + 1.6, 4.6))
    sigmas = list(sigmas) if sigmas is not None else [None] * n
    for ax, (title, p), s in zip(np.atleast_1d(axs), panels.items(), sigmas):
        plot_regions(ax, axes, p, title)
        if s:
            _sigma_bar(ax, axes, s)
    _class_legend(np.atleast_1d(axs)[-1], next(iter(panels.values())).shape[-1])
    fig.tight_layout()
    return fig


def plot_stein_convergence(df: pd.DataFrame):
    """Error of the Stein Monte-Carlo gradient vs n, from :func:`lib.theory.stein_convergence`
    (columns n, rep, error, predicted); the RMS error per n is computed here."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.loglog(df["n"], df["error"], "o", alpha=0.4, label="one estimate")
    agg = df.groupby("n").agg(rms=("error", lambda e: float(np.sqrt(np.mean(np.square(e))))),
                              pred=("predicted", "mean")).reset_index()
    ax.loglog(agg["n"], agg["rms"], "s-", label="RMS error")
    ax.loglog(agg["n"], agg["pred"], "k--", label="predicted RMS (sample variances)")
    ax.set_xlabel("Monte-Carlo samples n")
    ax.set_ylabel(r"$\|\hat\nabla H(x) - \nabla H(x)\|$")
    ax.set_title("Stein's lemma: error shrinks like $1/\\sqrt{n}$")
    ax.legend()
    return fig


def plot_lipschitz(df: pd.DataFrame):
    """Left: sigma ||grad H|| against H for random h, with the Lemma 2.6 envelope phi(Phi^-1(H)), the
    Lemma 2.4 constant and the tight constant 1/sqrt(2 pi). Right: one histogram per family of the pair
    ratios sigma |Delta Phi^-1 H| / ||Delta x|| <= 1, in bins of width 0.025 from 0 (the bound 1 is a bin edge)."""
    fams = list(dict.fromkeys(df["family"]))
    fig = plt.figure(figsize=(15, 1.6 * len(fams) + 2.5))
    grid = fig.add_gridspec(len(fams), 2, width_ratios=[1.15, 1])
    a0 = fig.add_subplot(grid[:, 0])
    bins = np.linspace(0, 1.05, 43)
    right = []
    for i, fam in enumerate(fams):
        sub = df[df["family"] == fam]
        a0.plot(sub["H"], sub["grad_norm"], ".", ms=6, alpha=0.6, color=_color(i), label=fam)
        ax = fig.add_subplot(grid[i, 1], sharex=right[0] if right else None)
        ax.hist(np.clip(sub["ratio"], 0, 1.05), bins=bins, color=_color(i))
        ax.axvline(1.0, color="k", lw=3)
        ax.text(0.02, 0.8, fam, transform=ax.transAxes, fontsize=13)
        ax.set_yticks([])
        if i < len(fams) - 1:
            ax.tick_params(labelbottom=False)
        right.append(ax)
    right[0].set_title(r"$\Phi^{-1}\circ H$ is $(1/\sigma)$-Lipschitz: pair ratios $\leq$ 1 (black line)")
    right[-1].set_xlabel(r"$\sigma\,|\Phi^{-1}H(x)-\Phi^{-1}H(x')|\,/\,\|x-x'\|$")
    p = np.linspace(1e-4, 1 - 1e-4, 400)
    a0.plot(p, norm.pdf(norm.ppf(p)), "k-", lw=3, label=r"$\varphi(\Phi^{-1}(H))$ (Lemma 2.6)")
    a0.axhline(np.sqrt(2 / np.pi), color="crimson", ls="--", label=r"$\sqrt{2/\pi}$ (Lemma 2.4)")
    a0.axhline(1 / np.sqrt(2 * np.pi), color="crimson", ls=":", label=r"$1/\sqrt{2\pi}$ (tight, $h\in[0,1]$)")
    a0.set_xlabel("H(x)")
    a0.set_ylabel(r"$\sigma\,\|\nabla H(x)\|$")
    a0.set_ylim(0, 0.85)
    a0.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    a0.set_title("Gradients of smoothed functions")
    fig.tight_layout()
    return fig


def plot_radii(p_a: np.ndarray, curves: Mapping[str, np.ndarray], sigma: float):
    """Radii (in units of sigma) against p_A (two classes, p_B = 1 - p_A)."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for i, (label, r) in enumerate(curves.items()):
        ax.plot(p_a, r / sigma, color=_color(i), label=label)
    ax.set_xlabel(r"$p_A$  (two classes, $p_B = 1 - p_A$)")
    ax.set_ylabel(r"certified radius / $\sigma$")
    ax.set_ylim(0, 4)
    ax.legend()
    return fig


def plot_certify_tradeoff(by_n: Mapping[str, pd.DataFrame], by_alpha: Mapping[str, pd.DataFrame],
                          by_n0: Mapping[str, pd.DataFrame] | None = None):
    """P(abstain) against p_A for each setting of n, of alpha and (if given) of n0, and the expected
    certified radius / sigma for each n. Each mapping: label -> :func:`lib.theory.certify_statistics` frame."""
    groups = [(by_n, r"varying $n$"), (by_alpha, r"varying $\alpha$")] + ([(by_n0, r"varying $n_0$")] if by_n0 else [])
    fig, axs = plt.subplots(1, len(groups) + 1, figsize=(5.6 * (len(groups) + 1), 5.2))
    for ax, (frames, ttl) in zip(axs, groups):
        for i, (label, df) in enumerate(frames.items()):
            ax.plot(df["p_a"], df["abstain"], color=_color(i), label=label)
        ax.set_xlabel(r"true $p_A$")
        ax.set_ylabel("P(abstain)")
        ax.set_title(f"Abstention, {ttl}")
        ax.legend()
    ax = axs[-1]
    for i, (label, df) in enumerate(by_n.items()):
        ax.plot(df["p_a"], df["expected_radius"], color=_color(i), label=label)
    ref = next(iter(by_n.values()))
    ax.plot(ref["p_a"], ref["radius_if_known"], "k--", label=r"$\sigma\Phi^{-1}(p_A)$ (n = $\infty$)")
    ax.set_ylim(0, 1.15 * max(df["r_max"].iloc[0] for df in by_n.values()))
    ax.set_xlabel(r"true $p_A$")
    ax.set_ylabel("expected certified radius")
    ax.set_title(r"Radius, varying $n$")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_concentration(samples: Mapping[int, np.ndarray], dims: np.ndarray, mean: np.ndarray,
                       sd: np.ndarray, rmax: Mapping[str, float]):
    """Top row: one histogram of ||eps|| / (sigma sqrt(d)) per d (its own axes: the spike at large d would
    flatten the others); bottom: E||eps|| / sigma (+- 3 sd) against d, with the largest certifiable radii
    r_max / sigma as horizontal lines."""
    k = len(samples)
    fig = plt.figure(figsize=(max(14, 3.4 * k), 9.5))
    grid = fig.add_gridspec(2, k, height_ratios=[1, 1.25])
    for i, (d, s) in enumerate(samples.items()):
        ax = fig.add_subplot(grid[0, i])
        ax.hist(s / np.sqrt(d), bins=40, density=True, color=_color(i))
        ax.set_title(f"d = {d:,}")
        ax.set_xlabel(r"$\|\varepsilon\| / (\sigma\sqrt{d})$")
        ax.set_yticks([])
    fig.axes[0].set_ylabel("density")
    a1 = fig.add_subplot(grid[1, :])
    a1.loglog(dims, mean, "o-", label=r"$E\|\varepsilon\|/\sigma \approx \sqrt{d}$")
    a1.fill_between(dims, np.maximum(mean - 3 * sd, 0.3), mean + 3 * sd, alpha=0.25, label=r"$\pm 3$ sd")
    a1.set_ylim(0.3, None)
    for i, (label, r) in enumerate(rmax.items()):
        a1.axhline(r, color=_color(i + 1), ls="--", label=label)
    a1.set_xlabel("dimension d")
    a1.set_ylabel(r"radius / $\sigma$")
    a1.set_title(r"$\mathcal{N}(0,\sigma^2 I_d)$ lives on a thin shell at $\sigma\sqrt{d}$; the certificate stays at $r_{\max}$")
    a1.legend()
    fig.tight_layout()
    return fig


def plot_training(histories: Mapping[str, Sequence[float]], curves: Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """Lecture 14 §3: the training losses of the methods (each its own objective) and the certified
    accuracy of their smoothed classifiers."""
    fig, axs = plt.subplots(1, 2, figsize=(15, 5.5))
    for i, (label, h) in enumerate(histories.items()):
        axs[0].plot(np.asarray(h), color=_color(i), label=label, alpha=0.8)
    axs[0].set_xlabel("logging window")
    axs[0].set_ylabel("training loss (each its own objective)")
    axs[0].legend()
    for i, (label, (r, acc)) in enumerate(curves.items()):
        axs[1].plot(r, acc, color=_color(i), label=label)
    axs[1].set_xlabel(r"$\ell_2$ radius")
    axs[1].set_ylabel("certified accuracy")
    axs[1].legend()
    fig.tight_layout()
    return fig


def plot_contraction(points: np.ndarray, noisy: np.ndarray, denoised: np.ndarray, beta: float,
                     sigma: float, sigma0: float):
    """Effects E1/E2 in 2-D: for each point x (rows of ``points``), its noisy cloud x + eps
    (grey) and the Bayes estimates beta (x + eps) (colour): a ball shrunk by beta around beta x."""
    fig, ax = plt.subplots(figsize=(8, 7.5))
    ax.add_patch(Circle((0, 0), 2 * sigma0, fill=False, ls=":", color="k", lw=1.5))
    for i, x in enumerate(points):
        col = _color(i)
        ax.plot(*noisy[i].T, ".", color="0.6", ms=3, alpha=0.5)
        ax.plot(*denoised[i].T, ".", color=col, ms=3, alpha=0.6)
        ax.add_patch(Circle(tuple(x), 2 * sigma, fill=False, color="0.4", lw=1.5))
        ax.add_patch(Circle(tuple(beta * x), 2 * beta * sigma, fill=False, color=col, lw=2))
        ax.annotate("", xy=tuple(beta * x), xytext=tuple(x),
                    arrowprops=dict(arrowstyle="->", color="black", lw=2))
        ax.plot(*x, "ko", ms=8)
    ax.plot(0, 0, "k+", ms=14, mew=3)
    ax.set_aspect("equal")
    ax.set_title(rf"E1: ball shrinks by $\beta$={beta:.2f};  E2: centre slides $x \to \beta x$")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return fig


def plot_prop23(df: pd.DataFrame, sigma: float):
    """Proposition 2.3: Monte-Carlo radius estimates and CERTIFY's radii against the closed form
    r(x) (columns of :func:`lib.theory.linear_eb_experiment`), with the vanilla margin for scale."""
    fig, ax = plt.subplots(figsize=(9, 6))
    top = 1.1 * float(df["r_closed"].max())
    ax.plot([0, top], [0, top], "k:", lw=1.5, label="y = x")
    ax.plot(df["r_closed"], df["r_estimate"], "o", color=_color(0), label=r"$\sigma\Phi^{-1}(\hat p_A)$ (estimate)")
    ax.plot(df["r_closed"], df["r_certified"], "^", color=_color(1), label=r"CERTIFY radius ($1-\alpha$ lower bound)")
    flip = df["e2_flip"].to_numpy()
    ax.plot(df["r_closed"][~flip], df["margin"][~flip], "x", color=_color(2), mew=2.5,
            label="vanilla smoothing radius (margin at x)")
    if flip.any():
        ax.plot(df["r_closed"][flip], df["r_closed"][flip], "s", mfc="none", mec="crimson", ms=13, mew=2,
                label=r"E2: $h(\beta x) \neq h(x)$")
    ax.set_xlabel(r"closed form $r(x) = |\langle w,\beta x\rangle + b| / (\beta\|w\|)$")
    ax.set_ylabel("radius")
    ax.set_title(rf"Proposition 2.3 ($\sigma$ = {sigma:g})")
    ax.legend()
    return fig


def plot_prop23_offset(b: np.ndarray, margins: Sequence[float], beta: float):
    """Proposition 2.3 as a function of the offset b (||w|| = 1): for points at signed distance t
    from the boundary of h (``margins``), the radius r = |t + b (1/beta - 1)| of g_sigma[pi] (solid)
    against the vanilla margin |t| (dotted). The gain is b (1/beta - 1) on the mean's side and
    vanishes at b = 0."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, t in enumerate(margins):
        c = _color(i)
        ax.plot(b, np.abs(t + b * (1 / beta - 1)), color=c, label=rf"$r(x)$, margin $t$ = {t:g}")
        ax.axhline(abs(t), color=c, ls=":", lw=1.5)
    ax.axvline(0, color="0.5", lw=1)
    ax.set_xlabel(r"offset $b$ of $h(x) = \mathrm{sign}(\langle w,x\rangle + b)$, $\|w\| = 1$")
    ax.set_ylabel("certified radius")
    ax.set_title(rf"Proposition 2.3: the gain comes from $b$ ($1/\beta$ = {1 / beta:.3g}; dotted: vanilla)")
    ax.legend()
    return fig


def plot_mog_estimator(grid: np.ndarray, fields: Mapping[str, np.ndarray], data: np.ndarray, mu: np.ndarray):
    """Arrows y -> x_hat(y) from the points of a 2-D grid (dots) for each estimator
    (title -> [N, 2] estimates); stars: the modes +-mu; grey: data samples."""
    n = len(fields)
    fig, axs = plt.subplots(1, n, figsize=(5.2 * n, 5.2), sharex=True, sharey=True)
    for ax, (title, xh) in zip(np.atleast_1d(axs), fields.items()):
        ax.plot(*data.T, ".", color="0.8", ms=2)
        ax.quiver(grid[:, 0], grid[:, 1], xh[:, 0] - grid[:, 0], xh[:, 1] - grid[:, 1],
                  angles="xy", scale_units="xy", scale=1, width=0.005, color=_color(0), alpha=0.85)
        ax.plot(grid[:, 0], grid[:, 1], "o", color=_color(0), ms=3)
        ax.plot([mu[0], -mu[0]], [mu[1], -mu[1]], "k*", ms=15)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def plot_collapse(ys: np.ndarray, curves: Mapping[str, np.ndarray], mu: float):
    """Remark 2.2: x_hat(y) against y (1-D mixture) for increasing sigma."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    ax.plot(ys, ys, "k:", lw=1.5, label="identity")
    for i, (label, xh) in enumerate(curves.items()):
        ax.plot(ys, xh, color=_color(i), label=label)
    ax.axhline(mu, color="0.5", ls="--", lw=1)
    ax.axhline(-mu, color="0.5", ls="--", lw=1)
    ax.set_xlabel("y")
    ax.set_ylabel(r"$\hat x(y)$")
    ax.set_title(r"Remark 2.2: $\hat x \to 0$ as $\sigma \to \infty$")
    ax.legend()
    return fig


def plot_lee_bound(df: pd.DataFrame, title: str = "Lee, Theorem A.2 on Gaussian data (solid: exact)"):
    """Theorem A.2: measured E||x_hat - x*|| (with +-2 se), exact value and the bound vs sigma_tilde,
    one colour per sigma. Columns: sigma, sigma_tilde, measured, se, exact, bound."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (s, sub) in enumerate(df.groupby("sigma")):
        c = _color(i)
        ax.errorbar(sub["sigma_tilde"], sub["measured"], yerr=2 * sub["se"], fmt="o", color=c,
                    label=rf"measured, $\sigma$={s:g}")
        if "exact" in sub:
            ax.plot(sub["sigma_tilde"], sub["exact"], "-", color=c, alpha=0.6)
        ax.plot(sub["sigma_tilde"], sub["bound"], "--", color=c, label=rf"bound (16), $\sigma$={s:g}")
    ax.set_xlabel(r"$\tilde\sigma$")
    ax.set_ylabel(r"$E\|\hat x - x^*\|$")
    ax.set_title(title)
    ax.legend(ncol=2)
    return fig


def plot_lemma26_extremal(df: pd.DataFrame, p_show: float):
    """Left: three h with the same mean p_show under N(0, 1) (half-space, probit ramp, a two-tailed set) over
    the density; right: E[Z h(Z)] of every candidate of :func:`lib.theory.lemma26_extremal` against p, with
    the bound phi(Phi^-1(p)) that the half-space attains."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(15, 5.5))
    z = np.linspace(-3.5, 3.5, 700)
    t = norm.isf(p_show)
    a0.fill_between(z, norm.pdf(z) / norm.pdf(0), color="0.85", label=r"density of $Z$ (scaled)")
    a0.plot(z, (z > t).astype(float), color=_color(0), lw=3, label=f"half-space, z > {t:.2f}")
    a0.plot(z, norm.cdf((z + norm.ppf(p_show) * np.sqrt(2)) / 1.0), color=_color(1), ls="--", label="probit ramp, s = 1")
    a, c = norm.ppf(0.3 * p_show), norm.isf(0.7 * p_show)
    a0.plot(z, ((z <= a) | (z >= c)).astype(float), color=_color(2), ls=":", lw=3, label="two tails")
    a0.set_xlabel("z (along the gradient direction)")
    a0.set_ylabel("h(z)")
    a0.set_title(f"Three h with the same mean E h(Z) = {p_show:g}")
    a0.legend(loc="center left")
    p = np.linspace(0.005, 0.995, 300)
    a1.plot(p, norm.pdf(norm.ppf(p)), "k-", lw=3, label=r"$\varphi(\Phi^{-1}(p))$")
    markers = {"random piecewise h": ".", "probit ramp": "s", "two tails": "^", "half-space": "*"}
    for i, (fam, sub) in enumerate(df.groupby("family", sort=False)):
        a1.plot(sub["p"], sub["value"], markers.get(fam, "o"), color=_color(i), alpha=0.6 if fam.startswith("random") else 1,
                ms=14 if fam == "half-space" else 7, label=fam, ls="none")
    a1.set_xlabel("p = E h(Z)")
    a1.set_ylabel(r"$E[Z\,h(Z)]$  ($\sigma\,\|\nabla H\|$ along $v$)")
    a1.set_title("Which h has the largest gradient (Lemma 2.6)")
    a1.set_ylim(-0.3, 0.45)
    a1.legend(loc="lower center", ncol=3)
    fig.tight_layout()
    return fig
