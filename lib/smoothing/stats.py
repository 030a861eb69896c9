"""Confidence bounds and tests used by certification (statsmodels / scipy, never hand-rolled).

* :func:`lower_confidence_bound` - the one-sided (1 - alpha) Clopper-Pearson lower bound
  of Cohen et al.'s CERTIFY: P(p >= LCB) >= 1 - alpha over the draw of the counts.
* :func:`upper_confidence_bound` - the matching one-sided (1 - alpha) Clopper-Pearson upper bound
  (the runner-up bound of the two-sided radius, and the stopping rule of sequential CERTIFY).
* :func:`binomial_pvalue` - the two-sided binomial test of PREDICT (scipy.stats.binomtest).
* :func:`proportion_interval` - a two-sided Clopper-Pearson interval, used to report the
  sampling error of a certified accuracy over a finite set of test points.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from lib.utils import check_alpha, check_count

__all__ = ["lower_confidence_bound", "upper_confidence_bound", "binomial_pvalue", "proportion_interval"]


def _counts(k, n):
    if isinstance(k, torch.Tensor):
        k = k.detach().cpu().numpy()
    if isinstance(k, (str, bytes, bool, np.bool_)):
        raise TypeError(f"k must be an integer count (or an array of them), got {type(k).__name__} {k!r}")
    k_arr = np.asarray(k)
    if k_arr.dtype.kind not in "iuf":
        raise TypeError(f"k must hold integer counts, got an array of dtype {k_arr.dtype}")
    if k_arr.dtype.kind not in "iu" and not np.all(np.equal(np.mod(k_arr, 1), 0)):
        raise ValueError("k must hold integer counts")
    if np.any(k_arr < 0) or np.any(k_arr > n):
        raise ValueError(f"k must lie in [0, n={n}]")
    return k_arr.astype(np.int64)


def lower_confidence_bound(k, n: int, alpha: float):
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    k: int or array/tensor of counts in [0, n] (vectorised); n: number of trials;
    returns a float for scalar k, else a float64 numpy array of k's shape.
    Equals the alpha-quantile of Beta(k, n - k + 1) (0 when k = 0).
    """
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    k_arr = _counts(k, n)
    lo = proportion_confint(k_arr, n, alpha=2 * alpha, method="beta")[0]
    lo = np.nan_to_num(np.asarray(lo, dtype=float), nan=0.0)  # k = 0 -> 0
    return float(lo) if lo.ndim == 0 else lo


def upper_confidence_bound(k, n: int, alpha: float):
    """One-sided (1 - alpha) Clopper-Pearson upper bound: P(p <= UCB) >= 1 - alpha.

    Vectorised like :func:`lower_confidence_bound`; equals 1 - LCB(n - k), i.e. the
    (1 - alpha)-quantile of Beta(k + 1, n - k) (1 when k = n).
    """
    n = check_count("n", n)
    k_arr = _counts(k, n)
    hi = 1.0 - np.asarray(lower_confidence_bound(n - k_arr, n, alpha), dtype=float)
    return float(hi) if hi.ndim == 0 else hi


def binomial_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided p-value of the binomial test of H0: success probability = p."""
    n = check_count("n", n)
    k = int(_counts(k, n))
    return float(binomtest(k, n, p=p, alternative="two-sided").pvalue)


def proportion_interval(k, n: int, alpha: float = 0.05):
    """Two-sided (1 - alpha) Clopper-Pearson interval (lo, hi) for k successes of n."""
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    k_arr = _counts(k, n)
    lo, hi = proportion_confint(k_arr, n, alpha=alpha, method="beta")
    lo = np.nan_to_num(np.asarray(lo, dtype=float), nan=0.0)
    hi = np.nan_to_num(np.asarray(hi, dtype=float), nan=1.0)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi
