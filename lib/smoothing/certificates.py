"""Certificates: from the vote counts of CERTIFY to a class and a certified radius.

One interface, three families. A certificate says which events' probabilities it needs
*lower* confidence bounds of (given as their counts among the n votes), which share of the
failure probability alpha each bound gets (the shares sum to 1, so by the union bound all
bounds hold together with probability >= 1 - alpha), and how the radius follows from the
bounds. The radius is nondecreasing in every bound: evaluated at *upper* bounds it bounds the
radius any number of samples could certify, which is how sequential CERTIFY stops early.

==============  ====================================  =================================================  ========
certificate     bounded events (share of alpha)       radius (the point abstains when it is <= 0)        noise
==============  ====================================  =================================================  ========
OneSided        f = c_A (1)                           noise.radius(p_A)         Cohen et al., CERTIFY     all
TwoSided        f = c_A (1/2); f != c for every       with p_B = 1 - max(p_A, min_c P(f != c)):          all
                other class c (1/(2(K-1)) each)       Gaussian sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))  Cohen Thm 1
                                                      Laplace max(lam/2 log(p_A/p_B), one-sided)
                                                      uniform a (p_A - p_B)
WithRejection   f_R = c_A (1/2); f_R in {c_A, R}      sigma/2 (Phi^-1(p_A) + Phi^-1(p_{A+R}))            Gaussian
                (1/2)                                 Sheikholeslami et al., Thm 3.1 / Algorithm 2
==============  ====================================  =================================================  ========

Counts are ``[B, K]`` votes per class, or ``[B, K + 1]`` with a rejector (column K counts the
reject class R, which never wins). Every ``p`` above is a lower bound; ``p_B`` of TwoSided is an
upper bound on max_{c != c_A} P(f = c) built from the lower bounds (p_B <= 1 - p_A holds too,
so TwoSided uses whichever is smaller and never loses more than the alpha split).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.stats import norm as _std_normal

from lib.smoothing.noise import Gaussian, Laplace, NoiseDistribution, Uniform
from lib.smoothing.stats import lower_confidence_bound, upper_confidence_bound

__all__ = ["Certificate", "OneSided", "TwoSided", "WithRejection", "make_certificate"]


class Certificate(ABC):
    """Counts of CERTIFY -> (class or ABSTAIN, radius in ``noise.norm``).

    Subclasses implement :meth:`events` and :meth:`radius`; bounds and abstention are shared.
    """

    #: only these noise families (None: all)
    noises: tuple | None = None

    def __init__(self, noise: NoiseDistribution):
        if self.noises is not None and not isinstance(noise, self.noises):
            raise ValueError(f"the {type(self).__name__} certificate is an l2 result for Gaussian noise "
                             f"only, got {noise!r}")
        self.noise = noise

    @abstractmethod
    def events(self, counts: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k [B, m] counts of the m bounded events, shares [m] of alpha summing to 1)."""

    @abstractmethod
    def radius(self, p: np.ndarray) -> np.ndarray:
        """Radius [B] from bounds p [B, m] of the events' probabilities; <= 0 means abstain."""

    # ------------------------------------------------------------------ shared
    def bounds(self, k: np.ndarray, n: int, levels: np.ndarray, upper: bool = False) -> np.ndarray:
        """Clopper-Pearson bounds of every column of k [B, m] at its own level (alpha * share)."""
        bound = upper_confidence_bound if upper else lower_confidence_bound
        out = np.empty(k.shape, dtype=float)
        for level in np.unique(levels):  # one vectorised call per distinct level
            cols = levels == level
            out[:, cols] = bound(k[:, cols], n, float(level))
        return out

    def certify(self, counts, candidates, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """(certified bool [B], radii float64 [B], 0 where not certified) from n votes per input."""
        k, shares = self.events(np.asarray(counts), np.asarray(candidates))
        r = self.radius(self.bounds(k, n, alpha * shares))
        certified = r > 0
        return certified, np.where(certified, r, 0.0)


class OneSided(Certificate):
    """Cohen et al.'s CERTIFY: one bound p_A on P(f = c_A); p_B <= 1 - p_A. Any noise family."""

    def events(self, counts, candidates):
        return np.take_along_axis(counts, candidates[:, None], 1), np.ones(1)

    def radius(self, p):
        # noise.radius is 0 for p <= 1/2 and > 0 above: the same abstention as Cohen's p_A > 1/2
        with np.errstate(divide="ignore"):
            return np.asarray(self.noise.radius(p[:, 0]), dtype=float)


def _gaussian_two_bounds(sigma, p_a, q):
    """sigma/2 (Phi^-1(p_a) + Phi^-1(q)), where q lower-bounds 1 - p_B; -inf where p_a = 0."""
    with np.errstate(invalid="ignore"):
        r = 0.5 * sigma * (_std_normal.ppf(p_a) + _std_normal.ppf(q))
    return np.nan_to_num(r, nan=-np.inf)


def _two_sided_laplace(noise, p_a, q):
    """max(lam/2 log(p_A / p_B), the one-sided radius): the likelihood ratio of Laplace noise shifted
    by d lies in [exp(-|d|_1/lam), exp(|d|_1/lam)], so p_A(x+d) >= e^{-eps/lam} p_A > e^{eps/lam} p_B
    >= p_B(x+d) while eps = |d|_1 < lam/2 log(p_A/p_B)."""
    lam = noise.scale
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 0.5 * lam * (np.log(p_a) - np.log1p(-q))
        return np.maximum(np.nan_to_num(r, nan=-np.inf), noise.radius(p_a))


def _two_sided_uniform(noise, p_a, q):
    """a (p_A - p_B): a shift d of U[-a, a]^d moves any probability by at most TV <= |d|_1 / (2a)
    (Yang et al.'s one-sided radius 2a (p_A - 1/2) is the case p_B = 1 - p_A)."""
    return noise.half_width * (p_a + q - 1.0)


class TwoSided(Certificate):
    """Cohen et al.'s Theorem 1 with p_B bounded on its own: alpha/2 for p_A, alpha/2 for p_B
    (Bonferroni over the K - 1 other classes). Radii for each noise family in the table above;
    the Laplace and uniform forms are derived in their docstrings (valid, not claimed tight)."""

    def events(self, counts, candidates):
        k_cls = counts  # [B, K]: no reject column (make_certificate refuses the combination)
        n = counts.sum(1, keepdims=True)
        others = np.ones(k_cls.shape, dtype=bool)
        others[np.arange(len(candidates)), candidates] = False
        k_not = (n - k_cls)[others].reshape(len(candidates), -1)  # votes for "not c", c != c_A
        m = k_not.shape[1]
        k_a = np.take_along_axis(k_cls, candidates[:, None], 1)
        return np.concatenate([k_a, k_not], 1), np.concatenate([[0.5], np.full(m, 0.5 / m)])

    def radius(self, p):
        q = np.maximum(p[:, 0], p[:, 1:].min(1))  # lower bound of 1 - p_B
        if isinstance(self.noise, Gaussian):
            return _gaussian_two_bounds(self.noise.sigma, p[:, 0], q)
        if isinstance(self.noise, Laplace):
            return _two_sided_laplace(self.noise, p[:, 0], q)
        if isinstance(self.noise, Uniform):
            return _two_sided_uniform(self.noise, p[:, 0], q)
        raise ValueError(f"no two-sided radius for {self.noise!r}")


class WithRejection(Certificate):
    """Sheikholeslami et al.'s Algorithm 2: bounds p_A on P(f_R = c_A) and p_{A+R} on
    P(f_R in {c_A, R}), alpha/2 each; p_B <= 1 - p_{A+R} (Thm 3.1). Gaussian noise.
    The last column of the counts is the reject class R."""

    noises = (Gaussian,)

    def events(self, counts, candidates):
        k_a = np.take_along_axis(counts, candidates[:, None], 1)
        return np.concatenate([k_a, k_a + counts[:, -1:]], 1), np.full(2, 0.5)

    def radius(self, p):
        return _gaussian_two_bounds(self.noise.sigma, p[:, 0], p[:, 1])


def make_certificate(noise: NoiseDistribution, rejector: bool = False, two_sided: bool = False) -> Certificate:
    """The certificate of a smoothed classifier: with a rejector, Theorem 3.1; else Cohen's
    one- or two-sided bound. A two-sided bound with a rejector is not implemented (ValueError)."""
    if rejector and two_sided:
        raise ValueError("two_sided=True is not combined with a rejector (Theorem 3.1 already bounds p_B "
                         "by 1 - p_{A+R})")
    if rejector:
        return WithRejection(noise)
    return TwoSided(noise) if two_sided else OneSided(noise)
