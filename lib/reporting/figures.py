"""Figures derived from the logs, in one style, and the one helper that saves every figure.

Every certified-accuracy figure of the companion is drawn by :func:`plot_certified_curves`
(one axes) or :func:`certified_curves_figure` (one panel per noise level / noise family):

* y axis: certified accuracy as a *fraction* in [0, 1] (as in Cohen et al. and Saremi &
  Srivastava), x axis: the radius in the noise's norm;
* a curve per row label: at every radius the best of the label's logs (the envelope over
  sigma, Cohen et al. / Lee Figure 1 style); the same label has the same colour in every panel;
* one legend for the whole figure, below the panels, and fonts readable at the back of a
  lecture hall (:data:`STYLE`: 15-18 pt on a canvas of about 5 x 4.5 inches per panel);
* optional dotted lines at the largest radius that n samples can certify.

:func:`save_figure` writes PNG and PDF with deterministic notebook-prefixed names into
``figures/`` (``05_certified_curves.png``).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from lib import paths
from lib.reporting.tables import _log_abs, best_over, prefixed
from lib.smoothing.logs import read_log
from lib.utils import atomic_path

__all__ = ["STYLE", "figure_style", "save_figure", "plot_certified_curves", "certified_curves_figure", "plot_cost",
           "denoising_figure"]

#: matplotlib settings of every certified-accuracy figure (legible on a projector)
STYLE = {"font.size": 15, "axes.titlesize": 17, "axes.labelsize": 16, "xtick.labelsize": 14,
         "ytick.labelsize": 14, "legend.fontsize": 15, "figure.titlesize": 18, "lines.linewidth": 2.5,
         "axes.grid": True, "grid.alpha": 0.3}
#: colours given to row labels in order of first appearance (colour-blind safe, Okabe-Ito)
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
PANEL_SIZE = (5.2, 4.6)


@contextmanager
def figure_style():
    """Apply :data:`STYLE` to the figures created inside the block."""
    with plt.rc_context(STYLE):
        yield


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


def _read_rows(rows: Mapping[str, Sequence[str | Path]]) -> dict:
    return {label: [read_log(_log_abs(str(p))) for p in logs] for label, logs in rows.items()}


def _top(frames: Mapping[str, list], max_radius: float | None) -> float:
    if max_radius:
        return float(max_radius)
    top = max((float(df["radius"].max()) for v in frames.values() for df in v if len(df)), default=0.0)
    return top * 1.05 or 1.0


def plot_certified_curves(rows: Mapping[str, Sequence[str | Path]], ax=None, max_radius: float | None = None,
                          title: str = "", norm: str = "ℓ2", styles: Mapping[str, dict] | None = None,
                          legend: bool = True, radius_cap: float | None = None):
    """Certified accuracy (fraction) against radius, one curve per label: the best over the
    label's logs at every radius. ``styles`` {label: matplotlib kwargs}; ``radius_cap`` draws a
    dotted line at the largest certifiable radius. Returns the axes."""
    if ax is None:
        with figure_style():
            _, ax = plt.subplots(figsize=(7, 4.8))
    frames = _read_rows(rows)
    top = _top(frames, max_radius)
    grid = np.linspace(0, top, 300)
    for i, (label, dfs) in enumerate(frames.items()):
        style = {"color": COLORS[i % len(COLORS)], "lw": STYLE["lines.linewidth"], **((styles or {}).get(label, {}))}
        ax.plot(grid, best_over(dfs, grid), label=label, **style)
    if radius_cap is not None and radius_cap < top:
        ax.axvline(radius_cap, color="gray", ls=":", lw=2, label="largest certifiable radius")
    ax.set_xlabel(f"{norm} radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, top)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend()
    return ax


def certified_curves_figure(panels: Mapping[str, Mapping[str, Sequence[str | Path]]], max_radius: float | None = None,
                            norm: str = "ℓ2", title: str = "", styles: Mapping[str, dict] | None = None,
                            radius_caps: Mapping[str, float] | None = None, ncols: int = 3):
    """One panel per entry of ``panels`` {panel title: rows}, shared y axis, the same colour for
    a label in every panel and ONE legend below the panels. Returns the figure."""
    labels: list[str] = []
    for rows in panels.values():
        labels += [lb for lb in rows if lb not in labels]
    styles = {lb: {"color": COLORS[i % len(COLORS)], **((styles or {}).get(lb, {}))} for i, lb in enumerate(labels)}
    k = len(panels)
    cols = min(k, ncols)
    nrows = (k + cols - 1) // cols
    with figure_style():
        fig, axes = plt.subplots(nrows, cols, figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * nrows + 1.0),
                                 sharey=True, squeeze=False)
        for ax, (name, rows) in zip(axes.flat, panels.items()):
            plot_certified_curves(rows, ax=ax, max_radius=max_radius, title=name, norm=norm, styles=styles,
                                  legend=False, radius_cap=(radius_caps or {}).get(name))
        for ax in list(axes.flat)[k:]:
            ax.set_visible(False)
        for ax in axes[:, 1:].flat:
            ax.set_ylabel("")
        handles, names = {}, []
        for ax in axes.flat:
            for h, lb in zip(*ax.get_legend_handles_labels()):
                if lb not in handles:
                    handles[lb] = h
                    names.append(lb)
        fig.legend([handles[n] for n in names], names, loc="lower center", ncol=min(len(names), 3),
                   frameon=False, bbox_to_anchor=(0.5, 0.0))
        if title:
            fig.suptitle(title)
        rows_of_legend = (len(names) + 2) // 3
        fig.tight_layout(rect=(0, 0.07 * rows_of_legend / nrows, 1, 1))
    return fig


def plot_cost(df, x: Sequence[float], xlabel: str, radius: str, ax=None, logx: bool = True):
    """Certified accuracy at ``radius`` (a column "r=..." of :func:`lib.methods.cost_table`, in %)
    and clean accuracy against ``x`` (samples n or annealing steps), with wall and CPU seconds on a
    second axis. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, df["clean"], "o-", label="clean (r = 0)")
    ax.plot(x, df[radius], "s-", label=f"certified, {radius}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    if logx:
        ax.set_xscale("log")
    ax2 = ax.twinx()
    ax2.plot(x, df["seconds"], "k--", alpha=0.6, label="wall time (s)")
    if "CPU seconds" in df and df["CPU seconds"].notna().all():
        ax2.plot(x, df["CPU seconds"], "k:", alpha=0.6, label="CPU time (s)")
    ax2.set_ylabel("certification time (s)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=10, loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def denoising_figure(x, denoiser, sigma: float, num: int = 6, seed: int = 0, title: str = ""):
    """What a denoised-smoothing classifier sees: a clean image x [C, H, W] (top row), ``num`` noisy
    copies x + sigma * eps (middle) and their denoised versions (bottom). Returns the figure."""
    device = next((p.device for p in getattr(denoiser, "parameters", lambda: iter(()))()), torch.device("cpu"))
    x = x.to(device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    noisy = x + sigma * torch.randn((num,) + tuple(x.shape), generator=gen, device=device)
    with torch.no_grad():
        denoised = denoiser(noisy)
    with figure_style():
        fig, axes = plt.subplots(3, num, figsize=(1.6 * num, 5.2), squeeze=False)
        for j in range(num):
            for i, img in enumerate((x, noisy[j], denoised[j])):
                axes[i, j].imshow(img.permute(1, 2, 0).squeeze(-1).detach().cpu().clamp(0, 1), cmap="gray",
                                  vmin=0, vmax=1)
                axes[i, j].axis("off")
        for i, label in enumerate(("x", "x + ε", "denoised")):
            axes[i, 0].set_title(label, loc="left", fontsize=14)
        if title:
            fig.suptitle(title, fontsize=14)
    return fig
