"""Randomized smoothing: Cohen et al.'s PREDICT and CERTIFY, batched over many inputs.

The smoothed classifier of a base classifier f under noise q is

    g(x) = argmax_c P_{u ~ q}( f(D(x + u)) = c ),

where D is an optional denoiser (denoised smoothing, Salman et al. 2020; Lee 2021) or the
identity. With p_A a lower bound on the top-class probability, g is constant on the ball
of radius ``noise.radius(p_A)`` in ``noise.norm`` (Gaussian: l2, Laplace/uniform: l1).
With a rejector h (Sheikholeslami et al. 2021) the base classifier gets a reject class R that
g never returns; CERTIFY then uses their Theorem 3.1 (:mod:`lib.smoothing.certificates`).

Guarantees (over the Monte-Carlo draws, for every input x): CERTIFY returns a class c and
radius R > 0 that are wrong with probability at most alpha; PREDICT returns a class other than
g(x) with probability at most alpha. Input checks are in :mod:`lib.smoothing._checks`, the
batch sizes and out-of-memory recovery in :mod:`lib.smoothing._batching`.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Callable

import numpy as np
import torch
from torch import nn

from lib.smoothing import _batching, _sound
from lib.smoothing._batching import MEMORY_FRACTION, default_batch_size, rows_for_memory
from lib.smoothing._checks import (ABSTAIN, MAX_SAMPLES, PROGRESS_SAMPLES, check_all_finite, check_generator,
                                   check_inputs, check_scores, check_work, first_param, same_device)
from lib.smoothing.certificates import make_certificate
from lib.smoothing.noise import Gaussian, NoiseDistribution
from lib.smoothing.decision import certify_decisions
from lib.smoothing.sequential import certify_sequential
from lib.smoothing.stats import binomial_pvalue
from lib.utils import conv_layers, channels_last, check_alpha, check_count, progress_bar

__all__ = ["ABSTAIN", "Smooth", "default_batch_size", "rows_for_memory", "MEMORY_FRACTION", "MAX_SAMPLES",
           "PROGRESS_SAMPLES"]


class Smooth:
    """A smoothed classifier g built from a base classifier, a noise family and an optional denoiser.

    Parameters
    ----------
    classifier : callable, batch [B, *input_shape] -> logits [B, num_classes]
        Put into ``eval()`` mode when it is an ``nn.Module``.
    num_classes : int
    noise : lib.smoothing.NoiseDistribution
        Gaussian, Laplace or Uniform; noise is added in input space.
    denoiser : callable or None, noisy batch [B, *input_shape] -> denoised batch (same shape)
        Applied to every noisy batch before the classifier. A denoiser that needs autograd
        (e.g. the gradient of an energy model) sets ``requires_grad = True`` as an attribute;
        the batch is then run under ``torch.no_grad`` rather than ``inference_mode``.
    rejector : callable or None, batch [B, *input_shape] -> reject logits [B, num_classes]
        One head per class (Sheikholeslami et al. eq. 1): a sample whose classifier prediction
        is k is rejected (votes R) when its logit of head k is > 0. It sees the same batch as the
        classifier (the denoised one when a denoiser is set, eq. 3). Gaussian noise only.
    device : torch device, optional
        Where noise is drawn and counted; defaults to the classifier's parameters' device.
        Inputs on another device are copied here (as Cohen et al.'s ``x.cuda()``); modules whose
        parameters live elsewhere are refused.
    input_shape : tuple, optional
        If given, inputs of any other shape are rejected up front. If not, any [B, *shape] with
        B >= 1 is accepted that the pipeline accepts: it is run once on one clean input, and a
        failure there (e.g. a 5-D batch for a 4-D convnet) is a ValueError naming the stage and
        the shape.
    grid : int or None
        Inputs lie on the grid Z / grid (255 for the data of :mod:`lib.data`): smooth the base
        classifier composed with rounding to that grid and draw each noisy copy's grid cell exactly
        from fair bits (:mod:`lib.smoothing._sound`), so certificates stay sound in floating point.
        None (default): float32 noise added in float32, sound in exact arithmetic only.

    Counts (``sample_counts``) have ``num_outcomes`` columns: the K classes, plus the reject
    class R as column K when a rejector is set.
    """

    def __init__(self, classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 noise: NoiseDistribution, denoiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 rejector: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device: str | torch.device | None = None, input_shape: tuple | None = None,
                 grid: int | None = None):
        if not callable(classifier):
            raise TypeError("classifier must be callable: batch [B, *input_shape] -> logits [B, num_classes]")
        self.num_classes = check_count("num_classes", num_classes, minimum=2)
        if not isinstance(noise, NoiseDistribution):
            raise TypeError(f"noise must be a lib.smoothing.NoiseDistribution, got {type(noise).__name__}")
        for name, fn in (("denoiser", denoiser), ("rejector", rejector)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if rejector is not None and not isinstance(noise, Gaussian):
            raise ValueError(f"a rejector is defined for Gaussian noise only (Theorem 3.1 is an l2 result), "
                             f"got {noise!r}")
        self.classifier, self.noise, self.denoiser, self.rejector = classifier, noise, denoiser, rejector
        self.num_outcomes = self.num_classes + (rejector is not None)
        for fn in (classifier, denoiser, rejector):
            if isinstance(fn, nn.Module):
                fn.eval()
        if device is None:
            device = first_param(classifier).device if first_param(classifier) is not None else torch.device("cpu")
        self.device = torch.device(device)
        for name, fn in (("classifier", classifier), ("denoiser", denoiser), ("rejector", rejector)):
            p = first_param(fn)
            if p is not None and not same_device(p.device, self.device):
                raise ValueError(f"the {name}'s parameters are on {p.device} but device={self.device}; "
                                 f"move the {name} there (.to(device)) or pass device={str(p.device)!r}")
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.grid = None if grid is None else _sound.check_grid(grid)
        if self.grid is not None:
            _sound.cell_table(noise, self.grid)  # ValueError for a family it cannot serve
        self._max_rows: int | None = None  # rows per pipeline call, halved after an out-of-memory error
        # the pipeline's convolutions, found once: cache-sized CPU calls, and their layout inside a call
        self._conv_layers = conv_layers(classifier, denoiser, rejector)
        self._memory_rows: dict = {}  # memory_batch_size per input shape
        self._evaluated: tuple[int, int] | None = None  # inputs whose votes are computed (evaluating())

    # ------------------------------------------------------------------ public API
    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int | None = None,
                generator: torch.Generator | None = None, *, allow_large: bool = False) -> int:
        """PREDICT: the top class of n noisy votes, or ABSTAIN unless a two-sided binomial test
        of the top two counts rejects equality at level alpha (reject votes never count:
        Sheikholeslami et al.'s Algorithm 1).

        x: [*input_shape]. Returns a class other than g(x) with probability <= alpha.
        """
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        xs = check_inputs(self, x.unsqueeze(0) if isinstance(x, torch.Tensor) else x, "x", generator)
        check_work(n, allow_large, MAX_SAMPLES)
        counts = self.sample_counts(xs, n, batch_size, generator)[0, :self.num_classes].cpu()
        top2 = torch.topk(counts, 2)
        n_a, n_b = int(top2.values[0]), int(top2.values[1])
        if n_a + n_b == 0 or binomial_pvalue(n_a, n_a + n_b, 0.5) > alpha:
            return ABSTAIN
        return int(top2.indices[0])

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None,
                generator: torch.Generator | None = None, **options) -> tuple[int, float]:
        """CERTIFY one input x: [*input_shape] -> (class or ABSTAIN, radius in ``noise.norm``).
        ``options`` are those of :meth:`certify_batch` (``two_sided``, ``allow_large``)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if self.input_shape is not None and tuple(x.shape) == (1,) + self.input_shape:
            raise ValueError(f"certify takes one input [*input_shape] = {self.input_shape}, got a batch "
                             f"{tuple(x.shape)}; use certify_batch for batches")
        preds, radii = self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, generator, **options)[:2]
        return int(preds[0]), float(radii[0])

    @_batching.fixed_draws
    def certify_batch(self, xs: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None,
                      generator: torch.Generator | None = None, *, two_sided: bool = False,
                      return_counts: bool = False, allow_large: bool = False, progress: bool | None = None):
        """CERTIFY many inputs at once, each with its own independent draws.

        For each x_i of xs [B, *input_shape]: n0 noisy votes select the candidate c_A (never
        the reject class); n fresh votes give the counts, and the certificate
        (:func:`lib.smoothing.certificates.make_certificate`) turns them into a radius:
        by default the one-sided (1 - alpha) Clopper-Pearson bound p_A and ``noise.radius(p_A)``
        (Cohen et al.); abstain when the radius is <= 0.

        two_sided : bound p_B by its own upper bound, alpha split in halves (Cohen's Theorem 1;
            Laplace and uniform forms in :class:`lib.smoothing.certificates.TwoSided`).
        With a rejector: Theorem 3.1, bounds on p_A and p_{A+R} at alpha/2 each.
        return_counts : also return ``{"n_a": LongTensor[B], "n_r": LongTensor[B]}`` (votes for
            c_A and, with a rejector, for R among the n) as a third element, for logs.
        allow_large : permit more than ``MAX_SAMPLES`` noisy samples in this call.
        progress : show a progress bar (None: when the call draws > ``PROGRESS_SAMPLES``).

        Returns (predictions LongTensor[B] with ABSTAIN = -1, radii float64 Tensor[B]) on the CPU.
        """
        n0 = check_count("n0", n0)
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        certificate = make_certificate(self.noise, self.rejector is not None, bool(two_sided))
        xs = check_inputs(self, xs, "xs", generator)
        check_work(xs.shape[0] * (n0 + n), allow_large, MAX_SAMPLES)
        if progress is None:
            progress = xs.shape[0] * (n0 + n) > PROGRESS_SAMPLES
        candidates = self.select(xs, n0, batch_size, generator, progress=progress)
        counts = self.sample_counts(xs, n, batch_size, generator, progress=progress).cpu().numpy()
        certified, radii = certificate.certify(counts, candidates, n, alpha)
        preds = torch.as_tensor(np.where(certified, candidates, ABSTAIN), dtype=torch.long)
        out = (preds, torch.as_tensor(radii, dtype=torch.float64))
        if not return_counts:
            return out
        extra = {"n_a": torch.as_tensor(np.take_along_axis(counts, candidates[:, None], 1)[:, 0])}
        if self.rejector is not None:
            extra["n_r"] = torch.as_tensor(counts[:, -1])
        return out + (extra,)

    def certify_sequential(self, xs: torch.Tensor, n0: int, n_max: int, alpha: float, targets=None,
                           batch_size: int | None = None, generator: torch.Generator | None = None, **options):
        """Sequential CERTIFY with an anytime-valid bound: see :func:`lib.smoothing.sequential.certify_sequential`.

        Returns (preds LongTensor[B], radii float64 Tensor[B], samples LongTensor[B]).
        """
        return certify_sequential(self, xs, n0, n_max, alpha, targets, batch_size, generator, **options)

    def certify_decisions(self, xs: torch.Tensor, radii, n0: int, n_max: int, alpha: float,
                          batch_size: int | None = None, generator: torch.Generator | None = None, **options):
        """Decision-mode certification at the table ``radii``: see :func:`lib.smoothing.decision.certify_decisions`.

        Returns (preds LongTensor[B], largest certified table radius float64 Tensor[B], samples LongTensor[B]).
        """
        return certify_decisions(self, xs, radii, n0, n_max, alpha, batch_size, generator, **options)

    def select(self, xs: torch.Tensor, n0: int, batch_size: int | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> np.ndarray:
        """The candidate c_A of each input: the top class (never R) of n0 votes; int64 numpy [B]."""
        counts = self.sample_counts(xs, n0, batch_size, generator, progress=progress)
        return counts[:, :self.num_classes].argmax(1).cpu().numpy()

    @torch.no_grad()
    def sample_counts(self, xs: torch.Tensor, num: int, batch_size: int | None = None,
                      generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Votes of the base classifier on ``num`` noisy copies of each input.

        xs: [B, *input_shape]; returns LongTensor[B, num_outcomes] on ``self.device`` (column
        ``num_classes`` counts rejected samples when a rejector is set).
        A chunk holds at most ``batch_size`` noisy samples: whole groups of ``num`` copies of
        several inputs when ``num < batch_size`` (the clean inputs are broadcast, never
        copied), else consecutive slices of one input's ``num`` copies.
        """
        num = check_count("num", num)
        check_generator(generator)
        xs = xs.to(self.device)
        b, shape = xs.shape[0], tuple(xs.shape[1:])
        if batch_size is None:
            batch_size = default_batch_size(math.prod(shape), self.device)
            if self.device.type == "cuda":
                batch_size = min(batch_size, self.memory_batch_size(xs[0]))
        batch_size = check_count("batch_size", batch_size)
        counts = torch.zeros(b, self.num_outcomes, dtype=torch.long, device=self.device)
        per_chunk = max(1, batch_size // num)  # inputs per chunk (1 when num >= batch_size)
        own = self._evaluated
        bar = progress_bar(total=b * num, desc="noisy samples", disable=not progress)
        with self.mode(), bar:
            for i0 in range(0, b, per_chunk):
                group = xs[i0:i0 + per_chunk].unsqueeze(1)  # [m, 1, *shape]
                m = group.shape[0]
                skip = own is not None and (i0 + m <= own[0] or i0 >= own[1])  # drawn, not evaluated
                for s0 in range(0, num, batch_size):
                    s = min(batch_size, num - s0)  # = num when several inputs share a chunk
                    if self.grid is not None:
                        noisy = _sound.sound_noisy(self.noise, self.grid, group, s, generator)
                    else:
                        noisy = self.noise.sample((m, s) + shape, generator=generator, device=self.device,
                                                  dtype=xs.dtype)
                        if not skip:
                            noisy.add_(group)
                    if skip:
                        continue  # the generator advanced as in a whole call
                    votes = self._votes_fitting(noisy.view((m * s,) + shape)).view(m, s)
                    counts[i0:i0 + m].scatter_add_(1, votes, torch.ones_like(votes))
                    bar.update(m * s)
        return counts

    @contextmanager
    def evaluating(self, lo: int, hi: int):
        """Inside, :meth:`sample_counts` runs the pipeline only on chunks holding one of the inputs
        ``lo..hi-1`` of its ``xs``: the noise of every input is still drawn, in the same chunks, so the
        generator advances exactly as in a whole call and the evaluated chunks hold the same rows; the
        other inputs' counts stay 0. For a certify function whose draws do not depend on the votes
        (``certify_batch``), the rows ``lo..hi-1`` of its result are those of the whole call: this is how
        :class:`lib.smoothing.ProcessExecutor` splits one block's inputs between processes."""
        if not 0 <= int(lo) < int(hi):
            raise ValueError(f"evaluating needs 0 <= lo < hi, got lo={lo}, hi={hi}")
        old, self._evaluated = self._evaluated, (int(lo), int(hi))
        try:
            yield self
        finally:
            self._evaluated = old

    def memory_batch_size(self, x: torch.Tensor, probe: int = 64, free_bytes: float | None = None) -> int:
        """Noisy samples per pipeline call that fit in the device's free memory (the default chunk on
        the CPU): :func:`lib.smoothing._batching.memory_batch_size`."""
        return _batching.memory_batch_size(self, x, probe, free_bytes)

    # ------------------------------------------------------------------ the base classifier's votes
    def votes(self, batch: torch.Tensor, call=None) -> torch.Tensor:
        """Votes in 0..num_outcomes-1 of f_R(D(batch)) for a batch [rows, *shape]: LongTensor[rows].

        ``call(stage, fn, batch)`` runs one stage (the input probe wraps it to name a failing stage)."""
        call = call or (lambda stage, fn, arg: fn(arg))
        rows = batch.shape[0]
        if self.denoiser is not None:
            shape = batch.shape
            batch = call("denoiser", self.denoiser, batch)
            if not isinstance(batch, torch.Tensor) or batch.shape != shape:
                got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
                raise ValueError(f"denoiser must return a batch of its input's shape {tuple(shape)}; got {got}")
            check_all_finite("denoiser", "outputs", batch)
        logits = call("classifier", self.classifier, batch)
        check_scores("classifier", "logits", logits, rows, self.num_classes)
        votes = logits.argmax(1)
        if self.rejector is not None:
            reject = call("rejector", self.rejector, batch)
            check_scores("rejector", "reject logits", reject, rows, self.num_classes)
            rejected = reject.gather(1, votes[:, None])[:, 0] > 0  # head f(x) decides (eq. 1)
            votes = votes.masked_fill(rejected, self.num_classes)
        return votes

    @contextmanager
    def mode(self):
        """The context of pipeline calls: inference mode unless the denoiser needs autograd, and on the
        CPU convolution weights in channels-last layout (:func:`lib.utils.channels_last`: faster, the
        same votes)."""
        grad = self.denoiser is not None and getattr(self.denoiser, "requires_grad", False)
        # with a gradient-needing denoiser: already under no_grad; the denoiser enables grad itself
        with channels_last(*self._conv_layers, device=self.device), \
                (nullcontext() if grad else torch.inference_mode()):
            yield

    def _votes_fitting(self, batch: torch.Tensor) -> torch.Tensor:
        return _batching.votes_fitting(self, batch)
