"""Sliders for the closed forms of notebooks 00 and 01 (``ipywidgets``): a lecturer moves a parameter and
the figure or the numbers follow. Each function returns an ``ipywidgets.interactive`` in a live kernel; in a
headless run (``COMPANION_HEADLESS=1``, set by ``scripts/run_notebook.py``) it builds no widget and returns
None, and the executed copy and the slides show the static figure drawn before it."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from .certification import abstain_thresholds, certify_statistics
from .empirical_bayes import bayes_shrinkage
from .lecture import cohen_radius, lipschitz_radius, max_certifiable_radius
from .plots import plot_prop23_offset, plot_weierstrass_1d

__all__ = ["transform_1d_slider", "radii_slider", "certify_slider", "prop23_slider"]


def headless() -> bool:
    """True in a headless run (papermill through ``scripts/run_notebook.py``): no frontend to move a slider."""
    return os.environ.get("COMPANION_HEADLESS") == "1"


def _widgets():
    import ipywidgets  # noqa: PLC0415 (only where a notebook asks for a slider)
    return ipywidgets


def transform_1d_slider(clf, xs: np.ndarray):
    """sigma -> the exact transform G of a 1-D interval classifier (``IntervalClassifier.smoothed``)."""
    if headless():
        return None
    w = _widgets()
    xt = torch.tensor(xs)[:, None]

    def show(sigma=0.3):
        plot_weierstrass_1d(xs, {"F": clf.one_hot(xt).numpy(), f"G,  σ = {sigma:.2f}": clf.smoothed(xt, sigma).numpy()})
        plt.show()

    return w.interactive(show, sigma=w.FloatSlider(value=0.3, min=0.02, max=2.0, step=0.02, continuous_update=False))


def radii_slider(sigma: float):
    """p_A, p_B -> Theorem 1.1's radius sigma/2 (Phi^-1(p_A) - Phi^-1(p_B)) and Corollary 2.5's sigma sqrt(pi/8) (p_A - p_B)."""
    if headless():
        return None
    w = _widgets()

    def show(p_a=0.8, p_b=0.15):
        if p_b > min(p_a, 1 - p_a):
            print(f"p_B must be <= min(p_A, 1 - p_A) = {min(p_a, 1 - p_a):.3f}")
            return
        print(f"sigma = {sigma:g}:  R_Cohen = sigma/2 (Phi^-1(p_A) - Phi^-1(p_B)) = {float(cohen_radius(p_a, p_b, sigma)):.4f};"
              f"  R_Lip = sigma sqrt(pi/8) (p_A - p_B) = {float(lipschitz_radius(p_a, p_b, sigma)):.4f}")

    return w.interactive(show, p_a=w.FloatSlider(value=0.8, min=0.5, max=0.9999, step=0.0025, readout_format=".4f"),
                         p_b=w.FloatSlider(value=0.15, min=0.0, max=0.5, step=0.0025, readout_format=".4f"))


def certify_slider(sigma: float):
    """n, n0, alpha -> P(abstain) against p_A (:func:`certify_statistics`), the p_A needed for <= 1% abstentions, r_max."""
    if headless():
        return None
    w = _widgets()
    grid = np.linspace(0.5, 0.999, 121)

    def show(log10_n=4.0, n0=100, log10_alpha=-3.0):
        n, alpha = int(round(10 ** log10_n)), 10 ** log10_alpha
        frames = {"n0 votes choose": certify_statistics(grid, n, alpha, sigma, n0=n0),
                  "candidate known": certify_statistics(grid, n, alpha, sigma)}
        need = abstain_thresholds(frames)
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for label, df in frames.items():
            ax.plot(df.p_a, df.abstain, label=f"{label}: p_A >= {need[label]:.3f} for <= 1%")
        ax.set_xlabel("true $p_A$")
        ax.set_ylabel("P(abstain)")
        ax.set_title(f"n = {n:,}, n0 = {n0}, α = {alpha:.0e};  r_max = {max_certifiable_radius(n, alpha, sigma):.3f}")
        ax.legend()
        plt.show()

    return w.interactive(show, log10_n=w.FloatSlider(value=4.0, min=2.0, max=6.0, step=0.25, continuous_update=False),
                         n0=w.IntSlider(value=100, min=10, max=1000, step=10, continuous_update=False),
                         log10_alpha=w.FloatSlider(value=-3.0, min=-6.0, max=-1.0, step=0.5, continuous_update=False))


def prop23_slider():
    """sigma, sigma0 and the offset b -> Proposition 2.3's radius against the vanilla margin (:func:`plot_prop23_offset`)."""
    if headless():
        return None
    w = _widgets()

    def show(sigma=0.5, sigma0=1.0, b=1.0):
        beta = bayes_shrinkage(sigma, sigma0)
        fig = plot_prop23_offset(np.linspace(-3, 3, 241) * sigma0, [-1.0, -0.3, 0.3, 1.0], beta)
        fig.axes[0].axvline(b, color="k", ls="--")
        print(f"beta = {beta:.3f}; at b = {b:g}, points on the mean's side gain |b| (1/beta - 1) = {abs(b) * (1 / beta - 1):.3f}")
        plt.show()

    return w.interactive(show, sigma=w.FloatSlider(value=0.5, min=0.05, max=2.0, step=0.05, continuous_update=False),
                         sigma0=w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, continuous_update=False),
                         b=w.FloatSlider(value=1.0, min=-3.0, max=3.0, step=0.1, continuous_update=False))
