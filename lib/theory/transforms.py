"""Gaussian smoothing as a transform (Lecture 14 §1 and Lemma 2.3), for notebook 00: H = h * N(0, sigma^2 I)
and its gradient by Stein's lemma (Monte Carlo), by Gauss-Hermite quadrature and on a grid, and
the functions h whose transform is known in closed form (half-space, probit ridge, ball).

Callables ``h`` / ``F`` map a torch batch ``[N, d]`` to ``[N]`` (or ``[N, K]``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import chi2, ncx2

from lib.utils import check_count, check_sigma

from .common import _Phi, _as_batch, _grid_points, _phi, grid_values

__all__ = ["stein_gradient", "gauss_hermite_smoothing", "weierstrass_grid", "halfspace_h", "halfspace_smoothed",
           "probit_h", "probit_smoothed", "ball_h", "ball_smoothed", "random_mlp_h"]


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
