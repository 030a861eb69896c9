"""Notebook 04 under the smoke profile: the numbers it records must make sense."""
from __future__ import annotations

import pytest

import lib.profiles
from lib import Gaussian

NAME = "04_empirical_bayes_linear_mnist"


@pytest.fixture(scope="module")
def metrics(run_notebook):
    return run_notebook(NAME)


@pytest.mark.notebook
def test_sizes_follow_the_smoke_profile(metrics):
    cfg = lib.profiles.get("04", "smoke")
    assert metrics["n"] == cfg["n"] and metrics["n0"] == cfg["n0"] and metrics["alpha"] == cfg["alpha"]
    assert metrics["num_points"] == cfg["num_points"]


@pytest.mark.notebook
def test_models_work(metrics):
    assert metrics["clean_accuracy"] > 0.6  # chance is 0.1
    for sigma in (0.3, 0.6):
        # DEEN's x̂(x + ε) is much closer to x than x + ε is (per-pixel MSE σ²)
        assert metrics[f"deen_s{sigma:g}_noisy_mse"] == pytest.approx(sigma ** 2, rel=0.05)
        assert metrics[f"deen_s{sigma:g}_mse"] < 0.5 * metrics[f"deen_s{sigma:g}_noisy_mse"]


@pytest.mark.notebook
def test_certified_accuracies_are_consistent(metrics):
    cfg = lib.profiles.get("04", "smoke")
    for tag in ("gh", "gpi"):
        for sigma in cfg["sigmas"]:
            accs = [metrics[f"{tag}_s{sigma:g}_r{r:g}"] for r in [0.0] + cfg["radii"]]
            assert 0.0 <= min(accs) and max(accs) <= 1.0
            assert all(a >= b for a, b in zip(accs, accs[1:])), f"{tag} σ={sigma}: not monotone in the radius"
            r_max = Gaussian(sigma).max_radius(cfg["n"], cfg["alpha"])
            assert metrics[f"{tag}_s{sigma:g}_max_radius"] <= r_max + 1e-6
            for r in cfg["radii"]:
                if r > r_max:
                    assert metrics[f"{tag}_s{sigma:g}_r{r:g}"] == 0.0
        for r in cfg["radii"]:
            best = max(metrics[f"{tag}_s{s:g}_r{r:g}"] for s in cfg["sigmas"])
            assert metrics[f"{tag}_best_r{r:g}"] == pytest.approx(best)
    assert 0 <= metrics["fig4_count"] <= metrics["num_points"]


@pytest.mark.notebook
def test_empirical_bayes_certifies_at_least_as_well(metrics):
    """The paper's claim on the smoke subset: g[π] certifies at least as well as g[h]
    (a tolerance of one or two of the 20 test points for the Monte-Carlo and subset noise)."""
    assert metrics["gpi_best_r0.5"] >= metrics["gh_best_r0.5"] - 0.1
    gh = sum(metrics[f"gh_s0.6_r{r:g}"] for r in (0.5, 1.0, 1.5))
    gpi = sum(metrics[f"gpi_s0.6_r{r:g}"] for r in (0.5, 1.0, 1.5))
    assert gpi >= gh - 0.1
    assert metrics["gpi_s0.6_r0.5"] > 0.3  # a broken denoiser sends every digit to one class (~0.1)
