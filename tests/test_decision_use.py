"""Decision-mode certification where the notebooks use it: the certification mode of a run (its own log,
never read as a fixed-n one), the profiles' choice (decision mode for the tables under `full`, curves
fixed-n), and notebook 07's comparison against its logs."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import lib.methods
from lib import profiles, utils
from lib.experiments import procedures as pr
from lib.methods import CERTIFY_MODES
from lib.reporting import read_log
from lib.smoothing import Gaussian, read_settings

from conftest import ROOT
from test_experiments import _subset, _ToySetup, tmp_roots  # noqa: F401  (tmp_roots: a fixture)

RADII = [0.1, 0.25, 0.5]


def test_decision_mode_has_its_own_log(tmp_roots):  # noqa: F811
    setup = _ToySetup(dataset="toy", profile="smoke")
    sub = _subset(8)
    fixed = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 400, 0.01, "05_x", progress=False)
    dec = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 400, 0.01, "05_x", progress=False,
                            mode="decision", radii=RADII)
    assert dec != fixed and "decision" in dec.name
    assert lib.methods.certification_mode(dec) == "decision" and lib.methods.certification_mode(fixed) == "fixed"
    assert read_settings(dec)["radii"] == RADII
    df = read_log(dec)
    assert set(df["radius"]) <= {0.0, *RADII}  # the largest certified table radius
    assert df["samples"].max() <= 10 + 400 and df["samples"].min() >= 1
    # other table radii: another log, not a mismatch with this one
    other = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 400, 0.01, "05_x", progress=False,
                              mode="decision", radii=[0.3])
    assert other not in (dec, fixed)


def test_certify_tables_reuses_fixed_logs_only_in_fixed_mode(tmp_roots):  # noqa: F811
    setup = _ToySetup(dataset="toy", profile="smoke")
    sub = _subset(6)
    fixed = lib.methods.certify_grid(["none"], "gaussian", [0.25], setup, sub, 10, 200, 0.01, "05_x", verbose=False)
    same = lib.methods.certify_tables(["none"], "gaussian", [0.25], setup, sub, 10, 200, 0.01, "05_x", RADII, "fixed",
                             fixed_logs=fixed)
    assert same == fixed
    dec = lib.methods.certify_tables(["none"], "gaussian", [0.25], setup, sub, 10, 200, 0.01, "05_x", RADII, "decision",
                            fixed_logs=fixed, verbose=False)
    assert set(dec) == set(fixed) and all(lib.methods.certification_mode(p) == "decision" for p in dec.values())
    # fixed-n logs of other points are not the table's: the table's points are certified
    other = lib.methods.certify_tables(["none"], "gaussian", [0.25], setup, _subset(4), 10, 200, 0.01, "05_x", RADII,
                              "fixed", fixed_logs=fixed, verbose=False)
    assert other != fixed and len(read_log(other[("none", 0.25)])) == 4
    table, line = pr.decision_vs_fixed(fixed, dec, RADII)
    want = (10 + 200) / read_log(dec[("none", 0.25)])["samples"].mean()  # fixed n: n0 + n per point
    assert len(table) == 1 and table["ratio"].iloc[0] == pytest.approx(want, abs=0.01)
    assert f"{want:.2f}x fewer" in line


def test_bad_mode(tmp_roots):  # noqa: F811
    setup = _ToySetup(dataset="toy", profile="smoke")
    sub = _subset(2)
    with pytest.raises(ValueError, match="mode must be one of"):
        lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", mode="sequential")
    with pytest.raises(ValueError, match="radii"):
        lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", mode="decision")
    with pytest.raises(ValueError, match="procedure"):
        lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", mode="decision",
                          radii=RADII, procedure=pr.two_sided_procedure)
    with pytest.raises(ValueError, match="no run"):
        pr.decision_vs_fixed({}, {}, RADII)


# ---------------------------------------------------------------- the profiles and the notebooks
TABLE_NOTEBOOKS = ["05", "06", "08", "09"]


def _cells(nb: str) -> list[str]:
    path = next((ROOT / "notebooks").glob(f"{nb}_*.ipynb"))
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("tiny", [False, True])
def test_full_certifies_tables_in_decision_mode(tiny, monkeypatch):
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.setenv(profiles.TINY_ENV, "1" if tiny else "0")
    for nb in TABLE_NOTEBOOKS:
        assert profiles.get(nb, "full")["certify"] == "decision", nb
        for p in ("smoke", "quick"):
            cfg = profiles.get(nb, p)
            assert cfg["certify"] in CERTIFY_MODES, (nb, p)
            if cfg["certify"] == "fixed":  # one fixed-n run serves the curves and the tables
                assert cfg["curve_points"] == cfg["num_points"], (nb, p)


@pytest.mark.parametrize("nb", TABLE_NOTEBOOKS)
def test_notebook_tables_read_table_logs_and_curves_fixed_logs(nb):
    """Every registered table of the notebook's main runs reads ``table_logs``; every curve figure reads
    the fixed-n ``logs`` (never ``table_logs``, whose radius is a table radius)."""
    cells = _cells(nb)
    assert any("lib.methods.certify_tables(" in c and 'cfg["certify"]' in c for c in cells), nb
    curves = [c for c in cells if re.search(r"certified_curves_figure|plot_certified_curves|accuracy_curve", c)]
    assert curves and not any("table_logs" in c for c in curves), nb
    tables = [c for c in cells if "register_table(" in c]
    assert tables and all("table_logs" in c for c in tables), nb
    assert any("decision_ratio(" in c for c in cells), nb


# ---------------------------------------------------------------- notebook 07, executed under smoke
def _accuracy(cell: str) -> float:
    return float(str(cell).split()[0])


@pytest.mark.notebook
def test_notebook_07_decision_numbers_agree_with_logs(run_notebook, notebook_outputs):
    m = run_notebook("07_ablations")
    logs = sorted((notebook_outputs / "outputs" / "logs" / "07_ablations").glob("*decision*.tsv"))
    seq = m["sequential"]
    assert len(logs) == len(seq) and len(seq) >= 2
    means = sorted(round(float(read_log(p)["samples"].mean()), 1) for p in logs)
    rows = [run["table"][pr.DECISION_LABEL] for run in seq.values()]
    assert sorted(r["samples/point"] for r in rows) == means
    for name, run in seq.items():
        row = run["table"][pr.DECISION_LABEL]
        log = next(p for p in logs if round(float(read_log(p)["samples"].mean()), 1) == row["samples/point"])
        df = read_log(log)
        for r in read_settings(log)["radii"]:
            got = _accuracy(row[f"r={r:g}"])
            want = 100 * float(((df["radius"] >= r) & (df["correct"] == 1)).mean())
            assert got == pytest.approx(want, abs=0.051), (name, r)
        assert run["ratio"][pr.DECISION_LABEL] == pytest.approx(
            run["table"]["fixed n"]["samples/point"] / row["samples/point"], abs=0.006), name
        assert row["ACR"] is None or np.isnan(row["ACR"]), name  # a table radius is no radius estimate
