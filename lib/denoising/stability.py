"""Salman et al. (2020)'s *stability* objective for denoisers, next to the MSE DnCNN.

Denoised smoothing trains a denoiser D_theta for a fixed classifier f with

    L_MSE(theta)  = E_{x, eps} || D_theta(x + eps) - x ||^2                       (lib.denoising.denoise)
    L_stab(theta) = E_{x, eps} CE( F(D_theta(x + eps)), f(x) )                     (this module)

where F is the classifier's softmax and f(x) = argmax F(x) its label on the *clean* image
(Sheikholeslami et al. section 2.2). Salman et al. use it in two ways, both here:

* ``init="mse"``  ("MSE+Stab"): fine-tune the cached MSE DnCNN with L_stab;
* ``init="scratch"`` ("Stab"): train a DnCNN from scratch with L_stab only (their most expensive
  and best option: 600 epochs).

The classifier that provides the gradient is either the classifier being defended (Salman's
*full access*) or another, *surrogate* classifier trained on the same data (their *query access*
setting, where f can only be queried): Lee's Table 1 rows "denoised smoothing (Query Access)" and
"(Full Access)". That classifier is frozen: its parameters are switched to ``requires_grad=False``
for the duration of training (restored afterwards) so no gradient is accumulated in it, and only
the denoiser's parameters are optimised.

``stability_denoiser(...)`` is cached by config like every model (``lib.models.cache``); its
``history`` holds ``seconds``, ``iters``, ``epochs`` and ``seconds_per_epoch`` for a training-time
table (Sheikholeslami et al. Table 1).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lib.data import image_shape, load
from lib.denoising.denoise import NetworkDenoiser, mse_config, mse_denoiser
from lib.denoising.nets import DnCNN
from lib.models.cache import load_or_train
from lib.models.training import StepLoss, train_loop
from lib.smoothing.noise import Gaussian
from lib.utils import check_count, check_sigma

__all__ = ["frozen", "stability_loss", "stability_config", "train_stability", "stability_denoiser"]


@contextmanager
def frozen(*modules):
    """Switch every parameter of ``modules`` to ``requires_grad=False`` inside the block (restored
    after): gradients flow *through* them to their inputs but never accumulate in them."""
    params = [p for m in modules if isinstance(m, nn.Module) for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def stability_loss(net: nn.Module, classifier: nn.Module, x: torch.Tensor, noise,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """L_stab on a batch x [B, C, H, W]: CE(classifier(net(x + eps)), argmax classifier(x)), a scalar.

    The clean labels are computed under ``no_grad``; the classifier should be in eval mode and
    :func:`frozen` so that only ``net`` receives gradients."""
    with torch.no_grad():
        target = classifier(x).argmax(1)
    y = x + noise.sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return F.cross_entropy(classifier(net(y)), target)


def stability_config(dataset: str, sigma: float, init: str, classifier_config: dict, mse_config: dict | None,
                     settings: dict, access: str = "full", seed: int = 0) -> dict:
    """Everything that determines a stability-trained denoiser (the cache key).

    ``classifier_config``: the classifier whose gradients train it (the defended one for
    ``access="full"``, a surrogate for ``"query"``); ``mse_config``: the MSE denoiser it starts
    from (``init="mse"``); ``settings``: iters (fine-tuning) or scratch_iters (from scratch),
    batch_size, lr, ema, n_train. The DnCNN has the MSE model's sizes (``settings["net"]`` when there
    is no MSE config, from scratch)."""
    if init not in ("mse", "scratch"):
        raise ValueError(f"init must be 'mse' (MSE+Stab) or 'scratch' (Stab), got {init!r}")
    if access not in ("full", "query"):
        raise ValueError(f"access must be 'full' or 'query', got {access!r}")
    if init == "mse" and mse_config is None:
        raise ValueError("init='mse' needs the config of the MSE denoiser it fine-tunes")
    net = dict(mse_config["net"]) if mse_config is not None else dict(settings["net"])
    return {"version": 1, "dataset": dataset, "noise": "gaussian", "sigma": check_sigma(sigma), "arch": "dncnn",
            "objective": "stability", "init": init, "access": access, "net": net,
            "mse": mse_config if init == "mse" else None, "classifier": classifier_config,
            "iters": check_count("iters", settings["scratch_iters"] if init == "scratch" else settings["iters"]),
            "batch_size": check_count("batch_size", settings["batch_size"]),
            "lr": float(settings["lr"]), "ema": float(settings["ema"]), "n_train": settings.get("n_train"),
            "seed": int(seed)}


def train_stability(net: nn.Module, classifier: nn.Module, x: torch.Tensor, noise, iters: int, batch_size: int,
                    lr: float, ema: float, seed: int = 0, progress: bool = True, desc: str = "stability") -> dict:
    """Minimise L_stab over ``net``'s parameters (Adam, EMA, the project's training loop); the
    classifier is frozen. Returns the loop's history plus ``epochs`` and ``seconds_per_epoch``."""
    batch_size = check_count("batch_size", batch_size)
    device = next(net.parameters()).device
    x = x.to(device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    classifier.eval()

    def step(_):
        xb = x[torch.randint(len(x), (batch_size,), generator=gen, device=device)]
        return stability_loss(net, classifier, xb, noise, gen)

    with frozen(classifier):
        hist = train_loop(net, StepLoss(step, {"batch": gen}), iters, lr=lr, ema=ema, grad_clip=1.0,
                          seed=seed, progress=progress, desc=desc)
    hist["epochs"], hist["images"] = hist["iters"] * batch_size / len(x), len(x)
    hist["seconds_per_epoch"] = hist["seconds"] / max(hist["epochs"], 1e-12)
    return hist


def stability_denoiser(dataset: str, sigma: float, classifier: nn.Module, classifier_config: dict,
                       settings: dict, init: str = "mse", access: str = "full", profile: str = "quick",
                       seed: int = 0, device=None, progress: bool = True, verbose: bool = True):
    """The cached MSE+Stab (``init="mse"``) or Stab (``init="scratch"``) DnCNN for one Gaussian sigma,
    trained through ``classifier`` (its config ``classifier_config`` goes into the cache key).

    Returns a :class:`lib.denoising.NetworkDenoiser` with ``config`` and ``history``."""
    base_cfg = mse_config(dataset, sigma, "gaussian", profile=profile, seed=seed)  # sizes (and start) of the DnCNN
    config = stability_config(dataset, sigma, init, classifier_config, base_cfg, settings, access, seed)

    def build(cfg):
        return DnCNN(image_shape(cfg["dataset"])[0], **cfg["net"])

    def train(model, cfg):
        if cfg["init"] == "mse":
            base = mse_denoiser(dataset, sigma, "gaussian", profile=profile, seed=seed, device=device,
                                progress=progress, verbose=verbose)
            model.load_state_dict(base.net.state_dict())
        x, _ = load(cfg["dataset"], "train", limit=cfg["n_train"])
        return train_stability(model, classifier, x, Gaussian(cfg["sigma"]), cfg["iters"], cfg["batch_size"],
                               cfg["lr"], cfg["ema"], seed=cfg["seed"], progress=progress,
                               desc=f"{'MSE+Stab' if init == 'mse' else 'Stab'} sigma={float(sigma):g}")

    kind = f"dncnn-{'mse_stab' if init == 'mse' else 'stab'}-{dataset}"
    net, hist = load_or_train(kind, config, build, train, device=device, verbose=verbose)
    label = "MSE+Stab" if init == "mse" else "Stab"
    den = NetworkDenoiser(net, name=f"dncnn({label}, {access} access, sigma={float(sigma):g})")
    den.config, den.history = config, hist
    return den
