"""DEEN: a neural energy of the smoothed density, trained by empirical Bayes, for one sigma.

Saremi & Srivastava (section 1, eq. 1) denoise with the Bayes estimator of X given
Y = X + N(0, sigma^2 I) (Miyasawa 1961 / Robbins 1956 / Tweedie):

    x̂(y) = y + sigma^2 ∇ log f_Y(y)  ≈  y - sigma^2 ∇φ(y),                        (eq. 1)

where φ is a neural *energy* (negative log-density up to a constant) of the noisy
variable Y. DEEN (Saremi et al. 2018; Saremi & Hyvärinen 2019, section 4.1) learns φ by
making x̂ the least-squares estimator of X, i.e. by minimising over the weights of φ

    L(φ) = E_{x, ε ~ N(0, σ² I)} || x - x̂(x + ε) ||²,    x̂(y) = y - σ² ∇_y φ(y),

whose minimiser is the Bayes estimator E[X | Y = y] (Remark 1.2 of the paper). The
gradient ∇_y φ is taken by autograd (``create_graph=True`` while training, so the loss
can be differentiated again with respect to the weights).

This module keeps one model per sigma (the paper's setting: "φ is learned in advance for
any σ of interest"); the sigma-conditional score models live in ``lib.denoising.score``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lib.data import datasets
from lib.models.cache import load_or_train
from lib.models.classifiers import dataset_info
from lib.models.training import EpochSampler, StepLoss, train_loop
from lib.profiles import model_settings
from lib.utils import check_count, check_positive, check_sigma, config_hash, get_device

__all__ = ["EnergyMLP", "EmpiricalBayesDenoiser", "build_energy", "train_deen", "deen_loss", "deen_step_loss",
           "energy_config", "get_energy_model", "denoising_mse"]

_ACTIVATIONS = {"softplus": nn.Softplus, "silu": nn.SiLU, "tanh": nn.Tanh}


class EnergyMLP(nn.Module):
    """φ(y): [B, *shape] -> [B], the energy of the noisy density at one noise level σ.

    Parametrisation: φ(y) = (½‖y‖² − ψ(y)) / σ², with ψ an MLP with smooth activations
    (SiLU or softplus, so that ∇φ and its weight gradient are well defined) and a linear last
    layer (a weighted sum of "experts", as in DEEN). This is no restriction -- any energy can
    be written so -- but it makes the estimator of eq. 1 simply

        x̂(y) = y − σ² ∇φ(y) = ∇ψ(y),

    so ∇ψ has the scale of a clean image whatever σ is. (A plain MLP φ must first grow an
    output of order ‖y‖²/σ²: on MNIST at σ = 0.6 a plain 784-512-512-1 softplus φ trained for
    10 epochs still had 4 times the per-pixel error (0.136) of this form after one epoch on 20k
    images (0.034).) ``sigma`` is the noise level the energy was (or will be) trained for.

    *Why two DEEN classes.* This is the paper's DEEN: one energy per σ, exactly as Saremi &
    Srivastava learn it for notebook 04 (their Figure 3 and Table 1 are about it). The
    σ-conditional :class:`lib.denoising.EnergyScore` is a different model -- one energy for every
    σ, with a Gaussian base, behind the :class:`lib.denoising.ScoreModel` interface -- that lets
    notebook 02 compare an energy parameterisation with a score network on equal terms. Their
    objectives coincide (the DEEN loss is σ⁴ times the single-σ DSM loss); both are trained by
    :func:`lib.models.train_loop`. Use this class for a fixed σ, ``EnergyScore`` for many σ.
    """

    def __init__(self, in_features: int, sigma: float, hidden: Sequence[int] = (512, 512),
                 activation: str = "silu"):
        super().__init__()
        self.in_features = check_count("in_features", in_features)
        self.sigma = check_sigma(sigma)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        widths = [self.in_features] + [check_count("hidden", int(h)) for h in hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Energy φ(y) = (½‖y‖² − ψ(y)) / σ²: y [B, *shape] with prod(shape) = in_features -> [B]."""
        if y.dim() < 2 or math.prod(y.shape[1:]) != self.in_features:
            raise ValueError(f"y must have shape [B, ...] with {self.in_features} features per row, "
                             f"got {tuple(y.shape)}")
        flat = y.flatten(1)
        return (0.5 * flat.pow(2).sum(1) - self.net(flat).squeeze(1)) / self.sigma ** 2

    def _check_sigma(self, sigma):
        if sigma is not None and not math.isclose(check_sigma(sigma), self.sigma, rel_tol=1e-6):
            raise ValueError(f"this energy model was trained for sigma={self.sigma:g}, got sigma={sigma:g}")

    def grad(self, y: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """∇_y φ(y), same shape as y [B, *shape]. Works under ``torch.no_grad`` (enables grad
        locally); not under ``torch.inference_mode``, which forbids autograd."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("the DEEN gradient needs autograd: call it under torch.no_grad, "
                               "not torch.inference_mode")
        with torch.enable_grad():
            if not create_graph:
                y = (y.clone() if y.is_inference() else y).detach()
            if not y.requires_grad:
                y = y.requires_grad_(True)
            (g,) = torch.autograd.grad(self(y).sum(), y, create_graph=create_graph)
        return g

    def score(self, y: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Learned score of the noisy density, ∇ log f_Y(y) ≈ -∇φ(y): [B, *shape] -> same shape.

        ``sigma`` (optional) must equal the model's own sigma: a DEEN is trained for one noise level.
        """
        self._check_sigma(sigma)
        return -self.grad(y)

    def denoise(self, y: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """The empirical Bayes estimator x̂(y) = y - σ² ∇φ(y) (eq. 1): [B, *shape] -> same shape."""
        g = self.grad(y, create_graph=create_graph)
        out = y - self.sigma ** 2 * g
        return out if create_graph else out.detach()

    def denoiser(self) -> "EmpiricalBayesDenoiser":
        """x̂ as a callable for ``lib.smoothing.Smooth(..., denoiser=...)`` (``requires_grad = True``)."""
        return EmpiricalBayesDenoiser(self)


class EmpiricalBayesDenoiser(nn.Module):
    """y -> x̂(y) = y - σ² ∇φ(y) for a trained :class:`EnergyMLP`: [B, *shape] -> same shape.

    ``requires_grad = True`` tells ``Smooth`` to run it under ``torch.no_grad`` (it enables
    autograd itself for ∇φ) instead of ``torch.inference_mode``. The classifier composed with
    it is π = h ∘ x̂ of Definition 1.1, and Smooth(h, ..., denoiser=x̂) is g[π].
    """

    requires_grad = True

    def __init__(self, energy: EnergyMLP):
        super().__init__()
        if not isinstance(energy, EnergyMLP):
            raise TypeError(f"energy must be an EnergyMLP, got {type(energy).__name__}")
        self.energy = energy.eval()

    @property
    def sigma(self) -> float:
        return self.energy.sigma

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.energy.denoise(y)


# ====================================================================== training
def build_energy(config: dict) -> EnergyMLP:
    """An untrained :class:`EnergyMLP` from config (in_shape or in_features, sigma, hidden,
    activation, seed); the initial weights depend only on ``config['seed']``."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    in_features = config.get("in_features") or math.prod(config["in_shape"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        return EnergyMLP(in_features, config["sigma"], config.get("hidden", (512, 512)),
                         config.get("activation", "silu"))


def deen_loss(model: EnergyMLP, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The DEEN objective on a batch: mean over rows of ||x - x̂(x + noise)||², with
    noise ~ N(0, σ² I) of x's shape [B, *shape]; differentiable in the weights of φ."""
    y = (x + noise).requires_grad_(True)
    xhat = model.denoise(y, create_graph=True)
    return (x - xhat).flatten(1).pow(2).sum(1).mean()


@torch.no_grad()
def denoising_mse(model: EnergyMLP, x: torch.Tensor, generator: torch.Generator | None = None,
                  batch_size: int = 2048) -> tuple[float, float]:
    """(per-coordinate MSE of x̂(x + ε), of the noisy input x + ε) with ε ~ N(0, σ² I), one draw
    per row of x [N, *shape]. A working DEEN has the first far below the second (= σ²)."""
    device = next(model.parameters()).device
    err_hat, err_noisy, count = 0.0, 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].to(device)
        eps = torch.randn(xb.shape, generator=generator, device=device, dtype=xb.dtype) * model.sigma
        err_hat += float((model.denoise(xb + eps) - xb).pow(2).sum())
        err_noisy += float(eps.pow(2).sum())
        count += xb.numel()
    return err_hat / count, err_noisy / count


def deen_step_loss(model: EnergyMLP, x: torch.Tensor, batch_size: int = 128, seed: int = 0) -> StepLoss:
    """The per-step DEEN loss (:func:`deen_loss`) for :func:`lib.models.train_loop`: epochs of
    shuffled minibatches of x [N, *shape] (permutations from ``seed``) and fresh noise
    N(0, σ² I) every step (generator ``seed + 1``). Returns ``{"loss", "loss_sum", "examples"}``."""
    device = next(model.parameters()).device
    x = x.to(device)
    batches = EpochSampler(x.shape[0], check_count("batch_size", batch_size), seed, device)
    noise_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)

    def loss_fn(step):
        xb = x[batches(step)]
        eps = torch.randn(xb.shape, generator=noise_gen, device=device, dtype=xb.dtype) * model.sigma
        loss = deen_loss(model, xb, eps)
        return {"loss": loss, "loss_sum": loss.detach() * xb.shape[0], "examples": xb.shape[0]}

    return StepLoss(loss_fn, {"shuffle": batches.generator, "noise": noise_gen}, batches.state)


def train_deen(model: EnergyMLP, config: dict, data: torch.Tensor | None = None,
               test_data: torch.Tensor | None = None, progress: bool = True) -> dict:
    """Fit φ by minimising the DEEN loss with Adam (:func:`deen_step_loss` in
    :func:`lib.models.train_loop`); return the history.

    config keys: sigma (must equal model.sigma), epochs, batch_size, lr, seed, and for data
    from ``lib.data``: dataset, train_split, train_limit, test_split, test_limit. ``data`` /
    ``test_data`` (tensors [N, *shape], e.g. samples of lib.data.GaussianData) replace them.
    Every step draws fresh noise. history: loss (per epoch, per row), test_mse and
    noisy_mse (per coordinate, :func:`denoising_mse`), train_steps, train_seconds.
    """
    if not math.isclose(check_sigma(config.get("sigma")), model.sigma, rel_tol=1e-6):
        raise ValueError(f"config sigma {config.get('sigma')} differs from the model's {model.sigma}")
    epochs = check_count("epochs", config.get("epochs", 1))
    batch_size = check_count("batch_size", config.get("batch_size", 128))
    lr = check_positive("lr", config.get("lr", 1e-3))
    seed = int(config.get("seed", 0))
    if data is None:
        data = datasets.load(config["dataset"], config["train_split"], limit=config.get("train_limit"))[0]
    if test_data is None and config.get("dataset") is not None:
        test_data = datasets.load(config["dataset"], config.get("test_split", "test"),
                                  limit=config.get("test_limit"))[0]
    loss_fn = deen_step_loss(model, data, batch_size, seed)
    per_epoch = math.ceil(data.shape[0] / batch_size)
    hist = train_loop(model, loss_fn, epochs * per_epoch, lr=lr, log_every=per_epoch, progress=progress,
                      desc=f"DEEN σ={model.sigma:g}")
    history: dict = {"loss": [ls / n for ls, n in zip(hist["loss_sum"], hist["examples"])],
                     "train_steps": hist["iters"], "train_seconds": hist["seconds"],
                     "train_cpu_seconds": hist["cpu_seconds"]}
    if test_data is not None:
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed + 2)
        history["test_mse"], history["noisy_mse"] = denoising_mse(model, test_data, gen)
    return history


# ====================================================================== presets and cache
def energy_config(dataset: str, sigma: float, profile: str, seed: int = 0, **overrides) -> dict:
    """The full config of a DEEN for ``dataset`` at noise level ``sigma``: the family ``deen`` of
    ``lib.profiles`` < ``overrides``."""
    settings = model_settings("deen", profile)
    in_shape, _ = dataset_info(dataset)
    config = {"model": "deen_mlp", "dataset": dataset, "in_shape": list(in_shape), "sigma": check_sigma(sigma),
              "activation": "silu", **settings, "test_split": "test", "seed": int(seed)}
    config.update(overrides)
    return config


def get_energy_model(dataset: str, sigma: float, profile: str, seed: int = 0, device=None,
                     **overrides) -> tuple[EnergyMLP, dict]:
    """(trained :class:`EnergyMLP` in eval mode, history), cached under data/models by config.

    The model carries ``config`` (its training config) and ``config_hash`` (the cache key)."""
    config = energy_config(dataset, sigma, profile, seed, **overrides)
    model, history = load_or_train("deen", config, build_energy, train_deen, get_device(device))
    model.config, model.config_hash = config, config_hash(config)
    return model, history
