"""Gaps between two methods that a run resolves against a claim, rerun at larger training budgets.

Three comparisons: (i) the multi-step denoiser against the one-step one from the same multi-scale score
network (our comparison: Lee compares each of them with other methods, never the two with each other);
(ii) D.1: the one-step denoiser from the multi-scale network against one from a single-sigma network
(Lee, appendix D.1, Figure 2), at the sigma where our quick run resolves the difference; (iii) uniform
(l1) smoothing with the multi-step denoiser against white-box smoothing (Lee, Figure 1 c, f). Each is
rerun with the score networks trained for ``k`` times the steps of the family ``score`` (``budget=k``,
through ``Setup.score``: a different cache key per budget), on the same test points, n0, n and alpha, so
the ``x1`` runs are notebooks 05/06's logs and each larger budget adds only the runs whose models change
(white-box classifiers do not depend on the score network: their log is the same at every budget). The
gap A - B at each budget, its change and the verdict are computed from the logs
(:mod:`lib.reporting.budget`) and registered as one table per comparison, whose ``RESULTS.md`` finding
line is the verdict; what the paper says is quoted with its place (:data:`lib.reporting.QUOTES`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from lib.methods import certify_grid, method_label, table_settings, test_subset
from lib.reporting import budget_comparison, load_table_spec, quote, register_table, table_finding
from lib.smoothing.logs import read_settings

__all__ = ["CONTRADICTIONS", "claim_text", "budget_setup", "budget_runs", "budget_table", "budget_figure", "budget_findings",
           "budget_metrics"]

#: the comparisons rerun against the budget, under ``noise``: "A better than B" or "A at least as good as B"
#: (``kind``: :data:`lib.reporting.budget.CLAIMS`; a "better" claim does not hold when A is not resolved
#: better). ``claim``: what is compared, with the paper's words (``quote``, :data:`lib.reporting.QUOTES`)
#: where the paper makes the claim, or marked as ours where it does not.
CONTRADICTIONS = {
    "multi_vs_one_step": {
        "a": "multi_step", "b": "one_step", "noise": "gaussian", "kind": "at least as good",
        "title": "multi-step vs one-step denoiser (same multi-scale score network; our comparison)",
        "claim": "our comparison, not a claim of Lee's: Lee compares the one-step denoiser with white-box and "
                 "Salman et al.'s denoisers (Tables 1-2) and the multi-step one with white-box (Figure 1), never "
                 "the two with each other", "quote": None},
    "d1_multiscale": {
        "a": "one_step", "b": "one_step_single", "noise": "gaussian", "kind": "better",
        "title": "Lee D.1: multi-scale vs single-σ score network (one-step denoiser)",
        "claim": "Lee's D.1", "quote": "lee_d1"},
    "uniform_l1": {
        "a": "multi_step", "b": "white_box", "noise": "uniform", "kind": "at least as good",
        "title": "uniform (ℓ1) smoothing: multi-step denoiser vs white-box",
        "claim": "Lee's Figure 1 c, f (the white-box classifier does not depend on the score network's budget)",
        "quote": "lee_white_box"},
}


def claim_text(name: str) -> str:
    """What comparison ``name`` of :data:`CONTRADICTIONS` tests: the quotation with its place, or "our comparison"."""
    spec = CONTRADICTIONS[name]
    return spec["claim"] + (f"; {quote(spec['quote'])}" if spec.get("quote") else "")


def budget_setup(setup, k: float):
    """``setup`` with its score networks trained for ``k`` times the profile's steps (``k == 1``: itself)."""
    if not k > 0:
        raise ValueError(f"budget multiplier must be positive, got {k!r}")
    return setup if float(k) == 1.0 else setup.replace(score={**setup.score, "budget": float(k)})


def _steps(log) -> int | None:
    """Training steps of the score network behind a log (None: no score network, e.g. white-box)."""
    den = (read_settings(log).get("models") or {}).get("denoiser") or {}
    return (den.get("score") or {}).get("iters")


def budget_runs(setup, b: Mapping, profile: str, model_note: str, notebook: str) -> dict:
    """Certify A and B of every claim of ``b["contradictions"]`` at its sigmas, at every budget of
    ``b["multipliers"]``, on the same ``b["num_points"]`` test points; register one table per claim
    (finding: the verdict, :func:`lib.reporting.budget_finding`).

    Returns {claim: {"runs": [{"sigma", "budget", "iters", "a", "b"}], "comparison"
    (:func:`lib.reporting.budget_comparison`), "radius", "stem"}}."""
    mult = [float(k) for k in b["multipliers"]]
    if len(mult) < 2 or mult[0] != 1.0 or mult != sorted(set(mult)):
        raise ValueError(f"multipliers must start at 1 and increase (at least two), got {b['multipliers']}")
    sub = test_subset(setup.dataset, b["num_points"])
    out = {}
    for name, c in b["contradictions"].items():
        if name not in CONTRADICTIONS:
            raise ValueError(f"contradiction must be one of {sorted(CONTRADICTIONS)}, got {name!r}")
        spec = CONTRADICTIONS[name]
        runs, rows = [], {}
        for k in mult:
            logs = certify_grid([spec["a"], spec["b"]], spec["noise"], c["sigmas"], budget_setup(setup, k), sub,
                                b["n0"], b["n"], b["alpha"], notebook)
            for s in c["sigmas"]:
                a, o = logs[(spec["a"], float(s))], logs[(spec["b"], float(s))]
                steps = [x for x in (_steps(a), _steps(o)) if x]
                runs.append({"sigma": float(s), "budget": k, "a": str(a), "b": str(o),
                             "iters": " / ".join(f"{x:,}" for x in steps) + " steps" if steps else ""})
                rows[f"A = {method_label(spec['a'])}, σ={s:g}, ×{k:g} ({_steps(a) or '-'} steps)"] = [a]
                rows[f"B = {method_label(spec['b'])}, σ={s:g}, ×{k:g} ({_steps(o) or 'no score net'}"
                     f"{' steps' if _steps(o) else ''})"] = [o]
        finding = {"kind": "budget", "a": method_label(spec["a"]), "b": method_label(spec["b"]),
                   "claim": claim_text(name), "kind_of_claim": spec["kind"], "radius": float(c["radius"]), "runs": runs}
        stem = f"budget_{name}"
        register_table(notebook, stem, rows, b["radii"],
                       title=f"Against the training budget: {spec['title']} ({setup.dataset}, {spec['noise']} noise)",
                       settings=table_settings(sub, profile, model_note, c["sigmas"], b["n0"], b["n"], b["alpha"],
                                               budgets=[f"×{k:g}" for k in mult], noise=spec["noise"]),
                       reference_source=("none: not a comparison Lee makes" if spec.get("quote") is None
                                         else "none in numbers: Lee shows D.1 and Figure 1 as curves only"),
                       finding=finding)
        out[name] = {"runs": runs, "comparison": budget_comparison(runs, float(c["radius"]), claim=spec["kind"]),
                     "radius": float(c["radius"]), "stem": stem, "points": len(sub)}
    return out


def budget_table(res: Mapping) -> pd.DataFrame:
    """One row per (claim, sigma, budget): steps, ACR A - B with its 95% paired t interval, the
    certified-accuracy difference at the claim's radius with McNemar's p, and the claim's verdict."""
    rows = []
    for name, r in res.items():
        iters = {(x["sigma"], x["budget"]): x["iters"] for x in r["runs"]}
        for c in r["comparison"]:
            for b in c["budgets"]:
                acr, at = b["acr"], b["at_radius"]
                rows.append({"claim": name, "σ": c["sigma"], "budget": f"×{b['budget']:g}",
                             "score steps (A / B)": iters[(c["sigma"], b["budget"])],
                             "ACR A−B": round(acr["diff"], 3), "95% CI": f"[{acr['lo']:+.3f}, {acr['hi']:+.3f}]",
                             "cert. acc. A−B at r (pts)": round(100 * at["diff"], 1), "r": r["radius"],
                             "McNemar p": round(at["p"], 4), "verdict": c["verdict"]})
    return pd.DataFrame(rows).set_index(["claim", "σ", "budget"])


def budget_figure(res: Mapping):
    """ACR A - B with its 95% paired t interval against the budget multiplier, one panel per claim."""
    fig, axes = plt.subplots(1, len(res), figsize=(5.5 * len(res), 4.5), squeeze=False, layout="constrained")
    for ax, (name, r) in zip(axes[0], res.items()):
        for c in r["comparison"]:
            ks = [b["budget"] for b in c["budgets"]]
            d = [b["acr"]["diff"] for b in c["budgets"]]
            err = [[x - b["acr"]["lo"] for x, b in zip(d, c["budgets"])],
                   [b["acr"]["hi"] - x for x, b in zip(d, c["budgets"])]]
            ax.errorbar(ks, d, yerr=err, marker="o", capsize=4, label=f"σ = {c['sigma']:g}")
        ax.axhline(0.0, color="k", lw=1, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks([b["budget"] for b in r["comparison"][0]["budgets"]],
                      [f"×{b['budget']:g}" for b in r["comparison"][0]["budgets"]])
        spec = CONTRADICTIONS[name]
        ax.set(xlabel="score network's training steps (× the profile's)", ylabel="ACR A − B (95% paired t CI)")
        ax.set_title(f"A: {method_label(spec['a'])}\nB: {method_label(spec['b'])} ({spec['noise']} noise)", fontsize=10)
        ax.legend(fontsize=9)
    fig.suptitle("Against the training budget: A − B per comparison (above 0: A better than B)")
    return fig


def budget_findings(res: Mapping, notebook: str) -> list[str]:
    """The finding lines of ``RESULTS.md`` for the budget tables (rebuilt from their registered specs)."""
    return [f"Budget, {name}: " + table_finding(load_table_spec(notebook, r["stem"])) for name, r in res.items()]


def budget_metrics(res: Mapping, b: Mapping) -> dict:
    """The numbers notebook 07 records for its smoke test (``record_metrics(notebook, budget=...)``)."""
    return {"multipliers": [float(k) for k in b["multipliers"]], "n": b["n"], "n0": b["n0"], "alpha": b["alpha"],
            **{name: {"radius": r["radius"], "kind": CONTRADICTIONS[name]["kind"], "points": r["points"],
                      "sigmas": sorted({x["sigma"] for x in r["runs"]}),
                      "runs": [{"sigma": x["sigma"], "budget": x["budget"], "iters": x["iters"],
                                "a": Path(x["a"]).name, "b": Path(x["b"]).name} for x in r["runs"]],
                      "comparison": r["comparison"]} for name, r in res.items()}}
