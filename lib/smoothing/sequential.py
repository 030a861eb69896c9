"""Sequential CERTIFY: draw votes in rounds and stop each input as soon as its answer is decided.

After n0 votes choose c_A (as in CERTIFY), votes are drawn in rounds up to cumulative sizes
n_1 < n_2 < ... < n_J = n_max (doubling by default). After each round every bound the
certificate needs (:mod:`lib.smoothing.certificates`) is updated with an **anytime-valid**
confidence bound, so that with probability >= 1 - alpha *all* bounds hold at *all* looks
together. An input stops when

  (a) its lower-bound radius certifies the largest radius of ``targets``; more generally, when
      no target lies between the radius of its lower bounds and that of its upper bounds, so
      more votes cannot change its row in a certified-accuracy table over ``targets``;
  (b) even its upper bounds cannot certify the smallest target, or cannot certify at all
      (abstain);
  (c) n_max votes are spent, or (a') even if every remaining vote went to c_A, no remaining
      look could certify the next target above its current radius (a deterministic cap: it
      spends no alpha; Clopper-Pearson bounds only).

``targets=None``: only (b) (cannot certify at all) and (c) stop it, for as large a radius as
n_max allows. It returns c_A (or ABSTAIN) and the largest radius of its lower bounds over the
looks taken. **Guarantee**: the class and radius are wrong with probability <= alpha for every
input, whatever the stopping time: they come from bounds that hold at every look at once (the
upper bounds only decide when to stop; they never enter the radius).

Two anytime-valid bound families (``bound=``):

* ``"cp"`` (default) -- Clopper-Pearson with alpha spent over the fixed schedule of looks:
  the last look (n_max) gets ``final_share`` of alpha (1/2), the J - 1 earlier looks share the
  rest equally; the union bound over looks makes the bounds simultaneous. Chosen as default
  because it is exact for every n (no asymptotics), reuses the statsmodels bound of CERTIFY, works
  unchanged for all three certificates, and a point that needs all n_max votes loses only the
  step from alpha to alpha/2 against fixed-n CERTIFY.
* ``"betting"`` -- the betting confidence sequence of Waudby-Smith & Ramdas (2023) for a
  Bernoulli mean, with the bet fixed within a round (predictable: chosen from earlier rounds),
  so it depends on the counts only; valid at every n by Ville's inequality, no schedule needed.
  Each bound of the certificate gets its share of alpha. Tighter at early looks, looser at n_max.

Their looseness against fixed-n CERTIFY is measured on the analytic half-space models in
tests/test_sequential.py. For a certified-accuracy table, :mod:`lib.smoothing.decision` decides
every table radius with one two-sided sequence and an adaptive n0 (``Smooth.certify_decisions``);
this module returns the radius itself, for curves over r.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from lib.smoothing._checks import ABSTAIN, PROGRESS_SAMPLES, check_inputs, check_work
from lib.smoothing.certificates import Certificate, make_certificate
from lib.utils import check_alpha, check_count

__all__ = ["look_schedule", "sequential_counts", "certify_sequential", "betting_bounds", "BOUNDS"]

BOUNDS = ("cp", "betting")


def look_schedule(n_max: int, first: int = 128, ratio: float = 2.0) -> np.ndarray:
    """Cumulative vote counts at the looks: first, first*ratio, ... (rounded), ending at n_max."""
    n_max, first = check_count("n_max", n_max), check_count("first", first)
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1, got {ratio}")
    looks = [min(first, n_max)]
    while looks[-1] < n_max:
        looks.append(min(n_max, max(looks[-1] + 1, int(round(looks[-1] * ratio)))))
    return np.asarray(looks, dtype=np.int64)


def _add_votes(counts: np.ndarray | None, used: np.ndarray, active: np.ndarray, new, n_j: int) -> np.ndarray:
    """Add a round's votes ``new`` [len(active), C] to the running ``counts`` [B, C] of the ``active`` inputs
    (allocated on the first round) and record that they have now used ``n_j`` votes; returns ``counts``."""
    new = np.asarray(new, dtype=np.int64)
    if counts is None:
        counts = np.zeros((len(used), new.shape[1]), dtype=np.int64)
    counts[active] += new
    used[active] = n_j
    return counts


def _levels(num_looks: int, alpha: float, final_share: float) -> np.ndarray:
    """alpha_j per look: final_share * alpha at the last look, the rest equally before it."""
    if num_looks == 1:
        return np.array([alpha])
    return np.append(np.full(num_looks - 1, alpha * (1 - final_share) / (num_looks - 1)), alpha * final_share)


# ------------------------------------------------------------------ betting confidence sequence
class _BettingLower:
    """One-sided betting confidence sequence (Waudby-Smith & Ramdas 2023) for Bernoulli means,
    vectorised over inputs and events [B, m].

    The capital K_t(q) = prod_i (1 + lam_i (x_i - q)) with a bet lam_i in [0, 0.95] fixed before
    x_i is seen is a nonnegative martingale when the mean is q, so by Ville's inequality
    P(exists t: K_t(p) >= 1/a) <= a. The bet does not depend on q, so K_t(q) decreases in q and
    every q below a rejected one is rejected too: the lower bound is the largest q with
    K_s(q) >= 1/a at some look s <= t (found by bisection, kept as a running maximum). Bets are
    fixed within a round, so only the counts matter: the Kelly bet (p_hat - q0) / (q0 (1 - q0)) of
    the earlier rounds' mean p_hat (Krichevsky-Trofimov) against q0 = the current bound."""

    def __init__(self, shape):
        self.hist = []  # per round: (lam, successes, votes), arrays [B, m]
        self.succ = np.zeros(shape)
        self.n = np.zeros(shape)
        self.lower = np.zeros(shape)

    def update(self, rows, k, r):
        """A round of r votes for the inputs ``rows``, with k [b, m] successes."""
        p_hat = (self.succ[rows] + 0.5) / (self.n[rows] + 1.0)
        q0 = np.clip(self.lower[rows], 1e-3, 1 - 1e-3)
        lam, kk, rr = (np.zeros(self.succ.shape) for _ in range(3))
        lam[rows] = np.clip((p_hat - q0) / (q0 * (1 - q0)), 0.0, 0.95)
        kk[rows], rr[rows] = k, r
        self.hist.append((lam, kk, rr))
        self.succ[rows] += k
        self.n[rows] += r

    def bound(self, rows, levels):
        """Lower bounds [b, m], each column at its level; nondecreasing over rounds."""
        lam, k, r = (np.stack([h[i][rows] for h in self.hist]) for i in range(3))  # [J, b, m]
        thr = np.log(1.0 / np.asarray(levels, dtype=float))

        def rejected(q):  # log K_t(q) >= log(1/a), elementwise over [b, m]
            return (k * np.log1p(lam * (1 - q)) + (r - k) * np.log1p(-lam * q)).sum(0) >= thr

        lo, hi = np.zeros(lam.shape[1:]), np.ones(lam.shape[1:])
        ok = rejected(lo)
        for _ in range(50):
            mid = (lo + hi) / 2
            hit = rejected(mid)
            lo, hi = np.where(hit, mid, lo), np.where(hit, hi, mid)
        self.lower[rows] = np.maximum(self.lower[rows], np.where(ok, lo, 0.0))
        return self.lower[rows]


def betting_bounds(successes, n, alpha: float) -> np.ndarray:
    """Lower and upper betting bounds of Bernoulli means after each look (for notebooks and tests).

    successes: cumulative counts at the looks, [L] or [L, R] (R independent sequences);
    n: cumulative votes at the looks [L]; each side at level alpha.
    Returns [L, 2] or [L, R, 2] (lower, upper).
    """
    k = np.asarray(successes, dtype=float)
    single = k.ndim == 1
    k = k.reshape(len(k), -1)
    rows = np.arange(k.shape[1])
    lo, hi = _BettingLower((k.shape[1], 1)), _BettingLower((k.shape[1], 1))  # upper = 1 - lower(1 - p)
    out, prev_k, prev_n = [], np.zeros(k.shape[1]), 0
    for k_j, n_j in zip(k, np.asarray(n)):
        step, r = (k_j - prev_k)[:, None], int(n_j - prev_n)
        lo.update(rows, step, r)
        hi.update(rows, r - step, r)
        out.append(np.stack([lo.bound(rows, [alpha])[:, 0], 1 - hi.bound(rows, [alpha])[:, 0]], -1))
        prev_k, prev_n = k_j, n_j
    out = np.stack(out)
    return out[:, 0] if single else out


# ------------------------------------------------------------------ the procedure on counts
def _level(radii, targets):
    """Row of a certified-accuracy table: -1 (abstain) or the number of targets <= radius."""
    return np.where(radii > 0, (targets[None, :] <= radii[:, None]).sum(1), -1)


def _reachable(certificate: Certificate, counts: np.ndarray, candidates: np.ndarray, looks: np.ndarray,
               n_now: int, levels: np.ndarray) -> np.ndarray:
    """The largest radius any remaining look could give, were every remaining vote for c_A.

    A deterministic cap (no alpha spent): the radius only ever comes from a look's lower bounds,
    and at look n_i those are largest when all n_i - n_now new votes go to c_A. Stopping when
    this cap cannot reach the next target leaves every guarantee as it is.
    """
    best = np.full(len(candidates), -np.inf)
    rows = np.arange(len(candidates))
    for n_i, a_i in zip(looks, levels):
        future = counts.copy()
        future[rows, candidates] += int(n_i) - n_now
        k, shares = certificate.events(future, candidates)
        best = np.maximum(best, certificate.radius(certificate.bounds(k, int(n_i), a_i * shares)))
    return best


def sequential_counts(draw: Callable[[np.ndarray, int], np.ndarray], candidates: np.ndarray,
                      certificate: Certificate, n_max: int, alpha: float, targets=None, bound: str = "cp",
                      first: int = 128, ratio: float = 2.0, final_share: float = 0.5):
    """Sequential CERTIFY on vote counts (the part that does not depend on the model).

    draw(idx int64 [b], r) -> new votes [b, outcomes] for the inputs ``idx``;
    candidates: c_A per input [B]. Returns (certified bool [B], radii float64 [B], votes used int64 [B]).
    """
    alpha = check_alpha(alpha)
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    if not 0 < final_share < 1:
        raise ValueError(f"final_share must lie in (0, 1), got {final_share}")
    targets = None if targets is None else np.sort(np.asarray(targets, dtype=float).ravel())
    if targets is not None and (targets.size == 0 or not np.all(np.isfinite(targets)) or targets[0] < 0):
        raise ValueError(f"targets must be finite radii >= 0, got {targets}")
    looks = look_schedule(n_max, first, ratio)
    levels = _levels(len(looks), alpha, final_share)
    b = len(candidates)
    counts, used = None, np.zeros(b, dtype=np.int64)
    radii, certified = np.zeros(b), np.zeros(b, dtype=bool)
    active = np.arange(b)
    prev, k_prev, cs = 0, None, None
    for j, n_j in enumerate(looks):
        counts = _add_votes(counts, used, active, draw(active, int(n_j - prev)), n_j)
        k, shares = certificate.events(counts[active], candidates[active])
        if bound == "cp":
            lo = certificate.bounds(k, int(n_j), levels[j] * shares)
            hi = certificate.bounds(k, int(n_j), levels[j] * shares, upper=True)
        else:  # each event's bound gets its share of alpha for all looks; the upper bound is 1 - the complement's lower
            if cs is None:
                cs, k_prev = (_BettingLower((b, k.shape[1])), _BettingLower((b, k.shape[1]))), np.zeros((b, k.shape[1]))
            step, r = k - k_prev[active], int(n_j - prev)
            cs[0].update(active, step, r)
            cs[1].update(active, r - step, r)
            lo, hi = cs[0].bound(active, alpha * shares), 1 - cs[1].bound(active, alpha * shares)
            k_prev[active] = k
        r_lo, r_hi = certificate.radius(lo), certificate.radius(hi)
        better = r_lo > np.where(certified[active], radii[active], 0.0)
        radii[active[better]] = r_lo[better]
        certified[active[better]] = True
        r_best = np.where(certified[active], radii[active], -np.inf)
        if targets is None:
            stop = r_hi <= 0
        else:
            if bound == "cp" and j + 1 < len(looks):  # (a'): what the remaining looks could still reach
                r_hi = np.minimum(r_hi, _reachable(certificate, counts[active], candidates[active], looks[j + 1:],
                                                   int(n_j), levels[j + 1:]))
            stop = _level(r_best, targets) >= _level(r_hi, targets)
        active = active[~stop]
        prev = n_j
        if active.size == 0:
            break
    return certified, np.where(certified, radii, 0.0), used


def certify_sequential(smooth, xs: torch.Tensor, n0: int, n_max: int, alpha: float, targets: Sequence[float] | None = None,
                       batch_size: int | None = None, generator: torch.Generator | None = None, *,
                       bound: str = "cp", first: int = 128, ratio: float = 2.0, final_share: float = 0.5,
                       two_sided: bool = False, allow_large: bool = False, return_counts: bool = False,
                       progress: bool | None = None):
    """Sequential CERTIFY of xs [B, *input_shape] with ``smooth`` (a lib.smoothing.Smooth).

    Returns (preds LongTensor[B] with ABSTAIN = -1, radii float64 Tensor[B], samples LongTensor[B]),
    samples = n0 + the votes used (at most n0 + n_max). See the module docstring for the rules
    and the guarantee; ``two_sided`` and a rejector select the certificate as in certify_batch.
    ``return_counts=True`` returns ``{"samples": LongTensor[B]}`` as the third element instead, the
    extra log column of ``certify_dataset(..., certify=..., columns=["samples"])``.
    """
    n0, n_max = check_count("n0", n0), check_count("n_max", n_max)
    alpha = check_alpha(alpha)
    certificate = make_certificate(smooth.noise, smooth.rejector is not None, bool(two_sided))
    xs = check_inputs(smooth, xs, "xs", generator)
    check_work(xs.shape[0] * (n0 + n_max), allow_large)
    if progress is None:  # as certify_batch: a bar per round when the call may be long
        progress = xs.shape[0] * (n0 + n_max) > PROGRESS_SAMPLES
    candidates = smooth.select(xs, n0, batch_size, generator, progress=progress)

    def draw(idx, r):
        return smooth.sample_counts(xs[torch.as_tensor(idx)], r, batch_size, generator,
                                    progress=progress).cpu().numpy()

    certified, radii, used = sequential_counts(draw, candidates, certificate, n_max, alpha, targets, bound,
                                               first, ratio, final_share)
    preds = np.where(certified, candidates, ABSTAIN)
    samples = torch.as_tensor(used + n0, dtype=torch.long)
    return (torch.as_tensor(preds, dtype=torch.long), torch.as_tensor(radii, dtype=torch.float64),
            {"samples": samples} if return_counts else samples)
