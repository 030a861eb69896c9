"""Does a gap between two methods shrink, hold or grow with the training budget? 

A *budget comparison* holds, for one claim of Lee's ("method A is at least as good as method B",
or "better than B") and one noise level sigma, the logs of A and B certified on the **same** test
points with models trained for several budgets (multipliers of the profile's training steps, the
first = 1, "our budget"). Everything is computed from the logs:

* at each budget, the paired ACR difference A - B (mean over points of radius*correct) with its 95%
  paired t interval (``scipy.stats.ttest_rel``), and the certified-accuracy difference at one radius
  with McNemar's exact test (statsmodels) of the paired certified / not-certified outcomes
  (:func:`lib.reporting.paired_difference`);
* the *change* of A - B from the first budget to the largest, per point
  ((A_K - B_K) - (A_1 - B_1), paired over the same points, ``ttest_rel``): does the gap move?
* a verdict, one of :data:`BUDGET_VERDICTS`. The claim is *not met* at a budget when the
  interval of A - B lies entirely below 0 for a claim "A at least as good as B" (``claim="at least as
  good"``: contradicted), or does not lie entirely above 0 for a claim "A better than B"
  (``claim="better"``: contradicted or not resolved). "claim not met at any budget tried": not met at
  every budget; "claim not met at our budget, gap shrinks with budget": not met at budget 1, met at the
  largest, and the per-point change of A - B from the smallest to the largest budget resolved above 0
  (its 95% interval); "claim not met at our budget, mixed at larger budgets": not met at budget 1 and
  neither of the two (e.g. met at the largest budget, but with no resolved change); "claim met at our
  budget": met at budget 1.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from lib.reporting.tables import paired_difference, paired_outcomes, paired_t

__all__ = ["BUDGET_VERDICTS", "CLAIMS", "budget_verdict", "budget_comparison", "budget_finding"]

BUDGET_VERDICTS = ("claim not met at any budget tried", "claim not met at our budget, gap shrinks with budget",
                   "claim not met at our budget, mixed at larger budgets", "claim met at our budget")


#: the two kinds of claim "A vs B" and when a budget's (A - B, lo, hi) contradicts them
CLAIMS = {"at least as good": lambda d, lo, hi: hi < 0, "better": lambda d, lo, hi: lo <= 0}
CLAIMS_TEXT = {"at least as good": "at least as good as", "better": "better than"}


def budget_verdict(diffs: Sequence[tuple[float, float, float]], claim: str = "at least as good",
                   change: Mapping | None = None) -> str:
    """The verdict (:data:`BUDGET_VERDICTS`) from (A - B, lo, hi) per budget, smallest budget first, for a
    claim "A at least as good as B" or "A better than B" (:data:`CLAIMS`). ``change``: the per-point
    change of A - B from the smallest budget to the largest ({diff, lo, hi}); "shrinks with budget" needs
    it resolved above 0 (without it, the point estimates decide)."""
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {sorted(CLAIMS)}, got {claim!r}")
    if len(diffs) < 2:
        raise ValueError(f"a budget comparison needs at least two budgets, got {len(diffs)}")
    contradicted = [CLAIMS[claim](*d) for d in diffs]
    if not contradicted[0]:
        return BUDGET_VERDICTS[3]
    if all(contradicted):
        return BUDGET_VERDICTS[0]
    rises = change["lo"] > 0 if change is not None else diffs[-1][0] > diffs[0][0]
    if not contradicted[-1] and rises:
        return BUDGET_VERDICTS[1]
    return BUDGET_VERDICTS[2]


def _change(base: tuple, top: tuple, alpha: float, radius: float | None = None) -> dict:
    """Per-point change of A - B (radius*correct, or certified at ``radius``) from the ``base`` (path A,
    path B) to the ``top`` budget, paired t."""
    a1, b1 = paired_outcomes(*base, radius)
    ak, bk = paired_outcomes(*top, radius)
    if len(a1) != len(ak):
        raise ValueError("the budgets of a comparison must be certified on the same test points")
    mean, lo, hi, _ = paired_t(ak - bk, a1 - b1, alpha)
    return {"diff": mean, "lo": lo, "hi": hi}


def budget_comparison(runs: Sequence[Mapping], radius: float, alpha: float = 0.05,
                      claim: str = "at least as good", metric: str = "acr") -> list[dict]:
    """Per sigma, the comparison of A and B over budgets.

    ``runs``: dicts {"sigma", "budget", "a": log of A, "b": log of B} (any order). Returns, per sigma
    (ascending), {"sigma", "budgets": [{"budget", "acr": {diff, lo, hi, p, verdict, points},
    "at_radius": {diff, p, verdict, lo, hi}}] (ascending budget), "change": {diff, lo, hi} (largest budget
    minus the smallest, of the metric the verdict reads), "verdict"}. Differences are A - B: ACR in radius units, certified
    accuracy as a fraction. ``metric``: what the verdict reads, "acr" (the ACR difference's paired t
    interval) or "radius" (for a claim made at one radius: the paired t interval of the certified /
    not-certified outcomes at ``radius``, McNemar's p beside it)."""
    if metric not in ("acr", "radius"):
        raise ValueError(f"metric must be 'acr' or 'radius', got {metric!r}")
    by_sigma: dict[float, list] = {}
    for r in runs:
        by_sigma.setdefault(float(r["sigma"]), []).append(r)
    out = []
    for s in sorted(by_sigma):
        rows = sorted(by_sigma[s], key=lambda r: float(r["budget"]))
        if len({float(r["budget"]) for r in rows}) != len(rows):
            raise ValueError(f"two runs at the same budget for sigma={s}")
        budgets = [{"budget": float(r["budget"]), "acr": paired_difference(r["a"], r["b"], alpha=alpha),
                    "at_radius": paired_difference(r["a"], r["b"], radius=radius, alpha=alpha)} for r in rows]
        for b, r in zip(budgets, rows):
            _, b["at_radius"]["lo"], b["at_radius"]["hi"], _ = paired_t(*paired_outcomes(r["a"], r["b"], radius), alpha)
        key = "acr" if metric == "acr" else "at_radius"
        change = _change((rows[0]["a"], rows[0]["b"]), (rows[-1]["a"], rows[-1]["b"]), alpha,
                         None if metric == "acr" else radius)
        verdict = budget_verdict([(b[key]["diff"], b[key]["lo"], b[key]["hi"]) for b in budgets], claim, change)
        out.append({"sigma": s, "budgets": budgets, "change": change, "verdict": verdict})
    return out


def _trend(change: Mapping) -> str:
    if change["lo"] > 0:
        return "A - B rises with budget (the gap shrinks or reverses)"
    if change["hi"] < 0:
        return "A - B falls with budget (the gap grows)"
    return "no resolved change with budget (the gap holds within sampling error)"


def budget_finding(spec: Mapping) -> str:
    """The finding line of a registered budget table: ``spec["finding"]`` = {"kind": "budget", "a", "b"
    (labels), "claim" (the question, with the paper's words quoted and placed, or marked as ours), "kind_of_claim" (:data:`CLAIMS`), "radius", "runs": [{"sigma", "budget",
    "iters", "a", "b"}], optional "budget_unit" (what ×k means; default: k times the score network's
    training steps)}; computed from the logs."""
    f = spec["finding"]
    kind = f.get("kind_of_claim", "at least as good")
    radius = float(f["radius"])
    metric = f.get("metric", "acr")
    iters = {(float(r["sigma"]), float(r["budget"])): r.get("iters") for r in f["runs"]}
    parts, comparisons = [], budget_comparison(f["runs"], radius, claim=kind, metric=metric)
    for c in comparisons:
        s = c["sigma"]
        steps = []
        for b in c["budgets"]:
            acr, at_r = b["acr"], b["at_radius"]
            it = iters.get((s, b["budget"]))
            at_text = f"at r={radius:g} {100 * at_r['diff']:+.1f} pts"
            if metric == "radius":
                at_text += f" [{100 * at_r['lo']:+.1f}, {100 * at_r['hi']:+.1f}]"
            steps.append(f"×{b['budget']:g}{f' ({it})' if it else ''}: ACR A−B {acr['diff']:+.3f} "
                         f"[{acr['lo']:+.3f}, {acr['hi']:+.3f}], {at_text} (McNemar p={at_r['p']:.3g})")
        ch = c["change"]
        parts.append(f"σ={s:g}: **{c['verdict']}** — " + "; ".join(steps)
                     + f"; change ×{c['budgets'][0]['budget']:g}→×{c['budgets'][-1]['budget']:g} "
                     f"{ch['diff']:+.3f} [{ch['lo']:+.3f}, {ch['hi']:+.3f}]: {_trend(ch)}")
    points = comparisons[0]["budgets"][0]["acr"]["points"]
    when = "lies below 0" if kind == "at least as good" else "does not lie above 0"
    what = "ACR difference A−B" if metric == "acr" else f"difference A−B of certified accuracy at r={radius:g}"
    return (f"A = {f['a']}, B = {f['b']}; {f['claim']}. \"A {dict(CLAIMS_TEXT)[kind]} B\" is not met at a budget when the 95% paired t interval "
            f"of the {what} {when} ({points} test points, the same at every budget; ×k = "
            f"{f.get('budget_unit', 'k times the score network’s training steps')}). " + " ".join(parts))
