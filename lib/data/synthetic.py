"""Synthetic data with closed forms: Gaussian data and mixtures of Gaussians (isotropic components).

:class:`GaussianData` and :class:`GaussianMixture` have exact normalised densities, densities of the
noisy ``Y = X + N(0, sigma^2 I)`` and scores ``grad_y log p_sigma(y)``, for the theory notebooks
and tests.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lib.utils import check_count

__all__ = ["GaussianData", "GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


def _as_param(name: str, value, ndim: int | tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if t.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimension(s), "
                         f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


class _GaussianFamily:
    """Shared machinery: a mixture ``sum_k w_k N(m_k, sigma0^2 I)`` (K = 1 for GaussianData)."""

    means: torch.Tensor    # [K, d] float64
    weights: torch.Tensor  # [K] float64
    sigma0: float

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    # -- argument checks
    def _check_points(self, y, name: str) -> torch.Tensor:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape [n, {self.dim}], got "
                            f"{type(y).__name__}")
        if y.ndim != 2 or y.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape [n, {self.dim}], got {tuple(y.shape)}")
        return y if y.is_floating_point() else y.to(torch.get_default_dtype())

    def _check_noise(self, sigma, y: torch.Tensor) -> torch.Tensor:
        """sigma -> tensor [n] (float, 0-d tensor, or per-example [n] / [n, 1]); >= 0, finite."""
        n = y.shape[0]
        if isinstance(sigma, torch.Tensor):
            s = sigma.to(dtype=y.dtype, device=y.device)
            if s.ndim == 2 and s.shape[1] == 1:
                s = s[:, 0]
            if s.ndim == 0:
                s = s.expand(n)
            elif s.ndim != 1 or s.shape[0] != n:
                raise ValueError(f"sigma must be a number or a tensor of shape [{n}], got "
                                 f"shape {tuple(sigma.shape)}")
            if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
                raise ValueError("sigma must be finite and >= 0 for every example")
            return s
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)):
            raise TypeError(f"sigma must be a real number or a tensor, got {type(sigma).__name__}")
        if not math.isfinite(float(sigma)) or float(sigma) < 0:
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
        return torch.full((n,), float(sigma), dtype=y.dtype, device=y.device)

    # -- densities
    def _logits(self, y: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """[n, K]: log w_k + log N(y; m_k, var I) for each component."""
        m = self.means.to(dtype=y.dtype, device=y.device)
        logw = self.weights.to(dtype=y.dtype, device=y.device).log()
        sq = (y[:, None, :] - m[None, :, :]).pow(2).sum(-1)
        return logw - 0.5 * sq / var[:, None] - 0.5 * self.dim * (_LOG_2PI + var.log())[:, None]

    def smoothed_log_density(self, y: torch.Tensor, sigma) -> torch.Tensor:
        """``log p_sigma(y)``, the exact normalised log density of ``Y = X + N(0, sigma^2 I)``
        at the rows of ``y`` ``[n, d]``; ``sigma`` a number or a tensor ``[n]`` (>= 0)."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        return torch.logsumexp(self._logits(y, var), dim=1)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Exact normalised ``log p(x)`` of the data distribution, ``[n]``."""
        return self.smoothed_log_density(self._check_points(x, "x"), 0.0)

    def posterior(self, y: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """``P(component k | Y = y)`` under noise level ``sigma``: ``[n, K]`` (rows sum to 1);
        its argmax is the Bayes-optimal classifier of :meth:`GaussianMixture.sample_labeled`."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        return torch.softmax(self._logits(y, var), dim=1)

    def score(self, y: torch.Tensor, sigma) -> torch.Tensor:
        """``grad_y log p_sigma(y)`` in closed form, ``[n, d]``:
        ``(sum_k r_k(y) m_k - y) / (sigma0^2 + sigma^2)`` with ``r = posterior(y, sigma)``."""
        y = self._check_points(y, "y")
        var = self.sigma0 ** 2 + self._check_noise(sigma, y) ** 2
        r = torch.softmax(self._logits(y, var), dim=1)
        m = self.means.to(dtype=y.dtype, device=y.device)
        return (r @ m - y) / var[:, None]

    # -- sampling
    def _sample(self, n, generator, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        n = check_count("n", n)
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        dtype = dtype or torch.get_default_dtype()
        w = self.weights.to(device=device)
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        x = self.means.to(dtype=dtype, device=device)[k] + self.sigma0 * eps
        return x, k.long()

    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """``n`` i.i.d. draws, ``[n, d]`` (default dtype, the generator's device)."""
        return self._sample(n, generator, dtype, device)[0]

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean ``[d]`` and covariance ``[d, d]`` of the data distribution (float64)."""
        w, m = self.weights, self.means
        mean = w @ m
        centred = m - mean
        cov = self.sigma0 ** 2 * torch.eye(self.dim, dtype=torch.float64) \
            + (centred * w[:, None]).T @ centred
        return mean, cov


class GaussianData(_GaussianFamily):
    """``X ~ N(mean, sigma0^2 I)`` in ``dim`` dimensions (mean 0 by default)."""

    def __init__(self, dim: int, sigma0: float, mean=None):
        dim = check_count("dim", dim)
        self.sigma0 = _check_sigma0(sigma0)
        mean = torch.zeros(dim, dtype=torch.float64) if mean is None else _as_param("mean", mean, 1)
        if mean.shape[0] != dim:
            raise ValueError(f"mean must have shape [{dim}], got {tuple(mean.shape)}")
        self.mean = mean
        self.means = mean[None, :]
        self.weights = torch.ones(1, dtype=torch.float64)

    def __repr__(self) -> str:
        return f"GaussianData(dim={self.dim}, sigma0={self.sigma0})"


class GaussianMixture(_GaussianFamily):
    """``sum_k w_k N(m_k, sigma0^2 I)``.

    ``mu`` of shape ``[d]`` (or a number, d = 1): the symmetric two-component mixture
    ``0.5 N(mu, sigma0^2 I) + 0.5 N(-mu, sigma0^2 I)`` (Saremi & Srivastava, §2.2.1), with
    component 0 at ``+mu``. ``mu`` of shape ``[K, d]``: general means, with ``weights``
    ``[K]`` (non-negative, summing to 1; uniform by default).
    """

    def __init__(self, mu, sigma0: float, weights=None):
        self.sigma0 = _check_sigma0(sigma0)
        mu = _as_param("mu", mu, (0, 1, 2))
        if mu.ndim == 0:
            mu = mu[None]
        means = torch.stack([mu, -mu]) if mu.ndim == 1 else mu
        if means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"mu must be non-empty, got shape {tuple(mu.shape)}")
        K = means.shape[0]
        if weights is None:
            w = torch.full((K,), 1.0 / K, dtype=torch.float64)
        else:
            w = _as_param("weights", weights, 1)
            if w.shape[0] != K:
                raise ValueError(f"weights must have shape [{K}], got {tuple(w.shape)}")
            if bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
                raise ValueError(f"weights must be >= 0 and sum to 1, got {w.tolist()}")
            w = w / w.sum()
        self.means, self.weights = means, w
        self.mu = mu

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    def sample_labeled(self, n: int, generator: torch.Generator | None = None,
                       dtype: torch.dtype | None = None, device=None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [n, d], component LongTensor [n])``: a K-class classification toy."""
        return self._sample(n, generator, dtype, device)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.num_components}, dim={self.dim}, sigma0={self.sigma0})"


def _check_sigma0(sigma0) -> float:
    if isinstance(sigma0, torch.Tensor):
        sigma0 = sigma0.item()
    if isinstance(sigma0, bool) or not isinstance(sigma0, (int, float, np.integer, np.floating)):
        raise TypeError(f"sigma0 must be a real number, got {type(sigma0).__name__}")
    if not math.isfinite(float(sigma0)) or float(sigma0) <= 0:
        raise ValueError(f"sigma0 must be finite and > 0, got {sigma0}")
    return float(sigma0)
