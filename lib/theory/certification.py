"""What a certificate can say (Lecture 14 §1.1, Saremi & Srivastava §4.1), for notebook 00:
the exact outcome distribution of CERTIFY, its soundness against a reference, and the
concentration of Gaussian noise."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import binom, norm

from lib import paths
from lib.reporting import certified_accuracy, load_table_spec
from lib.smoothing import ABSTAIN, Gaussian, Smooth, lower_confidence_bound, read_log, read_settings
from lib.utils import check_alpha, check_count, check_sigma

from .common import LinearBinaryClassifier, _probabilities, binomial_tolerance
from .lecture import max_certifiable_radius

__all__ = ["certify_statistics", "certificate_reference", "abstention_simulation", "sample_noise_norms",
           "PROTOCOL_KEYS", "LECTURE_TABLE_METHODS", "lecture_table_logs", "same_protocol_table", "plugin_vs_certify",
           "plugin_verdict", "abstain_thresholds"]


def certify_statistics(p_a, n: int, alpha: float, sigma: float = 1.0, n0: int | None = None) -> pd.DataFrame:
    """Exact outcome distribution of CERTIFY for a two-class point whose top class A has
    probability p_a >= 1/2 under the noise (the n / alpha / abstention trade-off).

    CERTIFY draws n0 votes to pick the candidate (the class with more votes; a tie picks the
    other class, as ``argmax`` does when A has the larger index), then n fresh votes; with K
    the candidate's count it certifies iff LCB(K, n, alpha) > 1/2, with radius
    sigma Phi^-1(LCB). Everything is a finite binomial sum. Returns one row per p_a with
    columns p_a, abstain (probability), certify_a (P(certifies class A)), expected_radius
    (E[radius; certified A]), radius_if_known (sigma Phi^-1(p_a), the radius with n = inf),
    r_max (sigma Phi^-1(alpha^(1/n))). n0 = None skips the selection step (candidate = A).
    """
    sigma = check_sigma(sigma)
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    pa = np.atleast_1d(_probabilities("p_a", p_a))
    if n0 is not None:
        n0 = check_count("n0", n0)
    noise = Gaussian(sigma)
    k = np.arange(n + 1)
    lcb = np.asarray(lower_confidence_bound(k, n, alpha))
    ok = lcb > 0.5
    radius_k = noise.radius(lcb)  # 0 where LCB <= 1/2 (abstain)
    r_max = max_certifiable_radius(n, alpha, sigma)
    rows = []
    for p in pa:
        # P(candidate = A): strictly more than half of the n0 selection votes
        sel_a = 1.0 if n0 is None else float(binom.sf(n0 // 2, n0, p))
        pmf_a = binom.pmf(k, n, p)
        pmf_b = binom.pmf(k, n, 1 - p)
        cert_a = float(pmf_a[ok].sum())
        cert_b = float(pmf_b[ok].sum())
        rows.append((p, min(max(1 - sel_a * cert_a - (1 - sel_a) * cert_b, 0.0), 1.0), sel_a * cert_a,
                     sel_a * float(pmf_a @ radius_k), noise.radius(p), r_max))
    return pd.DataFrame(rows, columns=["p_a", "abstain", "certify_a", "expected_radius",
                                       "radius_if_known", "r_max"])


def certificate_reference(smooth, xs: torch.Tensor, preds: torch.Tensor, radii: torch.Tensor, n_ref: int,
                          generator: torch.Generator | None = None, alpha_ref: float = 1e-4) -> pd.DataFrame:
    """Soundness of CERTIFY against a reference: for every input, ``n_ref`` fresh votes give
    (with Clopper-Pearson bounds at level ``alpha_ref``, union over classes) an upper confidence
    bound on the true Theorem 1.1 radius of the predicted class,
    R_up = sigma/2 (Phi^-1(p_c upper) - Phi^-1(max_{k != c} p_k lower)).
    A certificate violates when it is not an abstention and radius > R_up.
    Columns: pred, radius, p_ref (top empirical frequency), radius_upper, violation."""
    n_ref = check_count("n_ref", n_ref)
    counts = smooth.sample_counts(xs, n_ref, generator=generator).cpu().numpy()
    k = counts.shape[1]
    sigma = smooth.noise.sigma
    lower = np.asarray(lower_confidence_bound(counts, n_ref, alpha_ref / k))
    upper = 1.0 - np.asarray(lower_confidence_bound(n_ref - counts, n_ref, alpha_ref / k))
    rows = []
    for i, (c, r) in enumerate(zip(preds.tolist(), radii.tolist())):
        if c < 0:
            rows.append((c, r, counts[i].max() / n_ref, np.nan, False))
            continue
        others = np.delete(lower[i], c).max()
        with np.errstate(divide="ignore"):
            r_up = 0.5 * sigma * (norm.ppf(upper[i, c]) - norm.ppf(others))
        r_up = max(float(r_up), 0.0)
        rows.append((c, r, counts[i].max() / n_ref, r_up, bool(r > r_up)))
    return pd.DataFrame(rows, columns=["pred", "radius", "p_ref", "radius_upper", "violation"])


def abstention_simulation(p_a: Sequence[float], sigma: float, n0: int, n: int, alpha: float, copies: int,
                          generator: torch.Generator | None = None) -> pd.DataFrame:
    """Simulate CERTIFY (``lib.smoothing.Smooth.certify_batch``) on ``copies`` copies of a 1-D point
    whose top-class probability is exactly p_A (threshold classifier 1[z > 0], x = sigma Phi^-1(p_A)),
    and compare with the exact binomial sums of :func:`certify_statistics`.
    Columns: p_a, simulated, exact, se (binomial standard error of the simulated fraction,
    floored at 1/copies so that a rare event seen once is not a many-sigma outlier)."""
    copies = check_count("copies", copies)
    smooth = Smooth(LinearBinaryClassifier([1.0], 0.0), 2, Gaussian(sigma))
    exact_all = certify_statistics(p_a, n, alpha, sigma, n0)["abstain"].to_numpy()
    rows = []
    for p, exact in zip(p_a, exact_all.tolist()):
        xs = torch.full((copies, 1), sigma * float(norm.ppf(p)), dtype=torch.float64)
        preds, _ = smooth.certify_batch(xs, n0, n, alpha, generator=generator)
        sim = float((preds == ABSTAIN).double().mean())
        rows.append((float(p), sim, exact, math.sqrt(max(exact * (1 - exact), 1.0 / copies) / copies)))
    return pd.DataFrame(rows, columns=["p_a", "simulated", "exact", "se"])


def sample_noise_norms(d: int, num: int, sigma: float = 1.0, generator: torch.Generator | None = None,
                       chunk: int = 1 << 22) -> np.ndarray:
    """``num`` draws of ||eps||, eps ~ N(0, sigma^2 I_d), in chunks of ~``chunk`` floats. -> [num]."""
    d, num, sigma = check_count("d", d), check_count("num", num), check_sigma(sigma)
    out, per = [], max(1, chunk // d)
    for start in range(0, num, per):
        m = min(per, num - start)
        out.append(torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1) * sigma)
    return torch.cat(out).numpy()


# =============================================================================== the lecture's Tables 1-2 on MNIST
#: settings every log of one table must share, read from their sidecars (``lib.smoothing.read_settings``); sigma
#: may differ (a row is the best over its sigmas), but every row must hold the same set of sigmas
PROTOCOL_KEYS = ("dataset", "split", "noise", "n0", "n", "alpha", "indices_hash")
#: the lecture's methods (labels of notebook 09's table "lecture_tables") -> notebook 09's registered methods
LECTURE_TABLE_METHODS = {"Gaussian augmentation": "gaussian_aug", "smoothed objective": "smoothed_obj",
                         "SmoothAdv": "smoothadv_lecture"}


def lecture_table_logs(profile: str, notebook: str = "09_learned_empirical_bayes",
                       stem: str = "lecture_tables") -> dict:
    """The logs of the MNIST counterpart of Lecture 14's Tables 1-2, as notebook 09 registered them
    (``lib.experiments.learned_empirical_bayes.lecture_table``): {label: [log path per sigma]} for the labels of
    :data:`LECTURE_TABLE_METHODS`. Empty when notebook 09 has not registered the table under
    ``profile`` or a log is missing; ``ValueError`` when a log is not of its row's method."""
    try:
        spec = load_table_spec(notebook, stem)
    except (FileNotFoundError, ValueError):
        return {}
    if str((spec.get("settings") or {}).get("profile")) != profile:
        return {}
    rows = {}
    for label, method in LECTURE_TABLE_METHODS.items():
        logs = [Path(p) if Path(p).is_absolute() else paths.OUTPUTS / p for p in spec["rows"].get(label, [])]
        if not logs or not all(p.exists() for p in logs):
            return {}
        for p in logs:
            if read_settings(p).get("method") != method:
                raise ValueError(f"{p} is in row {label!r} but was certified for method "
                                 f"{read_settings(p).get('method')!r}, not {method!r}")
        rows[label] = logs
    return rows


def same_protocol_table(logs: Mapping[str, object], radii: Sequence[float]) -> pd.DataFrame:
    """Certified accuracy (%) at ``radii``, best over each row's logs (rows: the labels of ``logs``,
    label -> one log path or a list of them, e.g. one per sigma), after checking from the sidecars
    that every log was certified under one protocol (:data:`PROTOCOL_KEYS`: data set, split, noise,
    n0, n, alpha and the same test points) and that every row holds the same sigmas; raises
    ``ValueError`` naming the logs and the differing settings otherwise."""
    if not logs:
        raise ValueError("no logs given")
    paths_of = {label: [v] if isinstance(v, (str, Path)) else list(v) for label, v in logs.items()}
    if any(not v for v in paths_of.values()):
        raise ValueError(f"every row needs at least one log; empty: {[k for k, v in paths_of.items() if not v]}")
    settings = {(label, str(p)): read_settings(p) for label, ps in paths_of.items() for p in ps}
    (ref_label, ref_path), ref = next(iter(settings.items()))
    for (label, path), s in settings.items():
        diff = {k: (ref.get(k), s.get(k)) for k in PROTOCOL_KEYS if ref.get(k) != s.get(k)}
        if diff:
            raise ValueError(f"{path} ({label}) and {ref_path} ({ref_label}) were not certified "
                             f"under one protocol: {diff}")
    sigmas = {label: sorted(settings[(label, str(p))].get("sigma") for p in ps) for label, ps in paths_of.items()}
    if len({tuple(v) for v in sigmas.values()}) > 1:
        raise ValueError(f"the rows were not certified at the same sigmas: {sigmas}")
    rows = {label: 100 * np.max([np.asarray(certified_accuracy(read_log(p), list(radii)), dtype=float) for p in ps],
                                axis=0)
            for label, ps in paths_of.items()}
    return pd.DataFrame(rows, index=[float(r) for r in radii]).T.rename_axis(columns="l2 radius (MNIST)")


def plugin_vs_certify(p_a: Sequence[float], sigma: float, n0: int, n: int, alpha: float, copies: int,
                      generator: torch.Generator | None = None) -> pd.DataFrame:
    """The plug-in certificate of Lecture 14 §1.1 against CERTIFY (Cohen et al.), on a 1-D point whose
    true radius is known: the threshold classifier 1[z > 0] at x = sigma Phi^-1(p_A) has p_A exactly
    and true radius R = sigma Phi^-1(p_A) (= x, the distance to the boundary).

    plug-in: sigma/2 (Phi^-1(p_a_hat) - Phi^-1(p_b_hat)) from n votes (no confidence bound);
    CERTIFY: ``Smooth.certify_batch`` (n0, n, alpha), a lower confidence bound on the radius.
    A certificate fails when it returns a radius larger than R. Columns: p_a, true_radius,
    plugin_fail, certify_fail (fractions of ``copies``), se_plugin, se_certify (binomial standard errors),
    certify_tolerance (the 1e-3 binomial quantile of a failure rate alpha)."""
    copies = check_count("copies", copies)
    sigma = check_sigma(sigma)
    smooth = Smooth(LinearBinaryClassifier([1.0], 0.0), 2, Gaussian(sigma))
    rows = []
    for p in p_a:
        true_r = sigma * float(norm.ppf(p))
        xs = torch.full((copies, 1), true_r, dtype=torch.float64)
        counts = smooth.sample_counts(xs, n, generator=generator).cpu().numpy()
        top = counts.max(1)
        with np.errstate(divide="ignore"):
            plug = 0.5 * sigma * (norm.ppf(top / n) - norm.ppf((n - top) / n))
        preds, radii = smooth.certify_batch(xs, n0, n, alpha, generator=generator)
        plug_fail = float(np.mean(plug > true_r))
        cert_fail = float(((preds >= 0) & (radii > true_r)).double().mean())
        rows.append((float(p), true_r, plug_fail, cert_fail, math.sqrt(max(plug_fail * (1 - plug_fail), 1 / copies) / copies),
                     math.sqrt(max(cert_fail * (1 - cert_fail), 1 / copies) / copies),
                     binomial_tolerance(copies, alpha)))
    return pd.DataFrame(rows, columns=["p_a", "true_radius", "plugin_fail", "certify_fail", "se_plugin", "se_certify",
                                       "certify_tolerance"])


def plugin_verdict(df: pd.DataFrame, alpha: float) -> str:
    """The sentence notebook 00 prints about :func:`plugin_vs_certify`."""
    worst = df.loc[df.plugin_fail.idxmax()]
    cert_ok = bool((df.certify_fail <= df.certify_tolerance).all())
    return (f"The plug-in radius exceeds the true radius in {df.plugin_fail.min():.1%}-{df.plugin_fail.max():.1%} "
            f"of the copies (worst at p_A = {worst.p_a:g}); CERTIFY in at most {df.certify_fail.max():.2%} "
            f"(alpha = {alpha:g}): CERTIFY's failure rate is "
            + ("within" if cert_ok else "NOT within") + " the binomial tolerance of alpha at every p_A, "
            + ("and the plug-in's is above alpha at every p_A." if bool((df.plugin_fail > alpha).all())
               else "and the plug-in's is at or below alpha at some p_A."))


def abstain_thresholds(frames: Mapping[str, pd.DataFrame], level: float = 0.01) -> pd.Series:
    """The smallest p_A with P(abstain) <= ``level`` in each :func:`certify_statistics` frame (NaN if none)."""
    return pd.Series({label: (df.p_a[df.abstain <= level].min() if (df.abstain <= level).any() else np.nan)
                      for label, df in frames.items()}, name=f"smallest p_A with P(abstain) <= {level:g}")
