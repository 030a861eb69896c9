"""Decision-mode certification: decide every radius of a table, not a radius.

A certified-accuracy table asks one question per input x and table radius r_k: does the
certificate reach r_k, i.e. is R(p) >= r_k for the true event probabilities p of the certificate
(:mod:`lib.smoothing.certificates`)? For the one-sided certificate that is p_A >= t(r_k), with
t the inverse of the noise's radius formula (:func:`threshold`: Phi(r/sigma) for Gaussian noise,
1 - exp(-r/lam)/2 for Laplace, 1/2 + r/(2a) for uniform); for the two-sided certificate and for
sample rejection (Sheikholeslami et al., Theorem 3.1) the threshold is a curve in the two bounded
probabilities and the same question is asked through R, which is nondecreasing in every bound.

**Test.** One anytime-valid two-sided confidence sequence for the certificate's event
probabilities answers every radius at once: Clopper-Pearson bounds at a fixed schedule of looks
(geometric on the CPU, one per chunk of votes on a GPU), alpha spent over the looks by the union
bound (the last look, n_max, gets half of each side's share; the earlier looks the rest equally).
At every look, r_k is

* **certified** when R(lower bounds) >= r_k at some look so far (then R(p) >= r_k);
* **refuted** when R(upper bounds) < r_k at some look so far (then R(p) < r_k);
* **out of reach** when even all remaining votes for c_A could not certify r_k at any remaining
  look (the deterministic cap of :func:`lib.smoothing.sequential._reachable`: it spends no alpha),
  or (``reach="expected"``, the default) when CERTIFY with n_max votes at counts n_max times the
  upper bounds would not certify r_k: a futility rule read off the same upper bounds (right
  whenever they hold; it never adds a certificate, but it may leave uncertified a point that
  fixed-n CERTIFY would certify by chance, so its certified accuracy is compared with fixed n's
  in ``benchmarks/bench_sequential.py``).

An input stops as soon as each radius is decided one of these ways (at n_max at the latest).
Since all radii are read off the same two bounds, the certified radii are {r_k <= R_lo} and the
refuted ones {r_k > R_hi}: monotone in r by construction, and all of a row's decisions are right
whenever the sequence covers p, that is with probability >= 1 - alpha_decide, whatever the
stopping time. Clopper-Pearson over looks was chosen over a betting e-process or a beta-binomial
mixture martingale because it is exact at every n, is the bound of fixed-n CERTIFY (so a point
that needs all n_max votes loses only the step from alpha to its share at the last look), and
applies unchanged to all three certificates; its price is the union bound over the looks, which
is why the looks are few on the CPU (a geometric schedule). The betting bound of
:mod:`lib.smoothing.sequential` is valid at every vote but looser at n_max.

**Candidate (adaptive n0).** c_A is chosen on separate votes drawn in rounds up to n0: a point
stops as soon as the one-sided Clopper-Pearson lower bound of its leading class exceeds 1/2
(level alpha_select / (looks * classes): union bound over the looks and the class that leads),
so c_A is then the smoothed classifier's class except with probability alpha_select; else the
leader of all n0 votes, as in CERTIFY. The decisions use fresh votes, so they are valid for
whatever c_A was chosen.

**Guarantee.** With alpha = alpha_select + alpha_decide (``select_share`` of alpha for the
candidate, ``refute_share`` for the upper bounds, the rest for the lower bounds), with probability
>= 1 - alpha every certified and every refuted decision of an input's row is right and, if its
selection stopped early, c_A is g(x). The certified radii alone are right with probability
>= 1 - (1 - select_share - refute_share) alpha.

**Logs.** Cohen's columns with ``radius`` = the largest certified table radius (0 if none) and
``predict`` = c_A when the lower bounds certify any radius > 0, plus ``samples`` (the candidate's
votes included): the certified accuracy at a table radius r_k counts exactly the rows certified
at r_k, as with fixed-n CERTIFY. The radius between table radii is not estimated, so curves of
certified accuracy as a function of r keep fixed-n CERTIFY.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import norm as _std_normal

from lib.smoothing._checks import ABSTAIN, PROGRESS_SAMPLES, check_inputs, check_work
from lib.smoothing.certificates import Certificate, make_certificate
from lib.smoothing.noise import Gaussian, Laplace, NoiseDistribution, Uniform
from lib.smoothing.sequential import _add_votes, _levels, _reachable, look_schedule
from lib.smoothing.stats import lower_confidence_bound
from lib.utils import check_alpha, check_count

__all__ = ["CERTIFIED", "REFUTED", "OUT_OF_REACH", "threshold", "decision_looks", "select_candidates",
           "decide_counts", "decide_votes", "largest_certified", "certify_decisions", "decision_procedure", "decision_settings"]

#: codes of a decision row [B, K]
CERTIFIED, REFUTED, OUT_OF_REACH = 1, -1, 0


def threshold(noise: NoiseDistribution, radius) -> np.ndarray:
    """t(r): the smallest p_A whose one-sided radius is >= r (the inverse of ``noise.radius``).

    radius: float or array of radii >= 0 (in ``noise.norm``); values > 1 mean out of reach."""
    r = np.asarray(radius, dtype=float)
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"radii must be finite and >= 0, got {radius}")
    if isinstance(noise, Gaussian):
        return _std_normal.cdf(r / noise.sigma)
    if isinstance(noise, Laplace):
        return 1.0 - 0.5 * np.exp(-r / noise.scale)
    if isinstance(noise, Uniform):
        return 0.5 + r / (2.0 * noise.half_width)
    raise ValueError(f"no threshold for {noise!r}")


def decision_looks(n_max: int, device: str | torch.device = "cpu", chunk: int | None = None,
                   first: int = 64, ratio: float = 1.5) -> np.ndarray:
    """Cumulative vote counts at the looks: geometric on the CPU (first, first*ratio, ..., n_max),
    one look per ``chunk`` votes on a GPU (where a look costs nothing: the chunk is drawn anyway)."""
    n_max = check_count("n_max", n_max)
    if torch.device(device).type == "cpu" or chunk is None:
        return look_schedule(n_max, first, ratio)
    chunk = check_count("chunk", chunk)
    return np.unique(np.append(np.arange(chunk, n_max, chunk), n_max)).astype(np.int64)


def _check_looks(looks) -> np.ndarray:
    looks = np.asarray(looks)
    if looks.ndim != 1 or looks.size == 0 or looks.dtype.kind not in "iu" or looks[0] < 1 \
            or np.any(np.diff(looks) <= 0):
        raise ValueError(f"looks must be increasing positive vote counts, got {looks}")
    return looks.astype(np.int64)


def select_candidates(draw: Callable[[np.ndarray, int], np.ndarray], num_inputs: int, num_classes: int, n0: int,
                      alpha: float, first: int = 8, ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive n0: the candidate c_A of each input from as few votes as it needs (at most n0).

    draw(idx int64 [b], r) -> votes [b, outcomes] (the first ``num_classes`` columns are classes).
    An input stops when the Clopper-Pearson lower bound of its leader exceeds 1/2 at level
    alpha / (looks * num_classes); a stopped input's c_A is then the majority class except with
    probability <= alpha. Returns (candidates int64 [B], votes used int64 [B]).
    """
    n0, num_classes = check_count("n0", n0), check_count("num_classes", num_classes, minimum=2)
    alpha = check_alpha(alpha)
    looks = look_schedule(n0, min(first, n0), ratio)
    level = alpha / (len(looks) * num_classes)
    counts = np.zeros((num_inputs, num_classes), dtype=np.int64)
    used = np.zeros(num_inputs, dtype=np.int64)
    active, prev = np.arange(num_inputs), 0
    for n_j in looks:
        counts[active] += np.asarray(draw(active, int(n_j - prev)), dtype=np.int64)[:, :num_classes]
        used[active] = n_j
        lead = counts[active].max(1)
        active = active[~(lower_confidence_bound(lead, int(n_j), level) > 0.5)]
        prev = n_j
        if active.size == 0:
            break
    return counts.argmax(1), used


def decide_counts(draw: Callable[[np.ndarray, int], np.ndarray], candidates: np.ndarray, certificate: Certificate,
                  radii: Sequence[float], alpha: float, looks, refute_share: float = 0.2, final_share: float = 0.5,
                  reach: str = "expected"):
    """Decide every radius of ``radii`` for every input from its vote counts (see the module docstring).

    draw(idx int64 [b], r) -> r new votes per input [b, outcomes]; candidates: c_A [B];
    looks: cumulative vote counts (:func:`decision_looks`), the last one being n_max.
    alpha: the decisions' failure probability, ``refute_share`` of it for the upper bounds.
    Returns (decisions int8 [B, K] of CERTIFIED / REFUTED / OUT_OF_REACH, radius of the lower
    bounds float64 [B] (the largest over the looks, 0 when none is > 0), votes used int64 [B]).
    With probability >= 1 - alpha every CERTIFIED and REFUTED entry of a row is right.

    reach: ``"cap"`` -- OUT_OF_REACH only by the deterministic cap; ``"expected"`` (default) -- also when
    the radius of CERTIFY's bounds at n_max, for counts n_max times the current *upper* bounds
    (rounded up), is < r_k: then, whenever the upper bounds hold, the expected counts of n_max
    votes would not certify r_k (a futility rule: it spends no extra alpha and never adds a
    certificate, but it may leave uncertified a point that fixed-n CERTIFY certifies by chance).
    """
    alpha = check_alpha(alpha)
    if not 0 < refute_share < 1 or not 0 < final_share < 1:
        raise ValueError(f"refute_share and final_share must lie in (0, 1), got {refute_share}, {final_share}")
    radii = np.asarray(radii, dtype=float).ravel()
    if radii.size == 0 or np.any(~np.isfinite(radii)) or np.any(radii < 0) or np.any(np.diff(radii) <= 0):
        raise ValueError(f"radii must be increasing finite radii >= 0, got {radii}")
    looks = _check_looks(looks)
    if reach not in REACH:
        raise ValueError(f"reach must be one of {REACH}, got {reach!r}")
    candidates = np.asarray(candidates, dtype=np.int64)
    lower = _levels(len(looks), alpha * (1 - refute_share), final_share)
    upper = _levels(len(looks), alpha * refute_share, final_share)
    b = len(candidates)
    counts, used = None, np.zeros(b, dtype=np.int64)
    r_lo, r_hi, cap = np.full(b, -np.inf), np.full(b, np.inf), np.full(b, np.inf)
    active, prev = np.arange(b), 0
    for j, n_j in enumerate(looks):
        counts = _add_votes(counts, used, active, draw(active, int(n_j - prev)), n_j)
        k, shares = certificate.events(counts[active], candidates[active])
        r_lo[active] = np.maximum(r_lo[active], certificate.radius(certificate.bounds(k, int(n_j), lower[j] * shares)))
        p_hi = certificate.bounds(k, int(n_j), upper[j] * shares, upper=True)
        r_hi[active] = np.minimum(r_hi[active], certificate.radius(p_hi))
        if reach == "expected":  # the radius n_max votes would give at the upper bounds' counts
            k_max = np.minimum(np.ceil(p_hi * looks[-1]), looks[-1]).astype(np.int64)
            cap[active] = np.minimum(cap[active], certificate.radius(
                certificate.bounds(k_max, int(looks[-1]), lower[-1] * shares)))
        if j + 1 < len(looks):
            cap[active] = np.minimum(cap[active], _reachable(certificate, counts[active], candidates[active],
                                                             looks[j + 1:], int(n_j), lower[j + 1:]))
        else:
            cap[active] = -np.inf  # no votes left: what is not decided now is out of reach
        decided = _decisions(r_lo[active], r_hi[active], cap[active], radii) != _UNDECIDED
        active = active[~decided.all(1)]
        prev = n_j
        if active.size == 0:
            break
    decisions = _decisions(r_lo, r_hi, cap, radii)
    decisions[decisions == _UNDECIDED] = OUT_OF_REACH
    return decisions.astype(np.int8), np.maximum(r_lo, 0.0), used


_UNDECIDED = 2
#: how OUT_OF_REACH is decided (see :func:`decide_counts`)
REACH = ("cap", "expected")


def _decisions(r_lo, r_hi, cap, radii):
    """[b, K] codes from the radius of the lower bounds, of the upper bounds and the cap."""
    certified = (r_lo[:, None] > 0) & (r_lo[:, None] >= radii[None, :])
    refuted = (r_hi[:, None] <= 0) | (r_hi[:, None] < radii[None, :])
    out = np.full(certified.shape, _UNDECIDED)
    out[cap[:, None] < radii[None, :]] = OUT_OF_REACH
    out[refuted] = REFUTED
    out[certified] = CERTIFIED
    return out


def largest_certified(decisions: np.ndarray, radii: Sequence[float]) -> np.ndarray:
    """The largest table radius with a CERTIFIED decision in each row of decisions [B, K]; 0 if none."""
    radii = np.asarray(radii, dtype=float)
    cert = np.asarray(decisions) == CERTIFIED
    return np.where(cert.any(1), np.where(cert, radii[None, :], 0.0).max(1), 0.0)


def decide_votes(draw: Callable[[np.ndarray, int], np.ndarray], num_inputs: int, num_classes: int,
                 certificate: Certificate, radii: Sequence[float], n0: int, alpha: float, looks,
                 select_share: float = 0.05, refute_share: float = 0.2, reach: str = "expected") -> dict:
    """The whole decision mode on vote counts: :func:`select_candidates` at ``select_share * alpha``
    on votes of its own, then :func:`decide_counts` at the rest (``refute_share * alpha`` of it for
    the upper bounds). draw(idx int64 [b], r) -> votes [b, outcomes].

    Returns {"candidates" int64 [B], "decisions" int8 [B, K], "radius_lower" float64 [B],
    "select_votes" int64 [B], "samples" int64 [B] (all votes)}. With probability >= 1 - alpha
    a row's CERTIFIED / REFUTED entries are right and an early-stopped selection found g(x)."""
    alpha = check_alpha(alpha)
    if not (0 < select_share < 1 and 0 < refute_share < 1 and select_share + refute_share < 1):
        raise ValueError(f"select_share and refute_share must be in (0, 1) with a sum < 1, "
                         f"got {select_share}, {refute_share}")
    candidates, n_select = select_candidates(draw, num_inputs, num_classes, n0, alpha * select_share)
    decisions, r_lo, used = decide_counts(draw, candidates, certificate, radii, alpha * (1 - select_share),
                                          looks, refute_share / (1 - select_share), reach=reach)
    return {"candidates": candidates, "decisions": decisions, "radius_lower": r_lo, "select_votes": n_select,
            "samples": n_select + used}


def certify_decisions(smooth, xs: torch.Tensor, radii: Sequence[float], n0: int, n_max: int, alpha: float,
                      batch_size: int | None = None, generator: torch.Generator | None = None, *,
                      two_sided: bool = False, looks=None, first: int = 64, ratio: float = 1.5,
                      select_share: float = 0.05, refute_share: float = 0.2, reach: str = "expected",
                      allow_large: bool = False,
                      return_decisions: bool = False, progress: bool | None = None):
    """Decision-mode certification of xs [B, *input_shape] with ``smooth`` at the table ``radii``.

    n0: the most votes for the candidate (adaptive); n_max: the most votes for the decisions.
    looks: the decisions' schedule (default :func:`decision_looks`: geometric from ``first`` by
    ``ratio`` on the CPU, one look per ``batch_size`` votes on a GPU).
    Returns (preds LongTensor[B] with ABSTAIN = -1, radii float64 Tensor[B] = the largest
    certified table radius, samples LongTensor[B] = candidate votes + decision votes), and with
    ``return_decisions`` the decision rows int8 numpy [B, K] as a fourth element. ``two_sided``
    and a rejector select the certificate as in ``Smooth.certify_batch``. Guarantee: the module's.
    """
    n0, n_max = check_count("n0", n0), check_count("n_max", n_max)
    alpha = check_alpha(alpha)
    radii = np.sort(np.asarray(radii, dtype=float).ravel())
    certificate = make_certificate(smooth.noise, smooth.rejector is not None, bool(two_sided))
    xs = check_inputs(smooth, xs, "xs", generator)
    check_work(xs.shape[0] * (n0 + n_max), allow_large)
    if progress is None:
        progress = xs.shape[0] * (n0 + n_max) > PROGRESS_SAMPLES
    if looks is None:
        looks = decision_looks(n_max, smooth.device, batch_size, first, ratio)
    looks = _check_looks(looks)
    if looks[-1] != n_max:
        raise ValueError(f"the last look must be n_max = {n_max}, got {looks[-1]}")

    def draw(idx, r):
        return smooth.sample_counts(xs[torch.as_tensor(idx)], r, batch_size, generator,
                                    progress=progress).cpu().numpy()

    res = decide_votes(draw, xs.shape[0], smooth.num_classes, certificate, radii, n0, alpha, looks,
                       select_share, refute_share, reach)
    decisions = res["decisions"]
    preds = torch.as_tensor(np.where(res["radius_lower"] > 0, res["candidates"], ABSTAIN), dtype=torch.long)
    out = (preds, torch.as_tensor(largest_certified(decisions, radii), dtype=torch.float64),
           torch.as_tensor(res["samples"], dtype=torch.long))
    return out + (decisions,) if return_decisions else out


def decision_settings(radii: Sequence[float], **options) -> dict:
    """The sidecar settings of a decision-mode log (``certify_dataset(..., settings=...)``): they keep
    its rows, whose ``radius`` is a table radius, apart from a fixed-n log of the same points."""
    return {"procedure": "decision", "radii": [float(r) for r in radii], "options": dict(options)}


def decision_procedure(radii: Sequence[float], **options):
    """A ``certify=`` function for :func:`lib.smoothing.certify.certify_dataset` (log column
    ``samples``): ``certify(xs, n0, n, alpha, batch_size=, generator=)`` runs decision mode with
    n_max = n at the table ``radii``; ``options`` are those of :func:`certify_decisions`.
    Use it as ``certify=decision_procedure(radii)(smooth), columns=["samples"],
    settings=decision_settings(radii)``."""
    radii = [float(r) for r in radii]

    def procedure(smooth):
        def certify(xs, n0, n, alpha, batch_size=None, generator=None):
            preds, radius, samples = certify_decisions(smooth, xs, radii, n0, n, alpha, batch_size, generator,
                                                       **options)
            return preds, radius, {"samples": [int(s) for s in samples]}
        return certify
    return procedure
