"""Shared pieces of the theory notebooks: printed/recorded checks, numeric helpers, and the
small toy models (hard classifiers with known smoothing, a linear classifier, an MLP).

Conventions: ``sigma`` is the standard deviation of the smoothing noise N(0, sigma^2 I);
Phi is the standard normal CDF, phi its density. Callables ``h`` / ``F`` map a torch batch
``[N, d]`` to ``[N]`` (or ``[N, K]``).
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.special import gammaln
from scipy.stats import binom, norm
from torch import nn

from lib.models import train_loop
from lib.reporting import record_metrics
from lib.utils import check_count, check_sigma

__all__ = ["report_check", "binomial_tolerance", "stable_probit", "gaussian_norm_moments",
           "IntervalClassifier", "ToyClassifier2D", "LinearBinaryClassifier", "ToyMLP", "hard_votes",
           "grid_values", "near_boundary_points"]

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

# =============================================================================== toy classifiers
def _train_toy(model: nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float) -> list[float]:
    """The theory notebooks' toy training: the project's one loop (:func:`lib.models.train_loop`) with
    Adam and a cosine schedule, on one thread; returns the per-step loss curve."""
    with _one_thread():
        hist = train_loop(model, lambda step: loss_fn(), steps, lr=lr, log_every=1, progress=False,
                          schedule=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps))
    return hist["loss"]


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


def near_boundary_points(probs: np.ndarray, axes: Sequence[np.ndarray], k: int, spacing: float = 0.5) -> torch.Tensor:
    """``k`` grid points of a 2-D grid where the top two class probabilities of ``probs`` [H, W, K] are
    closest (points where CERTIFY is expected to abstain), at least ``spacing`` apart. Returns [k', 2] float64, k' <= k."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    gap = (top2[..., 1] - top2[..., 0]).ravel()
    pts = _grid_points(axes)
    chosen: list[np.ndarray] = []
    for i in np.argsort(gap, kind="stable"):
        if all(np.linalg.norm(pts[i] - c) >= spacing for c in chosen):
            chosen.append(pts[i])
        if len(chosen) == check_count("k", k):
            break
    return torch.tensor(np.array(chosen), dtype=torch.float64).reshape(-1, 2)
