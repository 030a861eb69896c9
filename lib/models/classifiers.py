"""Base classifiers h: one interface, a few sizes, one training loop, cached by config.

Every classifier is an ``nn.Module`` mapping images ``[B, C, H, W]`` in [0, 1] to logits
``[B, num_classes]``; the smoothed classifier (``lib.smoothing.Smooth``) only needs that.

==========  ==============================================================================
arch        model
==========  ==============================================================================
linear      flatten + one affine layer: the "1-layer neural network" of Saremi & Srivastava
            (their MNIST h has test accuracy 0.9218, section 2.4)
mlp         flatten + ReLU hidden layers
cnn         two conv-ReLU-maxpool blocks + a ReLU hidden layer (``SmallCNN``)
resnet      CIFAR-style pre-activation-free ResNet of basic blocks, depth = 6k + 2
            (He et al. 2016; depth=110, width=16 is the ResNet-110 of Cohen et al. 2019)
==========  ==============================================================================

:func:`train_classifier` minimises the cross entropy, optionally on noisy inputs
x + u, u ~ q_sigma (Gaussian data augmentation of Cohen et al. 2019, and its Laplace /
uniform analogues): the base classifier then sees the inputs the smoothed classifier
feeds it. :func:`get_classifier` builds a config from a profile and goes through
:func:`lib.models.cache.load_or_train`, so a model is trained once per config.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lib.data import datasets as data
from lib.models.cache import load_or_train
from lib.models.training import EpochSampler, StepLoss, train_loop
from lib.profiles import model_settings
from lib.smoothing.noise import make_noise
from lib.utils import check_count, check_positive, check_sigma, config_hash, get_device

__all__ = ["LinearClassifier", "MLPClassifier", "SmallCNN", "ResNet", "MaxPool2x2", "ARCHS",
           "build_classifier", "train_classifier", "classifier_loss", "classifier_config", "get_classifier", "accuracy", "linear_margin",
           "dataset_info"]

def dataset_info(dataset: str) -> tuple[tuple[int, ...], int]:
    """(input shape [C, H, W], number of classes) of a dataset name (from ``lib.data``)."""
    return tuple(data.image_shape(dataset)), int(data.num_classes(dataset))


# ====================================================================== the family
class _Classifier(nn.Module):
    """Shared checks: inputs [B, *in_shape] -> logits [B, num_classes]."""

    def __init__(self, in_shape: Sequence[int], num_classes: int):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ValueError(f"in_shape must be [C, H, W] with positive sizes, got {in_shape}")
        self.num_classes = check_count("num_classes", num_classes, minimum=2)

    @property
    def in_features(self) -> int:
        return math.prod(self.in_shape)


class LinearClassifier(_Classifier):
    """h(x) = W vec(x) + b: [B, C, H, W] -> [B, num_classes] (multinomial logistic regression)."""

    def __init__(self, in_shape: Sequence[int], num_classes: int):
        super().__init__(in_shape, num_classes)
        self.linear = nn.Linear(self.in_features, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLPClassifier(_Classifier):
    """Fully connected ReLU network: [B, C, H, W] -> [B, num_classes]."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (512, 512)):
        super().__init__(in_shape, num_classes)
        widths = [self.in_features] + [check_count("hidden", int(h)) for h in hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(widths[-1], self.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MaxPool2x2(nn.Module):
    """2x2 max pooling with stride 2, as ``nn.MaxPool2d(2)``: ``[B, C, H, W] -> [B, C, H//2, W//2]``.

    Without a graph to record, the maximum of the four strided views: the same numbers bit for bit
    (a maximum rounds nothing; NaN propagates as in ``max_pool2d``) and on a CPU several times faster
    for a contiguous (NCHW) input, the layout a one-channel image's first convolution returns. With
    autograd it is ``max_pool2d`` itself, so training's gradients (which of tied inputs gets the
    gradient) are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class SmallCNN(_Classifier):
    """conv(w)-ReLU-pool, conv(2w)-ReLU-pool, dense(4w... 128)-ReLU, dense: [B, C, H, W] -> logits."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: int = 32, hidden: int = 128):
        super().__init__(in_shape, num_classes)
        c, h, w = self.in_shape
        width, hidden = check_count("width", width), check_count("hidden", hidden)
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True), MaxPool2x2(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), MaxPool2x2())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, self.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(_Classifier):
    """CIFAR ResNet (He et al. 2016, section 4.2): depth = 6k + 2 layers, widths (w, 2w, 4w).

    ``depth=110, width=16`` is the ResNet-110 used by Cohen et al. (2019) on CIFAR-10;
    ``depth=20`` is the smallest member. [B, C, H, W] -> [B, num_classes].
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, depth: int = 20, width: int = 16):
        super().__init__(in_shape, num_classes)
        depth, width = check_count("depth", depth, minimum=8), check_count("width", width)
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6k + 2 (8, 14, 20, ..., 110), got {depth}")
        k = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(self.in_shape[0], width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(k):
                blocks.append(_BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


ARCHS = {"linear": LinearClassifier, "mlp": MLPClassifier, "cnn": SmallCNN, "resnet": ResNet}
#: config keys passed to each constructor (besides in_shape and num_classes)
_ARCH_KEYS = {"linear": (), "mlp": ("hidden",), "cnn": ("width", "hidden"), "resnet": ("depth", "width")}


def build_classifier(config: dict) -> nn.Module:
    """An untrained classifier from ``config`` (keys: arch, in_shape, num_classes, arch options,
    seed). The initial weights depend only on ``config['seed']``; the global RNG is untouched."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    arch = config.get("arch")
    if arch not in ARCHS:
        raise ValueError(f"config['arch'] must be one of {sorted(ARCHS)}, got {arch!r}")
    kwargs = {k: config[k] for k in _ARCH_KEYS[arch] if k in config}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        return ARCHS[arch](config["in_shape"], config["num_classes"], **kwargs)


# ====================================================================== training
def _model_device(model: nn.Module) -> torch.device:
    params = list(model.parameters())
    return params[0].device if params else torch.device("cpu")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048,
             noise=None, generator: torch.Generator | None = None) -> float:
    """Top-1 accuracy of ``model`` on x [N, C, H, W], y [N]; with ``noise`` (a
    ``lib.smoothing.NoiseDistribution``) on x + u, one draw per image."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must have the same positive length, got {x.shape[0]} and {y.shape[0]}")
    was_training = model.training
    model.eval()
    device = _model_device(model)
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].to(device)
        if noise is not None:
            xb = xb + noise.sample(xb.shape, generator=generator, device=device, dtype=xb.dtype)
        correct += int((model(xb).argmax(1) == y[i:i + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / x.shape[0]


@torch.no_grad()
def linear_margin(model: LinearClassifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact l2 distance from each x to the nearest decision boundary of a linear classifier.

    h(x) = argmax_k (W vec(x) + b)_k keeps the label y on the polyhedron {z_y >= z_j for all j},
    so the distance is min_{j != y} (z_y - z_j) / ||w_y - w_j||; 0 where h(x) != y.
    x [N, C, H, W], y [N] -> [N]. For a two-class linear h the smoothed classifier g[h] is h
    itself and Cohen et al.'s radius tends to exactly this margin (Saremi & Srivastava, §2.1).
    """
    if not isinstance(model, LinearClassifier):
        raise TypeError(f"model must be a LinearClassifier, got {type(model).__name__}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    w, b = model.linear.weight, model.linear.bias
    x, y = x.to(w.device), y.to(w.device)
    z = x.flatten(1) @ w.T + b
    gaps = (z.gather(1, y[:, None]) - z) / (w[y][:, None, :] - w[None, :, :]).norm(dim=2).clamp_min(1e-12)
    gaps.scatter_(1, y[:, None], float("inf"))
    return torch.where(z.argmax(1) == y, gaps.min(1).values.clamp_min(0), torch.zeros_like(gaps[:, 0]))


def _load_split(config: dict, split_key: str, limit_key: str):
    return data.load(config["dataset"], config[split_key], limit=config.get(limit_key))


def _make_optimizer(model: nn.Module, config: dict):
    name = config.get("optimizer", "adam")
    lr = check_positive("lr", config.get("lr", 1e-3))
    wd = float(config.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=float(config.get("momentum", 0.9)),
                               weight_decay=wd)
    raise ValueError(f"config['optimizer'] must be 'adam' or 'sgd', got {name!r}")


def classifier_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, noise=None,
                    seed: int = 0) -> StepLoss:
    """The per-step cross entropy of :func:`train_classifier`, for :func:`lib.models.train_loop`.

    Epochs of shuffled minibatches of x [N, C, H, W], y [N] (a new permutation every
    ``ceil(N / batch_size)`` steps, from a generator seeded by ``seed``); with ``noise`` (a
    ``lib.smoothing`` noise) the inputs are x + u, one fresh draw per example and step (generator
    ``seed + 1``). Returns ``{"loss", "loss_sum", "correct", "examples"}`` (sums over the batch).
    """
    batch_size = check_count("batch_size", batch_size)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"training data must be non-empty with as many labels as images, got {x.shape[0]}, {y.shape[0]}")
    device = _model_device(model)
    x, y = x.to(device), y.to(device)
    batches = EpochSampler(x.shape[0], batch_size, seed, device)
    noise_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)

    def loss_fn(step):
        idx = batches(step)
        xb, yb = x[idx], y[idx]
        if noise is not None:
            xb = xb + noise.sample(xb.shape, generator=noise_gen, device=device, dtype=xb.dtype)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        return {"loss": loss, "loss_sum": loss.detach() * idx.numel(), "correct": (logits.argmax(1) == yb).sum(),
                "examples": idx.numel()}

    return StepLoss(loss_fn, {"shuffle": batches.generator, "noise": noise_gen}, batches.state)


def train_classifier(model: nn.Module, config: dict, data: tuple | None = None, test_data: tuple | None = None,
                     progress: bool = True) -> dict:
    """Minimise the cross entropy of ``model`` in place (:func:`classifier_loss` in
    :func:`lib.models.train_loop`); return the training history.

    config keys: epochs, batch_size, optimizer ('adam' | 'sgd'), lr, momentum, weight_decay,
    lr_step (epochs between x lr_gamma decays, optional), seed; ``noise`` (None, 'gaussian',
    'laplace', 'uniform') and ``sigma`` train on x + u, u ~ q_sigma, one fresh draw per
    example and epoch (Cohen et al. 2019, section 3.3). Data: ``data`` = (x [N,C,H,W], y [N])
    or else ``lib.data.load(config['dataset'], config['train_split'], limit=config['train_limit'])``;
    likewise ``test_data`` / ``test_split`` / ``test_limit`` for the reported test accuracy.

    history: loss and train_accuracy per epoch, test_accuracy (clean; and test_accuracy_noisy
    under the training noise when there is one), train_steps, train_seconds, train_cpu_seconds.
    """
    epochs = check_count("epochs", config.get("epochs", 1))
    batch_size = check_count("batch_size", config.get("batch_size", 128))
    seed = int(config.get("seed", 0))
    x, y = data if data is not None else _load_split(config, "train_split", "train_limit")
    noise = None
    if config.get("noise") is not None:
        noise = make_noise(config["noise"], check_sigma(config.get("sigma")))
    loss_fn = classifier_loss(model, x, y, batch_size, noise, seed)
    per_epoch = math.ceil(x.shape[0] / batch_size)
    schedule = None
    if config.get("lr_step"):  # decay every lr_step epochs, stepped per optimiser step
        schedule = lambda opt: torch.optim.lr_scheduler.StepLR(  # noqa: E731
            opt, step_size=int(config["lr_step"]) * per_epoch, gamma=float(config.get("lr_gamma", 0.1)))
    hist = train_loop(model, loss_fn, epochs * per_epoch, _make_optimizer(model, config), schedule=schedule,
                      log_every=per_epoch, progress=progress, desc=f"train {config.get('arch', 'classifier')}")
    history: dict = {"loss": [ls / n for ls, n in zip(hist["loss_sum"], hist["examples"])],
                     "train_accuracy": [c / n for c, n in zip(hist["correct"], hist["examples"])],
                     "train_steps": hist["iters"], "train_seconds": hist["seconds"],
                     "train_cpu_seconds": hist["cpu_seconds"]}
    device = _model_device(model)
    xt, yt = test_data if test_data is not None else _load_split(config, "test_split", "test_limit")
    history["test_accuracy"] = accuracy(model, xt, yt)
    if noise is not None:
        history["test_accuracy_noisy"] = accuracy(model, xt, yt, noise=noise,
                                                  generator=torch.Generator(device=device).manual_seed(seed + 2))
    return history


# ====================================================================== presets and cache
def classifier_config(arch: str, dataset: str, profile: str, noise: str | None = None,
                      sigma: float | None = None, seed: int = 0, **overrides) -> dict:
    """The full training config of a classifier: the family ``classifier/<arch>`` of
    ``lib.profiles`` (architecture options, optimiser, data size, epochs) < ``overrides``."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    settings = model_settings(f"classifier/{arch}", profile)
    in_shape, num_classes = dataset_info(dataset)
    if noise is not None:
        if sigma is None:
            raise ValueError(f"noise={noise!r} needs a noise level sigma > 0")
        sigma = check_sigma(sigma)
    elif sigma is not None:
        raise ValueError("sigma is given but noise is None; pass noise='gaussian' (or laplace/uniform)")
    config = {"arch": arch, "dataset": dataset, "in_shape": list(in_shape), "num_classes": num_classes,
              **settings, "test_split": "test", "noise": noise, "sigma": sigma, "seed": int(seed)}
    config.update(overrides)
    return config


def get_classifier(arch: str, dataset: str, profile: str, noise: str | None = None, sigma: float | None = None,
                   seed: int = 0, device=None, **overrides) -> tuple[nn.Module, dict]:
    """(trained classifier in eval mode on ``device``, history): loaded from ``data/models``
    when a model with the same config exists, else trained and cached (lib.models.cache).

    The model carries ``config`` (its training config) and ``config_hash`` (the cache key)."""
    config = classifier_config(arch, dataset, profile, noise, sigma, seed, **overrides)
    model, history = load_or_train("classifier", config, build_classifier, train_classifier, get_device(device))
    model.config, model.config_hash = config, config_hash(config)
    return model, history
