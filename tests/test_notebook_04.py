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
    for sigma in ("0.3", "0.6"):
        # DEEN's x̂(x + ε) is much closer to x than x + ε is (per-pixel MSE σ²)
        deen = metrics["deen"][sigma]
        assert deen["noisy_mse"] == pytest.approx(float(sigma) ** 2, rel=0.05)
        assert deen["mse"] < 0.5 * deen["noisy_mse"]


@pytest.mark.notebook
def test_certified_accuracies_are_consistent(metrics):
    """g[h] is the registered method "none" (linear h), g[π] is "empirical_bayes"."""
    cfg = lib.profiles.get("04", "smoke")
    cert = metrics["certified"]
    assert set(cert) == {"none", "empirical_bayes"}
    for method in cert:
        assert set(cert[method]) == {f"{s:g}" for s in cfg["sigmas"]}
        for sigma in cfg["sigmas"]:
            c = cert[method][f"{sigma:g}"]
            accs = [c["clean"]] + [c["r"][f"{r:g}"] for r in cfg["radii"]]
            assert 0.0 <= min(accs) and max(accs) <= 1.0 and c["points"] == cfg["num_points"]
            assert all(a >= b for a, b in zip(accs, accs[1:])), f"{method} σ={sigma}: not monotone in the radius"
            r_max = Gaussian(sigma).max_radius(cfg["n"], cfg["alpha"])
            assert c["max_radius"] <= r_max + 1e-6
            for r in cfg["radii"]:
                if r > r_max:
                    assert c["r"][f"{r:g}"] == 0.0
        for r in cfg["radii"]:
            best = max(cert[method][f"{s:g}"]["r"][f"{r:g}"] for s in cfg["sigmas"])
            assert metrics["best_over_sigma"][method][f"{r:g}"] == pytest.approx(best)
    assert 0 <= metrics["fig4_count"] <= metrics["num_points"]


@pytest.mark.notebook
def test_empirical_bayes_certifies_at_least_as_well(metrics):
    """The paper's claim on the smoke subset: g[π] certifies at least as well as g[h]
    (a tolerance of one or two of the 20 test points for the Monte-Carlo and subset noise)."""
    best, cert = metrics["best_over_sigma"], metrics["certified"]
    assert best["empirical_bayes"]["0.5"] >= best["none"]["0.5"] - 0.1
    gh = sum(cert["none"]["0.6"]["r"][r] for r in ("0.5", "1", "1.5"))
    gpi = sum(cert["empirical_bayes"]["0.6"]["r"][r] for r in ("0.5", "1", "1.5"))
    assert gpi >= gh - 0.1
    assert cert["empirical_bayes"]["0.6"]["r"]["0.5"] > 0.3  # a broken denoiser sends every digit to one class (~0.1)
