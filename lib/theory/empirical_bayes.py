"""Empirical Bayes smoothing (Saremi & Srivastava, "Provable robust classification via learned smoothed densities",
2020, arXiv:2005.04504, §2) and Lee's recovery bound (Lee, "Provable defense by denoised smoothing with learned
score function", 2021, Theorem A.2), for notebook 01.

Closed forms: the Gaussian beta-contraction (eq. 7), Proposition 2.3 for a linear classifier,
the mixture-of-Gaussians Bayes estimator (eq. 8), Lee's bound (eq. 16); toy learned estimators
(a DSM score MLP and an MSE denoiser MLP, trained with ``lib.models.train_loop``) and the
experiment drivers that compare closed forms with estimates.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm
from torch import nn

from lib.data import GaussianData
from lib.smoothing import Gaussian, Smooth
from lib.utils import check_count, check_sigma

from .common import (LinearBinaryClassifier, ToyMLP, _Phi, _like, _one_thread, _seeded_init, _train_toy,
                     gaussian_norm_moments)

__all__ = ["bayes_shrinkage", "linear_eb_pa", "linear_eb_radius", "mog_bayes_estimator",
           "train_dsm_mlp", "train_mse_denoiser_mlp", "lee_recovery_bound", "approx_map_gd",
           "gaussian_map_error", "linear_eb_experiment", "estimator_errors", "lee_experiment",
           "mixture_mode", "strong_convexity", "lee_mixture_experiment", "lee_counterexample",
           "lee_counterexample_summary", "lee_counterexample_verdict", "StronglyLogConcave", "lee_corrected_check",
           "mixture_eb_boundary", "mixture_eb_experiment"]


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
    and excess_se its paired standard error.

    pythagoras_z: if ref = E[X | Y] (Prop. A.1), x_hat - ref is a function of y and ref - x is
    orthogonal to every such function, so E||x_hat - x||^2 = E||ref - x||^2 + E||x_hat - ref||^2 for
    *every* estimator. z = mean(2 <x_hat - ref, ref - x>) / its standard error is then ~ N(0, 1):
    a check of eq. 8 that does not depend on how well a network was trained. All tensors [N, d]."""
    base = (noisy - reference).pow(2).sum(1).mean().sqrt()
    ref_sq = (reference - clean).pow(2).sum(1)
    rows = []
    for name, xh in estimates.items():
        xh = xh.detach().to(reference.dtype)
        rms = (xh - reference).pow(2).sum(1).mean().sqrt()
        sq = (xh - clean).pow(2).sum(1)
        excess = sq - ref_sq
        cross = 2 * ((xh - reference) * (reference - clean)).sum(1)
        cross_se = float(cross.std() / math.sqrt(len(sq)))
        rows.append((name, float(rms), float(rms / base), float(sq.mean()),
                     float(sq.std() / math.sqrt(len(sq))), float(excess.mean()),
                     float(excess.std() / math.sqrt(len(sq))),
                     float(cross.mean()) / cross_se if cross_se > 0 else 0.0))
    return pd.DataFrame(rows, columns=["estimator", "rms_to_reference", "relative", "mse", "mse_se",
                                       "excess_mse", "excess_se", "pythagoras_z"]).set_index("estimator")


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


def mixture_mode(mix, start: torch.Tensor, steps: int = 2000) -> torch.Tensor:
    """A mode x* of the mixture density p (``lib.data.GaussianMixture``): gradient ascent on log p
    with its exact score from ``start`` [d], step sigma0^2 / 2. Returns [d] (float64)."""
    x = start.double().clone()[None]
    for _ in range(check_count("steps", steps)):
        x = x + 0.5 * mix.sigma0**2 * mix.score(x, 0.0)
    return x[0]


def strong_convexity(mix, center: torch.Tensor, radius: float, num: int, generator=None) -> float:
    """mu = the smallest eigenvalue of the Hessian of -log p (= -Jacobian of the exact score) over
    ``num`` points drawn uniformly in the ball of ``radius`` around ``center``, the centre, and the
    points of the ball's boundary towards each component mean.

    A minimum over points can only overstate the infimum over the ball. For two components of equal
    weight and variance, ``-log p`` has Hessian ``I / s0^2 - (mu mu^T / s0^4) sech^2(<z, mu> / s0^2)``,
    smallest where ``|<z, mu>|`` is, which on a ball beside the mean +mu is its boundary point towards
    -mu: one of the points added, so there the result is the infimum."""
    d = center.shape[0]
    u = torch.randn(num, d, generator=generator, dtype=torch.float64)
    r = torch.rand(num, 1, generator=generator, dtype=torch.float64) ** (1.0 / d) * radius
    c = center.double()
    towards = mix.means.double() - c
    dist = towards.norm(dim=1, keepdim=True)
    towards = towards[dist[:, 0] > 0] / dist[dist[:, 0] > 0]
    pts = torch.cat([c[None], c[None] + r * u / u.norm(dim=1, keepdim=True), c[None] + radius * towards])
    mus = [float(torch.linalg.eigvalsh(-torch.autograd.functional.jacobian(
        lambda z: mix.score(z[None], 0.0)[0], p)).min()) for p in pts]
    return min(mus)


def lee_mixture_experiment(mix, sigmas: Sequence[float], sigma_tildes: Sequence[float], num: int, steps: int,
                           generator: torch.Generator | None = None, radius: float | None = None) -> pd.DataFrame:
    """Theorem A.2 where it can fail: a mixture of Gaussians (``lib.data.GaussianMixture``), whose mode
    x* is not the mode of p_{sigma_tilde^2} (so the W2 term sigma_tilde sqrt(d) is needed) and whose
    -log p is strongly convex only near x*. x* = the mode next to the first component's mean;
    mu = :func:`strong_convexity` over the ball B_r(x*), r = ``radius`` (default 2 sigma0).
    For every (sigma, sigma_tilde): ``num`` noisy y = x* + u, gradient descent on the approximate MAP
    loss with the exact score of p_{sigma_tilde^2} (step 1/L, L = 1/(sigma0^2 + st^2) + 1/sigma^2 bounds
    the loss's curvature, since a Gaussian mixture's -log p_st has Hessian <= I / (sigma0^2 + st^2)), ``steps`` steps. Columns: sigma, sigma_tilde, mu, measured
    (mean ||x_hat - x*||), se, bound (eq. 16), outside (fraction of x_hat outside B_r(x*): there the
    hypothesis of the theorem does not hold), gd_residual (max ||grad L|| at the end)."""
    d = mix.dim
    s0 = mix.sigma0
    radius = 2 * s0 if radius is None else float(radius)
    x_star = mixture_mode(mix, mix.means[0])
    mu = strong_convexity(mix, x_star, radius, 200, generator)
    if mu <= 0:
        raise ValueError(f"-log p is not strongly convex on the ball of radius {radius} around the mode (mu = {mu})")
    rows = []
    with _one_thread():
        for sigma in sigmas:
            y = x_star + torch.randn(check_count("num", num), d, generator=generator, dtype=torch.float64) * sigma
            for st in sigma_tildes:
                score = (lambda x, st=st: mix.score(x, float(st)))
                curvature = 1.0 / (s0**2 + st**2) + 1.0 / sigma**2
                xh = approx_map_gd(y, score, sigma, 1.0 / curvature, steps)
                resid = (score(xh) + (y - xh) / sigma**2).norm(dim=1).max()
                err = (xh - x_star).norm(dim=1)
                rows.append((sigma, st, mu, float(err.mean()), float(err.std() / math.sqrt(num)),
                             lee_recovery_bound(sigma, st, mu, d), float((err > radius).double().mean()),
                             float(resid)))
    return pd.DataFrame(rows, columns=["sigma", "sigma_tilde", "mu", "measured", "se", "bound", "outside",
                                       "gd_residual"])


def lee_counterexample(mix, sigma: float, sigma_tilde: float, num: int, reps: int, steps: int,
                       generator: torch.Generator | None = None, radius: float | None = None) -> pd.DataFrame:
    """Theorem A.2 as stated, repeated: ``reps`` independent runs of :func:`lee_mixture_experiment` at one
    (sigma, sigma_tilde), each with ``num`` noisy y = x* + u. The hypothesis (-log p mu-strongly convex on
    B_r(x*), mu > 0) is verified inside each run. Columns: rep, mu, measured, se, bound (eq. 16), outside."""
    rows = []
    for rep in range(check_count("reps", reps)):
        df = lee_mixture_experiment(mix, [sigma], [sigma_tilde], num, steps, generator, radius)
        rows.append(df.assign(rep=rep))
    return pd.concat(rows, ignore_index=True)[["rep", "sigma", "sigma_tilde", "mu", "measured", "se", "bound",
                                               "outside"]]


def lee_counterexample_summary(runs: pd.DataFrame) -> dict:
    """Pool the repetitions of :func:`lee_counterexample`: measured = the mean over all runs, se = the
    standard deviation of the per-run means over sqrt(reps) (independent of the per-run se), z =
    (measured - bound) / se, min_mu = the smallest strong-convexity constant found on B_r(x*), reps_above
    = the number of runs whose mean exceeds the bound."""
    reps = len(runs)
    se = float(runs.measured.std(ddof=1) / math.sqrt(reps)) if reps > 1 else float(runs.se.iloc[0])
    measured, bound = float(runs.measured.mean()), float(runs.bound.iloc[0])
    return {"sigma": float(runs.sigma.iloc[0]), "sigma_tilde": float(runs.sigma_tilde.iloc[0]), "reps": reps,
            "min_mu": float(runs.mu.min()), "measured": measured, "se": se, "bound": bound,
            "z": (measured - bound) / se, "reps_above": int((runs.measured > bound).sum())}


def lee_counterexample_verdict(s: Mapping, z_level: float = 4.0) -> str:
    """The sentence the notebook prints about Theorem A.2 from :func:`lee_counterexample_summary`."""
    hyp = (f"its hypothesis holds (-log p is mu-strongly convex on B_r(x*) with mu = {s['min_mu']:.3g} > 0)"
           if s["min_mu"] > 0 else f"its hypothesis does not hold (mu = {s['min_mu']:.3g} <= 0 on B_r(x*))")
    head = (f"sigma = {s['sigma']:g}, sigma~ = {s['sigma_tilde']:g}: E||x_hat - x*|| = {s['measured']:.4f} "
            f"+- {s['se']:.4f} over {s['reps']} repetitions ({s['reps_above']} of them above the bound) against "
            f"the bound (16) = {s['bound']:.4f}, z = {s['z']:+.1f}; {hyp}.")
    if s["min_mu"] > 0 and s["z"] > z_level:
        return head + f" z > {z_level:g}: a counterexample to Theorem A.2 as stated."
    if s["z"] > z_level:
        return head + f" z > {z_level:g}, but the theorem does not claim the bound here."
    return head + f" z <= {z_level:g}: no violation of the bound shown at this size."


class StronglyLogConcave:
    """A non-Gaussian, globally strongly log-concave density on R^d (for the corrected Theorem A.2):

        -log p(x) = ||x||^2 / (2 s0^2) + a^-2 sum_i log cosh(a (x_i - c_i)) + const,

    mu-strongly convex on all of R^d with mu = 1 / s0^2 (the log cosh terms are convex, curvature in
    [0, 1]). ``score(x)`` = grad log p, x [B, d] -> [B, d]; ``mode()`` its unique maximiser [d]."""

    def __init__(self, c, s0: float = 1.0, a: float = 2.0):
        self.c = torch.as_tensor(c, dtype=torch.float64)
        self.s0 = check_sigma(s0, "s0")
        self.a = check_sigma(a, "a")
        self.dim = self.c.shape[0]
        self.mu = 1.0 / self.s0**2
        self.max_curvature = self.mu + 1.0

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return -x / self.s0**2 - torch.tanh(self.a * (x - self.c)) / self.a

    def mode(self, steps: int = 5000) -> torch.Tensor:
        x = torch.zeros(1, self.dim, dtype=torch.float64)
        for _ in range(check_count("steps", steps)):
            x = x + self.score(x) / self.max_curvature
        return x[0]


def lee_corrected_check(density: StronglyLogConcave, sigmas: Sequence[float], num: int, steps: int,
                        generator: torch.Generator | None = None, mu: float | None = None) -> pd.DataFrame:
    """The corrected Theorem A.2 at sigma_tilde = 0: if -log p is mu-strongly convex on all of R^d, the
    minimiser x_hat of -log p(x) + ||y - x||^2 / (2 sigma^2) satisfies, for every y = x* + u,

        ||x_hat - x*|| <= ||u|| / (1 + mu sigma^2)      (hence E||x_hat - x*|| <= sigma sqrt(d) / (1 + mu sigma^2)),

    (first-order conditions at x_hat and x*, strong monotonicity of -grad log p; Cauchy-Schwarz gives
    ||y - x*|| = ||u||). Checked pathwise on ``num`` draws per sigma. ``mu`` defaults to the density's.
    Columns: sigma, mu, max_excess (max of ||x_hat - x*|| - ||u|| / (1 + mu sigma^2); <= 0 if the statement
    holds), max_ratio (max ||x_hat - x*|| (1 + mu sigma^2) / ||u||), measured, bound, gd_residual."""
    mu = density.mu if mu is None else float(mu)
    x_star = density.mode()
    rows = []
    with _one_thread():
        for sigma in sigmas:
            u = torch.randn(check_count("num", num), density.dim, generator=generator, dtype=torch.float64) * sigma
            y = x_star + u
            xh = approx_map_gd(y, density.score, sigma, 1.0 / (density.max_curvature + 1 / sigma**2), steps)
            resid = float((density.score(xh) + (y - xh) / sigma**2).norm(dim=1).max())
            err, un = (xh - x_star).norm(dim=1), u.norm(dim=1)
            c = 1.0 / (1.0 + mu * sigma**2)
            rows.append((sigma, mu, float((err - c * un).max()), float((err / un).max() / c), float(err.mean()),
                         sigma * math.sqrt(density.dim) * c, resid))
    return pd.DataFrame(rows, columns=["sigma", "mu", "max_excess", "max_ratio", "measured", "bound", "gd_residual"])


def mixture_eb_boundary(mu, sigma0: float, sigma: float, b: float) -> float:
    """For h(x) = 1[<w, x> + b > 0] with w = mu / ||mu|| and the eq. 8 denoiser of the two-component mixture,
    h(x_hat(y)) depends on y only through t = <w, y>, and <w, x_hat(y)> = beta t + (1 - beta) tanh(beta t ||mu|| /
    sigma0^2) ||mu|| is increasing in t. Returns the root t0 of <w, x_hat(y)> + b = 0: the smoothed classifier
    g[h o x_hat] is the half-space 1[<w, x> > t0]."""
    from scipy.optimize import brentq  # noqa: PLC0415

    m = float(torch.as_tensor(mu, dtype=torch.float64).norm())
    beta = bayes_shrinkage(sigma, sigma0)

    def f(t):
        return beta * t + (1 - beta) * math.tanh(beta * t * m / sigma0**2) * m + b

    span = (abs(b) + m + 1.0) / beta
    return float(brentq(f, -span, span, xtol=1e-14))


def mixture_eb_experiment(mu, sigma0: float, sigma: float, b: float, num_points: int, n0: int, n: int, alpha: float,
                          generator: torch.Generator | None = None) -> pd.DataFrame:
    """Saremi & Srivastava's certification (Definition 1.1, pi = h o x_hat) on the mixture of eq. 8, where the
    exact answer is known: h(x) = 1[<w, x> + b > 0], w = mu / ||mu||, and g = g_sigma[pi] is the half-space
    1[<w, x> > t0] (:func:`mixture_eb_boundary`), so p_A(x) = Phi(|<w, x> - t0| / sigma) and the Theorem 1.1 radius
    sigma Phi^-1(p_A) = |<w, x> - t0| is the exact distance to g's boundary. CERTIFY (``Smooth`` with the eq. 8
    denoiser) at points whose exact radius runs over [0.1, 2] sigma on both sides. Columns: margin (the vanilla radius
    |<w, x> + b|), g_closed, g_mc (-1 = abstain), p_closed, p_mc (n fresh votes), z, r_closed, r_certified, t0."""
    mu = torch.as_tensor(mu, dtype=torch.float64).flatten()
    d = mu.shape[0]
    w = mu / mu.norm()
    t0 = mixture_eb_boundary(mu, sigma0, sigma, b)
    num_points = check_count("num_points", num_points)
    r_target = torch.linspace(0.1, 2.0, num_points, dtype=torch.float64) * sigma
    sign = torch.where(torch.arange(num_points) % 2 == 0, 1.0, -1.0).double()
    perp = torch.randn(num_points, d, generator=generator, dtype=torch.float64) * sigma0
    perp -= (perp @ w)[:, None] * w[None]
    t = t0 + sign * r_target
    xs = perp + t[:, None] * w[None]
    smooth = Smooth(LinearBinaryClassifier(w, b), 2, Gaussian(sigma),
                    denoiser=lambda y: mog_bayes_estimator(y, mu.to(y.dtype), sigma0, sigma))
    preds, radii = smooth.certify_batch(xs, n0, n, alpha, generator=generator)
    g_closed = (t > t0).long()
    counts = smooth.sample_counts(xs, n, generator=generator).cpu()
    p_mc = counts.gather(1, g_closed[:, None])[:, 0].double() / n
    p_closed = _Phi((t - t0).abs() / sigma)
    se = torch.sqrt(p_closed * (1 - p_closed) / n)
    return pd.DataFrame({"margin": (t + b).abs().numpy(), "g_closed": g_closed.numpy(), "g_mc": preds.numpy(),
                         "p_closed": p_closed.numpy(), "p_mc": p_mc.numpy(), "z": ((p_mc - p_closed) / se).numpy(),
                         "r_closed": (t - t0).abs().numpy(), "r_certified": radii.numpy(), "t0": t0})
