"""Learning the (empirical Bayes) smoothed soft classifier by adversarial training.

Saremi & Srivastava §3 (XHAT_ε) and Salman et al. 2019 (SmoothAdv; Lecture 14 §3, "Attempt 3").
A soft classifier H(·, θ): [B, *shape] -> logits [B, K] is smoothed *before* the argmax:

    Π(x, θ) = E_ε[ softmax H(x̂(x + ε), θ) ],   ε ~ N(0, σ² I)                       (eq. 12)
            ≈ (1/m) Σ_j softmax H(x̂(x + ε_j), θ)                                     (eq. 14)

with x̂(y) = y − σ² ∇φ(y) the empirical Bayes estimator of a DEEN energy φ learned in
advance and frozen (``lib.denoising.energy``). θ minimises the robust loss

    ℓ_ε(θ) = (1/n) Σ_i max_{‖δ‖₂ ≤ ε} −log Π_{k_i}(x_i + δ, θ)                         (eq. 13)

whose inner maximum is approximated by projected gradient ascent (PGD) in the ℓ2 ball; ∇φ
is recomputed at every PGD step (x̂ is differentiated through, a second derivative of φ).
The three gradient evaluations per update of §3.1 are: ∇_y φ inside x̂, ∇_x log Π_k for
the attack, ∇_θ of the loss for the update.

One trainer serves the three methods of Figure 5 and the three of Lecture 14 §3, so that they
share ε, m, the PGD steps, the optimiser and the schedule by construction:

=====================  ================================================================
method                 trainer call
=====================  ================================================================
XHAT_ε                 ``train_smoothed(..., eps=ε, denoiser=x̂)``
XHAT_0                 ``train_smoothed(..., eps=0, denoiser=x̂)``: −log Π_k(x), no attack
SmoothAdv_ε            ``train_smoothed(..., eps=ε, denoiser=None)``: x̂ = identity
smoothed objective     ``train_smoothed(..., eps=0, denoiser=None)``: Lecture 14 eq. 9 with
                       the plug-in estimator of m draws ("Attempt 2")
Gaussian augmentation  ``train_smoothed(..., eps=0, objective="augment")``: Lecture 14 eq. 8,
                       (1/m) Σ_j −log softmax H(x + ε_j)_k, the log *inside* the mean
                       ("Attempt 1", Cohen et al. 2019); no inner maximum
=====================  ================================================================

With m = 1 the two objectives coincide (−log of one softmax), so eq. 8 and eq. 9 differ only
for m >= 2: the log of the mean (plug-in) versus the mean of the logs.

As in SmoothAdv, the m noise draws ε_j of an example are fixed during its attack and reused
for the loss of the adversarial point. :func:`pgd_attack_smoothed` is the same attack used
on its own, for *empirical* robust accuracy beside the certified one. Everything works on
any input shape (images [B, C, H, W] or toy vectors [B, d]).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lib.data import datasets as data
from lib.denoising.energy import EnergyMLP, build_energy, energy_config, train_deen
from lib.models.cache import load_or_train
from lib.models.classifiers import build_classifier, dataset_info
from lib.models.training import EpochSampler, StepLoss, train_loop
from lib.profiles import model_settings
from lib.utils import check_count, check_positive, check_sigma, config_hash, get_device

__all__ = ["draw_noise", "smoothed_log_probs", "smoothed_nll", "augmentation_nll", "pgd_attack_smoothed",
           "robust_loss", "train_smoothed", "OBJECTIVES", "XHAT_METHODS", "xhat_config", "get_xhat_classifier",
           "noisy_accuracy"]

#: method -> whether H sits behind x̂ (XHAT_0 is "xhat" with eps = 0; the attack radius is the config's eps;
#: the smoothed objective of Lecture 14 eq. 9 is "smoothadv" with eps = 0; "augment" is eq. 8, always eps = 0)
XHAT_METHODS = {"xhat": True, "smoothadv": False, "augment": False}
#: the trainer's objectives: −log of the mean of the m softmaxes (eq. 9 / 13), or the mean of the m logs (eq. 8)
OBJECTIVES = ("smoothed", "augment")


# ====================================================================== the soft classifier Π
def draw_noise(x: torch.Tensor, sigma: float, m: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """ε_j ~ N(0, σ² I) for each row of x [B, *shape]: a tensor [B, m, *shape]."""
    sigma, m = check_sigma(sigma), check_count("m", m)
    return torch.randn((x.shape[0], m) + tuple(x.shape[1:]), generator=generator, device=x.device,
                       dtype=x.dtype) * sigma


def _energy_of(denoiser):
    energy = getattr(denoiser, "energy", denoiser)
    return energy if isinstance(energy, EnergyMLP) else None


def _estimate(denoiser, y: torch.Tensor, differentiable: bool) -> torch.Tensor:
    """x̂(y): the identity without a denoiser; for a DEEN (an ``EnergyMLP`` or its
    ``EmpiricalBayesDenoiser``) y − σ²∇φ(y), differentiable in y (never in φ's weights, which
    receive no gradient) when ``differentiable``; any other callable is applied as is."""
    if denoiser is None:
        return y
    energy = _energy_of(denoiser)
    if energy is not None:
        return energy.denoise(y, create_graph=differentiable)
    if differentiable:
        return denoiser(y)
    with torch.no_grad():
        return denoiser(y)


def _draw_log_probs(model: Callable, x: torch.Tensor, noise: torch.Tensor, denoiser, differentiable: bool):
    """log softmax H(x̂(x + ε_j)) for every draw: x [B, *shape], noise [B, m, *shape] -> [B, m, K]."""
    if noise.dim() != x.dim() + 1 or noise.shape[0] != x.shape[0] or noise.shape[2:] != x.shape[1:]:
        raise ValueError(f"noise must have shape [B, m, *shape] = [{x.shape[0]}, m, "
                         f"{', '.join(map(str, x.shape[1:]))}], got {tuple(noise.shape)}")
    b, m = noise.shape[:2]
    y = (x.unsqueeze(1) + noise).reshape((b * m,) + tuple(x.shape[1:]))
    logits = model(_estimate(denoiser, y, differentiable))
    if logits.dim() != 2 or logits.shape[0] != b * m:
        raise ValueError(f"model must return logits [batch, K], got {tuple(logits.shape)}")
    return F.log_softmax(logits, dim=1).view(b, m, -1)


def smoothed_log_probs(model: Callable, x: torch.Tensor, noise: torch.Tensor, denoiser=None,
                       differentiable: bool = False) -> torch.Tensor:
    """log Π(x, θ) of eq. 14: x [B, *shape], noise [B, m, *shape] (from :func:`draw_noise`)
    -> [B, K], log of the mean over j of softmax H(x̂(x + ε_j)) (computed by logsumexp)."""
    logp = _draw_log_probs(model, x, noise, denoiser, differentiable)
    return torch.logsumexp(logp, dim=1) - math.log(logp.shape[1])


def smoothed_nll(model: Callable, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, denoiser=None,
                 differentiable: bool = False) -> torch.Tensor:
    """−log Π_{y_i}(x_i, θ) per example: [B] (the summand of eq. 13 at δ = 0)."""
    return -smoothed_log_probs(model, x, noise, denoiser, differentiable).gather(1, y.view(-1, 1))[:, 0]


def augmentation_nll(model: Callable, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                     denoiser=None) -> torch.Tensor:
    """Gaussian data augmentation (Lecture 14 eq. 8): (1/m) Σ_j −log softmax H(x̂(x_i + ε_j))_{y_i}
    per example, [B]: the log inside the mean (an unbiased estimate of eq. 8's expectation, where
    :func:`smoothed_nll` is the plug-in estimate of eq. 9). Equal to it when m = 1."""
    logp = _draw_log_probs(model, x, noise, denoiser, False)
    return -logp.gather(2, y.view(-1, 1, 1).expand(-1, logp.shape[1], 1))[..., 0].mean(1)


def _row_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view((-1,) + (1,) * (t.dim() - 1))


def _check_xy(x, y):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a floating-point tensor [B, *shape], got {getattr(x, 'shape', type(x))}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be a label tensor [B] with B = {x.shape[0]}, got {getattr(y, 'shape', type(y))}")


def pgd_attack_smoothed(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, steps: int,
                        m: int = 1, denoiser=None, step_size: float | None = None,
                        noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        clip: Sequence[float] | None = None) -> torch.Tensor:
    """ℓ2 PGD on the smoothed soft classifier: approximately argmax_{‖δ‖₂ ≤ eps} −log Π_y(x + δ).

    x [B, *shape], y [B] -> x + δ [B, *shape] (detached) with ‖δ_i‖₂ <= eps for every row.
    ``steps`` normalised-gradient ascent steps of size ``step_size`` (default 2·eps/steps, as
    SmoothAdv), each followed by the projection onto the ball (and onto the box ``clip`` =
    (lo, hi), e.g. (0, 1) for images, if given: clipping a point of the ball into a box that
    holds x keeps it in the ball). The m noise draws (``noise`` [B, m, *shape], else drawn
    with ``generator``) are the same at every step; x̂ and ∇φ are recomputed at every step.
    Per row, the iterate with the largest loss is returned, so the loss at the result (under
    these draws) is never below the loss at x. The model's weights receive no gradient.
    """
    _check_xy(x, y)
    sigma, steps = check_sigma(sigma), check_count("steps", steps, minimum=0)
    if not (float(eps) >= 0 and math.isfinite(float(eps))):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    eps = float(eps)
    if noise is None:
        noise = draw_noise(x, sigma, m, generator)
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    step = check_positive("step_size", step_size) if step_size is not None else 2.0 * eps / steps
    delta = torch.zeros_like(x)
    best, best_loss = x.clone(), None
    with _no_weight_grads(model), _no_weight_grads(_energy_of(denoiser)):
        for i in range(steps + 1):
            delta.requires_grad_(i < steps)
            with torch.set_grad_enabled(i < steps):
                loss = smoothed_nll(model, x + delta, y, noise, denoiser, differentiable=i < steps)
            better = loss.detach() > best_loss if best_loss is not None else torch.ones_like(loss, dtype=torch.bool)
            best = torch.where(better.view((-1,) + (1,) * (x.dim() - 1)), (x + delta).detach(), best)
            best_loss = loss.detach() if best_loss is None else torch.maximum(best_loss, loss.detach())
            if i == steps:
                break
            (g,) = torch.autograd.grad(loss.sum(), delta)
            delta = delta.detach() + step * g / _row_norms(g).clamp_min(1e-12)
            delta = delta * (eps / _row_norms(delta).clamp_min(eps))  # projection onto the ball
            if clip is not None:
                delta = (x + delta).clamp(float(clip[0]), float(clip[1])) - x
    return best


@contextmanager
def _no_weight_grads(module: nn.Module | None):
    """Temporarily mark a module's parameters as constants (no graph is built for them)."""
    if module is None:
        yield
        return
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def _check_objective(objective: str, eps: float) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "augment" and float(eps) != 0:
        raise ValueError(f"Gaussian augmentation (objective='augment') has no inner maximum: eps must be 0, got {eps}")
    return objective


def robust_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, steps: int,
                m: int = 1, denoiser=None, generator: torch.Generator | None = None,
                step_size: float | None = None, clip: Sequence[float] | None = None,
                objective: str = "smoothed") -> torch.Tensor:
    """The stochastic loss of eq. 13 on a batch: mean_i −log Π_{y_i}(x_i + δ_i, θ), δ_i from
    :func:`pgd_attack_smoothed` under the same m noise draws (XHAT_0: eps = 0, no attack).
    ``objective="augment"``: Gaussian augmentation instead, mean_i :func:`augmentation_nll` at x_i
    (eps must be 0). A scalar differentiable in θ only: φ is frozen and x̂ enters as a constant input."""
    _check_xy(x, y)
    objective = _check_objective(objective, eps)
    noise = draw_noise(x, sigma, m, generator)
    if objective == "augment":
        return augmentation_nll(model, x, y, noise, denoiser).mean()
    x_adv = x
    if eps > 0 and steps > 0:
        was_training = model.training
        model.eval()
        x_adv = pgd_attack_smoothed(model, x, y, sigma, eps, steps, m, denoiser, step_size, noise, clip=clip)
        model.train(was_training)
    return smoothed_nll(model, x_adv, y, noise, denoiser, differentiable=False).mean()


# ====================================================================== the one trainer
def train_smoothed(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, eps: float, steps: int,
                   m: int = 1, denoiser=None, iters: int | None = None, epochs: int | None = None,
                   batch_size: int = 64, lr: float = 1e-3, ema: float = 0.0, warmup: int = 0, seed: int = 0,
                   step_size: float | None = None, clip: Sequence[float] | None = None,
                   progress: bool = True, desc: str | None = None, objective: str = "smoothed") -> dict:
    """Minimise ℓ_ε(θ) (eq. 13) for ``model`` in place: XHAT_ε, XHAT_0 (eps=0) or SmoothAdv_ε
    (denoiser=None), on any data x [N, *shape], y [N] (MNIST or a toy problem); with
    ``objective="augment"`` (eps = 0) Gaussian data augmentation, Lecture 14 eq. 8, instead.

    ``iters`` updates (or ``epochs`` passes) of minibatches of ``batch_size`` drawn without
    replacement from a permutation per pass (``lib.models.training.EpochSampler``); Adam at ``lr``
    through the project's one training loop ``lib.models.training.train_loop`` (EMA ``ema``, 0:
    none; resumable checkpoints when called from the model cache). The attack radius grows
    linearly from 0 to ``eps`` over the first ``warmup`` updates (SmoothAdv's warm-up; 0: none).
    ``seed`` fixes the batches and every noise draw. Returns the loop's history plus
    ``pgd_steps``, ``m``, ``eps``, ``sigma``.
    """
    _check_xy(x, y)
    sigma, steps, m = check_sigma(sigma), check_count("steps", steps, minimum=0), check_count("m", m)
    batch_size = check_count("batch_size", batch_size)
    if not (float(eps) >= 0):
        raise ValueError(f"eps must be >= 0, got {eps}")
    objective = _check_objective(objective, eps)
    energy = _energy_of(denoiser)
    if energy is not None and not math.isclose(energy.sigma, sigma, rel_tol=1e-6):
        raise ValueError(f"the DEEN was trained at sigma={energy.sigma:g}, the smoothing uses sigma={sigma:g}")
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    per_epoch = math.ceil(x.shape[0] / batch_size)
    if iters is None:
        iters = check_count("epochs", epochs if epochs is not None else 1) * per_epoch
    iters, warmup = check_count("iters", iters), check_count("warmup", warmup, minimum=0)
    sampler = EpochSampler(x.shape[0], batch_size, seed=int(seed), device=device)
    noise_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)

    def loss(step: int) -> torch.Tensor:
        idx = sampler(step)
        radius = float(eps) * min(1.0, (step + 1) / warmup) if warmup else float(eps)
        return robust_loss(model, x[idx], y[idx], sigma, radius, steps, m, denoiser, noise_gen, step_size, clip,
                           objective)

    loss_fn = StepLoss(loss, generators={"batches": sampler.generator, "noise": noise_gen}, state=sampler.state)
    with _no_weight_grads(energy):
        hist = train_loop(model, loss_fn, iters, lr=lr, ema=ema or None, seed=int(seed), progress=progress,
                          desc=desc or (f"augmentation m={m}" if objective == "augment" else
                                       f"{'XHAT' if denoiser is not None else 'SmoothAdv'} eps={eps:g}"))
    hist.update({"pgd_steps": steps, "m": m, "eps": float(eps), "sigma": sigma, "objective": objective})
    return hist


@torch.no_grad()
def noisy_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, denoiser=None,
                   seed: int = 0, batch_size: int = 1024) -> float:
    """Accuracy of the hard base classifier argmax H(x̂(x + ε)) with one noise draw per row."""
    _check_xy(x, y)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        yy = xb + draw_noise(xb, sigma, 1, gen)[:, 0]
        correct += int((model(_estimate(denoiser, yy, False)).argmax(1) == yb).sum())
    return correct / x.shape[0]


# ====================================================================== configs and the cache
def _family_settings(profile: str) -> dict:
    """The ``xhat`` model family of ``lib.profiles`` (H's architecture and training, ``deen_low``)."""
    return model_settings("xhat", profile)


def xhat_config(dataset: str, sigma: float, method: str, profile: str, eps: float | None = None, seed: int = 0,
                **overrides) -> dict:
    """The full config of an adversarially trained smoothed classifier: family settings of
    ``lib.profiles.model_settings("xhat", profile)`` < overrides. ``method``: "xhat" (with
    eps = 0: XHAT_0), "smoothadv" (with eps = 0: Lecture 14's smoothed objective) or "augment"
    (Gaussian augmentation, Lecture 14 eq. 8; eps is 0). For "xhat" the config holds the config of
    its DEEN (the ``deen`` family at the same sigma, the one notebook 04 uses), so H is retrained
    when φ changes. The family's ``lecture_m`` (the m of notebook 09's Lecture 14 rows, passed as
    the override ``m``) is not part of H's config."""
    if method not in XHAT_METHODS:
        raise ValueError(f"method must be one of {sorted(XHAT_METHODS)}, got {method!r}")
    settings = _family_settings(profile)
    settings.pop("deen_low", None)  # the walk-jump's second DEEN (lib.methods.register_walk_jump), not part of H
    settings.pop("lecture_m", None)
    if method == "augment":
        if eps is not None and float(eps) != 0:
            raise ValueError(f"Gaussian augmentation has no inner maximum: eps must be 0 or None, got {eps}")
        eps = 0.0
    in_shape, num_classes = dataset_info(dataset)
    config = {"model": "xhat", "method": method, "dataset": dataset, "in_shape": list(in_shape),
              "num_classes": num_classes, "sigma": check_sigma(sigma), **settings, "seed": int(seed)}
    if eps is not None:
        config["eps"] = float(eps)
    config.update(overrides)
    if not (config["eps"] >= 0):
        raise ValueError(f"eps must be >= 0, got {config['eps']}")
    config["deen"] = energy_config(dataset, sigma, profile, seed) if XHAT_METHODS[method] else None
    return config


def _load_energy(deen_cfg: dict, device):
    energy, _ = load_or_train("deen", deen_cfg, build_energy, train_deen, device)
    energy.config, energy.config_hash = deen_cfg, config_hash(deen_cfg)
    return energy


def _train_from_config(model: nn.Module, config: dict) -> dict:
    device = next(model.parameters()).device
    x, y = data.load(config["dataset"], config["train_split"], limit=config.get("train_limit"))
    denoiser = _load_energy(config["deen"], device) if config["deen"] else None
    hist = train_smoothed(model, x, y, config["sigma"], config["eps"], config["pgd_steps"], config["m"], denoiser,
                          iters=config.get("iters"), epochs=config.get("epochs"), batch_size=config["batch_size"],
                          lr=config["lr"], ema=config.get("ema", 0.0), warmup=config.get("warmup", 0),
                          seed=config["seed"], step_size=config.get("step_size"), clip=config.get("clip"),
                          desc=f"{config['method']} σ={config['sigma']:g} ε={config['eps']:g} m={config['m']}",
                          objective="augment" if config["method"] == "augment" else "smoothed")
    xt, yt = data.load(config["dataset"], config.get("test_split", "test"), limit=config.get("test_limit"))
    hist["test_accuracy_noisy"] = noisy_accuracy(model, xt, yt, config["sigma"], denoiser, seed=config["seed"] + 2)
    return hist


def get_xhat_classifier(dataset: str, sigma: float, method: str, profile: str, eps: float | None = None,
                        seed: int = 0, device=None, **overrides):
    """(trained H in eval mode, its x̂ denoiser or None, history), cached by config like every model.

    H carries ``config`` and ``config_hash``; the denoiser is the frozen DEEN of the config."""
    device = get_device(device)
    config = xhat_config(dataset, sigma, method, profile, eps, seed, **overrides)
    model, history = load_or_train("xhat", config, build_classifier, _train_from_config, device)
    model.config, model.config_hash = config, config_hash(config)
    denoiser = _load_energy(config["deen"], device).denoiser() if config["deen"] else None
    return model, denoiser, history
