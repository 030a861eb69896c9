"""Samples saved by sequential CERTIFY against fixed-n CERTIFY, in notebook 07's settings.

Runs :func:`lib.experiments.ablations.sequential_runs` (the section "sequential CERTIFY" of
notebook 07) under a profile: notebook 04's setting (the linear classifier h, 04's sigmas and
radii, n_max = 10^5 under ``quick``/``full``) and notebook 05's (the one-step denoiser, 05's
radii, n_max = 10^4), each fixed n = n_max against sequential CERTIFY with both anytime-valid
bounds, on the same test points. The logs are notebook 07's (``LOGS/07_ablations``), so the
notebook reuses them. Prints and writes ``outputs/benchmarks/sequential.json`` / ``.md``: per
run the certified accuracy with 95% Clopper-Pearson intervals, samples per point, the ratio of
samples, paired McNemar p-values, and the machine's load.

Usage: ``python benchmarks/bench_sequential.py [--profile quick] [--only 04|05] [--seed 0]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lib.profiles  # noqa: E402
from lib import paths  # noqa: E402
from lib.experiments import Setup, ablations  # noqa: E402
from lib.reporting import markdown_table  # noqa: E402
from lib.utils import atomic_write_json, atomic_write_text  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--only", choices=["04", "05"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    cfg07 = lib.profiles.get("07", args.profile)
    cfg04, cfg05 = lib.profiles.get("04", args.profile), lib.profiles.get("05", args.profile)
    load0, t0 = os.getloadavg(), time.perf_counter()
    runs = ablations.sequential_runs(cfg07["seq"], cfg04, cfg05, Setup.from_profile(cfg04, seed=args.seed),
                                     Setup.from_profile(cfg07, seed=args.seed), "07_ablations", only=args.only)
    info = {"profile": args.profile, "seed": args.seed, "load_before": load0, "load_after": os.getloadavg(),
            "wall_seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count()}
    md = []
    for name, run in runs.items():
        md.append(f"### {name}: n0 = {run['n0']}, n_max = {run['n_max']:,}, {run['points']} points\n\n"
                  + markdown_table(run["table"]))
    md.append(f"\n{info}\n")
    text = "\n\n".join(md)
    print(text)
    out = Path(args.out)
    atomic_write_text(out / "sequential.md", text)
    result = {"info": info, "runs": {name: {k: run[k] for k in ("ratio", "within_error", "max_samples", "n_max", "n0",
                                                                "points")} | {"table": run["table"].to_dict(orient="index")}
                                     for name, run in runs.items()}}
    atomic_write_json(out / "sequential.json", result)
    return result


if __name__ == "__main__":
    main()
