"""Notebook 07 (ablations) under the smoke profile, and the work counter its cost tables use.

The assertions read the numbers the notebook records. Costs are asserted on *counted work*
(noisy samples drawn, score-network evaluations: counted in the code that does the work and
stored per point in the logs), never on seconds, which depend on the machine's load (issue 18).
"""
import numpy as np
import pytest
import torch

import lib.profiles
from lib.denoising import annealed_map, tweedie
from lib.experiments.ablations import WorkCounter, counting_procedure
from lib.smoothing import Gaussian, Smooth


@pytest.mark.parametrize("levels", [None, [1.0, 0.5, 0.1]])
def test_counting_procedure_counts_samples_and_score_evaluations(levels):
    noise = Gaussian(0.5)
    score = lambda y, s: -y / (1 + s**2)  # noqa: E731 - the score of N(0, I) data
    den = tweedie(score, 0.5) if levels is None else annealed_map(score, noise, sigmas=levels)
    smooth = Smooth(torch.nn.Linear(4, 3), 3, noise, denoiser=den)
    xs = torch.randn(5, 4)
    preds, radii, extra = counting_procedure(smooth)(xs, 10, 100, 0.01, generator=torch.Generator().manual_seed(0))
    per_sample = 1 if levels is None else len(levels)
    assert extra["samples"] == [110] * 5
    assert extra["score_evals"] == [110 * per_sample] * 5
    # the counting copies are gone afterwards; the same draws give the same certificates as uncounted
    assert smooth.noise is noise and smooth.denoiser is den
    p2, r2 = smooth.certify_batch(xs, 10, 100, 0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(preds, p2) and torch.equal(radii, r2)


def test_work_counter_restores_on_error():
    noise = Gaussian(0.5)
    smooth = Smooth(torch.nn.Linear(4, 3), 3, noise)
    with pytest.raises(RuntimeError):
        with WorkCounter().attached(smooth):
            raise RuntimeError("boom")
    assert smooth.noise is noise


def _check_bounds_and_monotone(certified, curves):
    """Every certified accuracy lies in [0, clean accuracy]; every curve is non-increasing in r."""
    assert certified and curves
    for method, by_sigma in certified.items():
        for sigma, v in by_sigma.items():
            assert 0.0 <= v["clean"] <= 1.0 and v["acr"] >= 0.0, (method, sigma)
            assert all(0.0 <= acc <= v["clean"] + 1e-12 for acc in v["r"].values()), (method, sigma)
    for method, by_sigma in curves.items():
        for sigma, curve in by_sigma.items():
            assert np.all(np.diff(curve) <= 1e-12), (method, sigma, curve)
            assert curve[0] == pytest.approx(certified[method][sigma]["clean"])


@pytest.mark.notebook
def test_07_ablations(run_notebook):
    m = run_notebook("07_ablations")
    c = lib.profiles.get("07", "smoke")["cost"]
    d1 = m["d1"]
    _check_bounds_and_monotone(d1["certified"], d1["curves"])
    assert set(d1["certified"]) == {"one_step", "one_step_single"}
    assert len(d1["paired"]) == len(d1["certified"]["one_step"])
    assert d1["multi_scale_wins"] + d1["multi_scale_losses"] <= len(d1["paired"])
    for sigma, row in d1["relative_mse"].items():
        assert 0.0 < row["multi-scale"] < 1.5 and 0.0 < row["single-σ"] < 1.5, sigma
    d2 = m["d2"]
    accs = [d2["test_accuracy"][a] for a in d2["order"]]
    assert accs == sorted(accs) and len(accs) >= 3
    for a, best in d2["best_over_sigma"].items():
        assert all(0.0 <= v <= 1.0 for v in best.values()), a
    cost = m["cost"]
    points = cost["points"]
    assert points == c["num_points"]
    # work, counted while certifying: n0 + n noisy samples per point, one score evaluation per
    # sample for the one-step denoiser and L for the multi-step one (T = 1)
    for n in c["n_grid"]:
        row = cost["samples"][f"n={n}"]
        assert row["samples"] == points * (c["n0"] + n) == row["score evals"], n
    ns = [cost["samples"][f"n={n}"]["samples"] for n in sorted(c["n_grid"])]
    assert all(a < b for a, b in zip(ns, ns[1:]))
    per_point = c["n0"] + c["steps_n"]
    for s, steps in cost["steps"].items():
        assert steps["one-step"]["score evals"] == points * per_point, s
        evals = [steps[f"L={L}"]["score evals"] for L in sorted(c["levels"])]
        assert evals == [points * per_point * L for L in sorted(c["levels"])], s
        assert all(steps[f"L={L}"]["samples"] == points * per_point for L in c["levels"])
    for table in (cost["samples"], *cost["steps"].values()):
        for row in table.values():
            assert 0.0 <= min(v for k, v in row.items() if k.startswith("r=")) <= row["clean"] <= 100.0
    # sequential vs fixed-n CERTIFY, on the sample counts recorded in the logs
    sq = lib.profiles.get("07", "smoke")["seq"]
    seq = m["sequential"]
    assert len(seq) == len(lib.profiles.get("04", "smoke")["sigmas"]) + len(sq["sigmas_05"])
    for name, run in seq.items():
        assert set(run["ratio"]) == {"sequential, CP over looks", "sequential, betting CS"}, name
        assert run["table"]["fixed n"]["samples/point"] == run["n0"] + run["n_max"]
        for label, ratio in run["ratio"].items():
            # never more than n0 + n_max samples for a point, so never more on average than fixed n
            assert run["max_samples"][label] <= run["n_max"] + run["n0"], (name, label)
            assert ratio >= 1.0, (name, label)
            # certified accuracy at every target radius equal to fixed n's within sampling error
            assert run["within_error"][label], (name, label, run["table"][label])
    two = m["two_sided"]
    assert set(two) == {"one-sided (Cohen)", "two-sided"}
    assert two["two-sided"]["samples/point"] == two["one-sided (Cohen)"]["samples/point"]
