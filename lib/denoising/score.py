"""Score models: one interface ``score(y, sigma) -> grad_y log p_sigma(y)`` for every sigma > 0.

``p_sigma = p * N(0, sigma^2 I)`` is the data density smoothed by Gaussian noise. A
:class:`ScoreModel` takes a batch ``y [B, *shape]`` and a noise level ``sigma`` (a number
or a tensor ``[B]``, one level per example) and returns ``[B, *shape]``. Three
parameterisations share that interface, so every denoiser of :mod:`lib.denoise` accepts
any of them (or any plain callable ``score(y, sigma)``):

* :class:`NoiseConditionalScore` -- a network outputs the score directly (NCSN; Song &
  Ermon 2019/2020; Lee 2021). It is conditioned on ``log sigma`` itself (never on an index
  into a grid), and scaled like NCSNv2: ``s = net(u, sigma) / sigma``.
* :class:`EnergyScore` -- a network outputs an energy ``phi(y, sigma)`` (one number per
  example) and ``score = -grad_y phi`` by autograd: the DEEN of Saremi & Hyvarinen (2019)
  used by Saremi & Srivastava (2020), here made sigma-conditional so one energy serves
  every sigma. It needs autograd at inference time (``requires_grad = True``).
* :class:`ClosedFormScore` -- wraps an exact score (``lib.data.GaussianData`` /
  ``GaussianMixture``) so that closed forms plug into the same denoisers and tests.

Both learned parameterisations add a fixed *Gaussian base*: the exact score of
``N(m, s^2 I) * N(0, sigma^2 I)``, ``-(y - m) / (sigma^2 + s^2)``, with ``m, s`` the pixel
mean and std of the data set, and feed the network the preconditioned input
``u = (y - m) / sqrt(sigma^2 + s^2)`` (as in EDM, Karras et al. 2022). The last layer of
every network starts at zero, so an untrained model is the Wiener (linear Gaussian)
denoiser and training learns the correction.

Training (:func:`train_dsm`) is Lee's multi-scale denoising score matching, eq. 19-20:

    L(theta) = 1/L sum_i sigma_i^2 * 1/2 E || s(x + sigma_i z; sigma_i) + z / sigma_i ||^2
             = 1/L sum_i 1/2 E || sigma_i s(x + sigma_i z; sigma_i) + z ||^2 ,

with the level drawn uniformly per example; a single-sigma model is the case L = 1. We
report the loss per pixel: ``||sigma s + z||^2 / d`` equals ``MSE(tweedie) / sigma^2``, the
mean squared error of the one-step denoiser relative to that of the noisy input (1 = no
denoising, 0 = perfect). EMA weights are what is cached and evaluated.

:func:`get_score_model` builds the config from ``lib.profiles`` (family "score") and goes
through ``lib.models.cache.load_or_train``, so every notebook gets the same cached network with
one line: ``model, hist = lib.denoising.score.get_score_model("mnist", "geometric", profile)``.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lib import profiles
from lib.data import datasets as data
from lib.denoising.nets import build_net
from lib.models import cache as cache
from lib.models.training import StepLoss, train_loop
from lib.utils import check_count, check_positive, check_sigma, get_device

__all__ = [
    "ScoreModel", "NoiseConditionalScore", "EnergyScore", "ClosedFormScore", "as_score", "as_sigma",
    "geometric_sigmas", "uniform_sigmas", "make_schedule", "dsm_per_example", "dsm_loss_per_sigma",
    "train_dsm", "dsm_loss", "annealed_langevin", "score_config", "build_score_model", "get_score_model",
    "fit_toy_score",
    "relative_score_error",
    "DATA_STATS", "SCHEDULES",
]

#: pixel mean and std of each data set (all channels together), for the Gaussian base
DATA_STATS = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530), "cifar10": (0.4734, 0.2516)}

#: Lee's schedules (appendix C.1): geometric 1.0 -> 0.01, L = 32 for the multi-step denoiser;
#: uniform 1.0 -> 0.05, L = 20 for the one-step denoiser.
SCHEDULES = {"geometric": ("geometric", 1.0, 0.01, 32), "uniform": ("uniform", 1.0, 0.05, 20)}


# ---------------------------------------------------------------------- noise levels
def _check_schedule(sigma_max, sigma_min, num):
    sigma_max = check_sigma(sigma_max, "sigma_max")
    sigma_min = check_sigma(sigma_min, "sigma_min")
    num = check_count("num", num)
    if sigma_min > sigma_max or (num > 1 and sigma_min == sigma_max):
        raise ValueError(f"need sigma_max > sigma_min, got {sigma_max} and {sigma_min}")
    return sigma_max, sigma_min, num


def geometric_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.01, num: int = 32) -> list[float]:
    """``num`` levels decreasing geometrically from ``sigma_max`` to ``sigma_min`` (Lee C.1)."""
    sigma_max, sigma_min, num = _check_schedule(sigma_max, sigma_min, num)
    if num == 1:
        return [sigma_max]
    return [float(v) for v in np.geomspace(sigma_max, sigma_min, num)]


def uniform_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.05, num: int = 20) -> list[float]:
    """``num`` levels decreasing linearly from ``sigma_max`` to ``sigma_min`` (Lee C.1)."""
    sigma_max, sigma_min, num = _check_schedule(sigma_max, sigma_min, num)
    if num == 1:
        return [sigma_max]
    return [float(v) for v in np.linspace(sigma_max, sigma_min, num)]


def make_schedule(schedule: str, sigma: float | None = None) -> list[float]:
    """Levels of a named schedule: "geometric", "uniform", or "single" (needs ``sigma``)."""
    if schedule == "single":
        if sigma is None:
            raise ValueError("schedule='single' needs sigma")
        return [check_sigma(sigma)]
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'geometric', 'uniform' or 'single', got {schedule!r}")
    kind, hi, lo, num = SCHEDULES[schedule]
    return (geometric_sigmas if kind == "geometric" else uniform_sigmas)(hi, lo, num)


def as_sigma(sigma, y: torch.Tensor) -> torch.Tensor:
    """``sigma`` (a number, a one-element tensor or a tensor ``[B]``) as a tensor ``[B]`` on
    ``y``'s device and dtype; raises ``ValueError`` unless every level is finite and > 0
    (one reduction: a single host sync on a GPU)."""
    b = y.shape[0]
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() == 1:
            return torch.full((b,), check_sigma(sigma), device=y.device, dtype=y.dtype)
        s = sigma.to(device=y.device, dtype=y.dtype).reshape(-1)
        if s.shape[0] != b:
            raise ValueError(f"sigma must be a number or a tensor of shape [{b}], got {tuple(sigma.shape)}")
        if not bool((torch.isfinite(s) & (s > 0)).all()):
            raise ValueError("sigma must be finite and > 0 for every example")
        return s
    return torch.full((b,), check_sigma(sigma), device=y.device, dtype=y.dtype)


def _bcast(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return s.view(-1, *([1] * (y.dim() - 1)))


# ---------------------------------------------------------------------- the interface
class ScoreModel(nn.Module):
    """``score(y [B, *shape], sigma) -> [B, *shape]``, an estimate of ``grad log p_sigma(y)``.

    ``sigma``: a number > 0 or a tensor ``[B]``. Calling the model is the same as ``score``.
    ``requires_grad`` is True when evaluating the score needs autograd (energy models);
    denoisers built from such a model carry the flag (see ``lib.smoothing.Smooth``).
    """

    requires_grad: bool = False

    @abstractmethod
    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        ...

    def forward(self, y: torch.Tensor, sigma) -> torch.Tensor:
        return self.score(y, sigma)

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


class _Preconditioned(ScoreModel):
    """Shared Gaussian base and input preconditioning (see the module docstring)."""

    def __init__(self, net: nn.Module, data_mean: float = 0.5, data_std: float = 0.5):
        super().__init__()
        self.net = net
        self.data_mean = float(data_mean)
        self.data_std = check_sigma(data_std, "data_std")

    def _var(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _bcast(s, y).square() + self.data_std ** 2

    def _input(self, centred: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """The network input ``u = (y - m) / sqrt(var)`` from ``centred = y - m``."""
        return centred * var.rsqrt()


class NoiseConditionalScore(_Preconditioned):
    """``s(y, sigma) = -(y - m) / (sigma^2 + s_d^2) + net(u, sigma) / sigma`` (NCSN-style).

    ``net(u [B, *shape], sigma [B]) -> [B, *shape]``, e.g. ``lib.nets.ScoreMLP`` or
    ``lib.nets.ScoreUNet``; ``u = (y - m) / sqrt(sigma^2 + s_d^2)``.
    """

    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        s = as_sigma(sigma, y)
        var = self._var(s, y)
        centred = y - self.data_mean
        return self.net(self._input(centred, var), s) / _bcast(s, y) - centred / var


class EnergyScore(_Preconditioned):
    """A sigma-conditional DEEN: energy ``phi(y, sigma)`` ``[B]`` and ``score = -grad_y phi``.

    ``phi(y, sigma) = ||y - m||^2 / (2 (sigma^2 + s_d^2)) + net(u, sigma) / sigma`` with a
    scalar network ``net(u, sigma) -> [B]`` (``ScoreMLP(scalar=True)`` or
    ``ScoreUNet(scalar=True)``). The gradient is taken by autograd with
    ``create_graph=self.training``, so DSM trains it (Saremi & Hyvarinen's DEEN loss is
    the single-sigma DSM loss up to the constant factor sigma^2). It works inside
    ``torch.no_grad`` and ``torch.inference_mode`` (it re-enables autograd locally) and
    returns a detached score in eval mode. With a single-level schedule it *is* DEEN at
    that sigma (the network simply ignores its sigma input).

    *Why a second DEEN class* (besides ``lib.denoising.EnergyMLP``, the paper's fixed-σ DEEN of
    notebook 04): this one serves every σ through the :class:`ScoreModel` interface (Gaussian
    base, preconditioning, DSM training by :func:`train_dsm`), so notebook 02 can set an energy
    parameterisation beside a score network with everything else equal. Use ``EnergyMLP`` to
    reproduce Saremi & Srivastava at one σ, this class for a σ-conditional energy.
    """

    requires_grad = True

    def energy(self, y: torch.Tensor, sigma) -> torch.Tensor:
        """``phi(y, sigma)``, ``[B]`` (the negative log density of ``p_sigma`` up to a constant)."""
        s = as_sigma(sigma, y)
        var = self._var(s, y)
        centred = y - self.data_mean
        base = 0.5 * (centred.square() / var).flatten(1).sum(1)
        return base + self.net(self._input(centred, var), s) / s

    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        graph = self.training and torch.is_grad_enabled()
        with torch.inference_mode(False), torch.enable_grad():
            yy = y.detach().clone().requires_grad_(True)
            sig = sigma.detach().clone() if isinstance(sigma, torch.Tensor) else sigma
            (g,) = torch.autograd.grad(self.energy(yy, sig).sum(), yy, create_graph=graph)
        return -g if graph else -g.detach()


class ClosedFormScore(ScoreModel):
    """Any other score as a :class:`ScoreModel`: a closed form such as
    ``ClosedFormScore(lib.data.GaussianData(d, s0))``, any object with a method
    ``.score(y, sigma)`` (e.g. the fixed-sigma DEEN ``lib.energy.EnergyMLP``), or a function
    ``fn(y [B, d], sigma) -> [B, d]``. Inputs ``[B, *shape]`` are flattened to ``[B, d]`` and the
    result is reshaped back; a number sigma is passed on as a number, a tensor as ``[B]``.

    ``requires_grad`` is True when the wrapped object is a network (an ``nn.Module``): its
    score may need autograd, so denoisers built on it ask ``Smooth`` for ``no_grad`` instead
    of ``inference_mode``.
    """

    def __init__(self, fn):
        super().__init__()
        source = fn
        if hasattr(fn, "score") and callable(fn.score):
            fn = fn.score
        if not callable(fn):
            raise TypeError("ClosedFormScore needs a callable score(y, sigma) or an object with .score")
        self.fn = fn
        self.requires_grad = isinstance(source, nn.Module) and not isinstance(source, ScoreModel)
        if isinstance(source, nn.Module):
            self.source = source  # registered, so .to(device) and .device follow the network

    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        sig = as_sigma(sigma, y) if isinstance(sigma, torch.Tensor) else check_sigma(sigma)
        return self.fn(y.reshape(y.shape[0], -1), sig).to(y.dtype).reshape(y.shape)


def as_score(score) -> ScoreModel | Callable[[torch.Tensor, object], torch.Tensor]:
    """A score callable ``score(y, sigma)`` from a :class:`ScoreModel` (returned as is), an
    object with a ``.score(y, sigma)`` method (wrapped in :class:`ClosedFormScore`: the
    ``lib.data`` densities, ``lib.energy.EnergyMLP``), or a plain function (returned as is)."""
    if isinstance(score, ScoreModel):
        return score
    if hasattr(score, "score") and callable(score.score):
        return ClosedFormScore(score)
    if callable(score) and not isinstance(score, nn.Module):
        return score
    raise TypeError(f"score must be callable as score(y, sigma) or have a .score method, got {type(score).__name__}")


# ---------------------------------------------------------------------- DSM training
def dsm_per_example(model, x: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``||sigma s(x + sigma z; sigma) + z||^2 / d`` for each example, ``[B]``.

    Equals ``||tweedie(y) - x||^2 / (d sigma^2)``: the squared error of the one-step
    denoiser relative to the noise (Lee eq. 19 times ``2 sigma^2 / d``).
    """
    sv = _bcast(sigma, x)
    y = x + sv * z
    r = model.score(y, sigma) * sv + z
    return r.square().flatten(1).mean(1)


def _check_sigmas(sigmas) -> list[float]:
    vals = [float(v) for v in (sigmas.tolist() if isinstance(sigmas, torch.Tensor) else sigmas)]
    if not vals:
        raise ValueError("sigmas must not be empty")
    return [check_sigma(v, "sigmas") for v in vals]


def dsm_loss(model: ScoreModel, data_x: torch.Tensor, sigmas: Sequence[float], batch_size: int = 128,
             seed: int = 0) -> StepLoss:
    """The per-step loss of multi-scale DSM (Lee eq. 19-20), for :func:`lib.models.train_loop`.

    data_x: ``[N, *shape]`` clean data (moved to the model's device). Each step draws
    ``batch_size`` examples and, per example, a level ``sigma_i`` uniformly from ``sigmas``
    (one element = a single-sigma model); the loss is the mean of
    ``1/2 ||sigma_i s(x + sigma_i z; sigma_i) + z||^2 / d``. All draws come from one generator
    seeded by ``seed`` (saved in training checkpoints).
    """
    if not isinstance(model, ScoreModel):
        raise TypeError(f"model must be a ScoreModel, got {type(model).__name__}")
    levels = _check_sigmas(sigmas)
    batch_size = check_count("batch_size", batch_size)
    if not isinstance(data_x, torch.Tensor) or data_x.dim() < 2 or len(data_x) == 0:
        raise ValueError("data_x must be a non-empty tensor [N, *shape]")
    device = model.device
    data_x = data_x.to(device)
    sig = torch.tensor(levels, device=device, dtype=data_x.dtype)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    n, num = len(data_x), len(levels)

    def loss_fn(step):
        idx = torch.randint(n, (batch_size,), generator=gen, device=device)
        x = data_x[idx]
        s = sig[torch.randint(num, (batch_size,), generator=gen, device=device)]
        z = torch.randn(x.shape, generator=gen, device=device, dtype=x.dtype)
        return 0.5 * dsm_per_example(model, x, s, z).mean()

    return StepLoss(loss_fn, {"batches": gen})


def train_dsm(model: ScoreModel, data_x: torch.Tensor, sigmas: Sequence[float], iters: int,
              batch_size: int = 128, lr: float = 1e-3, ema: float = 0.999, seed: int = 0,
              grad_clip: float | None = 1.0, progress: bool = True, desc: str = "DSM") -> dict:
    """Multi-scale denoising score matching (:func:`dsm_loss`) with Adam and EMA weights, for
    ``iters`` optimiser steps; trains ``model`` in place. Returns the history of
    :func:`lib.models.train_loop` (``step``, ``loss``, ``iters``, ``seconds``, ``cpu_seconds``)."""
    loss_fn = dsm_loss(model, data_x, sigmas, batch_size, seed)
    # fixed learning rate, draws indexed by step: a longer run repeats this one's steps first, so the
    # model cache may continue it (lib.models.cache, extend_key="iters")
    return train_loop(model, loss_fn, iters, lr=lr, ema=ema, grad_clip=grad_clip, progress=progress, desc=desc,
                      extendable=True)


def dsm_loss_per_sigma(model, x: torch.Tensor, sigmas: Sequence[float], seed: int = 0,
                       batch_size: int = 500) -> list[float]:
    """Mean of ``||sigma s + z||^2 / d`` = ``MSE(tweedie) / sigma^2`` on ``x`` at each sigma
    (held-out data; 1 = no better than the noisy input). Deterministic given ``seed``."""
    levels = _check_sigmas(sigmas)
    device = model.device if isinstance(model, ScoreModel) else x.device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    out = []
    with torch.no_grad():
        for level in levels:
            total = 0.0
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size].to(device)
                z = torch.randn(xb.shape, generator=gen, device=device, dtype=xb.dtype)
                s = torch.full((len(xb),), level, device=device, dtype=xb.dtype)
                total += float(dsm_per_example(model, xb, s, z).sum())
            out.append(total / len(x))
    return out


# ---------------------------------------------------------------------- sampling
def annealed_langevin(score, shape: Sequence[int], sigmas: Sequence[float], eps: float = 2e-5,
                      steps_per_level: int = 5, n: int = 16, seed: int = 0, device=None,
                      x0: torch.Tensor | None = None, denoise_last: bool = True) -> torch.Tensor:
    """Annealed Langevin dynamics (after Song & Ermon 2019, Alg. 1), a sanity check of a score.

    For each level ``sigma_i`` (decreasing), ``steps_per_level`` steps
    ``x <- x + a_i s(x, sigma_i) + sqrt(2 a_i) z`` with ``a_i = eps sigma_i^2 / sigma_L^2`` (Alg. 1
    writes ``x + (alpha_i / 2) s + sqrt(alpha_i) z`` with ``alpha_i = eps sigma_i^2 / sigma_L^2``: for the
    same ``eps`` this step is twice theirs); starts from uniform noise on [0, 1] (or ``x0``) and, if
    ``denoise_last``, ends with the Tweedie step ``x + sigma_L^2 s(x, sigma_L)`` (Song & Ermon 2020,
    NCSNv2). Returns ``[n, *shape]``.
    """
    levels = _check_sigmas(sigmas)
    eps = check_sigma(eps, "eps")
    steps_per_level = check_count("steps_per_level", steps_per_level)
    score = as_score(score)
    device = get_device(device) if device is not None else getattr(score, "device", torch.device("cpu"))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    x = (torch.rand((check_count("n", n), *shape), generator=gen, device=device) if x0 is None
         else x0.to(device).clone())
    with torch.no_grad():
        for level in levels:
            a = eps * level ** 2 / levels[-1] ** 2
            for _ in range(steps_per_level):
                z = torch.randn(x.shape, generator=gen, device=device, dtype=x.dtype)
                x = x + a * score(x, level) + math.sqrt(2 * a) * z
        if denoise_last:
            x = x + levels[-1] ** 2 * score(x, levels[-1])
    return x


# ---------------------------------------------------------------------- cached models
def score_config(dataset: str = "mnist", schedule: str = "geometric", profile: str = "quick",
                 sigma: float | None = None, param: str = "score", arch: str | None = None,
                 seed: int = 0, budget: float = 1.0) -> dict:
    """The full config of a cached score model (everything that determines its weights).

    ``schedule``: "geometric" (Lee, L = 32, 1.0 -> 0.01), "uniform" (L = 20, 1.0 -> 0.05)
    or "single" (one level ``sigma``); ``param``: "score" (:class:`NoiseConditionalScore`)
    or "energy" (:class:`EnergyScore`, the sigma-conditional DEEN); ``arch``: "mlp" or
    "unet" (default: the profile's); ``budget``: a multiplier of the family's training steps
    (``iters`` = round(budget x the profile's), at least 1; 1 = the profile's model, same cache key;
    notebook 07 trains the same networks at larger budgets). Settings: the family ``score`` of
    ``lib.profiles``.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < float("inf"):
        raise ValueError(f"budget must be a positive finite number, got {budget!r}")
    if param not in ("score", "energy"):
        raise ValueError(f"param must be 'score' or 'energy', got {param!r}")
    cfg = profiles.model_settings("score", profile)
    arch = arch or cfg["arch"]
    if arch not in cfg["nets"]:
        raise ValueError(f"arch must be one of {sorted(cfg['nets'])}, got {arch!r}")
    if dataset not in DATA_STATS:
        raise ValueError(f"dataset must be one of {sorted(DATA_STATS)}, got {dataset!r}")
    key = "energy" if param == "energy" else ("single" if schedule == "single" else "multi")
    mean, std = DATA_STATS[dataset]
    return {
        "version": 1, "dataset": dataset, "schedule": schedule, "sigmas": make_schedule(schedule, sigma),
        "param": param, "arch": arch, "net": dict(cfg["nets"][arch]),
        "iters": max(1, int(round(cfg["iters"][key] * budget))),
        "batch_size": int(cfg["batch_size"]), "lr": float(cfg["lr"]), "ema": float(cfg["ema"]),
        "n_train": cfg["n_train"], "n_eval": int(cfg["n_eval"]), "data_mean": mean, "data_std": std,
        "seed": int(seed),
    }


def build_score_model(config: dict) -> ScoreModel:
    """An untrained model from a :func:`score_config` dict (used by ``lib.models.cache``)."""
    shape = data.image_shape(config["dataset"])
    energy = config["param"] == "energy"
    net = build_net(config["arch"], shape, scalar=energy, **config["net"])
    cls = EnergyScore if energy else NoiseConditionalScore
    return cls(net, config["data_mean"], config["data_std"])


def _train_score(model: ScoreModel, config: dict, progress: bool = True, desc: str | None = None,
                 per_sigma: bool = True) -> dict:
    """DSM on the config's training data for ``config["iters"]`` steps; with ``per_sigma``, add the held-out loss at the training levels to the history. (The initial
    weights are seeded by ``lib.models.cache``; the training draws by ``train_dsm(seed=...)``.)"""
    x, _ = data.load(config["dataset"], "train", limit=config["n_train"])
    hist = train_dsm(model, x, config["sigmas"], config["iters"], config["batch_size"], config["lr"],
                     config["ema"], seed=config["seed"], progress=progress,
                     desc=desc or f"DSM {config['param']}/{config['schedule']}")
    if per_sigma:
        xv, _ = data.load(config["dataset"], "val", limit=config["n_eval"])
        hist["sigmas"] = list(config["sigmas"])
        hist["per_sigma"] = dsm_loss_per_sigma(model, xv, config["sigmas"], seed=config["seed"] + 1)
    return hist


def get_score_model(dataset: str = "mnist", schedule: str = "geometric", profile: str = "quick",
                    sigma: float | None = None, param: str = "score", arch: str | None = None,
                    seed: int = 0, device=None, progress: bool = True, verbose: bool = True,
                    budget: float = 1.0) -> tuple[ScoreModel, dict]:
    """``(model in eval mode, history)``: the cached score model, trained on a cache miss.

    Examples: ``get_score_model("mnist", "geometric", profile)`` (Lee's multi-step network),
    ``get_score_model("mnist", "uniform", profile)`` (one-step network),
    ``get_score_model("mnist", "single", profile, sigma=0.25)`` (ablation D.1),
    ``get_score_model("mnist", "geometric", profile, param="energy")`` (sigma-conditional DEEN),
    ``get_score_model("mnist", "geometric", profile, budget=3)`` (3x the training steps: notebook 07).
    The history holds the loss curve (``step``, ``loss``), ``seconds`` of training, and the
    held-out ``per_sigma`` loss at the training levels ``sigmas``.
    """
    config = score_config(dataset, schedule, profile, sigma, param, arch, seed, budget)
    kind = f"score-{param}-{dataset}-{schedule}"
    return cache.load_or_train(kind, config, build_score_model,
                               lambda m, c: _train_score(m, c, progress), device=device, verbose=verbose,
                               extend_key="iters")


# ---------------------------------------------------------------------- toy models with a closed-form score
def fit_toy_score(mixture, sigmas: Sequence[float], iters: int = 1000, hidden: int = 64, depth: int = 2,
                  n_train: int = 20000, batch_size: int = 256, lr: float = 3e-3, param: str = "score",
                  seed: int = 0, progress: bool = False) -> tuple[ScoreModel, dict]:
    """Train a small MLP score model by multi-scale DSM on samples of a synthetic density with a
    closed-form score (``lib.data.GaussianData`` / ``GaussianMixture``), to compare with the truth."""
    if param not in ("score", "energy"):
        raise ValueError(f"param must be 'score' or 'energy', got {param!r}")
    torch.manual_seed(int(seed))
    x = mixture.sample(check_count("n_train", n_train), torch.Generator().manual_seed(int(seed))).float()
    net = build_net("mlp", (x.shape[1],), scalar=param == "energy", hidden=hidden, depth=depth, emb_dim=16)
    model = (EnergyScore if param == "energy" else NoiseConditionalScore)(net, 0.0, float(x.std()))
    hist = train_dsm(model, x, sigmas, iters, batch_size, lr, ema=0.99, seed=seed, progress=progress, desc="toy DSM")
    return model, hist


def relative_score_error(model, exact, sigma: float, n: int = 10000, seed: int = 0, source=None) -> float:
    """``E||s_model - s_exact||^2 / E||s_exact||^2`` at ``y = x + sigma z``, x drawn from
    ``source`` (default: ``exact``, a ``lib.data`` density with ``.sample`` and ``.score``)."""
    source = source if source is not None else exact
    g = torch.Generator().manual_seed(int(seed))
    x = source.sample(check_count("n", n), g)
    y = (x + check_sigma(sigma) * torch.randn(x.shape, generator=g, dtype=x.dtype)).float()
    truth = as_score(exact)(y, sigma).float()
    with torch.no_grad():
        est = as_score(model)(y, sigma)
    return float((est - truth).square().sum() / truth.square().sum())
