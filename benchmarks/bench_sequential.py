"""Samples saved by decision-mode (and sequential) certification against fixed-n CERTIFY.

Settings (``--setting``, several allowed):

* ``cohen`` -- Cohen et al.'s MNIST setting ("Certified Adversarial Robustness via Randomized
  Smoothing", Cohen, Rosenfeld & Kolter, 2019, arXiv:1902.02918, section 4): a Gaussian-augmented
  classifier per sigma in {0.25, 0.5, 1.0} (here an MLP 784-64-10 trained by
  :func:`lib.models.get_classifier` and cached), n0 = 100, n = 10^5, alpha = 0.001, table radii
  0.5/1/1.5/2, the first ``--points`` (500) MNIST test images. Its first layer is linear, so the
  noisy votes are drawn exactly in its 64 hidden pre-activations
  (:class:`lib.smoothing.noise.LogitGaussian`), which makes the fixed-n reference affordable.
* ``lee`` -- notebook 05's one-step denoiser + classifier ("Denoised smoothing", Lee's setting) at
  n = 10^4 with 05's n0, alpha and radii (``--points`` test images, 05's sigmas or ``--sigmas``).
* ``04`` -- notebook 04's g[h] (the linear h, votes drawn exactly in logit space) at 04's sigmas,
  n0, n, alpha and radii, ``--points`` test images.
* ``notebook`` -- any registered method (``--method``) in a notebook's setting (``--notebook``: its
  sigmas, n0, alpha, radii; ``--n`` or its n), e.g. ``--notebook 09 --method gaussian_aug`` or
  ``--notebook 08 --method mse_rejector`` (sample rejection: the Theorem 3.1 pair is decided).
* ``04pi`` -- notebook 04's g[pi] (the DEEN's empirical Bayes estimator before the linear h) over its radius
  grid (:func:`lib.experiments.fidelity.sequential_targets`: 0, ``pi_step``, ... below r_max): sequential
  CERTIFY with the grid as targets (how ``smoke`` and ``quick`` certify it) against decision mode over the same
  grid (how ``full`` does), n_max = ``--n`` (default the profile's ``pi_n``), ``--points`` test images.
* ``07`` -- the comparison of notebook 07 (sequential CERTIFY against fixed n in 04's
  and 05's settings, :func:`lib.experiments.procedures.sequential_runs`), ``--only 04|05``.

For ``cohen`` and ``lee`` it prints, per sigma and pooled, the certified accuracy at every table
radius of both procedures on the same points, the exact McNemar p-value (statsmodels) per radius,
and the ratio mean samples per point of fixed n (n0 + n) / decision mode (its candidate votes
included). Writes ``outputs/benchmarks/decision_<setting>.json`` / ``.md``.

Usage: ``python benchmarks/bench_sequential.py [--setting cohen lee] [--points N] [--seed 0]`` (default:
both targets, ``cohen`` on 500 points, ``lee`` on 50; the machine's load is printed with the results).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lib import paths  # noqa: E402
from lib.utils import atomic_write_json, atomic_write_text, configure_threads  # noqa: E402

#: test points per setting when --points is not given (lee and notebook: a denoiser per vote on the CPU)
DEFAULT_POINTS = {"cohen": 500, "04": 500, "lee": 50, "notebook": 50, "04pi": 20}
COHEN = {"sigmas": [0.25, 0.5, 1.0], "n0": 100, "n": 100_000, "alpha": 0.001, "radii": [0.5, 1.0, 1.5, 2.0],
         "hidden": [64]}


def compare(fixed: dict, decision: dict, radii, labels: np.ndarray) -> pd.DataFrame:
    """Certified accuracy at each radius of two runs on the same points, McNemar p, samples.

    fixed/decision: {"preds" [N], "radii" [N], "samples" [N]}; labels [N]."""
    from statsmodels.stats.contingency_tables import mcnemar

    rows = {}
    for r in radii:
        a = (fixed["preds"] == labels) & (fixed["radii"] >= r)
        b = (decision["preds"] == labels) & (decision["radii"] >= r)
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        rows[f"r={r:g}"] = {"fixed n": a.mean(), "decision": b.mean(), "McNemar p": mcnemar(table, exact=True).pvalue}
    out = pd.DataFrame(rows).T
    out.attrs["ratio"] = float(np.mean(fixed["samples"]) / np.mean(decision["samples"]))
    return out


def min_votes(sigma: float, radii, alpha: float) -> str:
    """The fewest votes with which any level-alpha certificate (Clopper-Pearson at the full alpha, every
    vote for c_A) reaches each radius: ceil(log(alpha) / log(Phi(r / sigma)))."""
    from lib.smoothing import Gaussian
    from lib.smoothing.decision import threshold

    t = threshold(Gaussian(sigma), np.asarray(radii, dtype=float))
    with np.errstate(divide="ignore"):
        n = np.ceil(np.log(alpha) / np.log(t))
    return "fewest votes that can certify each radius at this alpha: " + ", ".join(
        f"r={r:g}: {v:,.0f}" for r, v in zip(radii, n))


def ratio_ceiling(fixed: dict, labels: np.ndarray, sigma: float, radii, alpha: float) -> float:
    """The largest sample ratio any level-alpha procedure can reach at fixed n's certified accuracy: each
    point that fixed n certifies correctly at table radius r needs >= ceil(log(alpha) / log(Phi(r / sigma)))
    votes (all for c_A, one Clopper-Pearson bound at the full alpha), every point at least one vote."""
    from lib.smoothing import Gaussian
    from lib.smoothing.decision import threshold

    radii = np.asarray(radii, dtype=float)
    ok = fixed["preds"] == labels
    best = np.where(ok[:, None] & (fixed["radii"][:, None] >= radii[None, :]), radii[None, :], 0.0).max(1)
    with np.errstate(divide="ignore"):
        need = np.where(best > 0, np.ceil(np.log(alpha) / np.log(threshold(Gaussian(sigma), best))), 1.0)
    return float(np.mean(fixed["samples"]) / np.mean(need))


def _summary(name: str, table: pd.DataFrame, fixed: dict, decision: dict, seconds: dict) -> str:
    equal = bool((table["McNemar p"] >= 0.05).all())
    cap = "" if "ratio, cap only" not in table.attrs else (
        f"; out of reach by the deterministic cap only (reach='cap'): ratio {table.attrs['ratio, cap only']:.1f}x, "
        f"certified accuracy equal at every radius: {bool((table['McNemar p, cap only'] >= 0.05).all())}")
    return (f"### {name}\n\n{table.to_markdown(floatfmt='.4g')}\n\n"
            f"mean samples per point: fixed n {np.mean(fixed['samples']):,.0f}, decision mode "
            f"{np.mean(decision['samples']):,.0f} (median {np.median(decision['samples']):,.0f}, "
            f"max {np.max(decision['samples']):,}); ratio {table.attrs['ratio']:.1f}x; "
            f"certified accuracy {'equal' if equal else 'NOT equal'} at every radius (McNemar p >= 0.05: {equal}); "
            f"wall seconds fixed {seconds['fixed']:.0f}, decision {seconds['decision']:.0f}{cap}\n")


def _pooled(parts: list) -> tuple[dict, dict, np.ndarray]:
    cat = lambda key, k: np.concatenate([p[key][k] for p in parts])  # noqa: E731
    fixed = {k: cat("fixed", k) for k in ("preds", "radii", "samples")}
    decision = {k: cat("decision", k) for k in ("preds", "radii", "samples")}
    return fixed, decision, np.concatenate([p["labels"] for p in parts])


def _as_numpy(out) -> dict:
    return {"preds": out[0].numpy(), "radii": out[1].numpy(), "samples": np.asarray(out[2])}


def _run_setting(title: str, sigmas, make, c: dict, labels: np.ndarray, seed: int) -> dict:
    """Fixed n against decision mode (default and ``reach="cap"``) per sigma and pooled.

    make(sigma) -> (Smooth, its inputs [N, ...], a note on the model); c: n0, n, alpha, radii."""
    parts, md = [], []
    for sigma in sigmas:
        smooth, z, note = make(sigma)
        t0 = time.perf_counter()
        fixed = smooth.certify_batch(z, c["n0"], c["n"], c["alpha"], generator=torch.Generator().manual_seed(seed),
                                     allow_large=True, progress=False)
        t1 = time.perf_counter()
        dec = _as_numpy(smooth.certify_decisions(z, c["radii"], c["n0"], c["n"], c["alpha"],
                                                 generator=torch.Generator().manual_seed(seed + 1), allow_large=True,
                                                 progress=False))
        t2 = time.perf_counter()
        fixed = {"preds": fixed[0].numpy(), "radii": fixed[1].numpy(), "samples": np.full(len(z), c["n0"] + c["n"])}
        dec_cap = _as_numpy(smooth.certify_decisions(
            z, c["radii"], c["n0"], c["n"], c["alpha"], generator=torch.Generator().manual_seed(seed + 1),
            allow_large=True, progress=False, reach="cap"))
        table = _with_cap(compare(fixed, dec, c["radii"], labels), compare(fixed, dec_cap, c["radii"], labels))
        parts.append({"fixed": fixed, "decision": dec, "labels": labels, "table": table, "sigma": sigma,
                      "cap": dec_cap})
        md.append(_summary(f"{title}, sigma = {sigma:g} ({note}), n0 = {c['n0']}, n = {c['n']:,}, "
                           f"alpha = {c['alpha']}, {len(z)} points", table, fixed, dec,
                           {"fixed": t1 - t0, "decision": t2 - t1}) + min_votes(sigma, c["radii"], c["alpha"])
                  + f"; the largest ratio any level-alpha procedure could reach at fixed n's certified radii: "
                  f"{ratio_ceiling(fixed, labels, sigma, c['radii'], c['alpha']):.1f}x\n")
        print(md[-1], flush=True)
    fixed, dec, labels = _pooled(parts)
    cap = {k: np.concatenate([p["cap"][k] for p in parts]) for k in dec}
    table = _with_cap(compare(fixed, dec, c["radii"], labels), compare(fixed, cap, c["radii"], labels))
    md.append(_summary(f"{title}, pooled over sigma {list(sigmas)}", table, fixed, dec,
                       {"fixed": float("nan"), "decision": float("nan")}))
    print(md[-1], flush=True)
    return {"tables": {str(p["sigma"]): p["table"] for p in parts} | {"pooled": table}, "ratio": table.attrs["ratio"],
            "ratio_cap_only": table.attrs["ratio, cap only"], "markdown": "\n".join(md)}


def _with_cap(table: pd.DataFrame, cap: pd.DataFrame) -> pd.DataFrame:
    table["decision, cap only"], table["McNemar p, cap only"] = cap["decision"], cap["McNemar p"]
    table.attrs["ratio, cap only"] = cap.attrs["ratio"]
    return table


def run_cohen(points: int, seed: int, profile: str = "quick", sigmas=None) -> dict:
    """The ``cohen`` setting: a Gaussian-augmented MLP 784-64-10 per sigma, votes drawn in its hidden layer."""
    from lib.data import load
    from lib.models import get_classifier
    from lib.smoothing import Smooth
    from lib.smoothing.noise import LogitGaussian

    c = COHEN
    x, y = load("mnist", "test")
    x, y = x[:points], y[:points].numpy()

    def make(sigma):
        model, hist = get_classifier("mlp", "mnist", profile, noise="gaussian", sigma=sigma, seed=seed,
                                     hidden=c["hidden"], device="cpu")
        first, head = model.net[1], torch.nn.Sequential(*list(model.net)[2:])
        with torch.no_grad():
            z = first(x.flatten(1))  # clean hidden pre-activations [N, 64]
        return (Smooth(head, 10, LogitGaussian(sigma, first.weight)), z,
                f"MLP 784-64-10, noisy test accuracy {hist.get('test_accuracy_noisy', float('nan')):.3f}")

    return _run_setting("Cohen et al.'s MNIST setting", sigmas or c["sigmas"], make, c, y, seed)


def run_04(points: int, seed: int, profile: str = "quick", sigmas=None) -> dict:
    """Notebook 04's g[h] (the linear h, votes drawn in logit space), 04's sigmas, n0, n, alpha, radii."""
    import lib.profiles
    from lib.methods import Setup, build_smooth
    from lib.methods.runs import test_subset
    from lib.smoothing import Gaussian, Smooth
    from lib.smoothing.noise import LogitGaussian

    cfg = lib.profiles.get("04", profile)
    setup = Setup.from_profile(cfg, seed=seed)
    sub = test_subset(setup.dataset, points)
    c = {k: cfg[k] for k in ("n0", "n", "alpha", "radii")}

    def make(sigma):
        smooth = build_smooth("none", Gaussian(sigma), setup)[0]
        lin = getattr(smooth.classifier, "linear", smooth.classifier)
        with torch.no_grad():
            z = smooth.classifier(sub.xs.to(smooth.device))
        return Smooth(torch.nn.Identity(), smooth.num_classes, LogitGaussian(sigma, lin.weight)), z, "linear h"

    return _run_setting(f"Notebook 04's g[h] (profile {profile})", sigmas or cfg["sigmas"], make, c, sub.ys.numpy(),
                        seed)


def run_notebook(notebook: str, method: str, points: int, seed: int, profile: str = "quick", sigmas=None,
                 n: int | None = None) -> dict:
    """A registered method (:func:`lib.methods.build_smooth`) in a notebook's setting: its profile's
    sigmas, n0, alpha and radii, n = ``n`` (default the profile's n), ``points`` test images."""
    import lib.profiles
    from lib.methods import Setup, build_smooth
    from lib.methods.runs import test_subset
    from lib.smoothing import Gaussian

    cfg = lib.profiles.get(notebook, profile)
    setup = Setup.from_profile(cfg, seed=seed)
    sub = test_subset(setup.dataset, points)
    c = {"n0": int(cfg["n0"]), "n": int(n or cfg["n"]), "alpha": float(cfg["alpha"]),
         "radii": [float(r) for r in cfg["radii"]]}

    def make(sigma):
        return build_smooth(method, Gaussian(sigma), setup)[0], sub.xs, method

    return _run_setting(f"Notebook {notebook}'s {method} (profile {profile})", sigmas or cfg["sigmas"], make, c,
                        sub.ys.numpy(), seed)


def run_04pi(points: int, seed: int, profile: str = "quick", sigmas=None, n: int | None = None) -> dict:
    """Notebook 04's g[pi] over its radius grid: sequential CERTIFY (``smoke``, ``quick``) against decision
    mode (``full``) on the same points, 04's n0, alpha, grid; n_max = ``n`` or the profile's ``pi_n``. The
    ratio is sequential's mean samples per point over decision mode's (both count n0 / the candidate votes)."""
    import lib.profiles
    from lib.experiments.fidelity import sequential_targets
    from lib.methods import Setup, build_smooth
    from lib.methods.runs import test_subset
    from lib.smoothing import Gaussian

    cfg = lib.profiles.get("04", profile)
    setup = Setup.from_profile(cfg, seed=seed)
    sub = test_subset(setup.dataset, points)
    n0, n_max, alpha, labels = int(cfg["n0"]), int(n or cfg["pi_n"]), float(cfg["alpha"]), sub.ys.numpy()
    parts, md = [], []
    for sigma in sigmas or cfg["sigmas"]:
        smooth = build_smooth("empirical_bayes", Gaussian(sigma), setup)[0]
        grid = sequential_targets(cfg["radii"], sigma, n_max, alpha, cfg["pi_step"])
        t0 = time.perf_counter()
        seq = _as_numpy(smooth.certify_sequential(sub.xs, n0, n_max, alpha, targets=grid,
                                                  generator=torch.Generator().manual_seed(seed), allow_large=True,
                                                  progress=False))
        t1 = time.perf_counter()
        dec = _as_numpy(smooth.certify_decisions(sub.xs, grid, n0, n_max, alpha,
                                                 generator=torch.Generator().manual_seed(seed + 1), allow_large=True,
                                                 progress=False))
        t2 = time.perf_counter()
        table = compare(seq, dec, grid, labels).rename(columns={"fixed n": "sequential"})
        parts.append({"fixed": seq, "decision": dec, "labels": labels, "table": table, "sigma": sigma})
        md.append(_sequential_summary(f"Notebook 04's g[π] (profile {profile}), sigma = {sigma:g}, n0 = {n0}, "
                                      f"n_max = {n_max:,}, alpha = {alpha}, {len(sub)} points, "
                                      f"grid {[float(r) for r in grid]}", table, seq, dec, t1 - t0, t2 - t1))
        print(md[-1], flush=True)
    seq, dec, labels = _pooled(parts)
    grid = sorted({r for p in parts for r in p["table"].index})
    ratio = float(np.mean(seq["samples"]) / np.mean(dec["samples"]))
    md.append(f"### pooled over sigma {[p['sigma'] for p in parts]}\n\nmean samples per point: sequential "
              f"{np.mean(seq['samples']):,.0f}, decision mode {np.mean(dec['samples']):,.0f}; ratio {ratio:.2f}x\n")
    print(md[-1], flush=True)
    return {"tables": {str(p["sigma"]): p["table"] for p in parts}, "ratio": ratio, "markdown": "\n".join(md)}


def _sequential_summary(name: str, table: pd.DataFrame, seq: dict, dec: dict, t_seq: float, t_dec: float) -> str:
    equal = bool((table["McNemar p"] >= 0.05).all())
    return (f"### {name}\n\n{table.to_markdown(floatfmt='.4g')}\n\n"
            f"mean samples per point: sequential {np.mean(seq['samples']):,.0f}, decision mode "
            f"{np.mean(dec['samples']):,.0f} (max {np.max(dec['samples']):,}); ratio {table.attrs['ratio']:.2f}x; "
            f"certified accuracy {'equal' if equal else 'NOT equal'} at every grid radius (McNemar p >= 0.05: "
            f"{equal}); wall seconds sequential {t_seq:.0f}, decision {t_dec:.0f}\n")


def run_lee(points: int, seed: int, profile: str = "quick", sigmas=None, n: int = 10_000) -> dict:
    """The ``lee`` setting: notebook 05's one-step denoiser + classifier, 05's n0, alpha, radii, n = 10^4."""
    return run_notebook("05", "one_step", points, seed, profile, sigmas, n)


def run_07(profile: str, seed: int, only: str | None) -> dict:
    """Notebook 07's comparison of sequential CERTIFY with fixed n (its logs are reused)."""
    import lib.profiles
    from lib.experiments import procedures
    from lib.methods import Setup
    from lib.reporting import markdown_table

    cfg07 = lib.profiles.get("07", profile)
    cfg04, cfg05 = lib.profiles.get("04", profile), lib.profiles.get("05", profile)
    runs = procedures.sequential_runs(cfg07["seq"], cfg04, cfg05, Setup.from_profile(cfg04, seed=seed),
                                     Setup.from_profile(cfg07, seed=seed), "07_ablations", only=only)
    md = [f"### {name}: n0 = {run['n0']}, n_max = {run['n_max']:,}, {run['points']} points\n\n"
          + markdown_table(run["table"]) for name, run in runs.items()]
    text = "\n\n".join(md)
    print(text)
    return {"ratio": {name: run["ratio"] for name, run in runs.items()}, "markdown": text}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", nargs="+", choices=["cohen", "lee", "04", "04pi", "notebook", "07"],
                        default=["cohen", "lee"])
    parser.add_argument("--notebook", default="09", help="with --setting notebook: whose profile settings")
    parser.add_argument("--method", default="gaussian_aug", help="with --setting notebook: a registered method")
    parser.add_argument("--n", type=int, default=None,
                        help="with --setting notebook: n (default the profile's); with 04pi: n_max (default pi_n)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--points", type=int, default=None,
                        help=f"test points (default per setting: {DEFAULT_POINTS})")
    parser.add_argument("--sigmas", type=float, nargs="*", default=None)
    parser.add_argument("--only", choices=["04", "05"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    threads = configure_threads()
    out, results = Path(args.out), {}
    for setting in args.setting:
        load0, t0 = os.getloadavg(), time.perf_counter()
        points = args.points or DEFAULT_POINTS.get(setting)
        if setting == "cohen":
            res = run_cohen(points, args.seed, args.profile, args.sigmas)
        elif setting == "lee":
            res = run_lee(points, args.seed, args.profile, args.sigmas)
        elif setting == "notebook":
            res = run_notebook(args.notebook, args.method, points, args.seed, args.profile, args.sigmas, args.n)
        elif setting == "04":
            res = run_04(points, args.seed, args.profile, args.sigmas)
        elif setting == "04pi":
            res = run_04pi(points, args.seed, args.profile, args.sigmas, args.n)
        else:
            res = run_07(args.profile, args.seed, args.only)
        info = {"setting": setting, "profile": args.profile, "seed": args.seed, "points": points,
                "threads": threads, "load_before": load0, "load_after": os.getloadavg(),
                "wall_seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count()}
        ratio = res["ratio"]
        base = {"07": "fixed n / sequential", "04pi": "sequential / decision"}.get(setting, "fixed n / decision")
        print(f"\n{setting}: samples ratio {base} = "
              f"{ratio if isinstance(ratio, dict) else f'{ratio:.2f}'}; {info}\n", flush=True)
        atomic_write_text(out / f"decision_{setting}.md", res["markdown"] + f"\n\n{info}\n")
        atomic_write_json(out / f"decision_{setting}.json",
                          {"info": info, "ratio": ratio, "ratio_cap_only": res.get("ratio_cap_only"),
                           "tables": {k: t.to_dict(orient="index") for k, t in res.get("tables", {}).items()}})
        results[setting] = {"info": info, "ratio": ratio}
    return results


if __name__ == "__main__":
    main()
