"""Closed forms of the theory notebooks, and the simulations that check them.

Notebook 00 follows Lecture 14 (``003_…``, "Certified defenses III: randomized smoothing");
notebook 01 follows Saremi & Srivastava §2 (``004_…``) and Lee's appendix (``000_…``).
Every formula here has a docstring naming its equation, and a unit test in
``tests/test_theory.py`` against an independent computation (autograd, quadrature,
a scipy distribution, or a simulation).

Conventions: ``sigma`` is the standard deviation of the smoothing noise N(0, sigma^2 I);
Phi is the standard normal CDF, phi its density. Radii are l2 radii. Callables ``h`` / ``F``
("soft classifiers" or [0, 1]-valued functions) map a torch batch ``[N, d]`` to ``[N]``
(or ``[N, K]``). Closed-form radii accept floats or numpy arrays and return the same kind.

Two corrections to the lecture text, used throughout (see notebook 00):

* Lemma 2.6 reads "Phi^-1(H(x)) is sigma-Lipschitz"; its proof (and Theorem 1.1) give
  |Phi^-1(H(x)) - Phi^-1(H(x'))| <= ||x - x'|| / sigma, i.e. it is (1/sigma)-Lipschitz.
* Corollary 2.5 reads "radius sqrt(1/(2 sigma^2)) (p_a - p_b)"; Lemma 2.1 with the constant
  L = sqrt(2/(pi sigma^2)) of Lemma 2.4 gives (p_a - p_b) / (2L) = sigma sqrt(pi/8) (p_a - p_b).
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.special import gammaln
from scipy.stats import binom, chi2, ncx2, norm
from torch import nn

from lib.data.datasets import GaussianData
from lib.smoothing.noise import Gaussian
from lib.reporting.tables import record_metrics
from lib.smoothing.smooth import ABSTAIN, Smooth
from lib.smoothing.stats import lower_confidence_bound
from lib.utils import check_alpha, check_count, check_sigma

__all__ = [
    # checks
    "report_check", "binomial_tolerance",
    # Lecture 14: radii and Lipschitz constants
    "cohen_radius", "lipschitz_radius", "max_certifiable_radius", "lemma24_constant",
    # Weierstrass transform and Stein's lemma
    "stein_gradient", "gauss_hermite_smoothing", "weierstrass_grid",
    "halfspace_h", "halfspace_smoothed", "probit_h", "probit_smoothed", "ball_h", "ball_smoothed",
    "random_mlp_h", "lipschitz_experiment", "stable_probit",
    # toy classifiers
    "IntervalClassifier", "ToyClassifier2D", "LinearBinaryClassifier", "ToyMLP", "hard_votes", "grid_values",
    # CERTIFY statistics
    "certify_statistics", "gaussian_norm_moments",
    # training for smoothing (Lecture 14 §3)
    "train_smoothing_classifier", "smoothing_objectives",
    # empirical Bayes (Saremi & Srivastava §2)
    "bayes_shrinkage", "linear_eb_pa", "linear_eb_radius", "mog_bayes_estimator",
    "train_dsm_mlp", "train_mse_denoiser_mlp",
    # Lee, Theorem A.2
    "lee_recovery_bound", "approx_map_gd", "gaussian_map_error",
    # experiment drivers (closed form against estimate)
    "stein_convergence", "certificate_reference", "abstention_simulation", "sample_noise_norms",
    "linear_eb_experiment", "estimator_errors", "lee_experiment",
]

_SQRT2 = math.sqrt(2.0)


# =============================================================================== checks
def report_check(name: str, error: float, tol: float, notebook: str | None = None) -> dict:
    """Print ``check: <name>  error=<e>  tolerance=<t>  OK/FAIL`` and return it as a dict.

    ``ok`` is ``error <= tol`` (a NaN error fails). With ``notebook`` given, the pair is also
    recorded with :func:`lib.results.record_metrics` as ``check_<name>_error`` and
    ``check_<name>_tol``, which the smoke tests assert on.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")
    error, tol = float(error), float(tol)
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be finite and > 0, got {tol}")
    ok = bool(math.isfinite(error) and error <= tol)
    print(f"check: {name}  error={error:.2e}  tolerance={tol:.1e}  {'OK' if ok else 'FAIL'}")
    out = {"name": name, "error": error, "tol": tol, "ok": ok}
    if notebook is not None:
        key = re.sub(r"\W+", "_", name).strip("_")
        record_metrics(notebook, **{f"check_{key}_error": error if math.isfinite(error) else 1e300,
                                    f"check_{key}_tol": tol})
    return out


def binomial_tolerance(num: int, p: float, level: float = 1e-3) -> float:
    """A tolerance for "fraction of ``num`` independent events, each of probability <= p": the
    (1 - level) quantile of Binomial(num, p) / num, plus half an event (so that 0 events pass and
    the tolerance is > 0). A check against it fails by chance with probability <= level."""
    num = check_count("num", num)
    return (float(binom.ppf(1 - level, num, p)) + 0.5) / num


# =============================================================================== small helpers
def _probabilities(name: str, p) -> np.ndarray:
    arr = np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p, dtype=float)
    if np.any(~np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"{name} must lie in [0, 1]")
    return arr


def _like(result: np.ndarray, *inputs):
    """A float when every input was a scalar, else the numpy array."""
    if all(np.ndim(v) == 0 for v in inputs):
        return float(result)
    return result


def stable_probit(cdf, sf=None) -> np.ndarray:
    """Phi^-1(H) computed from ``cdf = H`` and (optionally) ``sf = 1 - H`` without cancellation:
    ``norm.ppf(cdf)`` where H < 1/2 and ``-norm.ppf(sf)`` elsewhere. numpy arrays, same shape."""
    cdf = np.asarray(cdf, dtype=float)
    sf = 1.0 - cdf if sf is None else np.asarray(sf, dtype=float)
    return np.where(cdf < 0.5, norm.ppf(cdf), -norm.ppf(sf))


def _as_batch(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"{name} must have shape [d] or [B, d], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return (x[None], True) if x.dim() == 1 else (x, False)


def _Phi(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-t / _SQRT2)


def _phi(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


# =============================================================================== radii (Lecture 14)
def cohen_radius(p_a, p_b, sigma: float):
    """Theorem 1.1 (Cohen et al.): R = sigma/2 * (Phi^-1(p_a) - Phi^-1(p_b)).

    p_a, p_b: floats or arrays (broadcast) in [0, 1] with p_a + p_b <= 1, the probabilities
    of the two most likely classes of G at x. Returns R >= 0 (0 where p_a <= p_b; inf at
    p_a = 1), a float for scalar inputs. With two classes (p_b = 1 - p_a), R = sigma Phi^-1(p_a).
    """
    sigma = check_sigma(sigma)
    pa, pb = _probabilities("p_a", p_a), _probabilities("p_b", p_b)
    if np.any(pa + pb > 1 + 1e-9):
        raise ValueError("p_a + p_b must be <= 1")
    with np.errstate(invalid="ignore"):
        r = 0.5 * sigma * (norm.ppf(pa) - norm.ppf(pb))
    r = np.where(pa > pb, r, 0.0)
    return _like(r, p_a, p_b)


def lemma24_constant(sigma: float) -> float:
    """Lemma 2.4: H = h * N(0, sigma^2 I) is sqrt(2 / (pi sigma^2))-Lipschitz for h: R^d -> [0, 1].

    (The proof bounds |h| by 1; for [0, 1]-valued h the supremum of ||grad H|| is half of this,
    1 / (sigma sqrt(2 pi)), attained by a half-space through x; see notebook 00.)"""
    return math.sqrt(2.0 / (math.pi * check_sigma(sigma) ** 2))


def lipschitz_radius(p_a, p_b, sigma: float):
    """Corollary 2.5 (the warm-up certificate): Lemma 2.1 with L = sqrt(2/(pi sigma^2)) (Lemma 2.4),

        R = (p_a - p_b) / (2 L) = sigma * sqrt(pi / 8) * (p_a - p_b).

    (The lecture prints the constant as sqrt(1/(2 sigma^2)); this is the value its proof
    gives.) Same shapes and conventions as :func:`cohen_radius`; R stays finite at p_a = 1.
    """
    sigma = check_sigma(sigma)
    pa, pb = _probabilities("p_a", p_a), _probabilities("p_b", p_b)
    if np.any(pa + pb > 1 + 1e-9):
        raise ValueError("p_a + p_b must be <= 1")
    r = np.maximum(pa - pb, 0.0) / (2.0 * lemma24_constant(sigma))
    return _like(r, p_a, p_b)


def max_certifiable_radius(n, alpha, sigma: float):
    """r_max(n, alpha) = sigma * Phi^-1(alpha^(1/n)) (Saremi & Srivastava §4.1; Cohen et al.).

    The largest radius CERTIFY can return with n samples at failure probability alpha: with all
    n votes for the top class, the one-sided Clopper-Pearson lower bound is alpha^(1/n).
    (The paper prints Phi^-1(alpha^(-n)), a typo.) n: number(s) >= 1 (floats such as 1e10 are
    accepted), alpha in (0, 1); broadcast; computed as sigma * Phi^-1(1 - q) with
    q = -expm1(log(alpha)/n) to keep precision for n up to 1e15 (:meth:`lib.noise.Gaussian.max_radius`).
    0 where alpha^(1/n) <= 1/2 (n <= log2(1/alpha): CERTIFY always abstains).
    """
    noise = Gaussian(sigma)
    n_arr = np.asarray(n, dtype=float)
    a_arr = np.asarray(alpha, dtype=float)
    if np.any(~np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError("n must be >= 1")
    if np.any(~((a_arr > 0) & (a_arr < 1))):
        raise ValueError("alpha must lie in (0, 1)")
    return _like(noise.max_radius(n_arr, a_arr), n, alpha)


# =============================================================================== Stein's lemma
def _eval_h(h: Callable, pts: torch.Tensor) -> torch.Tensor:
    out = h(pts)
    if not isinstance(out, torch.Tensor) or out.shape[0] != pts.shape[0]:
        raise ValueError("h must map a batch [N, d] to a tensor with N rows")
    return out.to(pts.dtype)


def stein_gradient(h: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sigma: float, n: int,
                   generator: torch.Generator | None = None, batch_size: int = 1 << 18,
                   return_stderr: bool = False):
    """Monte-Carlo estimate of grad H(x), H = h * N(0, sigma^2 I), by Stein's lemma (Lemma 2.3):

        grad H(x) = E_{X ~ N(0, sigma^2 I)}[X h(x + X)] / sigma^2.

    h: batch [N, d] -> [N] (any measurable function; no gradient of h is needed).
    x: [d] or [B, d] (each point gets its own n draws). Returns the estimate with x's shape,
    and with ``return_stderr`` also the per-coordinate Monte-Carlo standard error (same shape),
    so that ``||estimate - grad H||`` is about ``sqrt(sum stderr^2)``.
    """
    sigma = check_sigma(sigma)
    n = check_count("n", n)
    xs, single = _as_batch(x)
    b, d = xs.shape
    total = torch.zeros(b, d, dtype=xs.dtype, device=xs.device)
    total_sq = torch.zeros_like(total)
    done = 0
    while done < n:
        m = min(n - done, max(1, batch_size // (b * d)))
        noise = torch.randn(b, m, d, generator=generator, dtype=xs.dtype, device=xs.device) * sigma
        vals = _eval_h(h, (xs[:, None, :] + noise).reshape(b * m, d)).reshape(b, m)
        contrib = noise * vals[..., None]
        total += contrib.sum(1)
        total_sq += contrib.pow(2).sum(1)
        done += m
    grad = total / (n * sigma**2)
    if not return_stderr:
        return grad[0] if single else grad
    mean = total / n
    var = (total_sq / n - mean.pow(2)).clamp_min(0) * (n / max(n - 1, 1))
    se = var.div(n).sqrt() / sigma**2
    return (grad[0], se[0]) if single else (grad, se)


def gauss_hermite_smoothing(h: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sigma: float,
                            nodes: int = 48, chunk: int = 1 << 20) -> tuple[torch.Tensor, torch.Tensor]:
    """H(x) = E h(x + sigma Z) and grad H(x) = E[Z h(x + sigma Z)] / sigma by tensor-product
    Gauss-Hermite quadrature (Z ~ N(0, I_d), d <= 3). Accurate for smooth h only.

    x: [B, d]; returns (H [B], grad [B, d]) in x's dtype. The gradient is Stein's identity
    (Lemma 2.3) integrated by quadrature instead of Monte Carlo.
    """
    sigma = check_sigma(sigma)
    nodes = check_count("nodes", nodes, minimum=2)
    xs, _ = _as_batch(x)
    b, d = xs.shape
    if nodes**d > 2_000_000:
        raise ValueError(f"nodes**d = {nodes**d} is too many quadrature points (d={d})")
    z1, w1 = np.polynomial.hermite_e.hermegauss(nodes)
    w1 = w1 / math.sqrt(2 * math.pi)
    z = torch.tensor(_grid_points([z1] * d), dtype=xs.dtype, device=xs.device)
    w = torch.tensor(_grid_points([w1] * d).prod(1), dtype=xs.dtype, device=xs.device)
    m = z.shape[0]
    H = torch.zeros(b, dtype=xs.dtype, device=xs.device)
    G = torch.zeros(b, d, dtype=xs.dtype, device=xs.device)
    per = max(1, chunk // m)
    for start in range(0, b, per):
        xb = xs[start:start + per]
        vals = _eval_h(h, (xb[:, None, :] + sigma * z[None]).reshape(-1, d)).reshape(xb.shape[0], m)
        H[start:start + per] = vals @ w
        G[start:start + per] = (vals * w) @ z / sigma
    return H, G


def weierstrass_grid(F: Callable[[torch.Tensor], torch.Tensor], axes: Sequence[np.ndarray], sigma: float,
                     pad: float = 5.0) -> np.ndarray:
    """G = F * N(0, sigma^2 I) on a 1-D or 2-D grid, by discrete convolution (Lecture 14, eq. 1).

    F: batch [N, D] (float64) -> [N] or [N, K] (e.g. one-hot votes of a hard classifier).
    axes: D uniformly spaced 1-D arrays. F is evaluated on the grid extended by ``pad*sigma``
    on every side, then convolved axis by axis with a normalised Gaussian kernel truncated at
    ``pad*sigma``. Returns an array of shape ``[len(axes[0]), (len(axes[1]),) (K)]``.
    Accuracy: O(spacing / sigma) near discontinuities of F; use a spacing <= sigma / 20.
    """
    sigma = check_sigma(sigma)
    axes = [np.asarray(a, dtype=float) for a in axes]
    if len(axes) not in (1, 2) or any(a.ndim != 1 or a.size < 2 for a in axes):
        raise ValueError("axes must be one or two 1-D arrays with >= 2 points")
    steps = [a[1] - a[0] for a in axes]
    for a, s in zip(axes, steps):
        if s <= 0 or not np.allclose(np.diff(a), s, rtol=1e-6, atol=1e-12):
            raise ValueError("every axis must be increasing and uniformly spaced")
    margins = [int(math.ceil(pad * sigma / s)) for s in steps]
    ext = [a[0] + s * np.arange(-m, a.size + m) for a, s, m in zip(axes, steps, margins)]
    vals = grid_values(F, ext)
    for axis, (s, m) in enumerate(zip(steps, margins)):
        k = np.exp(-0.5 * (s * np.arange(-m, m + 1) / sigma) ** 2)
        vals = ndimage.convolve1d(vals, k / k.sum(), axis=axis, mode="nearest")
        vals = np.take(vals, np.arange(m, m + axes[axis].size), axis=axis)
    return vals


# ----------------------------------------------------------------- functions with known H
def halfspace_h(v, c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """h(z) = 1[<v, z> > c] (the extremal function in the proof of Lemma 2.6). v: [d]."""
    v = torch.as_tensor(v, dtype=torch.float64)
    return lambda z: (z @ v.to(z.dtype) > c).to(z.dtype)


def halfspace_smoothed(v, c: float, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For h = 1[<v, z> > c]: H(x) = Phi(t), grad H(x) = phi(t) v / (sigma ||v||), with
    t = (<v, x> - c) / (sigma ||v||). So Phi^-1(H) = t is linear with slope exactly 1/sigma
    along v: the half-space attains the bound of Lemma 2.6. x: [B, d] -> ([B], [B, d])."""
    sigma = check_sigma(sigma)
    xs, _ = _as_batch(x)
    v = torch.as_tensor(v, dtype=xs.dtype, device=xs.device)
    s = sigma * v.norm()
    t = (xs @ v - c) / s
    return _Phi(t), _phi(t)[:, None] * v[None] / s


def probit_h(a, c: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A soft [0, 1]-valued function h(z) = Phi(<a, z> + c) ("probit ridge"). a: [d]."""
    a = torch.as_tensor(a, dtype=torch.float64)
    return lambda z: _Phi(z @ a.to(z.dtype) + c)


def probit_smoothed(a, c: float, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For h = Phi(<a, z> + c): H(x) = Phi(t) with t = (<a, x> + c) / sqrt(1 + sigma^2 ||a||^2),
    grad H = phi(t) a / sqrt(1 + sigma^2 ||a||^2). Phi^-1(H) has slope ||a|| / sqrt(1 + sigma^2 ||a||^2)
    < 1/sigma, approaching 1/sigma as ||a|| -> inf (h -> half-space). x: [B, d] -> ([B], [B, d])."""
    sigma = check_sigma(sigma)
    xs, _ = _as_batch(x)
    a = torch.as_tensor(a, dtype=xs.dtype, device=xs.device)
    s = torch.sqrt(1 + sigma**2 * a.pow(2).sum())
    t = (xs @ a + c) / s
    return _Phi(t), _phi(t)[:, None] * a[None] / s


def ball_h(radius: float, center=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """h(z) = 1[||z - center|| <= radius] (center 0 by default)."""
    radius = check_sigma(radius, "radius")

    def h(z):
        c = 0.0 if center is None else torch.as_tensor(center, dtype=z.dtype, device=z.device)
        return ((z - c).pow(2).sum(1) <= radius**2).to(z.dtype)
    return h


def ball_smoothed(radius: float, x: torch.Tensor, sigma: float, center=None,
                  return_sf: bool = False):
    """For h = 1[||z - m|| <= R] in R^d: with lambda = ||x - m||^2 / sigma^2 and F_k the
    noncentral chi-square CDF with k degrees of freedom,

        H(x) = F_d(R^2 / sigma^2; lambda),
        grad H(x) = (F_{d+2} - F_d)(R^2 / sigma^2; lambda) * (x - m) / sigma^2

    (from dF_k/dlambda = (F_{k+2} - F_k) / 2). x: [B, d] -> (H [B], grad [B, d]) float64;
    with ``return_sf`` also 1 - H computed without cancellation (for Phi^-1(H) near 1).
    """
    sigma = check_sigma(sigma)
    radius = check_sigma(radius, "radius")
    xs, _ = _as_batch(x)
    xd = xs.detach().cpu().double()
    if center is not None:
        xd = xd - torch.as_tensor(center, dtype=torch.float64)
    d = xd.shape[1]
    lam = (xd.pow(2).sum(1) / sigma**2).numpy()
    t = radius**2 / sigma**2
    lam_safe = np.maximum(lam, 1e-300)
    cdf = np.where(lam > 0, ncx2.cdf(t, d, lam_safe), chi2.cdf(t, d))
    cdf2 = np.where(lam > 0, ncx2.cdf(t, d + 2, lam_safe), chi2.cdf(t, d + 2))
    H = torch.tensor(cdf, dtype=torch.float64)
    grad = torch.tensor(cdf2 - cdf, dtype=torch.float64)[:, None] * xd / sigma**2
    if return_sf:
        sf = np.where(lam > 0, ncx2.sf(t, d, lam_safe), chi2.sf(t, d))
        return H, grad, torch.tensor(sf, dtype=torch.float64)
    return H, grad


def random_mlp_h(dim: int, generator: torch.Generator, hidden: int = 16, scale: float = 1.5
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A random smooth function h: R^dim -> (0, 1): sigmoid of a 2-layer tanh network with
    N(0, scale^2) weights. Used as "an arbitrary h" in the Lipschitz experiments."""
    dim = check_count("dim", dim)
    w1 = torch.randn(dim, hidden, generator=generator, dtype=torch.float64) * scale
    b1 = torch.randn(hidden, generator=generator, dtype=torch.float64) * scale
    w2 = torch.randn(hidden, generator=generator, dtype=torch.float64) * scale / math.sqrt(hidden) * 2
    b2 = float(torch.randn((), generator=generator, dtype=torch.float64))

    def h(z):
        return torch.sigmoid(torch.tanh(z @ w1.to(z.dtype) + b1.to(z.dtype)) @ w2.to(z.dtype) + b2)
    return h


def lipschitz_experiment(num_functions: int, num_points: int, sigma: float, generator: torch.Generator,
                         dims: Sequence[int] = (2, 10, 100), nodes: int = 48,
                         h_range: tuple[float, float] = (1e-6, 1 - 1e-6)) -> pd.DataFrame:
    """Lemmas 2.4 and 2.6 on many random h: one row per (h, point pair).

    Families (per dimension in ``dims``; ``num_functions`` random members each):
    ``half-space`` 1[<v,z> > c] and ``probit`` Phi(<a,z> + c) (closed forms, any d), ``ball``
    1[||z - m|| <= R] and its complement (noncentral chi-square, any d), and ``random MLP``
    (sigmoid network, d = 2 only, by Gauss-Hermite quadrature with ``nodes`` per axis).
    For each h, ``num_points`` points x and partners x' = x + delta (a direction between a random
    one and the gradient's, where the bound is tightest; ||delta|| log-uniform in [0.01, 3] sigma).

    Columns: family, dim, H (at x), grad_norm (sigma ||grad H(x)||, the Lemma 2.4 quantity in
    units of 1/sigma), envelope (phi(Phi^-1(H(x))): Lemma 2.6 says grad_norm <= envelope),
    ratio (sigma |Phi^-1(H(x)) - Phi^-1(H(x'))| / ||x - x'||: Lemma 2.6 says <= 1).
    quad_err (0 for the closed forms): the estimated quadrature error of grad_norm and ratio
    (difference to 1.5x as many nodes). Rows with H(x) or H(x') outside ``h_range`` are dropped.
    """
    sigma = check_sigma(sigma)
    num_functions = check_count("num_functions", num_functions)
    num_points = check_count("num_points", num_points)
    g = generator
    rows = []

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def partners(x, grad):
        # directions between a random one and the gradient's, where the bound is tightest
        u = randn(*x.shape)
        u = u / u.norm(dim=1, keepdim=True)
        gdir = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-300)
        u = u + gdir * 4 * rand(x.shape[0], 1) ** 2
        u = u / u.norm(dim=1, keepdim=True)
        length = sigma * torch.exp(math.log(0.01) + rand(x.shape[0], 1) * (math.log(3.0) - math.log(0.01)))
        return x + u * length, length[:, 0]

    def add(family, dim, dist, H, grad, z, z2, err=0.0):
        H = H.numpy()
        z, z2 = np.asarray(z), np.asarray(z2)
        z_max = norm.isf(1 - h_range[1])  # |Phi^-1(H')| beyond this means H' outside h_range
        keep = (H > h_range[0]) & (H < h_range[1]) & np.isfinite(z) & np.isfinite(z2) & (np.abs(z2) < z_max)
        gn = sigma * grad.norm(dim=1).numpy()
        env = norm.pdf(z)
        ratio = sigma * np.abs(z - z2) / dist.numpy()
        err = np.broadcast_to(np.asarray(err, dtype=float), H.shape)
        for i in np.flatnonzero(keep):
            rows.append((family, dim, H[i], gn[i], env[i], ratio[i], err[i]))

    for dim in dims:
        for _ in range(num_functions):
            # ---- half-space and probit ridge: points spread across the boundary
            v = randn(dim)
            c = float(randn(()) * 2)
            t = randn(num_points) * 2.0 * sigma
            base = randn(num_points, dim)
            base = base - (base @ v / v.dot(v))[:, None] * v[None]
            x = base + ((c + t * v.norm()) / v.dot(v))[:, None] * v[None]
            H, grad = halfspace_smoothed(v, c, x, sigma)
            x2, dist = partners(x, grad)
            add("half-space", dim, dist, H, grad,
                ((x @ v - c) / (sigma * v.norm())).numpy(), ((x2 @ v - c) / (sigma * v.norm())).numpy())
            a = v / v.norm() * math.exp(float(rand(()) * math.log(100.0))) * 0.3 / sigma
            H, grad = probit_smoothed(a, -c * a.norm() / v.norm(), x, sigma)
            x2, dist = partners(x, grad)
            H2, _ = probit_smoothed(a, -c * a.norm() / v.norm(), x2, sigma)
            add("probit", dim, dist, H, grad, stable_probit(H.numpy(), 1 - H.numpy()),
                stable_probit(H2.numpy(), 1 - H2.numpy()))
            # ---- ball and its complement: points near the sphere
            radius = float(sigma * (0.5 + 3 * rand(())) * math.sqrt(dim))
            u = randn(num_points, dim)
            u = u / u.norm(dim=1, keepdim=True)
            x = u * (radius + randn(num_points, 1) * 1.5 * sigma).abs()
            H, grad, sf = ball_smoothed(radius, x, sigma, return_sf=True)
            x2, dist = partners(x, grad)
            H2, _, sf2 = ball_smoothed(radius, x2, sigma, return_sf=True)
            z, z2 = stable_probit(H.numpy(), sf.numpy()), stable_probit(H2.numpy(), sf2.numpy())
            add("ball", dim, dist, H, grad, z, z2)
            add("ball complement", dim, dist, sf, -grad, -z, -z2)
            # ---- random smooth network (quadrature), d = 2 only
            if dim == 2:
                h = random_mlp_h(2, g)
                x = (rand(num_points, 2) * 2 - 1) * 2.5
                H, grad = gauss_hermite_smoothing(h, x, sigma, nodes)
                x2, dist = partners(x, grad)
                H2, _ = gauss_hermite_smoothing(h, x2, sigma, nodes)
                # quadrature error, estimated against 1.5x as many nodes per axis
                Hc, Gc = gauss_hermite_smoothing(h, x, sigma, nodes + nodes // 2)
                H2c, _ = gauss_hermite_smoothing(h, x2, sigma, nodes + nodes // 2)
                z, z2 = stable_probit(H.numpy()), stable_probit(H2.numpy())
                dz = (np.abs(stable_probit(Hc.numpy()) - z) + np.abs(stable_probit(H2c.numpy()) - z2))
                err = np.maximum(sigma * (Gc - grad).norm(dim=1).numpy() + np.abs((Hc - H).numpy()),
                                 sigma * dz / dist.numpy())
                add("random MLP", dim, dist, H, grad, z, z2, err)
    return pd.DataFrame(rows, columns=["family", "dim", "H", "grad_norm", "envelope", "ratio",
                                       "quad_err"])


# =============================================================================== toy classifiers
class _HardClassifier(nn.Module):
    """A hard classifier f given by ``labels(x)`` ([N, d] -> [N] long) and ``num_classes``.
    forward gives logits 10 x one-hot (so softmax is close to e_{f(x)})."""

    num_classes: int

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * nn.functional.one_hot(self.labels(x), self.num_classes).to(x.dtype)

    def one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """The soft classifier F(x) = e_{f(x)} of the hard classifier: [N, d] -> [N, K] float64."""
        return nn.functional.one_hot(self.labels(x), self.num_classes).double()


class IntervalClassifier(_HardClassifier):
    """A hard 1-D classifier: class ``labels[i]`` on [breaks[i-1], breaks[i]) (breaks sorted,
    len(labels) = len(breaks) + 1). forward: [N, 1] -> logits [N, K] (10 x one-hot).

    :meth:`smoothed` gives G = F * N(0, sigma^2) in closed form: for each interval (a, b),
    G_label(x) += Phi((b - x)/sigma) - Phi((a - x)/sigma).
    """

    def __init__(self, breaks: Sequence[float], labels: Sequence[int], num_classes: int | None = None):
        super().__init__()
        breaks = [float(b) for b in breaks]
        if sorted(breaks) != breaks or len(labels) != len(breaks) + 1:
            raise ValueError("breaks must be sorted and len(labels) == len(breaks) + 1")
        self.register_buffer("breaks", torch.tensor(breaks, dtype=torch.float64))
        self.register_buffer("interval_labels", torch.tensor(list(labels), dtype=torch.long))
        self.num_classes = int(num_classes or max(labels) + 1)

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.bucketize(x[:, 0].contiguous().double(), self.breaks, right=True)
        return self.interval_labels[idx]

    def smoothed(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Exact G(x) [N, K] for x [N, 1] (float64)."""
        sigma = check_sigma(sigma)
        edges = torch.cat([torch.tensor([-math.inf]), self.breaks, torch.tensor([math.inf])]).double()
        xd = x[:, :1].double()
        mass = _Phi((edges[None, 1:] - xd) / sigma) - _Phi((edges[None, :-1] - xd) / sigma)  # [N, I]
        onehot = nn.functional.one_hot(self.interval_labels, self.num_classes).double()  # [I, K]
        return mass @ onehot


class ToyClassifier2D(_HardClassifier):
    """A hard 3-class classifier on R^2 with the features smoothing removes first:
    class 0 on a small disc (an "island"), class 1 above the wave x2 = a sin(w x1), class 2 below.

    forward: [N, 2] -> logits [N, 3] (10 x one-hot, so softmax = the hard classifier's e_f(x)).
    """

    num_classes = 3

    def __init__(self, center=(-0.8, 1.1), radius: float = 0.7, amplitude: float = 0.6,
                 frequency: float = 1.6):
        super().__init__()
        self.register_buffer("center", torch.tensor(center, dtype=torch.float64))
        self.radius, self.amplitude, self.frequency = float(radius), float(amplitude), float(frequency)

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        xd = x.double()
        inside = (xd - self.center).pow(2).sum(1) <= self.radius**2
        upper = xd[:, 1] > self.amplitude * torch.sin(self.frequency * xd[:, 0])
        return torch.where(inside, 0, torch.where(upper, 1, 2)).long()


def hard_votes(model: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """x [N, d] -> one-hot of argmax model(x) [N, K] (float64): the soft classifier e_{f(x)} of the
    hard classifier f = argmax of a network (input cast to the model's float32)."""
    def votes(x):
        with torch.no_grad():
            logits = model(x.float())
        return nn.functional.one_hot(logits.argmax(1), logits.shape[1]).double()
    return votes


def _grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    """The points of the tensor-product grid spanned by ``axes``, first axis slowest: [N, D]."""
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], 1)


def grid_values(F: Callable[[torch.Tensor], torch.Tensor], axes: Sequence[np.ndarray]) -> np.ndarray:
    """F on the grid spanned by ``axes`` (one or two 1-D arrays): [len(a0), (len(a1),) K].
    F gets float64 points [N, D] and may return a tensor or an array."""
    axes = [np.asarray(a, dtype=float) for a in axes]
    pts = torch.tensor(_grid_points(axes), dtype=torch.float64)
    with torch.no_grad():
        vals = F(pts)
    vals = np.asarray(vals.detach().cpu().double() if isinstance(vals, torch.Tensor) else vals, dtype=float)
    return vals.reshape(tuple(a.size for a in axes) + vals.shape[1:])


class LinearBinaryClassifier(nn.Module):
    """h(x) = sign(<w, x> + b) as a 2-class classifier: logits [-z, z], z = <w, x> + b, so
    class 1 <=> h = +1 (Saremi & Srivastava §2.1). x: [N, d] -> [N, 2]."""

    def __init__(self, w, b: float):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float64).flatten())
        self.b = float(b)

    def forward(self, x):
        z = x.flatten(1) @ self.w.to(x.dtype) + self.b
        return torch.stack([-z, z], 1)


class ToyMLP(nn.Module):
    """A small SiLU MLP [N, d_in] -> [N, d_out] for the low-dimensional experiments."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 64, depth: int = 2):
        super().__init__()
        layers, width = [], d_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


# =============================================================================== CERTIFY statistics
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


def gaussian_norm_moments(d, sigma: float = 1.0):
    """Mean and standard deviation of ||eps|| for eps ~ N(0, sigma^2 I_d) (the chi distribution):

        E||eps|| = sigma sqrt(2) Gamma((d+1)/2) / Gamma(d/2)  ~  sigma sqrt(d),
        sd = sqrt(d sigma^2 - E||eps||^2)                      ->  sigma / sqrt(2).

    d: int or array of ints. Returns (mean, sd), floats or arrays."""
    sigma = check_sigma(sigma)
    d_arr = np.asarray(d, dtype=float)
    if np.any(d_arr < 1):
        raise ValueError("d must be >= 1")
    mean = sigma * _SQRT2 * np.exp(gammaln((d_arr + 1) / 2) - gammaln(d_arr / 2))
    sd = np.sqrt(np.maximum(d_arr * sigma**2 - mean**2, 0.0))
    return _like(mean, d), _like(sd, d)


# =============================================================================== training (§3)
@contextmanager
def _one_thread():
    """Tiny MLPs train several times faster on one CPU thread (no intra-op overhead, no
    oversubscription on a shared machine); the previous setting is restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _seeded_init(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def train_smoothing_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, sigma: float,
                               objective: str, k: int = 8, steps: int = 500, batch_size: int = 256,
                               lr: float = 1e-2, hidden: int = 64, seed: int = 0) -> tuple[nn.Module, dict]:
    """Train a small MLP base classifier F_theta on (x [N, d], y [N]) for Gaussian smoothing.

    objective="augment": Gaussian data augmentation, Lecture 14 eq. (8),
        E_{(X,y)} E_delta [-log F_theta(X + delta)_y]   (k noise draws per example);
    objective="smoothed": the smoothed classifier's loss, eq. (9), with the plug-in estimator
        -log( (1/k) sum_i F_theta(X + delta_i)_y )      (consistent, biased; Salman et al.).
    Adam with a cosine schedule. Returns (model in eval mode, {"loss": [...]}).
    """
    sigma = check_sigma(sigma)
    if objective not in ("augment", "smoothed"):
        raise ValueError(f"objective must be 'augment' or 'smoothed', got {objective!r}")
    k, steps = check_count("k", k), check_count("steps", steps)
    model = _seeded_init(seed, lambda: ToyMLP(x.shape[1], num_classes, hidden))
    g = torch.Generator().manual_seed(int(seed) + 1)
    x, y = x.float(), y.long()
    losses = _train_toy(model, lambda: _smoothing_loss(model, x, y, sigma, objective, k, batch_size, g),
                        steps, lr)
    return model.eval(), {"loss": losses}


def _smoothing_loss(model, x, y, sigma, objective, k, batch_size, g):
    """One minibatch of Lecture 14 eq. (8) ("augment") or the plug-in eq. (9) ("smoothed")."""
    idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
    xb, yb = x[idx], y[idx]
    noisy = xb[:, None, :] + sigma * torch.randn(batch_size, k, x.shape[1], generator=g)
    logp = torch.log_softmax(model(noisy.reshape(-1, x.shape[1])), 1).reshape(batch_size, k, -1)
    logp_y = logp.gather(2, yb[:, None, None].expand(-1, k, 1))[..., 0]  # [B, k]
    if objective == "augment":
        return -logp_y.mean()
    return -(torch.logsumexp(logp_y, 1) - math.log(k)).mean()


@torch.no_grad()
def smoothing_objectives(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float,
                         num_samples: int, ks: Sequence[int] = (1, 4, 16),
                         generator: torch.Generator | None = None) -> dict:
    """Evaluate the two training objectives of Lecture 14 §3 for a soft classifier F = softmax(model).

    With num_samples draws delta_j per example (num_samples divisible by every k in ks):
    ``augment`` = mean_j -log F(x + delta_j)_y (eq. 8), ``smoothed`` = -log mean_j F(x + delta_j)_y
    (eq. 9, the best estimate), ``plugin_k`` = mean over groups of k draws of -log(group mean)
    (the plug-in estimator's expected value). By Jensen, on the same draws,
    smoothed <= plugin_k (decreasing in k) <= plugin_1 = augment. Averages over examples.
    """
    sigma = check_sigma(sigma)
    num_samples = check_count("num_samples", num_samples)
    if any(num_samples % int(kk) for kk in ks):
        raise ValueError("num_samples must be divisible by every k in ks")
    x, y = x.float(), y.long()
    n, d = x.shape
    noisy = x[:, None, :] + sigma * torch.randn(n, num_samples, d, generator=generator)
    p = torch.softmax(model(noisy.reshape(-1, d)), 1).reshape(n, num_samples, -1)
    p_y = p.gather(2, y[:, None, None].expand(-1, num_samples, 1))[..., 0].double().clamp_min(1e-300)
    out = {"augment": float(-p_y.log().mean()), "smoothed": float(-p_y.mean(1).log().mean())}
    for kk in ks:
        out[f"plugin_{int(kk)}"] = float(-p_y.reshape(n, num_samples // kk, kk).mean(2).log().mean())
    return out


# =============================================================================== empirical Bayes
def bayes_shrinkage(sigma: float, sigma0: float) -> float:
    """beta = 1 / (1 + (sigma / sigma0)^2) (Saremi & Srivastava eq. 7): for X = N(0, sigma0^2 I)
    and Y = X + N(0, sigma^2 I), the Bayes estimator is x_hat(y) = E[X | Y = y] = beta y."""
    sigma, sigma0 = check_sigma(sigma), check_sigma(sigma0, "sigma0")
    return 1.0 / (1.0 + (sigma / sigma0) ** 2)


def _linear_margin(w, b, x):
    w = torch.as_tensor(w, dtype=torch.float64).flatten()
    xs = torch.as_tensor(x, dtype=torch.float64)
    single = xs.dim() == 1
    xs = xs[None] if single else xs
    if xs.dim() != 2 or xs.shape[1] != w.shape[0]:
        raise ValueError(f"x must have shape [d] or [B, d] with d = {w.shape[0]}, got {tuple(xs.shape)}")
    if float(w.norm()) == 0:
        raise ValueError("w must be non-zero")
    return xs, w, float(b), single


def linear_eb_pa(w, b: float, x, sigma: float, sigma0: float):
    """Proposition 2.3, proof: p_A(x) = Phi(|<w, beta x> + b| / (beta sigma ||w||)), the probability
    of the top class of pi = h(x_hat(x + eps)) = h(beta x + beta eps), eps ~ N(0, sigma^2 I).
    w: [d], x: [d] or [B, d] -> float or float64 tensor [B]."""
    sigma = check_sigma(sigma)
    beta = bayes_shrinkage(sigma, sigma0)
    xs, w, b, single = _linear_margin(w, b, x)
    p = _Phi((xs @ w * beta + b).abs() / (beta * sigma * w.norm()))
    return float(p[0]) if single else p


def linear_eb_radius(w, b: float, x, sigma: float, sigma0: float):
    """Proposition 2.3 (ii) (Saremi & Srivastava eq. 11): the empirical Bayes smoothed linear
    classifier g_sigma[pi](x) = h(beta x) is l2-robust at x with radius

        r(x) = |<w, beta x> + b| / (beta ||w||)  ( = sigma Phi^-1(p_A(x)) ),

    i.e. the margin at beta x times 1/beta = 1 + (sigma/sigma0)^2. X = N(0, sigma0^2 I_d).
    w: [d], b: float, x: [d] or [B, d] -> float or float64 tensor [B]."""
    check_sigma(sigma)
    beta = bayes_shrinkage(sigma, sigma0)
    xs, w, b, single = _linear_margin(w, b, x)
    r = (xs @ w * beta + b).abs() / (beta * w.norm())
    return float(r[0]) if single else r


def mog_bayes_estimator(y: torch.Tensor, mu, sigma0: float, sigma: float) -> torch.Tensor:
    """Saremi & Srivastava eq. (8): for X ~ (N(mu, sigma0^2 I) + N(-mu, sigma0^2 I)) / 2,

        x_hat(y) = beta y + (1 - beta) tanh(<beta y, mu> / sigma0^2) mu,   beta^-1 = 1 + (sigma/sigma0)^2.

    y: [B, d] (or [d]); mu: [d]. Returns E[X | Y = y] with y's shape and dtype."""
    sigma, sigma0 = check_sigma(sigma), check_sigma(sigma0, "sigma0")
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise TypeError("y must be a floating-point torch.Tensor")
    mu = torch.as_tensor(mu, dtype=y.dtype, device=y.device).flatten()
    if y.shape[-1] != mu.shape[0]:
        raise ValueError(f"y has last dimension {y.shape[-1]} but mu has {mu.shape[0]}")
    beta = bayes_shrinkage(sigma, sigma0)
    return beta * y + (1 - beta) * torch.tanh((beta * y) @ mu / sigma0**2)[..., None] * mu


def _train_toy(model: nn.Module, loss_fn: Callable, steps: int, lr: float) -> list[float]:
    """Adam with a cosine schedule, on one thread; returns the loss curve."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    with _one_thread():
        for _ in range(steps):
            loss = loss_fn()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses


def train_dsm_mlp(sample_x: Callable[[int, torch.Generator], torch.Tensor], dim: int, sigma: float,
                  steps: int = 2000, batch_size: int = 512, lr: float = 3e-3, hidden: int = 64,
                  seed: int = 0) -> tuple[nn.Module, dict]:
    """Toy low-dimensional denoising score matching (Vincent 2011) at one noise level sigma.

    Trains s_theta: [N, dim] -> [N, dim] to minimise E || s(x + sigma eps) + eps / sigma ||^2,
    whose minimiser is the score grad log p_sigma of Y = X + N(0, sigma^2 I); then
    x_hat(y) = y + sigma^2 s(y) (Lee eq. 3). ``sample_x(n, generator)`` draws clean data [n, dim].
    (Toy version for notebook 01; the noise-conditional image models live in ``lib.score``.)
    Returns (model in eval mode, {"loss": [...]}).
    """
    sigma = check_sigma(sigma)
    model = _seeded_init(seed, lambda: ToyMLP(dim, dim, hidden))
    g = torch.Generator().manual_seed(int(seed) + 1)

    def loss_fn():
        x = sample_x(batch_size, g).float()
        eps = torch.randn(x.shape, generator=g)
        return (model(x + sigma * eps) + eps / sigma).pow(2).sum(1).mean() * sigma**2

    losses = _train_toy(model, loss_fn, check_count("steps", steps), lr)
    return model.eval(), {"loss": losses}


def train_mse_denoiser_mlp(sample_x: Callable[[int, torch.Generator], torch.Tensor], dim: int, sigma: float,
                           steps: int = 2000, batch_size: int = 512, lr: float = 3e-3, hidden: int = 64,
                           seed: int = 0) -> tuple[nn.Module, dict]:
    """Toy low-dimensional MSE denoiser: a residual MLP D(y) = y + net(y), [N, dim] -> [N, dim],
    trained on E || D(x + sigma eps) - x ||^2. By Proposition A.1/B.1 (Lee) its minimiser is
    E[X | Y = y] = y + sigma^2 grad log p_sigma(y). (Under D = y + sigma^2 s this loss is sigma^4
    times the DSM loss, so the two objectives share their minimiser; the network here outputs
    sigma^2 s, not s, and is seeded differently, so the comparison is not circular.)
    Same arguments as :func:`train_dsm_mlp`. (Toy version; image denoisers live in ``lib.denoise``.)"""
    sigma = check_sigma(sigma)

    class ResidualDenoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = ToyMLP(dim, dim, hidden)

        def forward(self, y):
            return y + self.net(y)

    model = _seeded_init(seed + 7, ResidualDenoiser)
    g = torch.Generator().manual_seed(int(seed) + 8)

    def loss_fn():
        x = sample_x(batch_size, g).float()
        y = x + sigma * torch.randn(x.shape, generator=g)
        return (model(y) - x).pow(2).sum(1).mean()

    losses = _train_toy(model, loss_fn, check_count("steps", steps), lr)
    return model.eval(), {"loss": losses}


# =============================================================================== Lee, Theorem A.2
def lee_recovery_bound(sigma: float, sigma_tilde, mu: float, d: int):
    """Lee, Theorem A.2 (eq. 16): if -log p is mu-strongly convex near its mode x*, y = x* + u with
    u ~ N(0, sigma^2 I_d), gradient descent on the approximate MAP loss
    L(x) = -log p_{sigma_tilde^2}(x) + ||y - x||^2 / (2 sigma^2) from x_0 = y reaches x_hat with

        E||x_hat - x*|| <= sigma sqrt(d) (1 + mu st^2) / (1 + mu st^2 + mu sigma^2) + st sqrt(d),  st = sigma_tilde.

    sigma_tilde >= 0: float or array. Returns a float or an array."""
    sigma = check_sigma(sigma)
    mu = check_sigma(mu, "mu")
    d = check_count("d", d)
    st = np.asarray(sigma_tilde, dtype=float)
    if np.any(~np.isfinite(st)) or np.any(st < 0):
        raise ValueError("sigma_tilde must be finite and >= 0")
    a = 1 + mu * st**2
    out = sigma * math.sqrt(d) * a / (a + mu * sigma**2) + st * math.sqrt(d)
    return _like(out, sigma_tilde)


def approx_map_gd(y: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor], sigma: float,
                  step: float, steps: int) -> torch.Tensor:
    """Gradient descent on Lee's approximate MAP loss (eq. 5-6) for Gaussian noise:

        x_{t+1} = x_t + step * ( s(x_t) + (y - x_t) / sigma^2 ),   x_0 = y,

    where s(x) = grad log p_{sigma_tilde^2}(x) is a (true or learned) score. y: [B, d] -> [B, d]."""
    sigma = check_sigma(sigma)
    step = check_sigma(step, "step")
    steps = check_count("steps", steps, minimum=0)
    x = y.clone()
    for _ in range(steps):
        x = x + step * (score(x) + (y - x) / sigma**2)
    return x


def gaussian_map_error(sigma: float, sigma_tilde, sigma0: float, d: int):
    """The exact value of E||x_hat - x*|| in Theorem A.2 for Gaussian data p = N(x*, sigma0^2 I_d)
    (mu = 1 / sigma0^2): the approximate MAP minimiser is x* + c u with
    c = (sigma0^2 + st^2) / (sigma0^2 + st^2 + sigma^2), so E||x_hat - x*|| = c E||u||
    (E||u|| from :func:`gaussian_norm_moments`). The mode of p_{st^2} is x* itself, so the
    bound's W2 term st sqrt(d) is not needed here."""
    sigma, sigma0 = check_sigma(sigma), check_sigma(sigma0, "sigma0")
    st = np.asarray(sigma_tilde, dtype=float)
    c = (sigma0**2 + st**2) / (sigma0**2 + st**2 + sigma**2)
    return _like(c * gaussian_norm_moments(d, sigma)[0], sigma_tilde)


# =============================================================================== experiments
# Small drivers the notebooks call: each returns a DataFrame of closed form against estimate.
def stein_convergence(h: Callable, x: torch.Tensor, grad_true: torch.Tensor, sigma: float,
                      ns: Sequence[int], reps: int, generator: torch.Generator | None = None) -> pd.DataFrame:
    """Stein's lemma check: ``reps`` independent estimates of grad H(x) for every n in ``ns``.
    x, grad_true: [d]. Columns: n, rep, error (||estimate - grad_true||), predicted (the
    estimated RMS error sqrt(sum_j stderr_j^2))."""
    rows = []
    for n in ns:
        for r in range(check_count("reps", reps)):
            est, se = stein_gradient(h, x, sigma, int(n), generator, return_stderr=True)
            rows.append((int(n), r, float((est - grad_true).norm()), float(se.norm())))
    return pd.DataFrame(rows, columns=["n", "rep", "error", "predicted"])


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


def linear_eb_experiment(d: int, sigma: float, sigma0: float, num_points: int, n0: int, n: int, alpha: float,
                         generator: torch.Generator, offset: float = 2.0) -> pd.DataFrame:
    """Proposition 2.3 against Monte-Carlo certification in R^d (``lib.smoothing.Smooth`` with the
    Bayes denoiser y -> beta y for X = N(0, sigma0^2 I_d)).

    A random w (||w|| = 1) and b = ``offset`` * sigma0; points x = x_perp + t w with x_perp a
    sample of X projected off w, and t chosen so that the closed-form radius r(x) runs over
    [0.3, 2.5] sigma with alternating signs (some points then have h(x) != h(beta x): effect E2).
    Columns: margin (|<w,x>+b|/||w||, the radius of vanilla smoothing g[h]), h_x, g_closed
    (h(beta x) as class 0/1), g_mc (CERTIFY's class, -1 = abstain), p_closed, p_mc (frequency of
    g_closed among n fresh votes), z (= (p_mc - p_closed)/se), r_closed (eq. 11),
    r_estimate (sigma Phi^-1(p_mc)), r_certified (CERTIFY, a lower bound), e2_flip, and
    boundary_shift = |b| (1/beta - 1) / ||w|| (r(x) = |<w, x> + b/beta| / ||w||, so without a flip
    r(x) - margin = +-boundary_shift).
    """
    d = check_count("d", d)
    sigma, sigma0 = check_sigma(sigma), check_sigma(sigma0, "sigma0")
    beta = bayes_shrinkage(sigma, sigma0)
    w = torch.randn(d, generator=generator, dtype=torch.float64)
    w /= w.norm()
    b = float(offset) * sigma0
    perp = torch.randn(num_points, d, generator=generator, dtype=torch.float64) * sigma0
    perp -= (perp @ w)[:, None] * w[None]
    r_target = torch.linspace(0.3, 2.5, num_points, dtype=torch.float64) * sigma
    sign = torch.where(torch.arange(num_points) % 2 == 0, 1.0, -1.0).double()
    # <w, beta x> + b = sign * beta * r  <=>  t = (sign * beta * r - b) / beta
    t = (sign * beta * r_target - b) / beta
    xs = perp + t[:, None] * w[None]
    clf = LinearBinaryClassifier(w, b)
    smooth = Smooth(clf, 2, Gaussian(sigma), denoiser=lambda y: beta * y)
    preds, radii = smooth.certify_batch(xs, n0, n, alpha, generator=generator)
    g_closed = ((xs @ w * beta + b) > 0).long()
    counts = smooth.sample_counts(xs, n, generator=generator).cpu()
    p_mc = counts.gather(1, g_closed[:, None])[:, 0].double() / n
    p_closed = linear_eb_pa(w, b, xs, sigma, sigma0)
    se = torch.sqrt(p_closed * (1 - p_closed) / n)
    h_x = ((xs @ w + b) > 0).long()
    return pd.DataFrame({
        "margin": ((xs @ w + b).abs() / w.norm()).numpy(), "h_x": h_x.numpy(),
        "g_closed": g_closed.numpy(), "g_mc": preds.numpy(), "p_closed": p_closed.numpy(),
        "p_mc": p_mc.numpy(), "z": ((p_mc - p_closed) / se).numpy(),
        "r_closed": linear_eb_radius(w, b, xs, sigma, sigma0).numpy(),
        "r_estimate": sigma * norm.ppf(np.clip(p_mc.numpy(), 1e-12, 1 - 1e-12)),
        "r_certified": radii.numpy(), "e2_flip": (h_x != g_closed).numpy(),
        "boundary_shift": abs(b) * (1 / beta - 1) / float(w.norm())})


def estimator_errors(estimates: dict, reference: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor
                     ) -> pd.DataFrame:
    """Compare estimators x_hat(y) of the clean x (name -> [N, d] estimates) with a reference
    estimator (eq. 8): rms_to_reference = sqrt(mean ||x_hat - ref||^2), relative = that divided by
    sqrt(mean ||y - ref||^2) (the error of doing nothing), mse = mean ||x_hat - x||^2 (the
    denoising risk, minimised by the Bayes estimator), mse_se its standard error, excess_mse =
    mean(||x_hat - x||^2 - ||ref - x||^2) (>= 0 in expectation when ref is the Bayes estimator)
    and excess_se its paired standard error. All tensors [N, d]."""
    base = (noisy - reference).pow(2).sum(1).mean().sqrt()
    ref_sq = (reference - clean).pow(2).sum(1)
    rows = []
    for name, xh in estimates.items():
        xh = xh.detach().to(reference.dtype)
        rms = (xh - reference).pow(2).sum(1).mean().sqrt()
        sq = (xh - clean).pow(2).sum(1)
        excess = sq - ref_sq
        rows.append((name, float(rms), float(rms / base), float(sq.mean()),
                     float(sq.std() / math.sqrt(len(sq))), float(excess.mean()),
                     float(excess.std() / math.sqrt(len(sq)))))
    return pd.DataFrame(rows, columns=["estimator", "rms_to_reference", "relative", "mse", "mse_se",
                                       "excess_mse", "excess_se"]).set_index("estimator")


def lee_experiment(sigmas: Sequence[float], sigma_tildes: Sequence[float], sigma0: float, d: int, num: int,
                   steps: int, generator: torch.Generator | None = None) -> pd.DataFrame:
    """Theorem A.2 on Gaussian data p = N(0, sigma0^2 I_d) (x* = 0, mu = 1/sigma0^2): for every
    (sigma, sigma_tilde), ``num`` noisy y = x* + u, gradient descent (:func:`approx_map_gd`) with the
    exact score of p_{sigma_tilde^2} from ``lib.data.GaussianData``, step 1/(2 L) for the curvature L,
    ``steps`` steps. Columns: sigma, sigma_tilde, measured (mean ||x_hat - x*||), se, exact
    (:func:`gaussian_map_error`), bound (:func:`lee_recovery_bound`), gd_residual (max ||grad L||)."""
    data = GaussianData(check_count("d", d), sigma0)
    rows = []
    with _one_thread():  # many small steps: thread start-up would dominate
        for sigma in sigmas:
            y = torch.randn(check_count("num", num), d, generator=generator, dtype=torch.float64) * sigma  # x* = 0
            for st in sigma_tildes:
                score = (lambda x, st=st: data.score(x, float(st)))
                curvature = 1.0 / (sigma0**2 + st**2) + 1.0 / sigma**2
                xh = approx_map_gd(y, score, sigma, 0.5 / curvature, steps)
                resid = (score(xh) + (y - xh) / sigma**2).norm(dim=1).max()
                err = xh.norm(dim=1)
                rows.append((sigma, st, float(err.mean()), float(err.std() / math.sqrt(num)),
                             gaussian_map_error(sigma, st, sigma0, d),
                             lee_recovery_bound(sigma, st, 1 / sigma0**2, d), float(resid)))
    return pd.DataFrame(rows, columns=["sigma", "sigma_tilde", "measured", "se", "exact", "bound",
                                       "gd_residual"])
