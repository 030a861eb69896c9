"""Noise families for randomized smoothing: one interface, three distributions.

Every family is parameterised by ``sigma``, the per-coordinate **standard deviation**
(> 0), so that a Gaussian, a Laplace and a uniform smoother with the same ``sigma``
add noise of the same energy ``E||u||^2 = d sigma^2``.

=========  =====================================  ======  =====================================
family     density of one coordinate u            norm    certified radius at p = p_A lower bound
=========  =====================================  ======  =====================================
Gaussian   N(0, sigma^2)                          l2      sigma * Phi^-1(p)           (Cohen et al. 2019)
Laplace    exp(-|u|/lam) / (2 lam), lam=sigma/√2  l1      -lam * log(2 (1 - p))       (Teng et al. 2020)
Uniform    U[-a, a],  a = √3 sigma                l1      2 a (p - 1/2)               (Yang et al. 2020)
=========  =====================================  ======  =====================================

All radii are 0 where ``p <= 1/2`` (the smoothed classifier abstains there). The radius
holds for the top class whenever ``p`` is a valid lower bound of its probability: the
runner-up is then bounded by ``1 - p``, which is how CERTIFY uses it.

Sampling: ``sample`` fills a tensor with the family's ``_fill`` hook; large CPU draws go
through the fast sampler of :mod:`lib.smoothing._sampler` (same law, same noise on any machine).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch
from scipy.stats import norm as _std_normal

from lib.smoothing import _sampler
from lib.utils import check_sigma

__all__ = ["NoiseDistribution", "Gaussian", "Laplace", "Uniform", "LogitGaussian", "make_noise", "NOISES"]


def _as_array(p):
    """(numpy array of p, function mapping a numpy result back to p's type)."""
    if isinstance(p, torch.Tensor):
        dev, dt = p.device, (p.dtype if p.is_floating_point() else torch.float64)
        return p.detach().cpu().double().numpy(), lambda r: torch.as_tensor(r, dtype=dt, device=dev)
    if np.ndim(p) == 0:
        return np.asarray(p, dtype=float), lambda r: float(r)
    return np.asarray(p, dtype=float), lambda r: r


def _check_budget(n, alpha):
    """n >= 1 samples and alpha in (0, 1), scalars or arrays; ValueError naming the bad one."""
    if np.any(np.asarray(n, dtype=float) < 1):
        raise ValueError(f"n must be >= 1, got {n}")
    a = np.asarray(alpha, dtype=float)
    if np.any(~((a > 0) & (a < 1))):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return n, alpha


class NoiseDistribution(ABC):
    """A product distribution q(u) = prod_i q1(u_i) with per-coordinate std ``sigma``.

    Subclasses implement ``_fill`` (an in-place draw at this sigma), ``_radius``, ``log_density`` and
    ``grad_log_density``; everything else is shared.
    """

    #: the norm in which ``radius`` certifies ("l2" or "l1")
    norm: str = ""
    name: str = ""

    def __init__(self, sigma: float):
        self.sigma = check_sigma(sigma)

    # ------------------------------------------------------------------ sampling
    def sample(self, shape: Sequence[int] | torch.Size, generator: torch.Generator | None = None,
               device: str | torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw i.i.d. noise of the given ``shape`` on ``device``.

        ``generator`` (optional) must live on the same device as the output.
        """
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device} but noise is requested on {device}; "
                             "create the generator on the model's device")
        out = torch.empty(tuple(shape), device=device, dtype=dtype)
        _sampler.fill(self._fill, out.view(-1), generator)
        return out

    @abstractmethod
    def _fill(self, out: torch.Tensor, generator: torch.Generator | None) -> None:
        """Fill the contiguous tensor ``out`` in place with i.i.d. draws at this sigma, using only
        ``generator`` for randomness (it may run in a worker thread on one part of a draw)."""

    # ------------------------------------------------------------------ certificates
    def radius(self, p_lower):
        """Certified radius (in ``self.norm``) for a lower bound ``p_lower`` of p_A.

        Elementwise over arrays/tensors; 0 where ``p_lower <= 1/2``; a float for a float.
        """
        p, back = _as_array(p_lower)
        if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
            raise ValueError("p_lower must lie in [0, 1]")
        r = np.zeros_like(p, dtype=float)
        mask = p > 0.5
        if np.any(mask):
            r[mask] = self._radius(p[mask])
        return back(r if r.ndim else r[()])

    @abstractmethod
    def _radius(self, p: np.ndarray) -> np.ndarray:
        """Radius for p in (1/2, 1] (numpy, elementwise)."""

    def max_radius(self, n: int, alpha: float) -> float:
        """The largest radius CERTIFY can return with n samples at level alpha (all n votes
        for the top class): ``radius(alpha ** (1/n))``."""
        n, alpha = _check_budget(n, alpha)
        return self.radius(alpha ** (1.0 / n))

    # ------------------------------------------------------------------ likelihood
    @abstractmethod
    def log_density(self, u: torch.Tensor) -> torch.Tensor:
        """log q(u) summed over all but the first (batch) dimension: [B, ...] -> [B]."""

    @abstractmethod
    def grad_log_density(self, u: torch.Tensor) -> torch.Tensor:
        """∇_u log q(u), same shape as u (the likelihood term of the MAP denoiser, Lee eq. 4-6).

        For the uniform family the gradient is 0 inside the support and the support is
        enforced by :meth:`project` instead.
        """

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Project a clean-image estimate ``x`` onto {x : q(y - x) > 0}. Identity here."""
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma:g})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.sigma == other.sigma

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.sigma))


class Gaussian(NoiseDistribution):
    """u ~ N(0, sigma^2 I). Certificate: l2 radius sigma * Phi^-1(p) (Cohen et al., Thm 1)."""

    norm = "l2"
    name = "gaussian"

    def _fill(self, out, generator):
        # the scale is applied inside the normal kernel: one pass over memory instead of two
        out.normal_(0.0, self.sigma, generator=generator)

    def _radius(self, p):
        return self.sigma * _std_normal.ppf(p)

    def max_radius(self, n, alpha):
        """The largest radius CERTIFY can return with n samples at level alpha (all n votes
        for the top class): ``radius(alpha ** (1/n))``, computed as sigma * Phi^-1(1 - q) with
        q = -expm1(log(alpha) / n) to keep precision for n up to 1e15. Elementwise over
        arrays (broadcast); a float for scalars."""
        n, alpha = _check_budget(n, alpha)
        q = -np.expm1(np.log(np.asarray(alpha, dtype=float)) / np.asarray(n, dtype=float))
        r = np.where(q < 0.5, self.sigma * _std_normal.isf(q), 0.0)
        return float(r) if r.ndim == 0 else r

    def radius_l1(self, p_lower):
        """An l1 certificate from the l2 one: ||d||_2 <= ||d||_1, so the l1 ball of the same
        radius lies inside the certified l2 ball (used to compare Gaussian with l1 smoothers)."""
        return self.radius(p_lower)

    def log_density(self, u):
        d = u[0].numel()
        return (-0.5 * u.flatten(1).pow(2).sum(1) / self.sigma**2
                - d * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi)))

    def grad_log_density(self, u):
        return -u / self.sigma**2


class Laplace(NoiseDistribution):
    """u_i ~ Laplace(0, lam), lam = sigma / √2. Certificate: l1 radius -lam log(2(1-p))."""

    norm = "l1"
    name = "laplace"

    @property
    def scale(self) -> float:
        return self.sigma / math.sqrt(2.0)

    def _fill(self, out, generator):
        # inverse CDF from one uniform: v ~ U[-1/2, 1/2), |u| = -log(1 - 2|v|) ~ Exp(1) with the
        # sign of v; dividing by √2 gives std 1, and the final mul_ std sigma (one uniform draw per
        # coordinate). The clamp maps the single lattice point
        # v = -1/2 (probability 2^-24 in float32) to the largest finite magnitude instead of infinity.
        v = out.uniform_(generator=generator).sub_(0.5)
        sign = torch.sign(v)
        tiny = torch.finfo(out.dtype).eps / 2
        v.abs_().mul_(-2.0).add_(1.0).clamp_min_(tiny).log_().mul_(-self.sigma / math.sqrt(2.0)).mul_(sign)

    def _radius(self, p):
        return -self.scale * np.log(2.0 * (1.0 - p))

    def log_density(self, u):
        d = u[0].numel()
        return -u.flatten(1).abs().sum(1) / self.scale - d * math.log(2 * self.scale)

    def grad_log_density(self, u):
        return -torch.sign(u) / self.scale


class Uniform(NoiseDistribution):
    """u_i ~ U[-a, a], a = √3 sigma. Certificate: l1 radius 2 a (p - 1/2) (Yang et al.)."""

    norm = "l1"
    name = "uniform"

    @property
    def half_width(self) -> float:
        return math.sqrt(3.0) * self.sigma

    def _fill(self, out, generator):
        out.uniform_(generator=generator).mul_(2 * math.sqrt(3.0)).sub_(math.sqrt(3.0)).mul_(self.sigma)

    def _radius(self, p):
        return 2.0 * self.half_width * (p - 0.5)

    def log_density(self, u):
        d = u[0].numel()
        inside = (u.flatten(1).abs() <= self.half_width).all(1)
        out = torch.full(inside.shape, -d * math.log(2 * self.half_width), dtype=u.dtype, device=u.device)
        return out.masked_fill(~inside, -math.inf)

    def grad_log_density(self, u):
        return torch.zeros_like(u)

    def project(self, x, y):
        """Clip x to the box [y - a, y + a], where the likelihood q(y - x) is positive."""
        a = self.half_width
        return torch.maximum(torch.minimum(x, y + a), y - a)


class LogitGaussian(Gaussian):
    """Gaussian smoothing of a *linear* classifier f(x) = W vec(x) + b, sampled in logit space.

    f(x + u) = f(x) + W u with u ~ N(0, sigma^2 I_d), and W u ~ N(0, sigma^2 W W^T): a K-dimensional
    Gaussian. So the votes argmax f(x + u) have exactly the law of argmax(f(x) + sigma L z),
    z ~ N(0, I_K), L L^T = W W^T (a square root from the eigendecomposition, valid for a singular
    W W^T too): K floats per noisy sample instead of d (MNIST: 10 instead of 784). Use it as the
    noise of ``Smooth(torch.nn.Identity(), K, LogitGaussian(sigma, W))`` and certify the clean logits
    ``f(x)`` [B, K]: the certificate is the input-space one (l2 radius sigma Phi^-1(p_A), ``sigma``
    the input-space std), since the votes have the same distribution.

    weight: [K, d] tensor (``nn.Linear.weight``). ``sample(shape)`` needs ``shape[-1] == K``.
    """

    name = "gaussian"

    def __init__(self, sigma: float, weight: torch.Tensor):
        super().__init__(sigma)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            raise TypeError("weight must be a floating-point tensor [K, d] (the linear layer's weight)")
        w = weight.detach().double()
        if not torch.isfinite(w).all():
            raise ValueError("weight holds non-finite values")
        evals, evecs = torch.linalg.eigh(w @ w.T)
        self._root = (evecs * evals.clamp_min(0).sqrt()).T.contiguous()  # R with R^T R = W W^T
        self.num_classes = int(w.shape[0])

    def sample(self, shape, generator=None, device=None, dtype=torch.float32):
        """sigma L z for z ~ N(0, I_K) along the last dimension (of size K): [..., K]."""
        shape = tuple(shape)
        if not shape or shape[-1] != self.num_classes:
            raise ValueError(f"logit-space noise has last dimension K = {self.num_classes}, got shape {shape}")
        z = Gaussian(self.sigma).sample(shape, generator=generator, device=device, dtype=dtype)
        return z @ self._root.to(device=z.device, dtype=dtype)

    def log_density(self, u):
        raise NotImplementedError("LogitGaussian is a sampling path for certification only")

    def grad_log_density(self, u):
        raise NotImplementedError("LogitGaussian is a sampling path for certification only")

    def __eq__(self, other) -> bool:
        return other is self

    __hash__ = object.__hash__


NOISES = {"gaussian": Gaussian, "laplace": Laplace, "uniform": Uniform}


def make_noise(name: str, sigma: float) -> NoiseDistribution:
    """``make_noise("laplace", 0.5)`` -> ``Laplace(0.5)``."""
    try:
        return NOISES[name.lower()](sigma)
    except KeyError:
        raise ValueError(f"noise must be one of {sorted(NOISES)}, got {name!r}") from None
