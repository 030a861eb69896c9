"""Notebooks 05 (l2 denoised smoothing) and 06 (l1) under the smoke profile (07: test_notebook_07.py).

The assertions read the numbers the notebooks record, so a wrong wiring fails the test: e.g.
a denoiser that is never applied makes "one-step" certify exactly like "no denoiser".
"""
import numpy as np
import pytest

pytestmark = pytest.mark.notebook


def _check_bounds_and_monotone(certified, curves):
    """Every certified accuracy lies in [0, clean accuracy]; every curve is non-increasing in r."""
    assert certified and curves
    for method, by_sigma in certified.items():
        for sigma, v in by_sigma.items():
            assert 0.0 <= v["clean"] <= 1.0, (method, sigma)
            for r, acc in v["r"].items():
                assert 0.0 <= acc <= v["clean"] + 1e-12, (method, sigma, r, acc, v["clean"])
            assert v["acr"] >= 0.0
    for method, by_sigma in curves.items():
        for sigma, curve in by_sigma.items():
            assert np.all(np.diff(curve) <= 1e-12), (method, sigma, curve)
            assert curve[0] == pytest.approx(certified[method][sigma]["clean"])


@pytest.fixture(scope="module")
def nb05(run_notebook):
    return run_notebook("05_denoised_smoothing_l2")


def test_05_denoised_smoothing_l2(nb05):
    m = nb05
    methods = {"none", "white_box", "mse", "mse_stab_query", "mse_stab", "one_step", "multi_step"}
    assert set(m["certified"]) == methods
    assert all(set(v) == {"0.25", "0.5", "1"} for v in m["certified"].values())
    _check_bounds_and_monotone(m["certified"], m["curves"])
    c = m["certified"]
    # the claim the smoke test guards: the score-based one-step denoiser certifies more than no denoiser
    assert c["one_step"]["0.5"]["acr"] > c["none"]["0.5"]["acr"]
    assert c["one_step"]["0.5"]["r"]["0.25"] > c["none"]["0.5"]["r"]["0.25"]
    for method, best in m["best_over_sigma"].items():
        for r, v in best.items():
            assert v == pytest.approx(max(c[method][s]["r"][r] for s in c[method]))
    assert m["sizes"]["points"] == c["none"]["0.5"]["points"] > 0
    assert set(m["samples_per_second"]) == methods  # measured figures, reported only (never compared)
    # Salman et al.'s stability fine-tuning changes the MSE denoiser (its rows are not the MSE rows again)
    for stab in ("mse_stab", "mse_stab_query"):
        assert any(c[stab][s]["acr"] != c["mse"][s]["acr"] for s in c["mse"]), stab


def test_06_denoised_smoothing_l1(run_notebook, nb05):
    m = run_notebook("06_denoised_smoothing_l1")
    by = m["by_noise"]
    assert set(by) == {"laplace", "uniform", "gaussian"}
    for q, mq in by.items():
        assert set(mq["certified"]) == {"white_box", "multi_step"}, q
        _check_bounds_and_monotone(mq["certified"], mq["curves"])
    # the multi-step denoiser works for every noise type: far above chance (10%) on clean accuracy
    for q in ("laplace", "uniform"):
        ms = by[q]["certified"]["multi_step"]
        assert ms[min(ms, key=float)]["clean"] > 0.5, q
    # the Gaussian rows are the very runs of notebook 05 (same settings -> same logs)
    assert m["sizes"] == nb05["sizes"]  # the profiles keep them equal, so the logs are shared
    for method in ("white_box", "multi_step"):
        for s, v in by["gaussian"]["certified"][method].items():
            old = nb05["certified"][method][s]
            assert (v["clean"], v["acr"], v["points"]) == (old["clean"], old["acr"], old["points"])
            assert all(v["r"][r] == old["r"][r] for r in set(v["r"]) & set(old["r"]))

