"""Denoisers: one interface, ``denoiser(noisy batch [B, *shape]) -> denoised batch [B, *shape]``.

Every score-based constructor takes any ``score(y, sigma)`` callable -- a learned
:class:`lib.denoising.score.ScoreModel`, a closed form (``lib.denoising.score.ClosedFormScore`` or directly a
``lib.data.GaussianData`` / ``GaussianMixture``), or a plain function -- so the theory
notebooks' exact scores drive the same code as the networks.

==================  ============================================================================
constructor         what it computes
==================  ============================================================================
:func:`tweedie`     one step, ``x = y + sigma^2 s(y, sigma)`` (Lee eq. 3; Saremi eq. 1): the
                    posterior mean E[x | y] under Gaussian noise when ``s`` is exact
:func:`annealed_map`  Lee's Algorithm 1: gradient ascent on the approximate MAP objective
                    ``log p_{sigma_i}(x) + log q(y - x)`` (eq. 5-6) over a decreasing schedule
                    sigma_1 > ... > sigma_L, for Gaussian, Laplace and uniform noise q
:func:`walk_jump`   Saremi & Srivastava eq. 16-17: a Bayes jump at sigma, a Langevin walk at
                    sigma' << sigma, and a second jump at sigma'
:func:`mse_denoiser`  DnCNN trained with the MSE loss for one noise type and level (Salman et
                    al. 2020): the baseline that needs one network per sigma
:func:`identity`    no denoiser
==================  ============================================================================

A denoiser whose score needs autograd (``lib.denoising.score.EnergyScore``) has
``requires_grad = True``; :class:`lib.smoothing.Smooth` then runs it under ``no_grad``
rather than ``inference_mode`` (the energy model re-enables autograd locally and works in
either). All others run their score network under ``torch.no_grad``.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from contextlib import nullcontext
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib import profiles
from lib.data import datasets as data
from lib.denoising.nets import DnCNN
from lib.denoising.score import _check_sigmas, as_score, make_schedule
from lib.models import cache as cache
from lib.models.training import StepLoss, train_loop
from lib.smoothing.noise import NoiseDistribution, make_noise
from lib.utils import check_count, check_positive, check_sigma, has_convolution, in_row_blocks

__all__ = ["Denoiser", "Tweedie", "AnnealedMAP", "WalkJump", "NetworkDenoiser", "Identity",
           "tweedie", "annealed_map", "walk_jump", "identity", "mse_denoiser", "mse_config",
           "train_mse", "mse_loss", "evaluate_denoiser", "evaluate_denoisers", "tune_step_size",
           "LEE_STEP_SIZE"]

#: Lee's appendix C.2: alpha = 2e-5 for Gaussian and uniform noise, 3e-5 for Laplace; T = 1
LEE_STEP_SIZE = {"gaussian": 2e-5, "laplace": 3e-5, "uniform": 2e-5}


class Denoiser(ABC):
    """A callable ``noisy [B, *shape] -> denoised [B, *shape]`` (same device and dtype).

    ``rowwise``: each output row is a function of its input row alone (no random draw), so a call
    of a convolutional network on the CPU runs in blocks of :func:`lib.utils.rows_per_call` rows
    (cache-sized, the same result).
    """

    requires_grad: bool = False
    rowwise: bool = True
    name: str = "denoiser"

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TypeError("the noisy batch must be a floating-point torch.Tensor [B, *shape]")
        if y.dim() < 2:
            raise ValueError(f"the noisy batch must have shape [B, *shape], got {tuple(y.shape)}")
        return in_row_blocks(self.denoise, y, self._is_convolutional()) if self.rowwise else self.denoise(y)

    def _is_convolutional(self) -> bool:
        """Whether the networks this denoiser calls have a convolution (looked up once)."""
        if "_convolutional" not in self.__dict__:
            self._convolutional = has_convolution(self)
        return self._convolutional

    @abstractmethod
    def denoise(self, y: torch.Tensor) -> torch.Tensor:
        ...

    def __repr__(self) -> str:
        return self.name


class _ScoreDenoiser(Denoiser):
    """A denoiser driven by ``score(y, sigma)``. ``score_evals`` counts the rows evaluated by the
    score (a batch of B rows adds B; read it, or reset it to 0, to measure work without a clock)."""

    def __init__(self, score):
        self.score = as_score(score)
        self.requires_grad = bool(getattr(self.score, "requires_grad", False))
        self.score_evals = 0

    def _score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        self.score_evals += int(y.shape[0])
        if self.rowwise:  # already called in cache-sized blocks by __call__
            return self.score(y, sigma)
        # a walk's draws follow its batch, but its score calls are row-wise: cache-sized blocks
        return in_row_blocks(lambda rows: self.score(rows, sigma), y, self._is_convolutional())

    def _ctx(self):
        # energy models need autograd and manage it themselves; everything else: no graph
        return nullcontext() if self.requires_grad else torch.no_grad()


class Tweedie(_ScoreDenoiser):
    """``x = y + sigma^2 s(y, sigma)`` (Lee eq. 3 / Prop. A.1; Saremi eq. 1).

    With the exact score of p_sigma this is the Bayes (least-squares) estimator E[x | y]
    under Gaussian noise of std sigma; for Gaussian data N(0, s0^2 I) it is ``beta y`` with
    ``beta = s0^2 / (s0^2 + sigma^2)``.
    """

    def __init__(self, score, sigma: float):
        super().__init__(score)
        self.sigma = check_sigma(sigma)
        self.name = f"tweedie(sigma={self.sigma:g})"

    def denoise(self, y):
        with self._ctx():
            return y + self.sigma ** 2 * self._score(y, self.sigma)


class AnnealedMAP(_ScoreDenoiser):
    """Lee's Algorithm 1 (simulated annealing for denoising), batched and in place.

    Starting from ``x = y``, for each level sigma_i of the decreasing schedule and
    ``steps_per_level`` (T) times::

        x <- x + alpha_i ( s(x, sigma_i) + grad_x log q(y - x) ),   alpha_i = alpha sigma_i^2 / sigma_ref^2

    where ``grad_x log q(y - x) = -(grad log q)(y - x)`` is the likelihood term of the
    noise family (``noise.grad_log_density``): ``(y - x) / sigma^2`` for Gaussian noise,
    ``sign(y - x) / lambda`` for Laplace noise, 0 for uniform noise. The likelihood weight
    is gamma = 1, as in eq. 5-6 and Algorithm 1. ``sigma_ref`` is Algorithm 1's
    sigma-tilde; we take the smallest level sigma_L (Song & Ermon's annealed-Langevin
    convention), so Lee's alpha = 2e-5 with sigma_L = 0.01 gives alpha_1 = 0.2 at sigma_1 = 1.

    Uniform noise: q(y - x) > 0 only on the box ``|y - x|_inf <= a`` (a = sqrt(3) sigma),
    where its gradient is 0. We *project* x onto that box after every step
    (``noise.project``), i.e. projected gradient ascent on the MAP objective with the box as
    a hard constraint; the iterate therefore always stays where the likelihood is positive.
    """

    def __init__(self, score, noise: NoiseDistribution, sigmas, step_size: float | None = None,
                 steps_per_level: int = 1, sigma_ref: float | None = None):
        super().__init__(score)
        if not isinstance(noise, NoiseDistribution):
            raise TypeError(f"noise must be a lib.smoothing.NoiseDistribution, got {type(noise).__name__}")
        self.noise = noise
        if isinstance(sigmas, str):
            sigmas = make_schedule(sigmas)
        self.sigmas = _check_sigmas(sigmas)
        self.step_size = check_positive("step_size", LEE_STEP_SIZE[noise.name] if step_size is None else step_size)
        self.steps_per_level = check_count("steps_per_level", steps_per_level)
        self.sigma_ref = check_sigma(sigma_ref, "sigma_ref") if sigma_ref is not None else self.sigmas[-1]
        self.alphas = [self.step_size * s ** 2 / self.sigma_ref ** 2 for s in self.sigmas]
        self.name = (f"annealed_map({noise.name}, L={len(self.sigmas)}, alpha={self.step_size:g}, "
                     f"T={self.steps_per_level})")

    def denoise(self, y):
        x = y.clone()
        with self._ctx():
            for level, a in zip(self.sigmas, self.alphas):
                for _ in range(self.steps_per_level):
                    # s(x, sigma_i) + grad_x log q(y - x), with grad_x log q(y - x) = -(grad log q)(y - x)
                    step = self._score(x, level) - self.noise.grad_log_density(y - x)
                    x.add_(step, alpha=a)
                    x = self.noise.project(x, y)
        return x


class WalkJump(_ScoreDenoiser):
    """Walk-jump denoising (Saremi & Srivastava eq. 16-17, Fig. 6).

    1. jump: ``y0 = y + sigma^2 s(y, sigma)``;
    2. walk: ``tau`` Langevin steps at sigma', ``y <- y + delta s(y, sigma') + sqrt(2 delta) eps``;
    3. jump: ``x = y_tau + sigma'^2 s(y_tau, sigma')``.

    Eq. 16 as printed reads ``y - delta^2 grad phi + sqrt(2 delta) eps``; that pairing does
    not leave p_sigma' invariant, so we use the standard (overdamped) Langevin step with
    drift ``delta`` and noise variance ``2 delta``, which does. The paper's Figure 6 uses
    sigma' = 0.05, delta = 0.001, tau = 100. The walk is random: ``seed`` fixes a generator
    on the input's device (None: torch's global generator); :meth:`use_generator` makes it draw
    from another one, e.g. a certification block's (``lib.experiments.walk_jump_procedure``), so
    that a resumed log equals an uninterrupted one.
    """

    def __init__(self, score, sigma: float, sigma_prime: float = 0.05, delta: float = 1e-3,
                 tau: int = 100, seed: int | None = None):
        super().__init__(score)
        self.sigma = check_sigma(sigma)
        self.sigma_prime = check_sigma(sigma_prime, "sigma_prime")
        self.delta = check_positive("delta", delta)
        self.tau = check_count("tau", tau, minimum=0)
        self.seed = seed
        self._gen: torch.Generator | None = None
        self._shared: torch.Generator | None = None
        self.rowwise = False  # the walk's draws follow the batch's shape
        self.name = f"walk_jump(sigma={self.sigma:g}, sigma'={self.sigma_prime:g}, delta={self.delta:g}, tau={self.tau})"

    def _generator(self, device):
        if self.seed is None:
            return None
        if self._gen is None or self._gen.device.type != torch.device(device).type:
            self._gen = torch.Generator(device=device).manual_seed(int(self.seed))
        return self._gen

    def use_generator(self, generator: torch.Generator | None) -> None:
        """Draw the walk's noise from ``generator`` (on the input's device) until called with None,
        which goes back to the walk's own generator (``seed``)."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self._shared = generator

    def denoise(self, y):
        gen = self._shared if self._shared is not None else self._generator(y.device)
        sp, noise_std = self.sigma_prime, math.sqrt(2 * self.delta)
        with self._ctx():
            x = y + self.sigma ** 2 * self._score(y, self.sigma)
            for _ in range(self.tau):
                eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                x.add_(self._score(x, sp), alpha=self.delta).add_(eps, alpha=noise_std)
            return x + sp ** 2 * self._score(x, sp)


class NetworkDenoiser(Denoiser):
    """A trained network ``net(y) -> x`` (e.g. :class:`lib.nets.DnCNN`), run under no_grad."""

    def __init__(self, net: nn.Module, name: str = "network"):
        if not callable(net):
            raise TypeError("net must be callable")
        self.net = net.eval() if isinstance(net, nn.Module) else net
        self.name = name

    def denoise(self, y):
        with torch.no_grad():
            return self.net(y)


class Identity(Denoiser):
    """No denoising (the noisy input itself)."""

    name = "identity"

    def denoise(self, y):
        return y


# ---------------------------------------------------------------------- constructors
def tweedie(score, sigma: float) -> Tweedie:
    """One-step denoiser ``y + sigma^2 score(y, sigma)`` (Lee eq. 3)."""
    return Tweedie(score, sigma)


def annealed_map(score, noise: NoiseDistribution, sigmas="geometric", step_size: float | None = None,
                 steps_per_level: int = 1, sigma_ref: float | None = None) -> AnnealedMAP:
    """Lee's multi-step denoiser (Algorithm 1). ``sigmas``: a decreasing sequence or a
    schedule name ("geometric": Lee's 1.0 -> 0.01, L = 32); ``step_size``: alpha (default
    Lee's: 2e-5, or 3e-5 for Laplace noise); ``steps_per_level``: T (Lee: 1)."""
    return AnnealedMAP(score, noise, sigmas, step_size, steps_per_level, sigma_ref)


def walk_jump(score, sigma: float, sigma_prime: float = 0.05, delta: float = 1e-3, tau: int = 100,
              seed: int | None = None) -> WalkJump:
    """Jump, Langevin walk at sigma', jump (Saremi & Srivastava eq. 16-17)."""
    return WalkJump(score, sigma, sigma_prime, delta, tau, seed)


def identity() -> Identity:
    return Identity()


# ---------------------------------------------------------------------- MSE denoiser
def mse_loss(model: nn.Module, data_x: torch.Tensor, noise: NoiseDistribution, batch_size: int = 64,
             seed: int = 0) -> StepLoss:
    """The per-step loss ``||model(x + u) - x||^2`` (mean per pixel), u ~ noise, of an MSE denoiser
    (Salman et al. 2020), for :func:`lib.models.train_loop`; batches and noise from one
    generator seeded by ``seed``."""
    if not isinstance(noise, NoiseDistribution):
        raise TypeError(f"noise must be a lib.smoothing.NoiseDistribution, got {type(noise).__name__}")
    batch_size = check_count("batch_size", batch_size)
    device = next(model.parameters()).device
    data_x = data_x.to(device)
    gen = torch.Generator(device=device).manual_seed(int(seed))

    def loss_fn(step):
        x = data_x[torch.randint(len(data_x), (batch_size,), generator=gen, device=device)]
        u = noise.sample(x.shape, generator=gen, device=device, dtype=x.dtype)
        return (model(x + u) - x).square().mean()

    return StepLoss(loss_fn, {"batches": gen})


def train_mse(model: nn.Module, data_x: torch.Tensor, noise: NoiseDistribution, iters: int,
              batch_size: int = 64, lr: float = 1e-3, ema: float = 0.999, seed: int = 0,
              progress: bool = True, desc: str = "MSE denoiser") -> dict:
    """Train ``model`` to minimise ``E ||model(x + u) - x||^2`` with u ~ noise (Salman et al.):
    :func:`mse_loss` in :func:`lib.models.train_loop` (Adam, EMA, gradient norm clipped at 1)."""
    return train_loop(model, mse_loss(model, data_x, noise, batch_size, seed), iters, lr=lr, ema=ema,
                      grad_clip=1.0, progress=progress, desc=desc)


def mse_config(dataset: str = "mnist", sigma: float = 0.5, noise: str = "gaussian",
               profile: str = "quick", seed: int = 0) -> dict:
    """Config of a cached MSE denoiser (settings: the family ``mse`` of ``lib.profiles``)."""
    cfg = profiles.model_settings("mse", profile)
    make_noise(noise, sigma)  # validates the name and sigma
    return {"version": 1, "dataset": dataset, "noise": noise, "sigma": float(sigma), "arch": "dncnn",
            "net": dict(cfg["net"]), "iters": int(cfg["iters"]), "batch_size": int(cfg["batch_size"]),
            "lr": float(cfg["lr"]), "ema": float(cfg["ema"]), "n_train": cfg["n_train"], "seed": int(seed)}


def _build_dncnn(config):
    return DnCNN(data.image_shape(config["dataset"])[0], **config["net"])


def _train_dncnn(model, config, progress=True):
    x, _ = data.load(config["dataset"], "train", limit=config["n_train"])
    noise = make_noise(config["noise"], config["sigma"])
    return train_mse(model, x, noise, config["iters"], config["batch_size"], config["lr"], config["ema"],
                     seed=config["seed"], progress=progress, desc=f"DnCNN {noise}")


def mse_denoiser(dataset: str = "mnist", sigma: float = 0.5, noise: str = "gaussian",
                 profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                 verbose: bool = True) -> NetworkDenoiser:
    """The cached DnCNN MSE denoiser for one (noise, sigma), trained on a cache miss.
    Its training history is ``denoiser.history``."""
    config = mse_config(dataset, sigma, noise, profile, seed)
    net, hist = cache.load_or_train(f"dncnn-{dataset}-{noise}", config, _build_dncnn,
                                    lambda m, c: _train_dncnn(m, c, progress), device=device, verbose=verbose)
    den = NetworkDenoiser(net, name=f"dncnn({noise}, sigma={float(sigma):g})")
    den.history = hist
    return den


# ---------------------------------------------------------------------- evaluation
def evaluate_denoiser(denoiser, x: torch.Tensor, noise: NoiseDistribution, seed: int = 0,
                      batch_size: int = 256, device=None) -> dict:
    """Denoise ``x + u`` (u ~ noise, drawn from ``seed``: the same noisy images for every
    denoiser) and return ``mse`` (per pixel), ``psnr`` (dB, peak 1), ``mse_noisy``,
    ``psnr_noisy``, ``seconds_per_image`` (wall) and ``cpu_seconds_per_image``
    (process CPU time: more robust than wall time on a shared machine)."""
    batch_size = check_count("batch_size", batch_size)
    device = torch.device(device) if device is not None else x.device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    se = se_noisy = 0.0
    wall = cpu = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        yb = xb + noise.sample(xb.shape, generator=gen, device=device, dtype=xb.dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        out = denoiser(yb)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        se += float((out.detach() - xb).square().sum())
        se_noisy += float((yb - xb).square().sum())
    d = x[0].numel() * len(x)
    mse, mse_noisy = se / d, se_noisy / d
    return {"mse": mse, "psnr": 10 * math.log10(1.0 / mse) if mse > 0 else math.inf,
            "mse_noisy": mse_noisy, "psnr_noisy": 10 * math.log10(1.0 / mse_noisy),
            "seconds_per_image": wall / len(x), "cpu_seconds_per_image": cpu / len(x)}


def evaluate_denoisers(denoisers: Mapping[str, object], x: torch.Tensor, noise: NoiseDistribution,
                       seed: int = 0, batch_size: int = 256, device=None) -> pd.DataFrame:
    """:func:`evaluate_denoiser` for each named denoiser on the *same* noisy images;
    one row per denoiser (index: name), plus the noise family and sigma as columns."""
    rows = {}
    for name, den in denoisers.items():
        rows[name] = evaluate_denoiser(den, x, noise, seed, batch_size, device)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.insert(0, "sigma", noise.sigma)
    df.insert(0, "noise", noise.name)
    return df


def tune_step_size(score, noise: NoiseDistribution, sigmas, x: torch.Tensor, step_sizes: Sequence[float],
                   steps_per_level: int = 1, seed: int = 0, batch_size: int = 256) -> pd.DataFrame:
    """MSE of :func:`annealed_map` on ``x`` for each step size alpha (a validation search).
    Returns a DataFrame indexed by alpha with ``mse`` and ``psnr``; ``df.mse.idxmin()`` is the best.
    A run that diverged (MSE not finite or above 100 x that of the noisy input) reads ``inf``.

    Why large alphas diverge: for Gaussian noise the likelihood step multiplies the residual
    ``x - y`` by ``1 - alpha_i / sigma^2``, which exceeds 1 in magnitude while
    ``alpha_i > 2 sigma^2``; over the first levels of the schedule this can amplify it without
    bound (on MNIST: alpha >= 5e-5 at sigma = 0.25, where Lee's 2e-5 still converges)."""
    if len(step_sizes) == 0:
        raise ValueError("step_sizes must not be empty")
    rows = {}
    for a in step_sizes:
        res = evaluate_denoiser(annealed_map(score, noise, sigmas, a, steps_per_level), x, noise, seed, batch_size)
        ok = np.isfinite(res["mse"]) and res["mse"] <= 100 * res["mse_noisy"]
        rows[float(a)] = {"mse": res["mse"] if ok else np.inf, "psnr": res["psnr"] if ok else -np.inf}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "alpha"
    return df
