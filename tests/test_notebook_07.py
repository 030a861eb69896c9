"""Notebook 07 (ablations) under the smoke profile, and the work counter its cost tables use.

The assertions read the numbers the notebook records. Costs are asserted on *counted work*
(noisy samples drawn, score-network evaluations: counted in the code that does the work and
stored per point in the logs), never on seconds, which depend on the machine's load.
"""
import numpy as np
import pytest
import torch

import lib.profiles
from lib.denoising import annealed_map, score_config, tweedie
from lib.experiments.ablations import WorkCounter, counting_procedure
from lib.experiments.budget import budget_setup
from lib.reporting import BUDGET_VERDICTS, budget_comparison, budget_finding, budget_verdict
from lib.utils import config_hash
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


# ---------------------------------------------------------------------- budget comparisons
def test_budget_verdict_rules():
    worse, tie, better = (-0.2, -0.3, -0.1), (0.0, -0.1, 0.1), (0.1, 0.05, 0.15)
    assert budget_verdict([worse, worse]) == "claim not met at any budget tried"
    assert budget_verdict([worse, tie]) == "claim not met at our budget, gap shrinks with budget"
    assert budget_verdict([worse, better]) == "claim not met at our budget, gap shrinks with budget"
    # not contradicted at the top, but A - B no larger there: not "shrinks"
    assert budget_verdict([worse, (-0.3, -0.7, 0.1)]) == "claim not met at our budget, mixed at larger budgets"
    assert budget_verdict([worse, tie, worse]) == "claim not met at our budget, mixed at larger budgets"
    assert budget_verdict([tie, worse]) == "claim met at our budget"
    assert budget_verdict([better, worse]) == "claim met at our budget"
    with pytest.raises(ValueError, match="two budgets"):
        budget_verdict([worse])
    # a claim "A better than B" is contradicted as long as A is not resolved better
    assert budget_verdict([tie, tie], claim="better") == "claim not met at any budget tried"
    assert budget_verdict([tie, better], claim="better") == "claim not met at our budget, gap shrinks with budget"
    assert budget_verdict([better, tie], claim="better") == "claim met at our budget"
    with pytest.raises(ValueError, match="claim"):
        budget_verdict([tie, tie], claim="worse")


def _write_log(path, radii, correct):
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    lines += [f"{i}\t0\t{0 if c else 1}\t{r:.4f}\t{int(c)}\t0:00:00.01" for i, (r, c) in enumerate(zip(radii, correct))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_shrinks_needs_a_resolved_change():
    """"Shrinks with budget" is said only when the per-point change of A - B is resolved above 0; a point
    estimate that rises within sampling error is "mixed", so a verdict never contradicts its own trend line."""
    worse, tie = (-0.3, -0.5, -0.1), (-0.05, -0.3, 0.2)
    assert budget_verdict([worse, tie], change={"diff": 0.25, "lo": 0.05, "hi": 0.45}) == \
        "claim not met at our budget, gap shrinks with budget"
    assert budget_verdict([worse, tie], change={"diff": 0.25, "lo": -0.02, "hi": 0.5}) == \
        "claim not met at our budget, mixed at larger budgets"


def test_budget_comparison_on_logs(tmp_path):
    """A is clearly worse than B with budget 1 and equal to it with budget 3: the comparison finds the
    contradiction at x1, none at x3, a positive change, and says "shrinks"; with A worse at both, "persists"."""
    rng = np.random.default_rng(0)
    n = 120
    rb = rng.uniform(0.2, 0.6, n)
    ok = np.ones(n, bool)
    b = _write_log(tmp_path / "b.tsv", rb, ok)
    a1 = _write_log(tmp_path / "a1.tsv", rb - 0.15 + rng.normal(0, 0.02, n).clip(-0.05, 0.05), ok)
    a3 = _write_log(tmp_path / "a3.tsv", rb + rng.normal(0, 0.02, n), ok)
    runs = [{"sigma": 0.25, "budget": 3.0, "a": a3, "b": b}, {"sigma": 0.25, "budget": 1.0, "a": a1, "b": b}]
    (c,) = budget_comparison(runs, radius=0.3)
    assert [x["budget"] for x in c["budgets"]] == [1.0, 3.0]
    acr1, acr3 = c["budgets"][0]["acr"], c["budgets"][1]["acr"]
    assert acr1["hi"] < 0 and acr1["points"] == n
    assert acr3["lo"] <= 0 <= acr3["hi"]
    assert c["change"]["lo"] > 0 and c["change"]["diff"] == pytest.approx(acr3["diff"] - acr1["diff"])
    assert c["budgets"][0]["at_radius"]["p"] < 0.05  # McNemar: A certifies fewer points at r = 0.3
    assert c["verdict"] == "claim not met at our budget, gap shrinks with budget"
    line = budget_finding({"finding": {"kind": "budget", "a": "A", "b": "B", "claim": "claim", "radius": 0.3,
                                       "runs": [{**r, "iters": ""} for r in runs]}})
    assert "claim not met at our budget, gap shrinks with budget" in line and f"{n} test points" in line
    (c2,) = budget_comparison([{"sigma": 0.25, "budget": 1.0, "a": a1, "b": b},
                               {"sigma": 0.25, "budget": 2.0, "a": a1, "b": b}], radius=0.3)
    assert c2["verdict"] == "claim not met at any budget tried" and c2["change"]["diff"] == 0.0
    with pytest.raises(ValueError, match="same budget"):
        budget_comparison([runs[0], runs[0]], radius=0.3)


def test_score_budget_is_a_model_setting():
    """budget=k multiplies the family's steps and changes the cache key; budget=1 is the profile's model."""
    base = score_config("mnist", "geometric", "smoke")
    assert score_config("mnist", "geometric", "smoke", budget=1) == base
    twice = score_config("mnist", "geometric", "smoke", budget=2)
    assert twice["iters"] == 2 * base["iters"] and config_hash(twice) != config_hash(base)
    assert score_config("mnist", "single", "smoke", sigma=0.25, budget=3)["iters"] == \
        3 * score_config("mnist", "single", "smoke", sigma=0.25)["iters"]
    for bad in (0, -1, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="budget"):
            score_config("mnist", "geometric", "smoke", budget=bad)
    import lib.methods

    setup = lib.methods.Setup.from_profile(lib.profiles.get("07", "smoke"))
    assert budget_setup(setup, 1) is setup
    assert budget_setup(setup, 2).score == {**setup.score, "budget": 2.0}


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
        assert set(run["ratio"]) == {"sequential, CP over looks", "sequential, betting CS", "decision mode"}, name
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
    _check_budget(m["budget"], lib.profiles.get("07", "smoke")["budget"])


def _check_budget(got, bc):
    """Every contradicted claim at every budget and sigma of the profile, on the same points; the verdict is
    an allowed one and follows from the recorded paired differences and their intervals."""
    mult = [float(k) for k in bc["multipliers"]]
    assert got["multipliers"] == mult and len(mult) >= 2
    for name, c in bc["contradictions"].items():
        r = got[name]
        assert r["points"] == bc["num_points"] and r["sigmas"] == sorted(c["sigmas"]), name
        for run in r["runs"]:  # the score network of budget k trained k times the steps of budget 1
            base = next(x for x in r["runs"] if x["sigma"] == run["sigma"] and x["budget"] == 1.0)
            if run["iters"]:
                steps = [int(v.replace(",", "")) for v in run["iters"].split(" steps")[0].split(" / ")]
                steps1 = [int(v.replace(",", "")) for v in base["iters"].split(" steps")[0].split(" / ")]
                assert steps == [round(run["budget"] * s1) for s1 in steps1], (name, run)
            if name == "uniform_l1":  # white-box does not use the score network: one log for every budget
                assert run["b"] == base["b"] and (run["budget"] == 1.0 or run["a"] != base["a"]), run
        for comp in r["comparison"]:
            assert [b["budget"] for b in comp["budgets"]] == mult, name
            diffs = [(b["acr"]["diff"], b["acr"]["lo"], b["acr"]["hi"]) for b in comp["budgets"]]
            for d, lo, hi in diffs:
                assert lo <= d + 1e-12 and d <= hi + 1e-12, (name, diffs)
            assert all(b["acr"]["points"] == bc["num_points"] for b in comp["budgets"])
            assert all(0.0 <= b["at_radius"]["p"] <= 1.0 for b in comp["budgets"])
            assert comp["change"]["diff"] == pytest.approx(diffs[-1][0] - diffs[0][0], abs=1e-9)
            v = comp["verdict"]
            assert v in BUDGET_VERDICTS, v
            contradicted = [(lo <= 0) if r["kind"] == "better" else (hi < 0) for _, lo, hi in diffs]
            if v == "claim met at our budget":
                assert not contradicted[0]
            else:
                assert contradicted[0], (name, v, diffs)
            if v == "claim not met at any budget tried":
                assert all(contradicted)
            if v == "claim not met at our budget, gap shrinks with budget":  # and the change is resolved above 0
                assert not contradicted[-1] and comp["change"]["lo"] > 0
