"""lib.experiments.fidelity: the Wiener bound, the sequential targets, the Figure 4 count, the paper check."""
import math

import numpy as np
import pytest
import torch

from lib.experiments import fidelity as fid
from lib.smoothing import Gaussian


def test_wiener_floor_matches_the_gaussian_closed_form():
    """For x ~ N(mu, diag(lam)) the best linear (= Bayes) estimator has MSE mean(lam s^2 / (lam + s^2))."""
    g = torch.Generator().manual_seed(0)
    lam = torch.tensor([4.0, 1.0, 0.25, 0.01, 0.0])
    train = 0.3 + lam.sqrt() * torch.randn(200_000, 5, generator=g)
    test = 0.3 + lam.sqrt() * torch.randn(50_000, 5, generator=g)
    for s in (0.3, 1.0):
        expected = float((lam * s**2 / (lam + s**2)).mean())
        assert fid.wiener_mse(train, test, s) == pytest.approx(expected, rel=0.02)
    with pytest.raises(ValueError):
        fid.wiener_mse(train, test, 0.0)
    with pytest.raises(ValueError):
        fid.wiener_mse(train, test[:, :3], 0.5)


def test_wiener_floor_agrees_with_simulated_denoising():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 5, generator=g)
    train = torch.randn(50_000, 5, generator=g) @ a
    test = torch.randn(20_000, 5, generator=g) @ a
    s = 0.7
    mu, cov = train.double().mean(0), torch.cov(train.double().T)
    S = cov @ torch.linalg.inv(cov + s**2 * torch.eye(5, dtype=torch.float64))
    y = test.double() + s * torch.randn(test.shape, generator=g, dtype=torch.float64)
    sim = float(((mu + (y - mu) @ S.T) - test.double()).pow(2).mean())
    assert fid.wiener_mse(train, test, s) == pytest.approx(sim, rel=0.03)


def test_sequential_targets_keep_only_reachable_radii():
    t = fid.sequential_targets([0.5, 1.0, 1.5, 2.0], 0.3, 100_000, 0.001, step=0.25)
    cap = Gaussian(0.3).max_radius(100_000, 0.0005)
    assert t[0] == 0.0 and max(t) <= cap and all(r in t for r in (0.25, 0.5, 0.75, 1.0)) and 1.5 not in t
    t6 = fid.sequential_targets([0.5, 1.0, 1.5, 2.0], 0.6, 100_000, 0.001)
    assert t6 == [0.0, 0.5, 1.0, 1.5, 2.0]


def _write_log(path, rows):
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    lines += [f"{i}\t{y}\t{p}\t{r}\t{int(p == y)}\t0:00:00.1" for i, y, p, r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fig4_count_on_the_grid(tmp_path):
    # idx 0: h 0.55 vs pi 0.40 -> h certifies grid radius 0.5, pi does not: counted
    # idx 1: h 0.60 vs pi 0.52 -> same grid level (0.5): not counted on the grid, counted raw
    # idx 2: pi wrong -> never counted; idx 3: pi larger -> not counted
    h = _write_log(tmp_path / "h.tsv", [(0, 1, 1, 0.55), (1, 2, 2, 0.60), (2, 3, 3, 0.9), (3, 4, 4, 0.2), (9, 5, 5, 1.0)])
    pi = _write_log(tmp_path / "pi.tsv", [(0, 1, 1, 0.40), (1, 2, 2, 0.52), (2, 3, 7, 0.0), (3, 4, 4, 1.3)])
    out = fid.fig4_count(h, pi, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert out["points"] == 4 and out["grid_count"] == 1 and out["raw_count"] == 2 and out["indices"] == [0]


def test_within_reference_and_the_ci_table(tmp_path):
    assert fid.within_reference([70, 30], [71, 45], 8) == [True, False]
    assert fid.within_reference([70], [85], 8, lo=[60], hi=[78]) == [True]
    log = _write_log(tmp_path / "a.tsv", [(i, 0, 0 if i < 60 else 1, 1.0 if i < 30 else 0.3) for i in range(100)])
    ci = fid.certified_with_ci([log], [0.5, 1.0])
    assert list(ci["acc"]) == [30.0, 30.0] and (ci["lo"] < 30).all() and (ci["hi"] > 30).all()
    assert math.isclose(ci["points"][0], 100)
    assert np.all(np.diff(ci["acc"]) <= 0)
