"""Findings say what the papers say and what the numbers show.

* Published numbers carry their paper, place and setting; quotations carry their place.
* Table cells round intervals outward; rows are tested against each other only where they share
  test points, n and alpha.
* Source notebooks 02-10 state no outcome in their markdown (no literal seconds, counts or verdicts):
  outcomes are printed by code from the numbers.
* Each notebook's executed smoke copy prints findings that agree with the metrics it recorded.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lib.profiles
from lib.reporting import PAPERS, PUBLISHED, QUOTES, published_rows, quote, results_markdown, table_finding
from lib.reporting.tables import interval_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if "02" <= p.name[:2] <= "10")


# ====================================================================== published numbers and quotations
def test_every_published_table_carries_its_paper_place_and_setting():
    for key, t in PUBLISHED.items():
        assert t["paper"] in PAPERS and t["place"], key
        assert re.search(r"Table \d", t["place"]), key  # printed in a table of the paper
        for field in ("data", "model", "n", "alpha"):
            assert field in t["settings"], (key, field)
        assert all(len(v) == len(t["radii"]) for v in t["rows"].values()), key
        for field in ("data", "model", "n", "alpha"):
            assert f"{field}=" in t["source"], (key, field)
        assert "issue" not in t["source"] and "seed" not in t["source"], key


def test_no_published_row_without_a_printed_source():
    """Rows that no paper prints (e.g. numbers quoted from elsewhere) are not kept."""
    assert not any("yang" in k.lower() for k in PUBLISHED)
    rows, source = published_rows(*PUBLISHED)
    assert len(rows) == sum(len(t["rows"]) for t in PUBLISHED.values())
    assert "not in the" not in source
    with pytest.raises(ValueError, match="published table"):
        published_rows("yang_l1")


def test_quotations_have_a_place_and_are_printed_with_it():
    for key, q in QUOTES.items():
        text = quote(key)
        assert q["place"] in text and PAPERS[q["paper"]] in text and q["text"].rstrip(".") in text, key
    assert "0.25 or 0.5" in QUOTES["rejection_experiments"]["text"]
    assert "medium and large" in QUOTES["rejection_abstract"]["text"]
    with pytest.raises(ValueError, match="quotation"):
        quote("no such quotation")


def test_results_header_gives_each_reference_its_own_setting():
    text, failed = results_markdown([])
    assert failed == []
    assert "CIFAR-10 / ImageNet, large networks" not in text
    for t in PUBLISHED.values():
        assert t["source"] in text


# ====================================================================== table cells and comparisons
@pytest.mark.parametrize("acc,lo,hi", [(0.007, 0.006, 0.014), (0.5, 0.4049, 0.5951), (0.0, 0.0, 0.0123),
                                       (1.0, 0.9876, 1.0), (0.333, 0.3305, 0.3349)])
def test_interval_cells_round_outward(acc, lo, hi):
    cell = interval_cell(acc, lo, hi)
    est, a, b = map(float, re.match(r"([\d.]+) \[(\d+), (\d+)\]", cell).groups())
    assert a <= 100 * lo + 1e-9 and b >= 100 * hi - 1e-9, cell
    assert a <= est <= b, cell
    assert cell != "0.7 [1, 1]"


def test_interval_cells_contain_the_estimate_at_random():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        lo, acc, hi = np.sort(rng.uniform(0, 1, 3))
        est, a, b = map(float, re.match(r"([\d.]+) \[(\d+), (\d+)\]", interval_cell(acc, lo, hi)).groups())
        assert a <= est <= b


def _log(folder: Path, name: str, idx, correct, radius, n: int, alpha: float, sigma: float | None = None) -> str:
    path = folder / f"{name}.tsv"
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    lines += [f"{i}\t0\t{0 if c else 1}\t{r:.4f}\t{int(c)}\t0:00:00.01" for i, c, r in zip(idx, correct, radius)]
    path.write_text("\n".join(lines) + "\n")
    from lib.smoothing.logs import sidecar_path
    settings = {"n": n, "alpha": alpha, **({"noise": "gaussian", "sigma": sigma} if sigma else {})}
    sidecar_path(path).write_text(json.dumps(settings))
    return str(path)


def test_rows_on_other_points_are_not_tested_against_each_other(tmp_path):
    """Two rows far apart but on different test points: the finding lists each row's setting and names no
    separated winner; the same rows on shared points, n and alpha get McNemar's test."""
    m = 60
    a = _log(tmp_path, "a", range(m), [True] * m, [1.0] * m, 1000, 0.001)
    b_other = _log(tmp_path, "b_other", range(1000, 1000 + m), [False] * m, [0.0] * m, 4000, 0.001)
    b_same = _log(tmp_path, "b_same", range(m), [False] * m, [0.0] * m, 1000, 0.001)
    spec = {"rows": {"A": [a], "B": [b_other]}, "radii": [0.5], "settings": {}, "clean": True}
    text = table_finding(spec)
    assert "no other row is on the winner's test points, n and alpha: no test" in text
    assert "Rows differ in their settings" in text
    assert "Ours: best" not in text and "not a ranking" in text
    assert "60 points, n=1,000" in text and "n=4,000" in text
    spec_same = {"rows": {"A": [a], "B": [b_same]}, "radii": [0.5], "settings": {}, "clean": True}
    text_same = table_finding(spec_same)
    assert "no other row is on the winner's" not in text_same and "Rows differ" not in text_same
    # with a third row on other points, the winner is still tested against the row on its own points
    spec3 = {"rows": {"A": [a], "B": [b_same], "C": [b_other]}, "radii": [0.5], "settings": {}, "clean": True}
    text3 = table_finding(spec3)
    assert "no other row is on the winner's" not in text3 and "not separated" not in text3
    assert "not separated" not in text_same  # 60 discordant pairs: McNemar resolves them


def test_a_radius_out_of_reach_is_named_with_its_cap(tmp_path):
    """n = 4,000, alpha = 0.001, sigma = 0.6: the largest radius CERTIFY can return is
    0.6 * Phi^-1(0.001^(1/4000)) = 1.75, so r = 2 is out of reach for that row and only for it."""
    from scipy.stats import norm

    m = 20
    small = _log(tmp_path, "small", range(m), [True] * m, [1.0] * m, 4000, 0.001, sigma=0.6)
    large = _log(tmp_path, "large", range(m), [True] * m, [1.0] * m, 100_000, 0.001, sigma=0.6)
    spec = {"rows": {"S": [small], "L": [large]}, "radii": [1.0, 2.0], "settings": {}, "clean": True}
    cap = 0.6 * norm.ppf(0.001 ** (1 / 4000))
    text = table_finding(spec)
    assert f"S cannot certify r=2 (largest radius at its n and alpha: {cap:.2f})" in text
    assert "L cannot" not in text and "r=1," not in text
    spec_ok = {"rows": {"L": [large]}, "radii": [1.0, 2.0], "settings": {}, "clean": True}
    assert "Out of reach" not in table_finding(spec_ok)


def test_rejection_claim_is_checked_where_each_statement_places_it():
    from lib.experiments.rejection import claim_check

    rows = []
    for s, g, p in [(0.25, 6.0, 0.01), (0.5, 2.0, 0.3), (1.0, 9.0, 0.001)]:
        rows.append({"denoiser": "MSE denoiser", "sigma": s, "r=0: gain (pts)": g, "r=0: McNemar p": p,
                     "r=0.25: gain (pts)": g / 2, "r=0.25: McNemar p": p, "ACR gain": 0.0, "verdict": "not resolved"})
    text = claim_check(pd.DataFrame(rows))
    assert quote("rejection_experiments") in text and quote("rejection_abstract") in text
    assert "resolved clean-accuracy gain at 1 of 2" in text  # sigma 0.25 resolved, 0.5 not
    # sigma 1 has the largest gain; an ordering of point estimates is said to be one, never "as §6.3 says"
    assert "not below the point estimates at 0.25/0.5; an ordering of point estimates, not tested" in text
    assert "as §6.3 says" not in text
    # abstract: only sigma 1's point estimate beats the smallest sigma's; resolved gains counted apart
    assert "a larger point estimate at 1 of 2 (an ordering not tested), a gain resolved above 0 at 1 of 2" in text


def test_budget_checks_run_where_the_papers_place_the_claims():
    from lib.experiments.budget import CONTRADICTIONS, claim_text

    assert "our comparison" in claim_text("multi_vs_one_step") and "Lee's claim" not in claim_text("multi_vs_one_step")
    assert quote("lee_d1") in claim_text("d1_multiscale")
    assert lib.profiles.get("07", "quick")["budget"]["contradictions"]["d1_multiscale"]["sigmas"] == [1.0]
    for p in ("smoke", "quick"):
        b = lib.profiles.get("08", p)["budget"]
        assert b["sigma"] in (0.25, 0.5) and b["radius"] == 0.0 and b["sigma"] in lib.profiles.get("08", p)["sigmas"]
    assert set(CONTRADICTIONS) == set(lib.profiles.get("07", "quick")["budget"]["contradictions"])


# ====================================================================== no hard-coded outcome in the sources
#: what an outcome written by hand looks like in a markdown cell
OUTCOME_PATTERNS = {
    "seconds": r"\b\d[\d,.]*\s?(?:s|CPU-s|seconds?|min|minutes)\b(?![-\w])",
    "a rate": r"~\s?\d[\d.]*k?\b[^.\n]{0,40}\bper\b",
    "a count of methods": r"\b(?:for (?:two|\d+)|three|four|five|six|seven|eight|nine)\s+methods\b",
    "a per-10k count": r"\b\d+\s+(?:of|per)\s+10\s?(?:k|000|\{,\}000)",
    "a verdict": (r"\b(?:contradicts?|contradicted|agrees? with|is better than|are better than|chosen in section|"
                  r"well below|finds? (?:the|that|certified)|is not reproduced|NOT reproduced|most at large|"
                  r"so one sees|what \*?learning\*? buys|of increasing clean)\b|\bfinds? [^.\n]{0,40}\bbetter\b"),
    "a count of steps": r"\ba few (?:hundred|thousand) (?:iterations|steps)\b",
    "one setting for every published row": r"obtained on CIFAR-10 or ImageNet|CIFAR-10 / ImageNet, large networks",
    "a seed path": r"shared/seed[s]|`00[0-4]_",
}


def markdown_outcomes(nb: dict) -> list[tuple[int, str, str]]:
    """(cell, kind, text) of every hand-written outcome in the markdown cells of a notebook."""
    out = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "markdown":
            continue
        text = "".join(c["source"])
        for kind, pat in OUTCOME_PATTERNS.items():
            out += [(i, kind, m.group(0)) for m in re.finditer(pat, text)]
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_source_markdown_states_no_outcome(path):
    found = markdown_outcomes(json.loads(path.read_text()))
    assert not found, f"{path.name}: hand-written outcomes in markdown cells: {found}"


def test_the_outcome_check_catches_hand_written_outcomes():
    """Negative controls: sentences of the kind the check exists for are caught."""
    for bad in ["the MLP + conv network was chosen in section 2", "at 90 s per variant",
                "the DEEN's gradient costs ~3k noisy samples per CPU-second", "for five methods",
                "1 of 200 points = 50 per 10k (paper: 26 of 10k)", "Lee reports the multi-scale one better; "
                "this contradicts the paper", "so one sees what *learning* buys", "`000_…`",
                "Yang et al. find uniform smoothing better than Laplace", "for a few thousand iterations"]:
        assert markdown_outcomes({"cells": [{"cell_type": "markdown", "source": [bad]}]}), bad
    for fine in ["Lee's Algorithm 1 runs $T$ gradient steps", "σ = 0.5 under `quick`", "$n = 10{,}000$",
                 "the finding printed below says whether it holds"]:
        assert not markdown_outcomes({"cells": [{"cell_type": "markdown", "source": [fine]}]}), fine


# ====================================================================== executed smoke copies
def _stdout(path: Path) -> str:
    nb = json.loads(Path(path).read_text())
    text = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                text.append("".join(o["text"]))
            elif "data" in o and "text/plain" in o["data"]:
                text.append("".join(o["data"]["text/plain"]))
            elif "data" in o and "text/markdown" in o["data"]:
                text.append("".join(o["data"]["text/markdown"]))
    return "\n".join(text)


def _metrics(notebook_outputs: Path, name: str) -> dict:
    return json.loads((notebook_outputs / "outputs" / "metrics" / f"{name.split('_')[0]}_metrics.json").read_text())


@pytest.mark.notebook
def test_02_names_the_architecture_the_rule_chose(executed_notebook, notebook_outputs):
    out = _stdout(executed_notebook("02_score_training", seed=0, dataset="mnist"))
    m = _metrics(notebook_outputs, "02_score_training")
    chosen = re.search(r"Rule's choice: (.+?) \(mean ratio", out).group(1)
    assert chosen == m["arch_choice"]
    assert "chosen in section 2" not in out
    ratios = m["arch_mean_ratio"]
    assert f"mean ratio {ratios[chosen]:.3f}" in out
    # the largest ratio printed for each network is the largest of its recorded per-sigma ratios
    for name, row in m["per_sigma_ratio"].items():
        assert f"{name}: largest ratio {max(row.values()):.3f}" in out, name


@pytest.mark.notebook
def test_04_prints_the_recipe_rule_and_the_figure_4_count_with_its_interval(executed_notebook):
    out = _stdout(executed_notebook("04_empirical_bayes_linear_mnist"))
    assert "Closest to it: " in out and "~3k" not in out
    k, m, per, lo, hi = map(int, re.search(r"on (\d+) of (\d+) points on the grid .*? = (\d+) per 10k, 95% "
                                           r"Clopper-Pearson interval \[(\d+), (\d+)\]", out).groups())
    assert per == round(10_000 * k / m) and lo <= per <= hi
    assert ("inside our interval" in out) == (lo <= 26 <= hi)


@pytest.mark.notebook
def test_05_names_no_count_of_methods_and_quotes_lee(executed_notebook, notebook_outputs):
    out = _stdout(executed_notebook("05_denoised_smoothing_l2"))
    cfg = lib.profiles.get("05", "smoke")
    assert quote("lee_tables") in out
    spec = json.loads((notebook_outputs / "outputs" / "tables" / "05_table1.json").read_text())
    assert len(spec["rows"]) == len(cfg["methods"])  # every certified method is in the table


@pytest.mark.notebook
def test_06_has_no_unsourced_rows_and_uses_lees_n(executed_notebook, notebook_outputs):
    out = _stdout(executed_notebook("06_denoised_smoothing_l1"))
    spec = json.loads((notebook_outputs / "outputs" / "tables" / "06_table_l1.json").read_text())
    assert spec["reference"] == {}
    assert "n=100,000" not in out and quote("lee_white_box") in out


@pytest.mark.notebook
def test_07_findings_follow_the_recorded_numbers(executed_notebook, notebook_outputs):
    out = _stdout(executed_notebook("07_ablations"))
    m = _metrics(notebook_outputs, "07_ablations")
    d2 = m["d2"]
    order = " < ".join(d2["order"])
    assert f"orders the classifiers {order} (measured)" in out
    verdicts = [row["verdict"] for row in d2["paired"]]  # the D.2 verdict is counted from the recorded tests
    assert d2["paired"] and all(0 <= row["Holm p"] <= 1 for row in d2["paired"])
    assert (f"({len(verdicts)} tests, Holm-adjusted, family-wise 0.05): the more accurate certifies more in "
            f"{verdicts.count('more accurate certifies more')}, less in "
            f"{verdicts.count('more accurate certifies less')}") in out
    accs = d2["test_accuracy"]
    assert [accs[a] for a in d2["order"]] == sorted(accs.values())
    assert "Lee's claim: the multi-step" not in out and "our comparison" in out
    assert quote("lee_d1") in out
    for name, r in m["budget"].items():
        if not isinstance(r, dict) or "comparison" not in r:
            continue
        for c in r["comparison"]:
            assert c["verdict"] in out, name
            if c["verdict"] == "claim not met at our budget, gap shrinks with budget":
                assert c["change"]["lo"] > 0


@pytest.mark.notebook
def test_08_checks_both_statements_where_they_are_placed(executed_notebook, notebook_outputs):
    out = _stdout(executed_notebook("08_sample_rejection"))
    m = _metrics(notebook_outputs, "08_sample_rejection")
    cfg = lib.profiles.get("08", "smoke")
    assert quote("rejection_experiments") in out and quote("rejection_abstract") in out
    assert "most at large" not in out
    b = cfg["budget"]
    assert m["budget"]["case"]["sigma"] == b["sigma"] and m["budget"]["case"]["radius"] == 0.0
    assert f"checked where the paper places the gain, sigma={b['sigma']:g} and radius 0" in out
    for ds, rows in m["gains"].items():  # the paired clean-accuracy gain printed is the recorded one
        for row in rows:
            if row["sigma"] in (0.25, 0.5):
                assert f"sigma={row['sigma']:g}: r=0 {row['r=0: gain (pts)']:+.1f} pts" in out, (ds, row)


@pytest.mark.notebook
def test_09_tests_rows_only_on_shared_settings(executed_notebook):
    out = _stdout(executed_notebook("09_learned_empirical_bayes"))
    assert quote("saremi_table2") in out
    assert not re.search(r"\b93 s\b", out)


def test_the_cost_of_two_bounds_is_printed_from_n_and_alpha():
    """Notebook 08's prose no longer states 1.70σ -> 1.63σ by hand: the sentence is computed from n and alpha."""
    from scipy.stats import norm

    from lib.experiments import two_bound_cost

    text = two_bound_cost(100, 0.01)
    one, two = norm.ppf(0.01 ** (1 / 100)), norm.ppf(0.005 ** (1 / 100))
    assert f"n = 100: {one:.2f}σ" in text and f"against {two:.2f}σ" in text and "n = 10,000" in text
    assert two_bound_cost(10_000, 0.01).count("n = 10,000") == 1


def test_radius_caps_and_the_columns_beyond_them():
    """Notebook 06's cap line: Gaussian sigma=0.25 with n=200, alpha=0.001 caps at 0.25 Phi^-1(0.001^(1/200)); radii
    beyond every cap are named, with the cap Lee's n and alpha would give."""
    from scipy.stats import norm

    from lib.reporting import caps_line, radius_caps

    caps = radius_caps({"gaussian": "G"}, [0.25], 200, 0.001)
    assert caps == {"G, σ=0.25": round(0.25 * norm.ppf(0.001 ** (1 / 200)), 2)}
    text = caps_line({"gaussian": "G"}, [0.25], [0.25, 0.5, 1.0], 200, 0.001, {"n": 10_000, "alpha": 0.001}, "Lee")
    ref = 0.25 * norm.ppf(0.001 ** (1 / 10_000))
    assert "radii [0.5, 1.0] are beyond every cap" in text and f"the largest cap here would be {ref:.2f}" in text
    assert "beyond" not in caps_line({"gaussian": "G"}, [0.25], [0.25], 200, 0.001, {"n": 10_000, "alpha": 0.001}, "Lee")
