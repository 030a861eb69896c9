"""The sound grid sampler against the usual float32 sampler on the companion's own models.

:func:`sound_vs_usual` certifies the same test points twice, with ``Smooth(...)`` (float32 noise
added in float32) and with its twin ``Smooth(..., grid=q)`` (grid cells drawn exactly from fair
bits, :mod:`lib.smoothing._sound`), and compares the certified accuracy at each radius: both with
95% Clopper-Pearson intervals, and the paired difference with McNemar's exact test (statsmodels)
on the points certified by one procedure only.

``python -m lib.experiments.float_soundness`` runs it on notebook 05's and notebook 04's settings
(their models, sigmas, radii and test points of a profile; n, n0 and the number of points can be
set) and writes ``outputs/benchmarks/float_soundness.{md,json}``.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

import lib.methods
import lib.profiles
from lib import paths
from lib.reporting.tables import markdown_table
from lib.smoothing import Gaussian, Smooth
from lib.utils import atomic_write_json, atomic_write_text, configure_threads

__all__ = ["sound_twin", "sound_vs_usual", "run_notebook_settings"]


def sound_twin(smooth: Smooth, grid: int = 255) -> Smooth:
    """The same smoothed classifier (classifier, noise, denoiser, rejector, device) with the sound
    grid sampler ``grid``."""
    return Smooth(smooth.classifier, smooth.num_classes, smooth.noise, denoiser=smooth.denoiser,
                  rejector=smooth.rejector, device=smooth.device, input_shape=smooth.input_shape, grid=grid)


def sound_vs_usual(smooth: Smooth, xs: torch.Tensor, ys: torch.Tensor, n0: int, n: int, alpha: float,
                   radii, grid: int = 255, seed: int = 0, batch_size: int | None = None) -> pd.DataFrame:
    """Certified accuracy of the usual and the sound procedure on xs [N, *shape] (labels ys [N]) at
    each radius: one row per radius with both accuracies, their 95% Clopper-Pearson intervals, the
    points certified by one procedure only (``usual_only``, ``sound_only``) and McNemar's exact
    p-value of equal accuracy (each procedure's draws are independent of the other's)."""
    sound = sound_twin(smooth, grid)
    out = {}
    for name, s, offset in (("usual", smooth, 0), ("sound", sound, 1)):
        g = torch.Generator(device=smooth.device).manual_seed(int(seed) * 2 + offset)
        t0 = time.perf_counter()
        preds, rad = s.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=g)
        out[name] = (preds.numpy(), rad.numpy(), time.perf_counter() - t0)
    y = ys.cpu().numpy()
    rows = []
    for r in radii:
        ok = {k: (p == y) & (rad >= r) for k, (p, rad, _) in out.items()}
        b = int((ok["usual"] & ~ok["sound"]).sum())
        c = int((~ok["usual"] & ok["sound"]).sum())
        table = [[int((ok["usual"] & ok["sound"]).sum()), b], [c, int((~ok["usual"] & ~ok["sound"]).sum())]]
        row = {"radius": r}
        for k in ("usual", "sound"):
            hits = int(ok[k].sum())
            lo, hi = proportion_confint(hits, len(y), alpha=0.05, method="beta")
            row[f"{k} %"] = round(100 * hits / len(y), 1)
            row[f"{k} 95% CP"] = f"[{100 * lo:.1f}, {100 * hi:.1f}]"
        row.update({"usual_only": b, "sound_only": c,
                    "McNemar p": float(mcnemar(table, exact=True).pvalue) if b + c else 1.0})
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["seconds"] = {k: v[2] for k, v in out.items()}
    df.attrs["points"] = len(y)
    return df


def _verdict(df: pd.DataFrame) -> str:
    """A sentence from the numbers: the smallest McNemar p against a Bonferroni level 0.05 / radii."""
    p = float(df["McNemar p"].min())
    level = 0.05 / len(df)
    what = "differs" if p < level else "does not differ significantly"
    return (f"certified accuracy {what} between the procedures (smallest McNemar p = {p:.3g}, "
            f"Bonferroni level 0.05/{len(df)} = {level:.3g})")


def run_notebook_settings(profile: str = "smoke", points: int = 24, n0: int = 20, n: int = 1000,
                          methods=("none", "one_step"), points04: int = 200, n04: int | None = None,
                          grid: int = 255, seed: int = 0) -> list[dict]:
    """Both procedures on notebook 05's settings (``methods`` x its sigmas, its radii, ``points``
    evenly spaced MNIST test points, ``n0``, ``n``, its alpha) and on notebook 04's linear h (its
    sigmas and radii, ``points04`` points, n = ``n04`` or the profile's). Returns one dict per setting."""
    results = []
    cfg = lib.profiles.get("05", profile)
    setup = lib.methods.Setup.from_profile(cfg, dataset="mnist", seed=seed)
    subset = lib.methods.test_subset("mnist", points)
    for m in methods:
        for s in cfg["sigmas"]:
            smooth, _ = lib.methods.build_smooth(m, Gaussian(s), setup)
            df = sound_vs_usual(smooth, subset.xs, subset.ys, n0, n, cfg["alpha"], cfg["radii"], grid, seed)
            results.append({"notebook": "05", "method": lib.methods.method_label(m), "sigma": s, "points": len(subset),
                            "n0": n0, "n": n, "alpha": cfg["alpha"], "table": df})
    cfg4 = lib.profiles.get("04", profile)
    setup4 = lib.methods.Setup.from_profile(cfg4, seed=seed)
    h = setup4.classifier()[0]
    subset4 = lib.methods.test_subset(cfg4["dataset"], points04)
    n4 = n04 or cfg4["n"]
    for s in cfg4["sigmas"]:
        smooth = Smooth(h, 10, Gaussian(s))
        df = sound_vs_usual(smooth, subset4.xs, subset4.ys, cfg4["n0"], n4, cfg4["alpha"], cfg4["radii"], grid, seed)
        results.append({"notebook": "04", "method": "g[h] (linear h, input-space noise)", "sigma": s,
                        "points": len(subset4), "n0": cfg4["n0"], "n": n4, "alpha": cfg4["alpha"], "table": df})
    return results


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke", help="the notebooks' profile whose models and settings are used")
    parser.add_argument("--points", type=int, default=24, help="notebook 05: evenly spaced MNIST test points")
    parser.add_argument("--n0", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000, help="notebook 05: noisy samples per point")
    parser.add_argument("--methods", default="none,one_step", help="notebook 05 methods")
    parser.add_argument("--points04", type=int, default=200)
    parser.add_argument("--n04", type=int, default=None, help="notebook 04: n (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    configure_threads()
    results = run_notebook_settings(args.profile, args.points, args.n0, args.n, tuple(args.methods.split(",")),
                                    args.points04, args.n04, seed=args.seed)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "python -m lib.experiments.float_soundness " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    parts = [f"# Sound grid sampler vs usual sampler: certified accuracy\n\n{stamp}, `{command}`, {machine}, "
             f"profile {args.profile}.\n"]
    for r in results:
        df = r["table"]
        secs = df.attrs["seconds"]
        head = (f"## notebook {r['notebook']}: {r['method']}, σ = {r['sigma']:g} ({r['points']} points, n0 = {r['n0']}, "
                f"n = {r['n']}, α = {r['alpha']})")
        line = (f"{_verdict(df)}; wall time usual {secs['usual']:.1f} s, sound {secs['sound']:.1f} s "
                f"(ratio {secs['sound'] / secs['usual']:.2f}).")
        print(head + "\n" + line, flush=True)
        parts.append(f"{head}\n\n{markdown_table(df.set_index('radius'))}\n\n{line}\n")
    out = Path(args.out)
    atomic_write_text(out / "float_soundness.md", "\n".join(parts))
    atomic_write_json(out / "float_soundness.json", {
        "date": stamp, "command": command, "machine": machine, "profile": args.profile,
        "results": [{**{k: v for k, v in r.items() if k != "table"}, "seconds": r["table"].attrs["seconds"],
                     "rows": r["table"].replace({np.nan: None}).to_dict("records")} for r in results]})
    print("\n".join(parts))
    return results


if __name__ == "__main__":
    main()
