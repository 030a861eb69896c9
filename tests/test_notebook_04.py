"""Notebook 04 under the smoke profile: the numbers it records must make sense."""
from __future__ import annotations

import pytest

import lib.profiles
from lib import Gaussian

NAME = "04_empirical_bayes_linear_mnist"


@pytest.fixture(scope="module")
def metrics(run_notebook):
    return run_notebook(NAME)


@pytest.fixture(scope="module")
def cfg():
    return lib.profiles.get("04", "smoke")


@pytest.mark.notebook
def test_sizes_follow_the_smoke_profile(metrics, cfg):
    assert metrics["n"] == cfg["n"] and metrics["n0"] == cfg["n0"] and metrics["alpha"] == cfg["alpha"]
    assert metrics["h_points"] == cfg["h_points"] and metrics["pi_points"] == cfg["pi_points"]
    assert metrics["pi_n"] == cfg["pi_n"]


@pytest.mark.notebook
def test_each_row_comes_from_its_sampler(metrics, cfg):
    """g[h] through the exact logit-space sampler, g[π] through sequential CERTIFY."""
    for s in cfg["sigmas"]:
        assert metrics["samplers"][f"none/{s:g}"] == "logit"
        assert metrics["samplers"][f"empirical_bayes/{s:g}"] == "sequential"
        lo, hi = metrics["pi_votes_range"][f"{s:g}"]
        # every point takes n0 votes and at least the first look (128, or n_max when smaller); never more than n0 + n_max
        assert lo >= cfg["n0"] + min(128, cfg["pi_n"]) and hi <= cfg["n0"] + cfg["pi_n"]
        assert metrics["pi_grid"][f"{s:g}"][0] == 0.0


@pytest.mark.notebook
def test_models_work(metrics):
    assert metrics["clean_accuracy"] > 0.6  # chance is 0.1
    for sigma in ("0.3", "0.6"):
        deen = metrics["deen"][sigma]
        assert deen["noisy_mse"] == pytest.approx(float(sigma) ** 2, rel=0.05)
        # DEEN's x̂(x + ε) is much closer to x than x + ε is (per-pixel MSE σ²); the Wiener bound lies below σ² too
        assert deen["mse"] < 0.5 * deen["noisy_mse"]
        assert 0.0 < deen["wiener"] < 0.5 * deen["noisy_mse"]


@pytest.mark.notebook
def test_recipes_are_compared_on_the_same_points(metrics, cfg):
    rec = metrics["recipes"]
    assert set(rec) == set(cfg["recipes"])
    for label, row in rec.items():
        assert 0.6 < row["test accuracy"] <= 1.0
        accs = [row[f"r = {r:g}"] for r in cfg["radii"]]
        assert all(0 <= a <= 100 for a in accs) and all(a >= b for a, b in zip(accs, accs[1:])), (label, accs)


@pytest.mark.notebook
def test_certified_accuracies_are_consistent(metrics, cfg):
    """g[h] is the registered method "none" (linear h), g[π] is "empirical_bayes"."""
    cert = metrics["certified"]
    assert set(cert) == {"none", "empirical_bayes"}
    for method, points, n_cap, a_cap in (("none", cfg["h_points"], cfg["n"], cfg["alpha"]),
                                         ("empirical_bayes", cfg["pi_points"], cfg["pi_n"], cfg["alpha"] / 2)):
        assert set(cert[method]) == {f"{s:g}" for s in cfg["sigmas"]}
        for sigma in cfg["sigmas"]:
            c = cert[method][f"{sigma:g}"]
            accs = [c["clean"]] + [c["r"][f"{r:g}"] for r in cfg["radii"]]
            assert 0.0 <= min(accs) and max(accs) <= 1.0 and c["points"] == points
            assert all(a >= b for a, b in zip(accs, accs[1:])), f"{method} σ={sigma}: not monotone in the radius"
            r_max = Gaussian(sigma).max_radius(n_cap, a_cap)  # sequential: alpha/2 at the last look
            assert c["max_radius"] <= r_max + 1e-6
            for r in cfg["radii"]:
                if r > r_max:
                    assert c["r"][f"{r:g}"] == 0.0
        for r in cfg["radii"]:
            best = max(cert[method][f"{s:g}"]["r"][f"{r:g}"] for s in cfg["sigmas"])
            assert metrics["best_over_sigma"][method][f"{r:g}"] == pytest.approx(best)
    f4 = metrics["fig4"]
    assert f4["points"] == cfg["pi_points"] and 0 <= f4["grid_count"] <= f4["points"]


@pytest.mark.notebook
def test_paper_check_is_recorded_for_every_cell(metrics, cfg):
    """Both rows of Table 1 at every radius, with our interval around our number (the published
    numbers are references: the smoke sizes are far too small to be compared with them)."""
    rows = metrics["paper_check"]
    assert len(rows) == 2 * len(cfg["radii"])
    for row in rows:
        lo, hi = (float(v) for v in row["95% CI"].strip("[]").split(","))
        assert lo - 1e-9 <= row["ours %"] <= hi + 1e-9


@pytest.mark.notebook
def test_empirical_bayes_certifies_at_least_as_well(metrics):
    """The paper's claim on the smoke points: g[π] certifies about as well as g[h] or better at
    σ = 0.6, radius 0.5 (a tolerance for the 20-point subset), and is not a broken denoiser."""
    cert = metrics["certified"]
    assert cert["empirical_bayes"]["0.6"]["r"]["0.5"] >= cert["none"]["0.6"]["r"]["0.5"] - 0.15
    assert cert["empirical_bayes"]["0.6"]["r"]["0.5"] > 0.3  # a broken denoiser sends every digit to one class (~0.1)
