"""Randomized smoothing: Cohen et al.'s PREDICT and CERTIFY, batched over many inputs.

The smoothed classifier of a base classifier f under noise q is

    g(x) = argmax_c P_{u ~ q}( f(D(x + u)) = c ),

where D is an optional denoiser (denoised smoothing, Salman et al. 2020; Lee 2021) or the
identity. With p_A a lower bound on the top-class probability, g is constant on the ball
of radius ``noise.radius(p_A)`` in ``noise.norm`` (Gaussian: l2, Laplace/uniform: l1).

Guarantees (over the randomness of the Monte-Carlo draws, for every input x):

* CERTIFY returns a class c and radius R > 0 that are *wrong* (g(x') != c for some x' in
  the ball, or g(x) != c) with probability at most alpha.
* PREDICT returns a class other than g(x) with probability at most alpha.

Speed: noise is drawn on the model's device, the base classifier runs under
``torch.inference_mode`` on chunks of at most ``batch_size`` noisy samples (whole groups of
copies of several inputs, or slices of one input's copies), and the votes are counted on the
device with one ``scatter_add_`` per chunk.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
from torch import nn

from lib.smoothing.noise import NoiseDistribution
from lib.smoothing.stats import binomial_pvalue, lower_confidence_bound
from lib.utils import check_alpha, check_count, check_finite

__all__ = ["ABSTAIN", "Smooth", "default_batch_size"]

#: the label returned when the smoothed classifier abstains
ABSTAIN = -1

#: noisy-sample floats per chunk on the CPU (1 MB: the chunk and the activations stay in cache;
#: measured: denoisers run 1.5-2.5x faster at 256 MNIST images per call than at 2674)
_CPU_CHUNK_FLOATS = 1 << 18
#: ... and on a GPU, where bigger batches keep the device busy
_GPU_CHUNK_FLOATS = 1 << 26


def default_batch_size(input_numel: int, device: torch.device) -> int:
    """Noisy samples per classifier call: ~1 MB of inputs on the CPU, ~256 MB on a GPU."""
    budget = _GPU_CHUNK_FLOATS if device.type == "cuda" else _CPU_CHUNK_FLOATS
    return max(1, budget // max(1, input_numel))


class Smooth:
    """A smoothed classifier g built from a base classifier, a noise family and an optional denoiser.

    Parameters
    ----------
    classifier : callable, batch [B, *input_shape] -> logits [B, num_classes]
        Put into ``eval()`` mode when it is an ``nn.Module``.
    num_classes : int
    noise : lib.noise.NoiseDistribution
        Gaussian, Laplace or Uniform; noise is added in input space.
    denoiser : callable or None, noisy batch [B, *input_shape] -> denoised batch (same shape)
        Applied to every noisy batch before the classifier. A denoiser that needs autograd
        (e.g. the gradient of an energy model) sets ``requires_grad = True`` as an attribute;
        the batch is then run under ``torch.no_grad`` rather than ``inference_mode``.
    device : torch device, optional
        Where noise is drawn and counted; defaults to the classifier's parameters' device.
    input_shape : tuple, optional
        If given, inputs of any other shape are rejected.
    """

    def __init__(self, classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 noise: NoiseDistribution, denoiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device: str | torch.device | None = None, input_shape: tuple | None = None):
        if not callable(classifier):
            raise TypeError("classifier must be callable: batch [B, *input_shape] -> logits [B, num_classes]")
        self.num_classes = check_count("num_classes", num_classes, minimum=2)
        if not isinstance(noise, NoiseDistribution):
            raise TypeError(f"noise must be a lib.noise.NoiseDistribution, got {type(noise).__name__}")
        if denoiser is not None and not callable(denoiser):
            raise TypeError("denoiser must be callable or None")
        self.classifier, self.noise, self.denoiser = classifier, noise, denoiser
        if isinstance(classifier, nn.Module):
            classifier.eval()
        if device is None:
            params = list(classifier.parameters()) if isinstance(classifier, nn.Module) else []
            device = params[0].device if params else torch.device("cpu")
        self.device = torch.device(device)
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    # ------------------------------------------------------------------ public API
    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int | None = None,
                generator: torch.Generator | None = None) -> int:
        """PREDICT: the top class of n noisy votes, or ABSTAIN unless a two-sided binomial test
        of the top two counts rejects equality at level alpha.

        x: [*input_shape]. Returns a class other than g(x) with probability <= alpha.
        """
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        xs = self._check_inputs(x.unsqueeze(0) if isinstance(x, torch.Tensor) else x, "x")
        counts = self.sample_counts(xs, n, batch_size, generator)[0].cpu()
        top2 = torch.topk(counts, 2)
        n_a, n_b = int(top2.values[0]), int(top2.values[1])
        if binomial_pvalue(n_a, n_a + n_b, 0.5) > alpha:
            return ABSTAIN
        return int(top2.indices[0])

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None,
                generator: torch.Generator | None = None) -> tuple[int, float]:
        """CERTIFY one input x: [*input_shape] -> (class or ABSTAIN, radius in ``noise.norm``)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        preds, radii = self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, generator)
        return int(preds[0]), float(radii[0])

    def certify_batch(self, xs: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """CERTIFY many inputs at once, each with its own independent draws.

        For each x_i of xs [B, *input_shape]: n0 noisy votes select the candidate class c_A;
        n fresh votes give n_A, and the one-sided (1 - alpha) Clopper-Pearson bound p_A on
        P(f(x_i + u) = c_A) gives the radius ``noise.radius(p_A)``; abstain when p_A <= 1/2.

        Returns (predictions LongTensor[B] with ABSTAIN = -1, radii float64 Tensor[B]) on the CPU.
        """
        n0 = check_count("n0", n0)
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        xs = self._check_inputs(xs, "xs")
        candidates = self.sample_counts(xs, n0, batch_size, generator).argmax(1)
        counts = self.sample_counts(xs, n, batch_size, generator)
        n_a = counts.gather(1, candidates[:, None])[:, 0].cpu().numpy()
        p_a = np.atleast_1d(lower_confidence_bound(n_a, n, alpha))
        radii = np.atleast_1d(self.noise.radius(p_a))
        certified = p_a > 0.5
        preds = np.where(certified, candidates.cpu().numpy(), ABSTAIN)
        return torch.as_tensor(preds, dtype=torch.long), torch.as_tensor(np.where(certified, radii, 0.0))

    @torch.no_grad()
    def sample_counts(self, xs: torch.Tensor, num: int, batch_size: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Votes of the base classifier on ``num`` noisy copies of each input.

        xs: [B, *input_shape]; returns LongTensor[B, num_classes] on ``self.device``.
        A chunk holds at most ``batch_size`` noisy samples: whole groups of ``num`` copies of
        several inputs when ``num < batch_size`` (the clean inputs are broadcast, never
        copied), else consecutive slices of one input's ``num`` copies.
        """
        num = check_count("num", num)
        xs = xs.to(self.device)
        b, shape, k = xs.shape[0], tuple(xs.shape[1:]), self.num_classes
        if batch_size is None:
            batch_size = default_batch_size(math.prod(shape), self.device)
        batch_size = check_count("batch_size", batch_size)
        counts = torch.zeros(b, k, dtype=torch.long, device=self.device)
        per_chunk = max(1, batch_size // num)  # inputs per chunk (1 when num >= batch_size)
        with self._mode():
            for i0 in range(0, b, per_chunk):
                group = xs[i0:i0 + per_chunk].unsqueeze(1)  # [m, 1, *shape]
                m = group.shape[0]
                for s0 in range(0, num, batch_size):
                    s = min(batch_size, num - s0)  # = num when several inputs share a chunk
                    noisy = self.noise.sample((m, s) + shape, generator=generator, device=self.device,
                                              dtype=xs.dtype)
                    noisy = noisy.add_(group).view((m * s,) + shape)
                    if self.denoiser is not None:
                        noisy = self.denoiser(noisy)
                    logits = self.classifier(noisy)
                    self._check_logits(logits, m * s)
                    votes = logits.argmax(1).view(m, s)
                    counts[i0:i0 + m].scatter_add_(1, votes, torch.ones_like(votes))
        return counts

    # ------------------------------------------------------------------ helpers
    def _mode(self):
        if self.denoiser is not None and getattr(self.denoiser, "requires_grad", False):
            return nullcontext()  # already under no_grad; the denoiser enables grad itself
        return torch.inference_mode()

    def _check_logits(self, logits, rows):
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != rows:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"classifier must return logits of shape [batch, num_classes]; got {shape}")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"classifier output has width {logits.shape[1]} but num_classes={self.num_classes}")

    def _check_inputs(self, xs, name):
        if not isinstance(xs, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(xs).__name__}")
        if not xs.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {xs.dtype}")
        if xs.dim() < 2 or xs.shape[0] == 0:
            raise ValueError(f"{name} must have shape [B, *input_shape] with B >= 1, got {tuple(xs.shape)}")
        if self.input_shape is not None and tuple(xs.shape[1:]) != self.input_shape:
            raise ValueError(f"{name} has input shape {tuple(xs.shape[1:])}, expected {self.input_shape}")
        check_finite(name, xs)
        # probe the classifier once on a clean input: wrong widths fail before any sampling
        with torch.inference_mode():
            self._check_logits(self.classifier(xs[:1].to(self.device)), 1)
        return xs
