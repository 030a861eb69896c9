"""Rejectors for denoised smoothing with sample rejection (Sheikholeslami et al., section 3 and 6.2).

A rejector is K binary classifiers h_1..h_K on a *shared backbone* (paper Fig. 2, section 6.3):
``rejector(batch [B, C, H, W]) -> reject logits [B, K]``. With the base classifier f it forms the
classifier-with-rejection of eq. 1,

    f_R(y) = k   if f(y) = k and logit_k(y) <= 0,        f_R(y) = R   if f(y) = k and logit_k(y) > 0,

and the smoothed classifier g_R of eq. 3 feeds it the *denoised* batch D(x + eps), the same batch
as the classifier (the certificate, Theorem 3.1, is :class:`lib.smoothing.Smooth` with
``rejector=``).

Training (eq. 7-9): for each training image x_i and T fixed noise draws eps_t,

    y = D(x_i + eps_t),   b = 1[ f(y) != f(x_i) ],   loss = BCE( head_{f(x_i)}(y), b ),

averaged over images and draws. The classifier f and the denoiser D are frozen: they run under
``torch.no_grad`` and only the rejector's parameters are optimised. ``head="noisy"`` selects head
f(y) instead of f(x_i) (the head that eq. 1 consults at certification time); the paper's eq. 9
uses f(x_i), our default.

Schedule (section 6.3): 20 epochs, Adam at 1e-4 for the first 5, then SGD from 1e-3 divided by 10
every 5 epochs; our profiles scale the epochs (see ``lib.profiles.model_settings("rejector", ...)``).

Backbone: the paper uses a ResNet-34-like network whose blocks also receive the classifier's
mid-layer features. Ours is a small CNN (two conv-ReLU-pool blocks, two fully connected layers)
that can additionally read the classifier's log-probabilities on the same input
(``use_classifier=True``: a cheap stand-in for the paper's feature concatenation; no gradient
reaches the classifier).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from lib.data import image_shape, load, num_classes
from lib.models.cache import load_or_train
from lib.models.classifiers import MaxPool2x2
from lib.models.training import EpochSampler, StepLoss, train_loop
from lib.smoothing.noise import Gaussian
from lib.utils import check_count, check_positive, check_sigma, config_hash

__all__ = ["RejectorNet", "Rejector", "rejection_targets", "rejection_loss", "rejector_config",
           "train_rejector", "get_rejector", "reject_decisions"]


class RejectorNet(nn.Module):
    """Shared backbone + K heads: ``forward(y [B, C, H, W], context [B, K] or None) -> logits [B, K]``.

    Backbone: conv(w)-ReLU-pool, conv(2w)-ReLU-pool, flatten, [concat context], FC(hidden)-ReLU,
    FC(hidden)-ReLU (the paper's first two FC layers belong to the backbone); heads: one FC layer
    ``hidden -> K`` (row k is head h_k). A positive logit k means "reject when f predicts k".
    """

    def __init__(self, in_shape, num_classes: int, width: int = 16, hidden: int = 128,
                 use_classifier: bool = True):
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        self.in_shape = (c, h, w)
        self.num_classes = check_count("num_classes", num_classes, minimum=2)
        width, hidden = check_count("width", width), check_count("hidden", hidden)
        self.use_classifier = bool(use_classifier)
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True), MaxPool2x2(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), MaxPool2x2(), nn.Flatten())
        feat = 2 * width * (h // 4) * (w // 4) + (self.num_classes if self.use_classifier else 0)
        self.fc = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.heads = nn.Linear(hidden, self.num_classes)

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        z = self.features(y)
        if self.use_classifier:
            if context is None:
                raise ValueError("this rejector reads the classifier's log-probabilities: pass context [B, K]")
            z = torch.cat([z, context], dim=1)
        return self.heads(self.fc(z))


class Rejector:
    """The callable that :class:`lib.smoothing.Smooth` takes: ``(batch [B, C, H, W]) -> logits [B, K]``.

    Holds the trained :class:`RejectorNet` and (when it reads them) the frozen classifier whose
    log-probabilities it sees; runs under ``torch.no_grad``. ``config``/``history`` describe the
    cached model.
    """

    def __init__(self, net: RejectorNet, classifier=None, name: str = "rejector"):
        if net.use_classifier and classifier is None:
            raise ValueError("net.use_classifier is set: the classifier is needed")
        self.net = net.eval()
        self.classifier = classifier
        self.name = name
        self.config: dict = {}
        self.history: dict = {}

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ctx = F.log_softmax(self.classifier(y), dim=1) if self.net.use_classifier else None
            return self.net(y, ctx)


def reject_decisions(logits: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Eq. 1: a sample predicted k is rejected when head k's logit is > 0. [B, K], [B] -> bool [B]."""
    return logits.gather(1, predictions[:, None])[:, 0] > 0


@torch.no_grad()
def rejection_targets(classifier, denoiser, x: torch.Tensor, noise, draws: int,
                      generator: torch.Generator | None = None):
    """The frozen half of eq. 7-8 for T = ``draws`` noise draws per image.

    x [B, C, H, W] -> (y [B*T, C, H, W] = D(x + eps) (draw-major within each image), clean class
    f(x) [B*T], noisy class f(y) [B*T], b [B*T] float = 1[f(y) != f(x)], log-probabilities of f on y
    [B*T, K]). Runs under ``no_grad``: nothing here receives gradients.
    """
    draws = check_count("draws", draws)
    clean = classifier(x).argmax(1)
    xs = x.repeat_interleave(draws, dim=0)
    y = xs + noise.sample(xs.shape, generator=generator, device=xs.device, dtype=xs.dtype)
    if denoiser is not None:
        y = denoiser(y)
    logits = classifier(y)
    noisy = logits.argmax(1)
    clean = clean.repeat_interleave(draws)
    return y, clean, noisy, (noisy != clean).float(), F.log_softmax(logits, dim=1)


def rejection_loss(net: RejectorNet, y, clean, noisy, b, logp, head: str = "clean") -> torch.Tensor:
    """Eq. 9 on a batch from :func:`rejection_targets`: mean BCE of the selected head against b.

    ``head="clean"`` selects head f(x_i) (the paper's eq. 9), ``"noisy"`` head f(D(x_i + eps))."""
    if head not in ("clean", "noisy"):
        raise ValueError(f"head must be 'clean' or 'noisy', got {head!r}")
    logits = net(y, logp if net.use_classifier else None)
    k = clean if head == "clean" else noisy
    return F.binary_cross_entropy_with_logits(logits.gather(1, k[:, None])[:, 0], b)


# ---------------------------------------------------------------------- config, training, cache
def rejector_config(dataset: str, sigma: float, classifier_config: dict, denoiser_config: dict | None,
                    settings: dict, seed: int = 0) -> dict:
    """Everything that determines a trained rejector (the cache key): the frozen classifier's and
    denoiser's configs, sigma, and the family settings (``lib.profiles.model_settings("rejector",
    profile)``: net, draws T, epochs, adam_epochs, adam_lr, sgd_lr, momentum, sgd_step, batch_size
    (denoised samples per step), n_train, head)."""
    s = dict(settings)
    epochs, adam = check_count("epochs", s["epochs"]), check_count("adam_epochs", s["adam_epochs"], minimum=0)
    if adam > epochs:
        raise ValueError(f"adam_epochs={adam} exceeds epochs={epochs}")
    if s.get("head", "clean") not in ("clean", "noisy"):
        raise ValueError(f"head must be 'clean' or 'noisy', got {s.get('head')!r}")
    return {"version": 3, "dataset": dataset, "noise": "gaussian", "sigma": check_sigma(sigma),
            "classifier": classifier_config, "denoiser": denoiser_config, "net": dict(s["net"]),
            "draws": check_count("draws", s["draws"]), "epochs": epochs, "adam_epochs": adam,
            "adam_lr": check_positive("adam_lr", s["adam_lr"]), "sgd_lr": check_positive("sgd_lr", s["sgd_lr"]),
            "momentum": float(s.get("momentum", 0.9)), "sgd_step": check_count("sgd_step", s["sgd_step"]),
            "batch_size": check_count("batch_size", s["batch_size"]), "n_train": s.get("n_train"),
            "head": s.get("head", "clean"), "seed": int(seed)}


def train_rejector(net: RejectorNet, classifier, denoiser, x: torch.Tensor, noise, config: dict,
                   progress: bool = True) -> dict:
    """Train ``net`` in place on eq. 9 with the paper's two-phase schedule (section 6.3).

    The objective is the paper's empirical one: N = ``len(x)`` images with T = ``draws`` fixed noise
    realizations each, ``1/(NT) sum_i sum_t BCE(...)``. The N*T denoised samples, their targets and the
    classifier's log-probabilities are computed once (under ``no_grad``, in chunks) and the rejector is
    trained on them for ``epochs`` passes of ``batch_size`` samples per step (an epoch has T times the steps
    of one pass over the images, as in the paper, whose epoch costs grow with T), so the frozen
    denoiser and classifier cost N*T evaluations in all, not per epoch (memory: N*T images; MNIST at
    N = 60,000, T = 20 is 3.8 GB). Phase 1: Adam at ``adam_lr`` for ``adam_epochs`` epochs; phase 2:
    SGD (momentum) from ``sgd_lr``, divided by 10 every ``sgd_step`` epochs.

    Returns the history: loss per logging window, ``reject_rate`` (fraction of b = 1 among the N*T
    targets), ``seconds`` / ``cpu_seconds`` (targets and training), ``target_seconds``, ``epochs``,
    ``seconds_per_epoch``, ``samples`` (N*T) and per-phase ``phases``.
    """
    if isinstance(classifier, nn.Module):
        classifier.eval()
    device = next(net.parameters()).device
    x = x.to(device)
    draws, head, bs = config["draws"], config["head"], config["batch_size"]
    gen = torch.Generator(device=device).manual_seed(int(config["seed"]) + 1)  # the T noise realizations
    t0, c0 = time.perf_counter(), time.process_time()
    parts = [rejection_targets(classifier, denoiser, x[i:i + bs], noise, draws, gen) for i in range(0, len(x), bs)]
    y, clean, noisy, b, logp = (torch.cat(p) for p in zip(*parts))
    del parts
    target_seconds, target_cpu = time.perf_counter() - t0, time.process_time() - c0
    batches = EpochSampler(len(y), bs, seed=config["seed"], device=device)
    per_epoch = batches.per_epoch

    def step(i):
        idx = batches(i)
        return rejection_loss(net, y[idx], clean[idx], noisy[idx], b[idx], logp[idx], head)

    phases, losses = [], []
    adam_steps, sgd_steps = config["adam_epochs"] * per_epoch, (config["epochs"] - config["adam_epochs"]) * per_epoch
    runs = [("adam", adam_steps, None, None),
            ("sgd", sgd_steps,
             lambda p: torch.optim.SGD(p, lr=config["sgd_lr"], momentum=config["momentum"]),
             lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=config["sgd_step"] * per_epoch, gamma=0.1))]
    t, cpu = target_seconds, target_cpu
    for name, steps, opt, sched in runs:
        if steps == 0:
            continue
        offset = 0 if name == "adam" else adam_steps  # continue the epoch count across phases
        h = train_loop(net, StepLoss(lambda i, o=offset: step(i + o), {"batches": batches.generator}, batches.state),
                       steps, opt, lr=config["adam_lr"], schedule=sched, seed=config["seed"], progress=progress,
                       desc=f"rejector ({name}) sigma={config['sigma']:g}")
        losses += h["loss"]
        t, cpu = t + h["seconds"], cpu + h["cpu_seconds"]
        phases.append({"optimizer": name, "steps": steps, "seconds": h["seconds"]})
    epochs = config["epochs"]
    return {"loss": losses, "reject_rate": float(b.mean()), "seconds": t, "cpu_seconds": cpu,
            "target_seconds": target_seconds, "epochs": epochs, "seconds_per_epoch": t / epochs,
            "images": len(x), "samples": len(y), "phases": phases}


def get_rejector(dataset: str, sigma: float, classifier, classifier_config: dict, denoiser,
                 denoiser_config: dict | None, settings: dict, seed: int = 0, device=None,
                 progress: bool = True, verbose: bool = True) -> Rejector:
    """The cached rejector for (classifier, denoiser, sigma), trained on a miss.

    ``classifier``/``denoiser`` are the frozen models (``denoiser=None``: plain randomized
    smoothing); their configs identify them in the cache key. Returns a :class:`Rejector` with
    ``config`` and ``history`` (see :func:`train_rejector`)."""
    config = rejector_config(dataset, sigma, classifier_config, denoiser_config, settings, seed)

    def build(cfg):
        return RejectorNet(image_shape(cfg["dataset"]), num_classes(cfg["dataset"]), **cfg["net"])

    def train(model, cfg):
        x, _ = load(cfg["dataset"], "train", limit=cfg["n_train"])
        return train_rejector(model, classifier, denoiser, x, Gaussian(cfg["sigma"]), cfg, progress)

    net, hist = load_or_train(f"rejector-{dataset}", config, build, train, device=device, verbose=verbose)
    rej = Rejector(net, classifier if net.use_classifier else None,
                   name=f"rejector(sigma={float(sigma):g}, T={config['draws']}, {config_hash(config)})")
    rej.config, rej.history = config, hist
    return rej
