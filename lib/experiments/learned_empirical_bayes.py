"""Learned empirical Bayes smoothed classifiers (Saremi & Srivastava §3, §4.2): certification, empirical
robustness, model and budget tables, and the MNIST counterpart of Lecture 14's Tables 1-2.

The methods (in :mod:`lib.methods.registry`) (Gaussian noise; the classifier H is trained by ``lib.models.adversarial``
at the smoothing sigma, with ε, m and PGD steps of the ``xhat`` model family of the profile):

================  ==========================================================================
key               smoothed classifier g[π] of the base π = argmax H(x̂(·))
================  ==========================================================================
xhat_eps          XHAT_ε: H trained on −log Π_k(x + δ) with the PGD attack of radius ε (eq. 13)
xhat_0            XHAT_0: the same trainer with ε = 0
smoothadv         SmoothAdv_ε (Salman et al. 2019): the same min-max without x̂ (base = H)
xhat_wj_tau<T>    XHAT_ε's H behind walk-jump (eq. 16-17): x̂(y) at σ, T Langevin steps at σ'
                  on φ_σ', a final jump x̂_σ'; registered by ``lib.methods.register_walk_jump``
gaussian_aug      Lecture 14 §3 Attempt 1 (Cohen et al.): the same trainer with ``objective="augment"``
                  (eq. 8, mean over m draws of −log softmax H(x + ε_j)_k), no x̂, ε = 0
smoothed_obj      Attempt 2: eq. 9 with the plug-in estimator of m draws (the trainer at ε = 0, no x̂)
smoothadv_lecture Attempt 3 (Salman et al.): SmoothAdv_ε with the same m as the two above
================  ==========================================================================

The three ``LECTURE_KEYS`` differ only in the objective (and ε): architecture, data, optimiser,
schedule and m (the family's ``lecture_m``) are the same by construction, and
:func:`lecture_table` certifies them on the same points with the same n0, n, alpha and sigmas for
the MNIST counterpart of Lecture 14's Tables 1-2 (best over σ, beside the lecture's rows).

Certification goes through ``lib.methods.certify_grid`` (the lecture table through
``lib.methods.certify_tables``: decision mode where the profile's ``certify`` says so). Beside
it, :func:`empirical_robust_accuracy` attacks the smoothed soft classifier with ℓ2 PGD
(``pgd_attack_smoothed``) and classifies the attacked points with Cohen's PREDICT: an
*upper* estimate of robust accuracy against which the certified (lower) one is checked.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from lib import paths, profiles
from lib.methods import (Setup, TestSubset, build_pipeline, certification_mode, certify_tables, grid_metrics,
                         method_label, table_settings)
from lib.models.adversarial import pgd_attack_smoothed, xhat_config
from lib.reporting import (PUBLISHED, accuracy_curve, certified_accuracy, load_table_spec, published_rows, read_log,
                           register_table)
from lib.smoothing import ABSTAIN, Gaussian, Smooth, read_settings
from lib.utils import atomic_write_text, check_alpha, check_count, config_hash

__all__ = ["XHAT_KEYS", "PUBLISHED_TABLE2", "empirical_robust_accuracy", "robust_summary", "robust_tables",
           "nc_sweep_figure", "previous_rows",
           "model_table", "budget_notes",
           "PAPER_BUDGET", "METHODS_LABELS", "xhat0_identity", "walk_jump_procedure", "LECTURE_KEYS",
           "LECTURE_RADII", "LECTURE_REFERENCE", "lecture_table", "lecture_metrics"]

#: the three methods of Figure 5, in the paper's order
XHAT_KEYS = ("xhat_eps", "xhat_0", "smoothadv")

#: Saremi & Srivastava Table 2 (:data:`lib.reporting.PUBLISHED`), for labelled reference rows only
PUBLISHED_TABLE2 = {"radii": PUBLISHED["saremi_table2"]["radii"], "source": PUBLISHED["saremi_table2"]["source"],
                    "rows": published_rows("saremi_table2")[0]}

def walk_jump_procedure(smooth: Smooth):
    """The ``procedure`` of ``certify_method`` / ``certify_grid`` for a walk-jump denoiser: each
    certification block's CERTIFY runs with the walk drawing its noise from the block's generator
    (seeded by (seed, block) in ``lib.smoothing.certify_dataset``), so a resumed log holds exactly
    the rows of an uninterrupted one. Any other denoiser is certified as usual."""
    den = smooth.denoiser

    def certify(xs, n0, n, alpha, batch_size=None, generator=None):
        if not hasattr(den, "use_generator"):
            return smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator)
        den.use_generator(generator)
        try:
            return smooth.certify_batch(xs, n0, n, alpha, batch_size=batch_size, generator=generator)
        finally:
            den.use_generator(None)

    return certify


# ====================================================================== Lecture 14's Tables 1-2 on MNIST
#: Lecture 14 §3's three methods, in its order: Gaussian augmentation, smoothed objective, SmoothAdv
LECTURE_KEYS = ("gaussian_aug", "smoothed_obj", "smoothadv_lecture")
#: every radius of the lecture's Table 2 (CIFAR-10, 0.25 ... 2.25) and Table 1 (ImageNet, 0.5 ... 3.5)
LECTURE_RADII = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5]
_NA = "–"
#: the lecture's Tables 1-2 verbatim (%), aligned to LECTURE_RADII ("–": the table has no such column);
#: [3] = Cohen et al. (Gaussian augmentation), [4] = Salman et al. (SmoothAdv); labelled references only
LECTURE_REFERENCE = {
    "source": ("Lecture 14, *Certified defenses III: randomized smoothing*, Tables 1-2 (reproduced there from Salman "
               "et al. [4]): data=ImageNet (Table 1) and CIFAR-10 (Table 2), model=the classifiers of [3] Cohen et al. "
               "(Gaussian augmentation) and [4] Salman et al. (SmoothAdv), certified top-1 accuracy; n and alpha are "
               "not printed in the lecture"),
    "rows": {
        "Lecture 14 T1 ImageNet: Gaussian augmentation": [_NA, 49, _NA, 37, _NA, 29, _NA, 19, _NA, 15, 12, 9],
        "Lecture 14 T1 ImageNet: SmoothAdv": [_NA, 56, _NA, 43, _NA, 37, _NA, 27, _NA, 25, 20, 16],
        "Lecture 14 T2 CIFAR-10: Gaussian augmentation": [61, 43, 32, 22, 17, 13, 10, 7, 4, _NA, _NA, _NA],
        "Lecture 14 T2 CIFAR-10: SmoothAdv": [73, 58, 48, 38, 33, 29, 24, 18, 16, _NA, _NA, _NA],
        "Lecture 14 T2 CIFAR-10: SmoothAdv + pre-training": [80, 62, 52, 38, 34, 30, 25, 19, 16, _NA, _NA, _NA],
        "Lecture 14 T2 CIFAR-10: SmoothAdv + semi-supervision": [80, 63, 52, 40, 34, 29, 25, 19, 17, _NA, _NA, _NA],
        "Lecture 14 T2 CIFAR-10: SmoothAdv + both": [81, 63, 52, 37, 33, 29, 25, 18, 16, _NA, _NA, _NA],
    },
}


def lecture_table(setup: Setup, subset: TestSubset, sigmas: Sequence[float], n0: int, n: int, alpha: float,
                  notebook: str, mode: str = "fixed") -> tuple[dict, pd.DataFrame]:
    """Certify the three :data:`LECTURE_KEYS` at every sigma on ``subset`` (one protocol: the same
    points, n0, n, alpha, certification ``mode``: "fixed" n, or "decision" mode with every radius of
    :data:`LECTURE_RADII` decided with at most n votes, :func:`lib.methods.certify_tables`) and register the
    table ``lecture_tables``: best over σ at :data:`LECTURE_RADII`, with the lecture's rows as labelled
    references. Returns ({(method, σ): log}, the table)."""
    logs = certify_tables(list(LECTURE_KEYS), "gaussian", sigmas, setup, subset, n0, n, alpha, notebook, LECTURE_RADII,
                          mode)
    rows = {METHODS_LABELS[k]: [logs[(k, float(s))] for s in sigmas] for k in LECTURE_KEYS}
    fam = profiles.model_settings("xhat", setup.profile)
    model = (f"{fam['arch']} H without x̂, one trainer (lib.models.adversarial): m={fam['lecture_m']} noise draws, "
             f"SmoothAdv ε={fam['eps']:g} with {fam['pgd_steps']} PGD steps")
    settings = table_settings(subset, setup.profile, model, list(sigmas), n0, n, alpha, certification=mode)
    table = register_table(notebook, "lecture_tables", rows, LECTURE_RADII, settings=settings,
                           reference=LECTURE_REFERENCE["rows"], reference_source=LECTURE_REFERENCE["source"],
                           title="Lecture 14 Tables 1-2 counterpart: certified l2 accuracy on MNIST of the lecture's "
                                 "three training methods under one protocol, best over σ")
    return logs, table


def lecture_metrics(logs: dict, curve_grid: Sequence[float]) -> dict:
    """What notebook 09 records of the lecture table: ``grid_metrics`` at :data:`LECTURE_RADII` (its curves on
    ``curve_grid``; on :data:`LECTURE_RADII` only where a log is in decision mode, whose radius is a table
    radius), the certification mode of every log, the protocol of every log (n0, n, alpha, points, indices
    hash, sigma from its sidecar) and, per sigma, the keys in which the three classifiers' configs differ
    (only method and eps)."""
    modes = {f"{k}|{s:g}": certification_mode(p) for (k, s), p in logs.items()}
    out = grid_metrics(logs, LECTURE_RADII, curve_grid if set(modes.values()) == {"fixed"} else LECTURE_RADII)
    out["certification"] = modes
    out["protocol"] = {f"{k}|{s:g}": {key: read_settings(p).get(key) for key in
                                      ("n0", "n", "alpha", "num_points", "indices_hash", "sigma")}
                       for (k, s), p in logs.items()}
    diff = {}
    for s in sorted({s for _, s in logs}):
        cfgs = [read_settings(logs[(k, s)])["models"]["classifier"] for k in LECTURE_KEYS]
        diff[f"{s:g}"] = sorted({key for c in cfgs for key in set(cfgs[0]) | set(c) if c.get(key) != cfgs[0].get(key)})
    out["config_differences"] = diff
    out["m"] = {f"{k}|{s:g}": read_settings(p)["models"]["classifier"]["m"] for (k, s), p in logs.items()}
    return out


# ====================================================================== empirical robustness
def empirical_robust_accuracy(method: str, sigma: float, setup: Setup, subset: TestSubset, radii: Sequence[float],
                              certify_log: str | Path, steps: int, m: int, n: int, alpha: float,
                              notebook: str, clip: Sequence[float] | None = (0.0, 1.0)) -> pd.DataFrame:
    """PGD (``pgd_attack_smoothed``, ``steps`` steps, ``m`` noise draws) on the smoothed soft
    classifier of ``method`` at every radius, then Cohen's PREDICT (``n`` samples, level ``alpha``)
    at the attacked point. One row per (test point, radius): ``idx``, ``radius``, ``pred`` (class or
    ABSTAIN), ``broken`` (PREDICT names another class, or g already errs at x per the certification
    log), ``strict`` (robust only if PREDICT returns the label; abstention counts as an error).

    Robust accuracy at r is then 1 − mean(broken): an *upper* estimate (a stronger attack can
    only lower it), so the certified accuracy at r must not exceed it; the stricter figure
    mean(strict) also counts abstentions as errors. Cached as CSV under
    ``LOGS/<notebook>/`` by a hash of everything that determines it.
    """
    steps, m, n = check_count("steps", steps), check_count("m", m), check_count("n", n)
    alpha = check_alpha(alpha)
    pipe = build_pipeline(method, Gaussian(sigma), setup)
    key = config_hash({"models": pipe.config, "subset": subset.key, "radii": [float(r) for r in radii],
                       "steps": steps, "m": m, "n": n, "alpha": alpha, "seed": setup.seed,
                       "clip": list(clip) if clip else None, "certify_log": Path(certify_log).name})
    path = paths.LOGS / str(notebook) / f"{setup.dataset}-{method}-pgd-s{sigma:g}-{setup.profile}-{key}.csv"
    if path.exists():
        return pd.read_csv(path)
    cert = read_log(certify_log).set_index("idx")
    missing = [i for i in subset.indices if i not in cert.index]
    if missing:
        raise ValueError(f"the attacked points must be certified in {Path(certify_log).name}; missing indices "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    smooth = Smooth(pipe.classifier, pipe.num_classes, Gaussian(sigma), denoiser=pipe.denoiser,
                    device=setup.torch_device)
    dev = setup.torch_device
    xs, ys = subset.xs.to(dev), subset.ys.to(dev)
    rows = []
    for j, r in enumerate(radii):
        gen = torch.Generator(device=dev).manual_seed(setup.seed * 1000 + j)
        adv = pgd_attack_smoothed(pipe.classifier, xs, ys, sigma, float(r), steps, m, pipe.denoiser,
                                  generator=gen, clip=clip)
        for i, idx in enumerate(subset.indices):
            pred = smooth.predict(adv[i], n, alpha, generator=gen)
            clean_ok = bool(cert.loc[idx, "correct"])
            rows.append({"idx": idx, "radius": float(r), "pred": pred, "label": int(ys[i]),
                         "broken": (not clean_ok) or (pred not in (ABSTAIN, int(ys[i]))),
                         "strict": clean_ok and pred == int(ys[i])})
    df = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, df.to_csv(index=False))
    return df


def robust_summary(empirical: pd.DataFrame, certify_log: str | Path, radii: Sequence[float]) -> pd.DataFrame:
    """Per radius (%): certified accuracy (from the log, on the attacked points only) beside the
    empirical robust accuracy under PGD (upper estimate, and abstention = error)."""
    cert_df = read_log(certify_log)
    cert = certified_accuracy(cert_df[cert_df["idx"].isin(set(empirical["idx"]))], [float(r) for r in radii])
    out = []
    for r, c in zip(radii, cert):
        e = empirical[np.isclose(empirical["radius"], float(r))]
        out.append({"radius": float(r), "certified": 100 * float(c), "empirical (PGD)": 100 * (1 - e["broken"].mean()),
                    "empirical, abstain = error": 100 * e["strict"].mean()})
    return pd.DataFrame(out).set_index("radius")


def robust_tables(logs: dict, setup: Setup, subset: TestSubset, radii: Sequence[float], steps: int, m: int, n: int,
                  alpha: float, notebook: str) -> dict:
    """:func:`robust_summary` of :func:`empirical_robust_accuracy` for every ``(method, sigma)`` of
    ``logs`` (their certification logs): ``{(method, sigma): DataFrame}``. Raises RuntimeError if a
    certified accuracy exceeds the empirical robust accuracy (an upper estimate): a bug, never data."""
    out = {}
    for (k, s), log in logs.items():
        emp = empirical_robust_accuracy(k, s, setup, subset, radii, log, steps, m, n, alpha, notebook)
        out[(k, s)] = table = robust_summary(emp, log, radii)
        if not (table["certified"] <= table["empirical (PGD)"] + 1e-9).all():
            raise RuntimeError(f"bug: certified accuracy above the empirical robust accuracy for {k}, sigma = {s:g}")
    return out


def nc_sweep_figure(nc_logs: dict, sigmas: Sequence[float], alpha: float, key: str = "xhat_eps",
                    max_radius: float = 2.5):
    """Figure 5 (c, d): certified accuracy of ``key`` for each n_c of ``nc_logs``
    (``{n_c: {(key, sigma): log}}``), one panel per sigma, each n_c's radius cap dotted."""
    fig, axes = plt.subplots(1, len(sigmas), figsize=(7 * len(sigmas), 5), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        for i, (nc, lg) in enumerate(nc_logs.items()):
            grid, acc = accuracy_curve(read_log(lg[(key, s)]), max_radius=max_radius)
            ax.plot(grid, 100 * acc, color=f"C{i}", label=f"n_c = {nc:,}")
            ax.axvline(Gaussian(s).max_radius(nc, alpha), color=f"C{i}", ls=":")
        ax.set(title=f"{method_label(key)}, σ = {s:g}", xlabel="ℓ2 radius", ylabel="certified accuracy (%)",
               ylim=(0, 100))
        ax.legend()
    return fig


def previous_rows(notebook: str = "04_empirical_bayes_linear_mnist", stem: str = "table1",
                  profile: str | None = None) -> dict:
    """Notebook 04's registered g[h] / g[π] rows (log paths, best over σ) when they exist under
    the same profile, relabelled "<row> (notebook 04, linear h)"; {} otherwise."""
    try:
        spec = load_table_spec(notebook, stem)
    except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
        return {}
    if profile is not None and str((spec.get("settings") or {}).get("profile")) != profile:
        return {}
    rows = {}
    for label, logs in spec["rows"].items():
        full = [p if Path(p).is_absolute() else str(paths.OUTPUTS / p) for p in logs]
        if all(Path(p).exists() for p in full):
            rows[f"{label.split(',')[0]} (notebook 04, linear h)"] = full
    return rows

# ====================================================================== tables of models and budgets
def model_table(setup: Setup, sigmas: Sequence[float], methods: Sequence[str] = XHAT_KEYS) -> pd.DataFrame:
    """Train (or load) H for every (method, sigma) and list it: ε, PGD steps, m, updates, batch,
    accuracy of the hard base π = argmax H(x̂(x + ε)) on noisy test inputs (one draw), training time."""
    rows = []
    for key in methods:
        for s in sigmas:
            pipe = build_pipeline(key, Gaussian(s), setup)
            c = pipe.config["classifier"]
            hist = pipe.info["history"]
            rows.append({"method": METHODS_LABELS.get(key, key), "sigma": s, "arch": c["arch"], "ε": c["eps"],
                         "PGD steps": c["pgd_steps"] if c["eps"] > 0 else 0, "m": c["m"],
                         "updates": hist.get("iters"), "batch": c["batch_size"],
                         "x̂": "DEEN" if c["deen"] else "none",
                         "loss": "eq. 8 (augmentation)" if c["method"] == "augment" else "−log Π (eq. 9/13)",
                         "noisy test acc of base (%)": round(100 * hist.get("test_accuracy_noisy", float("nan")), 1),
                         "train s": round(hist.get("seconds", float("nan")), 1)})
    return pd.DataFrame(rows)


#: labels of the model table and of the lecture table's rows (the latter equal the lecture reference rows' names)
METHODS_LABELS = {"xhat_eps": "XHAT_ε", "xhat_0": "XHAT_0", "smoothadv": "SmoothAdv_ε",
                  "gaussian_aug": "Gaussian augmentation", "smoothed_obj": "smoothed objective",
                  "smoothadv_lecture": "SmoothAdv"}

#: the paper's budgets (Figure 5 caption, §3.2, Figure 6)
PAPER_BUDGET = {"n": 1_000_000, "alpha": 0.001, "eps": 1.0, "m": 1, "pgd_steps": 16, "num_points": 10_000,
                "tau": 100, "sigma_prime": 0.05, "delta": 0.001}


def budget_notes(cfg: dict, setup: Setup) -> list[str]:
    """What the profile's sizes cost against the paper, one line each (printed by notebook 09)."""
    fam = xhat_config(setup.dataset, cfg["sigmas"][0], "xhat", setup.profile, seed=setup.seed)
    n, alpha, pb = cfg["n"], cfg["alpha"], PAPER_BUDGET
    size = f"{fam['iters']} updates of {fam['batch_size']}" if fam.get("iters") else f"{fam['epochs']} epochs"
    train = f"{size} on {'all' if fam['train_limit'] is None else fam['train_limit']} training images"
    caps = ", ".join(f"σ={s:g}: {Gaussian(s).max_radius(n, alpha):.2f} "
                     f"(the paper's n_c={pb['n']:,} at our alpha: {Gaussian(s).max_radius(pb['n'], alpha):.2f})"
                     for s in cfg["sigmas"])
    wj = cfg["walk_jump"]
    return [
        f"training: {train}, ε={fam['eps']:g}, m={fam['m']}, {fam['pgd_steps']} PGD steps, arch={fam['arch']} "
        f"(paper: ε={pb['eps']:g}, m={pb['m']}, {pb['pgd_steps']} steps; its epochs, optimiser and architecture are "
        "not stated)",
        f"certification: n={n:,} (paper n_c={pb['n']:,}), n0={cfg['n0']}, alpha={alpha}, {cfg['num_points'] or 'all'} "
        f"test points (paper: the 10k test set); radius cap r_max {caps}",
        f"n_c sweep (Figure 5 c, d): n in {cfg['nc_sweep']['ns']} on {cfg['nc_sweep']['num_points']} points",
        f"walk-jump: τ={wj['tau']} (paper's Figure 6: τ={pb['tau']}), σ'={wj['sigma_prime']}, δ={wj['delta']}, "
        f"σ={wj['sigma']}, n={wj['n']:,} on {wj['num_points']} points: {wj['tau'] + 2} energy gradients per sample "
        f"instead of 1",
        f"empirical robustness: PGD with {cfg['attack']['steps']} steps and m={cfg['attack']['m']} noise draws on "
        f"{cfg['attack']['num_points']} of the points, PREDICT with n={cfg['attack']['n']}, alpha={cfg['attack']['alpha']}",
    ]


def xhat0_identity(setup: Setup, sigmas: Sequence[float]) -> dict:
    """{"registered": {sigma: hash of XHAT_0's H config}, "eps0_run": {sigma: hash of the trainer's
    config with eps = 0}}: equal by construction (XHAT_0 *is* the ε = 0 run); the smoke test checks it."""
    reg = {f"{s:g}": config_hash(build_pipeline("xhat_0", Gaussian(s), setup).config["classifier"])
           for s in sigmas}
    run = {f"{s:g}": config_hash(xhat_config(setup.dataset, s, "xhat", setup.profile, 0.0, setup.seed)) for s in sigmas}
    return {"registered": reg, "eps0_run": run}
