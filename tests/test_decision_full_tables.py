"""Under `full`, the certified-accuracy tables of notebooks 04 (Table 1 and the per-sigma table), 07 (Lee's D.1
and D.2) and 09 (the Lecture 14 counterpart) are certified in decision mode, their curves fixed-n; `smoke` and
`quick` keep fixed n. Each table is certified here with the `full` profile's choices (sigma grids, radii, alpha,
`certify`) on toy models and small sizes: every log it reads says ``procedure: decision``, and its certified
accuracy at every table radius agrees with a fixed-n run on the same points within sampling error."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import lib.methods
from lib import profiles, utils
from lib.experiments import ablations as ab, procedures as pr
from lib.experiments import fidelity as fid
from lib.experiments import learned_empirical_bayes as leb
from lib.methods import registry
from lib.reporting import certified_accuracy, load_table_spec, paired_difference, read_log
from lib.smoothing import Gaussian, read_settings

from conftest import ROOT
from test_experiments import _subset, _ToySetup, tmp_roots  # noqa: F401  (tmp_roots: a fixture)


@pytest.fixture()
def full(monkeypatch):
    """``profiles.get(nb, profile)`` with `full` allowed on this CPU (its choices at their own sizes)."""
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.setenv(profiles.TINY_ENV, "0")
    return profiles.get


def _decision(path) -> bool:
    return read_settings(path).get("procedure") == "decision" and lib.methods.certification_mode(path) == "decision"


def _agrees(decision_log, fixed_log, radii, tolerance: float = 0.15) -> list[float]:
    """Certified accuracy of ``decision_log`` at every radius of ``radii`` equals that of ``fixed_log`` (the same
    points) within sampling error: McNemar's exact test of the paired outcomes does not reject at 1%, and the
    difference is at most ``tolerance``. Returns the decision log's certified accuracies."""
    dec, fixed = read_log(decision_log), read_log(fixed_log)
    assert sorted(dec["idx"]) == sorted(fixed["idx"]), "not the same points"
    for r in radii:
        d = paired_difference(decision_log, fixed_log, float(r))
        assert d["p"] >= 0.01 and abs(d["diff"]) <= tolerance, (r, d)
    return [float(v) for v in certified_accuracy(dec, [float(r) for r in radii])]


def _nontrivial(accs: list[float]) -> None:
    """Some radius of the table is certified for some points and not for others: a comparison with content."""
    assert any(0.0 < a < 1.0 for a in accs), accs


# ---------------------------------------------------------------- the profiles
@pytest.mark.parametrize("tiny", [False, True])
def test_full_certifies_the_04_07_09_tables_in_decision_mode(tiny, monkeypatch):
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.setenv(profiles.TINY_ENV, "1" if tiny else "0")
    full = {"04": profiles.get("04", "full"), "07": profiles.get("07", "full"), "09": profiles.get("09", "full")}
    assert full["04"]["certify"] == full["09"]["certify"] == "decision"
    assert full["07"]["d1"]["certify"] == full["07"]["d2"]["certify"] == "decision"
    for p in ("smoke", "quick"):  # fixed n: one run serves the curves and the tables, their numbers unchanged
        assert profiles.get("04", p)["certify"] == profiles.get("09", p)["certify"] == "fixed"
        for part in ("d1", "d2"):
            cfg = profiles.get("07", p)[part]
            assert cfg["certify"] == "fixed" and cfg["curve_points"] == cfg["num_points"], (p, part)
    if not tiny:  # as 05's tables: the whole test set, the curves and paired tests on 500 points
        for part in ("d1", "d2"):
            assert full["07"][part]["num_points"] is None and full["07"][part]["curve_points"] == 500


def _cells(nb: str) -> list[str]:
    path = next((ROOT / "notebooks").glob(f"{nb}_*.ipynb"))
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_notebooks_pass_the_profile_choice_to_their_tables():
    """04 registers both tables from ``table_logs`` (its curves and the Figure 4 count from ``logs``); 09's
    lecture table takes cfg["certify"]; 07's D.1 / D.2 read it from their settings (lib.experiments.ablations)."""
    c04 = _cells("04")
    assert any("logs, table_logs = fid.certify_both(" in c for c in c04)
    tables = [c for c in c04 if "register_table(" in c]
    assert len(tables) == 2 and all("table_logs" in c for c in tables)
    assert any("compare_to_paper(table_logs" in c for c in c04)
    assert not any("table_logs" in c for c in c04 if "figure2(" in c or "fig3_fig4(" in c)
    assert any("decision_ratio(logs, table_logs" in c for c in c04)
    assert any('ex.lecture_table(' in c and 'cfg["certify"]' in c for c in _cells("09"))


# ---------------------------------------------------------------- notebook 04
class _Linear(torch.nn.Module):
    """A fixed linear h on [B, 1, 4, 4] inputs with 3 classes (``.linear``: what the logit-space sampler needs)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.linear = torch.nn.Linear(16, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(3, 16, generator=g))
            self.linear.bias.copy_(torch.randn(3, generator=g))

    def forward(self, x):
        return self.linear(x.flatten(1))


class _Energy:
    """A stand-in for a DEEN: its 'empirical Bayes estimator' shrinks toward the middle of [0, 1]."""

    def __init__(self, sigma):
        self.config = {"kind": "toy_energy", "sigma": float(sigma)}

    def denoiser(self):
        return lambda y: 0.5 * y + 0.25


class _LinearSetup(_ToySetup):
    def classifier(self, noise=None, sigma=None, arch=None):
        return _Linear(), {"arch": "toy_linear"}, {"test_accuracy": 1.0}

    def energy_model(self, noise):
        e = _Energy(noise.sigma)
        return e, e.config, {"test_mse": 0.0, "noisy_mse": 0.0}


def _subset04(n: int = 60):
    sub = _subset(n)  # the toy's labels are _Toy's; g[h]'s own clean predictions make the labels here
    return lib.methods.TestSubset(sub.xs, _Linear()(sub.xs).argmax(1), sub.indices, "toy")


SIZES_04 = {"n0": 20, "n": 3000, "pi_n": 3000, "chunk": 20, "pi_chunk": 20}


def test_notebook_04_tables_are_decided_under_full(tmp_roots, full):  # noqa: F811
    cfg = {**full("04", "full"), **SIZES_04}
    setup, sub = _LinearSetup(dataset="toy", profile="full"), _subset04()
    logs, table_logs = fid.certify_both(setup, sub, sub, cfg, "04_x")
    assert set(logs) == set(table_logs) == {(m, float(s)) for m in ("none", "empirical_bayes") for s in cfg["sigmas"]}
    assert all(_decision(p) for p in table_logs.values())  # both tables read decision-mode logs only
    for s in cfg["sigmas"]:
        h_fixed, h_table = logs[("none", s)], table_logs[("none", s)]
        # g[h]: decided at the table radii through the logit-space sampler; its fixed-n log stays for the curves
        assert not _decision(h_fixed) and read_settings(h_fixed)["sampler"] == "logit"
        assert read_settings(h_table)["sampler"] == "logit" and read_settings(h_table)["radii"] == cfg["radii"]
        assert read_log(h_table)["samples"].max() <= cfg["n0"] + cfg["n"]
        # g[pi]: one decision run over the radius grid serves the tables and Figure 2 (the same log)
        grid = fid.sequential_targets(cfg["radii"], s, cfg["pi_n"], cfg["alpha"], cfg["pi_step"])
        assert logs[("empirical_bayes", s)] == table_logs[("empirical_bayes", s)]
        assert read_settings(table_logs[("empirical_bayes", s)])["radii"] == grid
        pi_fixed = lib.methods.certify_method("empirical_bayes", Gaussian(s), setup, sub, cfg["n0"], cfg["pi_n"],
                                              cfg["alpha"], "04_x", progress=False)
        accs = _agrees(h_table, h_fixed, cfg["radii"]) + _agrees(table_logs[("empirical_bayes", s)], pi_fixed, grid)
        _nontrivial(accs)
    # the settings under the tables say how they were certified; the notebook's ratio compares g[h] only
    settings = fid.table_settings(cfg, sub, sub, {"optimizer": "sgd"}, {"hidden": [8]})
    assert settings["certification"].startswith("decision")
    table, _ = pr.decision_vs_fixed(logs, table_logs, cfg["radii"])
    assert set(table.index) == {("none", float(s)) for s in cfg["sigmas"]}
    recorded = fid.notebook_metrics(logs, {}, pd.DataFrame(), {}, {}, pd.DataFrame(), table_logs)["certification"]
    assert recorded == {f"{m}/{s:g}": "decision" for m, s in table_logs}


def test_notebook_04_keeps_fixed_n_and_sequential_under_quick(tmp_roots, full):  # noqa: F811
    cfg = {**full("04", "quick"), **SIZES_04}
    setup, sub = _LinearSetup(dataset="toy", profile="quick"), _subset04(20)
    logs, table_logs = fid.certify_both(setup, sub, sub, cfg, "04_x")
    assert table_logs == logs and not any(_decision(p) for p in logs.values())
    assert {read_settings(p).get("procedure") for (m, _), p in logs.items() if m == "empirical_bayes"} == {"sequential"}
    assert fid.table_settings(cfg, sub, sub, {"optimizer": "sgd"}, {"hidden": [8]})["certification"].startswith("fixed")


# ---------------------------------------------------------------- notebooks 07 and 09: toy methods in place of theirs
def _toy_method(key: str, denoiser):
    def build(setup, noise):
        clf, cfg, hist = setup.classifier()
        clf_cfg = {**cfg, "method": key, "m": 2}  # what notebook 09 records of a lecture classifier's config
        return registry.Pipeline(clf, denoiser, 3, {"classifier": clf_cfg, "denoiser": {"toy": key}},
                                 {"classifier_test_accuracy": hist.get("test_accuracy")})
    return registry.Method(key, registry.METHODS[key].label, build, noises=("gaussian",))


@pytest.fixture()
def toy_methods(monkeypatch):
    """07's one-step denoisers and 09's lecture classifiers as toy pipelines (no training): each its own denoiser."""
    dens = {"one_step": lambda y: 0.6 * y + 0.2, "one_step_single": lambda y: 0.8 * y + 0.1,
            "gaussian_aug": lambda y: 0.6 * y + 0.2, "smoothed_obj": lambda y: 0.7 * y + 0.15,
            "smoothadv_lecture": lambda y: 0.5 * y + 0.25}
    for key, den in dens.items():
        monkeypatch.setitem(registry.METHODS, key, _toy_method(key, den))


def _toy_subsets(monkeypatch, module, table_points: int = 60):
    """``test_subset`` of ``module`` on the toy data: ``None`` (the whole test set) gives ``table_points``."""
    monkeypatch.setattr(module, "test_subset", lambda dataset, num: _subset(table_points if num is None else num))


SIZES_07 = {"n0": 20, "n": 3000, "curve_points": 20}


@pytest.mark.parametrize("part", ["d1", "d2"])
def test_notebook_07_tables_are_decided_under_full(part, tmp_roots, full, toy_methods, monkeypatch):  # noqa: F811
    cfg = {**full("07", "full")[part], **SIZES_07}
    assert cfg["num_points"] is None  # the table on the whole test set, the curves on curve_points
    _toy_subsets(monkeypatch, ab)
    setup = _ToySetup(dataset="toy", profile="full")
    if part == "d1":
        res = ab.d1_multiscale(setup, cfg, "full", "toy models", "07_x")
        fixed, table = res["logs"], res["table_logs"]
        assert len(res["paired"]) == len(cfg["sigmas"])  # the paired ACR tests read the fixed-n logs
        stem = "d1_multiscale"
    else:
        res = ab.d2_classifiers(setup, cfg, "full", "07_x")
        fixed = {(a, p): p for a, rows in res["rows"].items() for p in rows}
        table = {(a, p): p for a, rows in res["table_rows"].items() for p in rows}
        stem = "d2_classifiers"
    assert all(not _decision(p) and len(read_log(p)) == cfg["curve_points"] for p in fixed.values())
    assert all(_decision(p) and len(read_log(p)) == 60 for p in table.values())
    spec = load_table_spec("07_x", stem)
    assert spec["settings"]["certification"] == "decision"
    assert spec["settings"]["test points"] == 60
    registered = {Path(p).name for paths in spec["rows"].values() for p in paths}  # paths under the outputs
    assert registered == {Path(p).name for p in table.values()}
    accs = []
    for p in table.values():  # a fixed-n run on the table's points with the same sizes
        s = read_settings(p)
        sub = _subset(60)
        ref = lib.methods.certify_method(s["method"], Gaussian(s["sigma"]), setup, sub, cfg["n0"], cfg["n"],
                                         cfg["alpha"], "07_x", progress=False, tag="reference")
        accs += _agrees(p, ref, cfg["radii"])
    _nontrivial(accs)


def test_notebook_07_keeps_fixed_n_under_quick(tmp_roots, full, toy_methods, monkeypatch):  # noqa: F811
    cfg = {**full("07", "quick")["d1"], "n0": 20, "n": 200, "num_points": 12, "curve_points": 12}
    _toy_subsets(monkeypatch, ab)
    res = ab.d1_multiscale(_ToySetup(dataset="toy", profile="quick"), cfg, "quick", "toy models", "07_x")
    assert res["table_logs"] == res["logs"] and not any(_decision(p) for p in res["logs"].values())
    assert load_table_spec("07_x", "d1_multiscale")["settings"]["certification"] == "fixed"


def test_notebook_09_lecture_table_is_decided_under_full(tmp_roots, full, toy_methods, monkeypatch):  # noqa: F811
    import lib.theory as T

    cfg = full("09", "full")
    setup, sub, n0, n = _ToySetup(dataset="toy", profile="full"), _subset(60), 20, 3000
    logs, table = leb.lecture_table(setup, sub, cfg["sigmas"], n0, n, cfg["alpha"], "09_x", cfg["certify"])
    assert set(logs) == {(k, float(s)) for k in leb.LECTURE_KEYS for s in cfg["sigmas"]}
    assert all(_decision(p) and read_settings(p)["radii"] == leb.LECTURE_RADII for p in logs.values())
    spec = load_table_spec("09_x", "lecture_tables")
    assert spec["settings"]["certification"] == "decision" and spec["radii"] == leb.LECTURE_RADII
    accs = []
    for (k, s), p in logs.items():
        ref = lib.methods.certify_method(k, Gaussian(s), setup, sub, n0, n, cfg["alpha"], "09_x", progress=False)
        accs += _agrees(p, ref, leb.LECTURE_RADII)
    _nontrivial(accs)
    # what notebook 09 records: the decisions at the table radii (no curve between them), every log's mode
    m = leb.lecture_metrics(logs, cfg["curve_grid"])
    assert m["curve_grid"] == leb.LECTURE_RADII and set(m["certification"].values()) == {"decision"}
    # notebook 00 reads the same logs (one protocol), and finds the registered numbers
    same = T.same_protocol_table({label: [logs[(key, float(s))] for s in cfg["sigmas"]]
                                  for label, key in T.LECTURE_TABLE_METHODS.items()}, leb.LECTURE_RADII)
    for label, key in T.LECTURE_TABLE_METHODS.items():
        assert same.loc[label].tolist() == pytest.approx([100 * m["best_over_sigma"][key][f"{r:g}"]
                                                          for r in leb.LECTURE_RADII])


def test_notebook_09_lecture_table_stays_fixed_n_under_quick(tmp_roots, full, toy_methods):  # noqa: F811
    cfg = full("09", "quick")
    logs, _ = leb.lecture_table(_ToySetup(dataset="toy", profile="quick"), _subset(8), cfg["sigmas"], 10, 100,
                                cfg["alpha"], "09_x", cfg["certify"])
    assert not any(_decision(p) for p in logs.values())
    assert load_table_spec("09_x", "lecture_tables")["settings"]["certification"] == "fixed"


# ---------------------------------------------------------------- the notebooks under smoke: fixed n, as before
@pytest.mark.notebook
def test_smoke_notebooks_record_fixed_n_tables(run_notebook):
    """What 04, 07 and 09 record of their tables' certification under `smoke` (fixed n; 04's g[π] sequential)."""
    m04 = run_notebook("04_empirical_bayes_linear_mnist")
    assert set(m04["certification"].values()) == {"fixed"}
    assert {v for k, v in m04["samplers"].items() if k.startswith("empirical_bayes/")} == {"sequential"}
    m07 = run_notebook("07_ablations")
    assert set(m07["d1"]["certification"].values()) == {"fixed"}
    assert all(modes == ["fixed"] for modes in m07["d2"]["certification"].values())
    m09 = run_notebook("09_learned_empirical_bayes")
    assert set(m09["lecture"]["certification"].values()) == {"fixed"}
