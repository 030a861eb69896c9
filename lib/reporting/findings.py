"""Registered tables, computed findings and ``RESULTS.md`` (the published numbers they are compared
with: :mod:`lib.reporting.published`).

A notebook registers each certified-accuracy table with :func:`register_table`: the table is
built from the per-example logs, saved (CSV / Markdown / LaTeX) and its *spec* (logs, radii,
settings, published reference rows) is written to ``outputs/tables/<NN_stem>.json``. Notebook 10
rebuilds every registered table from its logs (:func:`rebuild_table`) and writes
``figures/RESULTS.md`` (:func:`write_results`): each table with its settings, its published
reference rows (:data:`PUBLISHED`, labelled, never mixed with ours) and a one-line *finding*
computed from the numbers (:func:`table_finding`): which row is best at each radius, whether the
best is separated from the runner-up on the same test points (McNemar's exact test of the paired
certified / not-certified outcomes), and whether our orderings agree with the paper's.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lib import paths
from lib.reporting.budget import budget_finding
from lib.reporting.published import PAPERS, PUBLISHED, PUBLISHED_AS_OURS, QUOTES, published_rows, quote  # noqa: F401
from lib.reporting.tables import (_log_abs, _log_rel, best_over_logs, certified_accuracy, markdown_table,
                                  paired_difference, prefixed, save_table, table_from_logs)
from lib.smoothing.logs import read_log, read_settings
from lib.smoothing.noise import make_noise
from lib.utils import atomic_write_json, atomic_write_text

__all__ = ["EXPECTED_TABLES", "register_table", "render_table", "table_caption",
           "load_table_spec", "load_table_specs", "table_numbers", "table_finding", "settings_line", "shared_setting", "row_settings_line",
           "rebuild_table", "results_markdown", "write_results"]


# ====================================================================== registered tables
def register_table(notebook: str, stem: str, rows: Mapping[str, Sequence[str | Path]], radii: Sequence[float],
                   title: str, settings: Mapping[str, object], reference: Mapping[str, Sequence] | None = None,
                   reference_source: str = "", interval: bool = True, clean: bool = True,
                   finding: Mapping | None = None) -> pd.DataFrame:
    """Build a certified-accuracy table from logs, save it (CSV/MD/TeX) and register its spec.

    The spec (``outputs/tables/<NN_stem>.json``) lets ``10_tables`` rebuild every table of the
    companion from the per-example logs and write ``figures/RESULTS.md``. ``reference`` rows
    (published numbers) are appended as ``"<label> (published)"`` and never mixed with ours.
    ``finding``: how :func:`table_finding` computes the table's finding when not the default, e.g.
    {"kind": "budget", ...} (:func:`lib.reporting.budget.budget_finding`; log paths under "runs").
    """
    if finding is not None:
        finding = {**finding, "runs": [{**r, "a": _log_rel(r["a"]), "b": _log_rel(r["b"])}
                                       for r in finding.get("runs", [])]}
    spec = {"notebook": notebook, "stem": stem, "title": title, "radii": [float(r) for r in radii],
            "rows": {k: [_log_rel(p) for p in v] for k, v in rows.items()}, "settings": dict(settings),
            "reference": {k: list(v) for k, v in (reference or {}).items()},
            "reference_source": reference_source, "interval": interval, "clean": clean,
            **({"finding": dict(finding)} if finding is not None else {})}
    # unsorted keys: rows, reference rows and settings keep the order they were given in
    atomic_write_json(paths.OUTPUTS / "tables" / f"{prefixed(notebook, stem)}.json", spec, sort_keys=False)
    table = render_table(spec)
    save_table(table, stem, notebook, caption=table_caption(spec))
    return table


def render_table(spec: Mapping) -> pd.DataFrame:
    """Ours (from the logs) and the published reference rows of a registered table spec."""
    ours = table_from_logs(spec["rows"], spec["radii"], interval=spec.get("interval", True),
                           clean=spec.get("clean", True))
    ref = spec.get("reference") or {}
    if ref:
        cols = list(ours.columns)
        rows = {}
        for label, values in ref.items():
            values = list(values)
            pad = len(cols) - len(values)  # references may lack the clean column
            rows[f"{label} (published)"] = ["–"] * pad + [str(v) for v in values]
        ours = pd.concat([ours.astype(str), pd.DataFrame.from_dict(rows, orient="index", columns=cols)])
    return ours


def table_caption(spec: Mapping) -> str:
    s = spec.get("settings", {})
    parts = ", ".join(f"{k}={v}" for k, v in s.items())
    text = (f"{spec['title']}. Certified accuracy (%) at the given radii"
            + (" with a 95% Clopper-Pearson interval over test points" if spec.get("interval", True) else "")
            + f". Settings: {parts}.")
    if spec.get("interval", True) and any(len(logs) > 1 for logs in spec["rows"].values()):
        text += (" A row of several logs shows, at each radius, the best of them with that log's interval: the"
                 " interval does not account for choosing the best (the cell is biased upwards by the choice).")
    if spec.get("reference"):
        text += f" Rows marked (published) are references from {spec.get('reference_source', 'the paper')}, not our results."
    return text


def load_table_spec(notebook: str, stem: str) -> dict:
    """The spec that :func:`register_table` wrote for one table."""
    return json.loads((paths.OUTPUTS / "tables" / f"{prefixed(notebook, stem)}.json").read_text())


def load_table_specs() -> list[dict]:
    """Every registered table spec under ``outputs/tables/``, by name."""
    folder = paths.OUTPUTS / "tables"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


# ====================================================================== findings and RESULTS.md
#: notebooks expected to register certified-accuracy tables, and what they hold
EXPECTED_TABLES = {
    "04": "Saremi & Srivastava Table 1 (empirical Bayes smoothed linear classifier, MNIST)",
    "05": "denoised smoothing, ℓ2 (Lee Tables 1-2 layout)",
    "06": "denoised smoothing, ℓ1 (Lee Figure 1 b, c, e, f)",
    "07": "ablations (Lee D.1, D.2, cost; comparisons against the score network's training budget)",
    "08": "denoised smoothing with sample rejection (Sheikholeslami et al.; MNIST, Fashion-MNIST)",
    "09": ("Saremi & Srivastava Table 2 (XHAT_ε, XHAT_0, SmoothAdv_ε; MNIST) and the lecture Tables 1-2 "
           "counterpart (Lecture 14 §3: Gaussian augmentation, smoothed objective, SmoothAdv; MNIST)"),
}


def _ref_split(label: str) -> tuple[str, str]:
    """A reference label "<source>: <row>" -> (source, row); no colon -> ("published", label)."""
    if ": " in label:
        src, row = label.split(": ", 1)
        return src.strip(), row.strip()
    return "published", label.strip()


def _num(v) -> float:
    try:
        return float(str(v).split()[0])
    except (ValueError, IndexError):
        return float("nan")


def table_numbers(spec: Mapping) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ours %, our lower CI %, our upper CI %, published %) of a registered table, as floats.

    Columns are the radii (as strings, plus "clean" for ours when the spec has it); a cell
    is the best over the row's logs (``lib.reporting.best_over_logs``). Published rows
    are right-aligned to the radii (a missing clean column is NaN).
    """
    acc, lo, hi = best_over_logs(spec["rows"], spec["radii"], clean=spec.get("clean", True))
    cols = list(acc.columns)
    ref = {}
    for label, values in (spec.get("reference") or {}).items():
        values = [_num(v) for v in values]
        ref[label] = [float("nan")] * (len(cols) - len(values)) + values
    refs = pd.DataFrame.from_dict(ref, orient="index", columns=cols) if ref else pd.DataFrame(columns=cols)
    return 100 * acc, 100 * lo, 100 * hi, refs


def _winners(df: pd.DataFrame, cols: Sequence[str]) -> dict:
    """{column: (labels of the best rows (several on a tie), best value)}."""
    out = {}
    for c in cols:
        col = df[c].dropna()
        if len(col):
            top = float(col.max())
            out[c] = ([str(i) for i in col.index[col == top]], top)
    return out


def _runs(winners: Mapping[str, tuple], cols: Sequence[str]) -> str:
    """Group consecutive radii with the same winner: "one-step score at r=0.25-0.5; white-box at r=0.75"."""
    parts, cur, start, end = [], None, None, None
    for c in cols:
        if c not in winners:
            continue
        w = " = ".join(winners[c][0]) if winners[c][1] > 0 else "none (0%)"
        if w != cur:
            if cur is not None:
                parts.append((cur, start, end))
            cur, start = w, c
        end = c
    if cur is not None:
        parts.append((cur, start, end))
    return "; ".join(f"{w} at r={s}" + (f"–{e}" if e != s else "") for w, s, e in parts)


def _best_log(spec: Mapping, label: str, radius: float) -> str:
    """The log of row ``label`` that is best at ``radius`` (the one its table cell comes from)."""
    logs = list(spec["rows"][label])
    accs = [float(certified_accuracy(read_log(_log_abs(str(p))), [radius])[0]) for p in logs]
    return logs[int(np.argmax(accs))]


def _setting(log: str) -> tuple:
    """(test point indices, n, alpha) of a log: what two rows must share before a paired test between them."""
    st = read_settings(_log_abs(str(log)))
    idx = frozenset(int(i) for i in read_log(_log_abs(str(log)))["idx"])
    return idx, st.get("n"), st.get("alpha")


def shared_setting(spec: Mapping, a: str, b: str, radius: float) -> str:
    """"" when rows ``a`` and ``b`` (their logs best at ``radius``) share test points, n and alpha; otherwise
    what differs ("test points", "n", "alpha")."""
    sa, sb = _setting(_best_log(spec, a, radius)), _setting(_best_log(spec, b, radius))
    return ", ".join(w for w, x, y in zip(("test points", "n", "alpha"), sa, sb) if x != y)


def _resolved(spec: Mapping, a: str, b: str, col: str, lo: pd.DataFrame, hi: pd.DataFrame,
              alpha: float = 0.05) -> bool | None:
    """Is the difference of rows ``a`` and ``b`` at radius ``col`` resolved? McNemar's exact test of
    the paired certified / not-certified outcomes (p < alpha), run only when the two rows share their
    test points, n and alpha; None (not tested) otherwise."""
    r = 0.0 if col == "clean" else float(col)
    if shared_setting(spec, a, b, r):
        return None
    return paired_difference(_best_log(spec, a, r), _best_log(spec, b, r), radius=r, alpha=alpha)["p"] < alpha


def row_settings_line(spec: Mapping) -> str:
    """"" when every row of a registered table shares its test points, n and alpha; otherwise one entry per
    row (points, n, alpha of its logs), so that a reader sees which rows may be compared by a paired test."""
    rows = {}
    for label, logs in spec["rows"].items():
        sets = [_setting(p) for p in logs]
        rows[label] = (len(sets[0][0]), sorted({x[1] for x in sets}, key=str), sorted({x[2] for x in sets}, key=str),
                       sets[0][0])
    if len({(v[3], tuple(v[1]), tuple(v[2])) for v in rows.values()}) <= 1:
        return ""
    fmt = lambda v: "/".join(f"{x:,}" if isinstance(x, int) else str(x) for x in v)
    return ("Rows differ in their settings (no paired test between rows that do not share test points, n and "
            "alpha): " + "; ".join(f"{k}: {v[0]} points, n={fmt(v[1])}, alpha={fmt(v[2])}" for k, v in rows.items()))


def radius_caps(noises: Mapping[str, str], sigmas: Sequence[float], n: int, alpha: float) -> dict:
    """{"<label>, σ=<sigma>": the largest radius CERTIFY can return with n votes at level alpha (rounded to 0.01)}
    for every noise (name -> label) and sigma: a table column beyond every cap is empty because of n."""
    return {f"{label}, σ={s:g}": round(float(make_noise(q, s).max_radius(n, alpha)), 2)
            for q, label in noises.items() for s in sigmas}


def caps_line(noises: Mapping[str, str], sigmas: Sequence[float], radii: Sequence[float], n: int, alpha: float,
              reference: Mapping, reference_name: str) -> str:
    """The caps of :func:`radius_caps`, and the table radii beyond all of them with the largest cap the
    reference's n and alpha (``reference["n"]``, ``reference["alpha"]``) would give."""
    caps = radius_caps(noises, sigmas, n, alpha)
    text = f"largest certifiable radius with n={n}, alpha={alpha}: {caps}"
    beyond = [r for r in radii if r > max(caps.values())]
    if beyond:
        ref = max(radius_caps(noises, sigmas, reference["n"], reference["alpha"]).values())
        text += (f"\nradii {beyond} are beyond every cap: their zeros measure n={n}, not the methods "
                 f"(with {reference_name}'s n={reference['n']:,}, alpha={reference['alpha']} the largest cap here "
                 f"would be {ref:.2f})")
    return text


def _row_caps(spec: Mapping) -> dict[str, float]:
    """{row: the largest radius CERTIFY can return with any of its logs' noise, n and alpha}
    (``NoiseDistribution.max_radius``; inf where a setting has no known radius formula)."""
    caps = {}
    for label, logs in spec["rows"].items():
        r_max = -np.inf
        for log in logs:
            st = read_settings(_log_abs(str(log)))
            try:
                noise = make_noise(str(st["noise"]), float(st["sigma"]))
                r_max = max(r_max, float(noise.max_radius(int(st["n"]), float(st["alpha"]))))
            except (KeyError, TypeError, ValueError):
                r_max = np.inf  # a setting without a known radius formula: claim nothing for this row
        caps[label] = r_max
    return caps


def reach_line(spec: Mapping, caps: Mapping[str, float] | None = None) -> str:
    """"" when every row can reach every table radius; otherwise, per row, the table radii above the largest
    radius CERTIFY can return with its logs' n and alpha (``caps``, by default :func:`_row_caps`), so
    that a 0 there is read as out of reach, not as a measured failure. Logs of another noise are skipped."""
    out = []
    for label, r_max in (_row_caps(spec) if caps is None else caps).items():
        above = [f"{float(r):g}" for r in spec["radii"] if float(r) > r_max]
        if above:
            out.append(f"{label} cannot certify r={', '.join(above)} (largest radius at its n and alpha: {r_max:.2f})")
    return ("Out of reach: " + "; ".join(out)) if out else ""


def _ordering_line(spec: Mapping, ours: pd.DataFrame, pub: pd.DataFrame, shared: Sequence[str],
                   radii: Sequence[str], src: str, lo: pd.DataFrame, hi: pd.DataFrame,
                   caps: Mapping[str, float]) -> str:
    """How the pairwise orderings of the ``shared`` rows (row A above row B at radius r, wherever the
    published rows differ) compare with ours: the same order, the opposite order, or a tie in ours
    (counted apart: a tie is neither, and one at a radius beyond a row's largest certifiable radius
    measures n, not the methods); for each ordering, how many McNemar's exact test resolves (p < 0.05;
    rows on other test points, n or alpha are not tested); ``caps``: :func:`_row_caps`."""
    same = opposite = ties = ties_out = same_res = opp_res = untested = total = 0
    for i, a in enumerate(shared):
        for b in shared[i + 1:]:
            for c in radii:
                pa, pb, oa, ob = pub.loc[a, c], pub.loc[b, c], ours.loc[a, c], ours.loc[b, c]
                if np.isnan(pa) or np.isnan(pb) or pa == pb:
                    continue
                total += 1
                if oa == ob:
                    ties += 1
                    r = 0.0 if c == "clean" else float(c)
                    ties_out += r > min(caps.get(a, np.inf), caps.get(b, np.inf))
                    continue
                res = _resolved(spec, a, b, c, lo, hi)
                untested += res is None
                if (oa > ob) == (pa > pb):
                    same, same_res = same + 1, same_res + bool(res)
                else:
                    opposite, opp_res = opposite + 1, opp_res + bool(res)
    if not total:
        return ""
    text = (f" Pairwise orderings of {', '.join(shared)} against {src}, over {total} (rows, radius) comparisons "
            f"where the published rows differ: the same order in {same} ({same_res} resolved by McNemar's exact "
            f"test, p < 0.05 each, not adjusted for their number), the opposite order in {opposite} ({opp_res} resolved), a tie in ours in {ties}")
    if ties_out:
        text += f" ({ties_out} of them at radii beyond a row's largest certifiable radius)"
    if untested:
        text += f"; {untested} not testable (rows on other test points, n or alpha)"
    return text + "."


def table_finding(spec: Mapping) -> str:
    """A one-paragraph finding computed from a registered table's numbers.

    Ours: the best row at each radius; radii where the best row is tied, or not separated from
    the runner-up by McNemar's exact test (p >= 0.05) of the paired certified / not-certified
    outcomes on the same test points, are flagged. For each published source ("<source>: <row>"
    reference labels), its best row at each radius, and, over the rows that match one of ours (by name,
    or by :data:`PUBLISHED_AS_OURS`), how the pairwise orderings compare (:func:`_ordering_line`).
    A spec with a ``finding`` of
    kind "budget" gets :func:`lib.reporting.budget.budget_finding` instead.
    """
    if (spec.get("finding") or {}).get("kind") == "budget":
        return budget_finding(spec)
    ours, lo, hi, refs = table_numbers(spec)
    radii = [f"{float(r):g}" for r in spec["radii"]]
    w = _winners(ours, radii)
    differ = row_settings_line(spec)
    text = (f"Ours: best {_runs(w, radii)}" if not differ else
            f"Ours (rows in different settings: the highest cell, not a ranking): {_runs(w, radii)}")
    unresolved, untested = [], []  # radii where the winner is not separated from the runner-up / not testable
    for c in radii:
        if c in w and len(ours) > 1 and w[c][1] > 0:
            best = w[c][0]
            rest = ours[c].drop(best)
            if len(best) == 1 and len(rest):  # the runner-up among the rows on the winner's points, n and alpha
                r = 0.0 if c == "clean" else float(c)
                same = [x for x in rest.index if not shared_setting(spec, best[0], x, r)]
                rest = rest[same] if same else rest
            res = True if len(best) > 1 or not len(rest) else _resolved(spec, best[0], rest.idxmax(), c, lo, hi)
            if len(best) > 1 or res is False:
                unresolved.append(c)
            elif res is None:
                untested.append(c)
    if unresolved:
        text += (f" (not separated from the runner-up at r={', '.join(unresolved)}: a tie, or McNemar's exact "
                 "test on the same test points, n and alpha gives p >= 0.05)")
    if untested:
        text += (f" (at r={', '.join(untested)} no other row is on the winner's test points, n and alpha: "
                 "no test, and no ranking claimed)")
    text += "."
    if differ:
        text += " " + differ + "."
    caps = _row_caps(spec)  # read once, for the reach line and the orderings
    reach = reach_line(spec, caps)
    if reach:
        text += " " + reach + "."
    if len(refs):
        groups: dict[str, dict] = {}
        for label in refs.index:
            src, row = _ref_split(label)
            groups.setdefault(src, {})[row] = refs.loc[label]
        for src, rows in groups.items():
            pub = pd.DataFrame(rows).T
            pw = _winners(pub, radii)
            if pw:
                text += f" {src}: best {_runs(pw, radii)} (published, in its own setting: orderings compared, no test)."
            pub = pub.rename(index=PUBLISHED_AS_OURS)  # matched to our rows by what they measure
            shared = [r for r in pub.index if r in ours.index]
            text += _ordering_line(spec, ours, pub, shared, radii, src, lo, hi, caps)
    return text


def settings_line(spec: Mapping) -> str:
    """The settings of a registered table as one line: "data=mnist, model=..., n=1000, ..."."""
    return ", ".join(f"{k}={v}" for k, v in (spec.get("settings") or {}).items())


def rebuild_table(spec: Mapping, save: bool = True) -> tuple[pd.DataFrame, str]:
    """(table, finding) of a registered spec, rebuilt from its logs; ``save`` rewrites its
    CSV / Markdown / LaTeX files in ``figures/``. Raises ``FileNotFoundError`` if a log is gone."""
    table = render_table(spec)
    if save:
        save_table(table, spec["stem"], spec["notebook"], caption=table_caption(spec))
    return table, table_finding(spec)


def results_markdown(specs: Sequence[Mapping] | None = None, figures: Iterable[str] = (),
                     profile_note: str = "") -> tuple[str, list[str]]:
    """The text of ``RESULTS.md`` and the list of table names that could not be rendered.

    Each table: title, the Markdown table (ours with 95% intervals + published rows), the
    settings line, the computed finding, and the caption of :func:`table_caption`.
    """
    specs = list(load_table_specs() if specs is None else specs)
    lines = ["# Results", "",
             "Every table of the companion, rebuilt from the per-example certification logs "
             "(Cohen et al.'s TSV format, under `outputs/logs/`). Cells are certified accuracy (%) "
             "with a 95% Clopper–Pearson interval over the test points (rounded outward); rows marked *(published)* "
             "are numbers copied from the papers for reference, **not** our results. Each was obtained in its own "
             "setting, printed with it (the table's *Published reference* line, and the list below: data set, "
             "model, n, α, where it is printed); ours are in each table's settings line.", ""]
    sources = [t["source"] for t in PUBLISHED.values()]
    sources += [str(s["reference_source"]) for s in specs  # references registered by a table itself
                if s.get("reference") and s.get("reference_source") and not any(
                    src in str(s["reference_source"]) for src in sources)]
    lines += ["## Published references", ""] + [f"- {src}" for src in dict.fromkeys(sources)] + [""]
    if profile_note:
        lines += [profile_note, ""]
    profiles_used = sorted({str((s.get("settings") or {}).get("profile", "?")) for s in specs})
    if specs:
        lines += [f"Profiles of the tables below: {', '.join(profiles_used)} "
                  "(smoke = a few seconds for tests; quick = a 2-core CPU; full = paper scale on a GPU).", ""]
    have = {str(s["notebook"]).split("_")[0] for s in specs}
    missing = [f"{k} ({v})" for k, v in EXPECTED_TABLES.items() if k not in have]
    if missing:
        lines += ["**Not yet run** (no registered table): " + "; ".join(missing) + ".", ""]
    failed = []
    lines += ["## Contents", ""]
    for s in specs:
        name = prefixed(s["notebook"], s["stem"])
        lines.append(f"- [{name}: {s['title']}](#{_anchor(name, s['title'])})")
    lines.append("")
    for s in specs:
        name = prefixed(s["notebook"], s["stem"])
        lines += [f"## {name}: {s['title']}", ""]
        try:
            table = render_table(s)
            finding = table_finding(s)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            failed.append(name)
            lines += [f"*Could not be rebuilt from its logs ({type(exc).__name__}: {exc}); rerun notebook "
                      f"{s['notebook']}.*", ""]
            continue
        source = s.get("reference_source") or "none given for this table"
        differ = row_settings_line(s)
        lines += [markdown_table(table), f"**Settings:** {settings_line(s)}." + (f" {differ}." if differ else ""), "",
                  f"**Published reference:** {source}"
                  + (" (the rows marked *(published)*)." if s.get("reference") else "."), "",
                  f"**Finding (computed from the numbers above):** {finding}", "",
                  f"*{table_caption(s)}*", ""]
    figs = [f for f in figures]
    if figs:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figs] + [""]
    return "\n".join(lines), failed


def _anchor(name: str, title: str) -> str:
    text = f"{name}: {title}".lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def write_results(path: str | Path | None = None, specs: Sequence[Mapping] | None = None,
                  figures: Iterable[str] = (), profile_note: str = "") -> tuple[Path, list[str]]:
    """Write ``figures/RESULTS.md`` (see :func:`results_markdown`); returns (path, failed tables)."""
    path = Path(path) if path is not None else paths.FIGURES / "RESULTS.md"
    text, failed = results_markdown(specs, figures, profile_note)
    atomic_write_text(path, text)
    return path, failed
