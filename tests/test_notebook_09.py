"""Notebook 09 (XHAT_ε, XHAT_0, SmoothAdv_ε, walk-jump) under the smoke profile: the recorded numbers."""
from __future__ import annotations

import pytest

import lib.profiles
from lib import Gaussian

NAME = "09_learned_empirical_bayes"
KEYS = ("xhat_eps", "xhat_0", "smoothadv")


@pytest.fixture(scope="module")
def metrics(run_notebook):
    return run_notebook(NAME)


@pytest.fixture(scope="module")
def cfg():
    return lib.profiles.get("09", "smoke")


@pytest.mark.notebook
def test_sizes_follow_the_smoke_profile(metrics, cfg):
    assert (metrics["n"], metrics["n0"], metrics["alpha"]) == (cfg["n"], cfg["n0"], cfg["alpha"])
    assert metrics["num_points"] == cfg["num_points"]
    assert set(metrics["certified"]) == set(KEYS)
    assert all(set(metrics["certified"][k]) == {f"{s:g}" for s in cfg["sigmas"]} for k in KEYS)


@pytest.mark.notebook
def test_curves_are_non_increasing_and_capped(metrics, cfg):
    grid = metrics["curve_grid"]
    for k in KEYS:
        for s in cfg["sigmas"]:
            curve = metrics["curves"][k][f"{s:g}"]
            assert all(a >= b for a, b in zip(curve, curve[1:])), f"{k} σ={s}: not monotone"
            r_max = Gaussian(s).max_radius(cfg["n"], cfg["alpha"])
            assert all(v == 0 for r, v in zip(grid, curve) if r > r_max + 1e-9)
        for r in cfg["radii"]:
            best = max(metrics["certified"][k][f"{s:g}"]["r"][f"{r:g}"] for s in cfg["sigmas"])
            assert metrics["best_over_sigma"][k][f"{r:g}"] == pytest.approx(best)
    # the n_c sweep: nothing certified beyond the cap of its own n
    for nc, cert in metrics["nc_sweep"].items():
        for s in cfg["sigmas"]:
            r_max = Gaussian(s).max_radius(int(nc), cfg["alpha"])
            for r, v in cert["xhat_eps"][f"{s:g}"]["r"].items():
                if float(r) > r_max:
                    assert v == 0.0


@pytest.mark.notebook
def test_certified_never_exceeds_empirical(metrics, cfg):
    assert set(metrics["robust"]) == {f"{k}|{s:g}" for k in KEYS for s in cfg["sigmas"]}
    for key, table in metrics["robust"].items():
        for r in table["certified"]:
            cert, emp, strict = (table[c][r] for c in ("certified", "empirical (PGD)", "empirical, abstain = error"))
            assert 0 <= strict <= emp <= 100
            assert cert <= emp + 1e-9, f"{key} r={r}: certified {cert} > empirical {emp}"


@pytest.mark.notebook
def test_xhat0_is_the_eps_zero_run(metrics, cfg):
    assert metrics["xhat0"]["registered"] == metrics["xhat0"]["eps0_run"]
    assert set(metrics["xhat0"]["registered"]) == {f"{s:g}" for s in cfg["sigmas"]}


@pytest.mark.notebook
def test_models_learn_and_walk_jump_is_certified(metrics, cfg):
    for k in KEYS:
        # chance is 10 %: a broken trainer or x̂ leaves the smoothed classifier at chance
        assert max(metrics["certified"][k][f"{s:g}"]["clean"] for s in cfg["sigmas"]) > 0.3, k
    wj = metrics["walk_jump"]
    assert len(wj) == 2 and any("walk-jump" in label for label in wj)
    assert all(0 <= row["clean"] <= 100 for row in wj.values())


LECTURE = ("gaussian_aug", "smoothed_obj", "smoothadv_lecture")


@pytest.mark.notebook
def test_lecture_rows_share_one_protocol_and_are_sound(metrics, cfg):
    """Lecture 14 Tables 1-2 counterpart: the three methods certified on the same points with the same
    n0, n, alpha and sigmas, from classifiers whose configs differ only in the method and eps."""
    from lib.experiments import LECTURE_RADII
    from lib.profiles import model_settings

    lec = metrics["lecture"]
    assert set(lec["protocol"]) == {f"{k}|{s:g}" for k in LECTURE for s in cfg["sigmas"]}
    keys = ("n0", "n", "alpha", "num_points", "indices_hash")
    shared = {tuple(v[key] for key in keys) for v in lec["protocol"].values()}
    assert shared == {(cfg["n0"], cfg["n"], cfg["alpha"], cfg["num_points"], next(iter(shared))[4])}
    assert {v["sigma"] for v in lec["protocol"].values()} == set(cfg["sigmas"])
    assert all(set(d) == {"eps", "method"} for d in lec["config_differences"].values())
    m = model_settings("xhat", "smoke")["lecture_m"]
    assert m >= 2 and set(lec["m"].values()) == {m}  # with m = 1 augmentation and eq. 9 coincide
    for k in LECTURE:
        for s in cfg["sigmas"]:
            cert = lec["certified"][k][f"{s:g}"]
            assert all(v <= cert["clean"] + 1e-12 for v in cert["r"].values()), f"{k} σ={s}: certified > clean"
            curve = lec["curves"][k][f"{s:g}"]
            assert all(a >= b for a, b in zip(curve, curve[1:])), f"{k} σ={s}: not monotone"
            r_max = Gaussian(s).max_radius(cfg["n"], cfg["alpha"])
            assert all(v == 0 for r, v in zip(lec["curve_grid"], curve) if r > r_max + 1e-9)
        for r in LECTURE_RADII:
            best = max(lec["certified"][k][f"{s:g}"]["r"][f"{r:g}"] for s in cfg["sigmas"])
            assert lec["best_over_sigma"][k][f"{r:g}"] == pytest.approx(best)
        assert max(lec["certified"][k][f"{s:g}"]["clean"] for s in cfg["sigmas"]) > 0.2, k  # chance: 10 %


@pytest.mark.notebook
def test_lecture_table_is_registered_beside_the_lecture_rows_and_read_by_notebook_00(metrics, notebook_outputs,
                                                                                     monkeypatch):
    import lib.paths
    import lib.theory as T
    from lib.experiments import LECTURE_RADII, LECTURE_REFERENCE
    from lib.reporting import load_table_spec

    monkeypatch.setattr(lib.paths, "OUTPUTS", notebook_outputs / "outputs")
    spec = load_table_spec(NAME, "lecture_tables")
    assert spec["radii"] == LECTURE_RADII and spec["settings"]["profile"] == "smoke"
    assert spec["reference"] == LECTURE_REFERENCE["rows"]  # the lecture's numbers, as labelled references
    assert list(spec["rows"]) == list(T.LECTURE_TABLE_METHODS)  # ours, never mixed with them
    # notebook 00's §6 reads the same logs, checks their protocol and finds the recorded numbers
    logs = T.lecture_table_logs("smoke")
    table = T.same_protocol_table(logs, LECTURE_RADII)
    for label, key in T.LECTURE_TABLE_METHODS.items():
        best = metrics["lecture"]["best_over_sigma"][key]
        assert table.loc[label].tolist() == pytest.approx([100 * best[f"{r:g}"] for r in LECTURE_RADII])
    assert T.lecture_table_logs("quick") == {}
