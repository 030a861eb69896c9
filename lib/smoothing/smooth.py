"""Randomized smoothing: Cohen et al.'s PREDICT and CERTIFY, batched over many inputs.

The smoothed classifier of a base classifier f under noise q is

    g(x) = argmax_c P_{u ~ q}( f(D(x + u)) = c ),

where D is an optional denoiser (denoised smoothing, Salman et al. 2020; Lee 2021) or the
identity. With p_A a lower bound on the top-class probability, g is constant on the ball
of radius ``noise.radius(p_A)`` in ``noise.norm`` (Gaussian: l2, Laplace/uniform: l1).

With a rejector h (Sheikholeslami et al. 2021, sample rejection) the base classifier gets a
reject class R: f_R(y) = R when h_k(D(y)) > 0 for k = f(D(y)), else k; g never returns R and
CERTIFY uses Theorem 3.1 (lib.smoothing.certificates.WithRejection). How counts become a class
and a radius is one of the certificates of :mod:`lib.smoothing.certificates`; sequential
CERTIFY (:meth:`Smooth.certify_sequential`) is in :mod:`lib.smoothing.sequential`.

Guarantees (over the randomness of the Monte-Carlo draws, for every input x):

* CERTIFY returns a class c and radius R > 0 that are *wrong* (g(x') != c for some x' in
  the ball, or g(x) != c) with probability at most alpha.
* PREDICT returns a class other than g(x) with probability at most alpha.

Speed: noise is drawn on the model's device, the base classifier runs under
``torch.inference_mode`` on chunks of at most ``batch_size`` noisy samples (whole groups of
copies of several inputs, or slices of one input's copies), and the votes are counted on the
device with one ``scatter_add_`` per chunk.

Checks (each O(chunk), one device sync per chunk): logits, reject logits and denoised batches
must be finite, else a ValueError names the stage (a NaN row would otherwise vote for class 0);
one call may draw at most ``MAX_SAMPLES`` noisy samples unless ``allow_large=True``; calls
drawing more than ``PROGRESS_SAMPLES`` show a progress bar.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from lib.smoothing.certificates import make_certificate
from lib.smoothing.noise import Gaussian, NoiseDistribution
from lib.smoothing.stats import binomial_pvalue
from lib.utils import check_alpha, check_count, check_finite, progress_bar

__all__ = ["ABSTAIN", "Smooth", "default_batch_size", "rows_for_memory", "MEMORY_FRACTION", "MAX_SAMPLES", "PROGRESS_SAMPLES"]

#: the label returned when the smoothed classifier abstains
ABSTAIN = -1

#: noisy-sample floats per chunk on the CPU (1 MB: the chunk and the activations stay in cache;
#: measured: denoisers run 1.5-2.5x faster at 256 MNIST images per call than at 2674)
_CPU_CHUNK_FLOATS = 1 << 18
#: ... and on a GPU, where bigger batches keep the device busy
_GPU_CHUNK_FLOATS = 1 << 26
#: one call (all inputs, n0 + n votes each) may draw at most this many noisy samples unless
#: ``allow_large=True``. 10^9 is 10^4 inputs at Cohen's n = 10^5 (certify_dataset calls hold 16) and
#: ~40 min for the linear MNIST model on one core (~4e5 samples/s, measured); n = 10^12 would take a month
MAX_SAMPLES = 10**9
#: calls drawing more noisy samples than this show a progress bar (``progress=None``)
PROGRESS_SAMPLES = 10**7
#: no draw of any noise family exceeds this many sigma in magnitude (Gaussian < 9, Laplace < 27 in
#: float64): sigma * _NOISE_SPAN + max|x| must be finite in the input's dtype
_NOISE_SPAN = 64.0


def default_batch_size(input_numel: int, device: torch.device) -> int:
    """Noisy samples per classifier call: ~1 MB of inputs on the CPU, ~256 MB on a GPU.

    On a GPU, ``Smooth`` further caps it by :func:`rows_for_memory` of the whole pipeline."""
    budget = _GPU_CHUNK_FLOATS if device.type == "cuda" else _CPU_CHUNK_FLOATS
    return max(1, budget // max(1, input_numel))


#: share of the free device memory one pipeline call (denoiser + classifier + rejector) may use
MEMORY_FRACTION = 0.5


def rows_for_memory(per_sample_bytes: float, free_bytes: float, fraction: float = MEMORY_FRACTION) -> int:
    """Noisy samples per pipeline call that fit in ``fraction`` of ``free_bytes``, given the peak
    memory of one sample through the pipeline (measured by :meth:`Smooth.memory_batch_size`)."""
    if not per_sample_bytes > 0 or not free_bytes > 0:
        raise ValueError(f"per-sample and free memory must be positive, got {per_sample_bytes}, {free_bytes}")
    return max(1, int(fraction * free_bytes // per_sample_bytes))


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

    Counts (``sample_counts``) have ``num_outcomes`` columns: the K classes, plus the reject
    class R as column K when a rejector is set.
    """

    def __init__(self, classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 noise: NoiseDistribution, denoiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 rejector: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device: str | torch.device | None = None, input_shape: tuple | None = None):
        if not callable(classifier):
            raise TypeError("classifier must be callable: batch [B, *input_shape] -> logits [B, num_classes]")
        self.num_classes = check_count("num_classes", num_classes, minimum=2)
        if not isinstance(noise, NoiseDistribution):
            raise TypeError(f"noise must be a lib.noise.NoiseDistribution, got {type(noise).__name__}")
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
            device = _param(classifier).device if _param(classifier) is not None else torch.device("cpu")
        self.device = torch.device(device)
        for name, fn in (("classifier", classifier), ("denoiser", denoiser), ("rejector", rejector)):
            p = _param(fn)
            if p is not None and not _same_device(p.device, self.device):
                raise ValueError(f"the {name}'s parameters are on {p.device} but device={self.device}; "
                                 f"move the {name} there (.to(device)) or pass device={str(p.device)!r}")
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._max_rows: int | None = None  # rows per pipeline call, halved after an out-of-memory error
        self._memory_rows: dict = {}  # memory_batch_size per input shape

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
        xs = self._check_inputs(x.unsqueeze(0) if isinstance(x, torch.Tensor) else x, "x", generator)
        self._check_work(n, allow_large)
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
        xs = self._check_inputs(xs, "xs", generator)
        self._check_work(xs.shape[0] * (n0 + n), allow_large)
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
        from lib.smoothing.sequential import certify_sequential
        return certify_sequential(self, xs, n0, n_max, alpha, targets, batch_size, generator, **options)

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
        _check_generator(generator)
        xs = xs.to(self.device)
        b, shape = xs.shape[0], tuple(xs.shape[1:])
        if batch_size is None:
            batch_size = default_batch_size(math.prod(shape), self.device)
            if self.device.type == "cuda":
                batch_size = min(batch_size, self.memory_batch_size(xs[0]))
        batch_size = check_count("batch_size", batch_size)
        counts = torch.zeros(b, self.num_outcomes, dtype=torch.long, device=self.device)
        per_chunk = max(1, batch_size // num)  # inputs per chunk (1 when num >= batch_size)
        bar = progress_bar(total=b * num, desc="noisy samples", disable=not progress)
        with self._mode(), bar:
            for i0 in range(0, b, per_chunk):
                group = xs[i0:i0 + per_chunk].unsqueeze(1)  # [m, 1, *shape]
                m = group.shape[0]
                for s0 in range(0, num, batch_size):
                    s = min(batch_size, num - s0)  # = num when several inputs share a chunk
                    noisy = self.noise.sample((m, s) + shape, generator=generator, device=self.device,
                                              dtype=xs.dtype)
                    votes = self._votes_fitting(noisy.add_(group).view((m * s,) + shape)).view(m, s)
                    counts[i0:i0 + m].scatter_add_(1, votes, torch.ones_like(votes))
                    bar.update(m * s)
        return counts

    def memory_batch_size(self, x: torch.Tensor, probe: int = 64, free_bytes: float | None = None) -> int:
        """Noisy samples per pipeline call that fit in the device's free memory.

        Runs the whole pipeline (denoiser, classifier, rejector) once on ``probe`` noisy copies of
        x [*input_shape], reads the peak memory per sample, and sizes the call to
        ``MEMORY_FRACTION`` of the free memory (``free_bytes`` overrides the device's reading).
        Cached per input shape. On the CPU (no allocator statistics) it returns the default size.
        """
        key = (tuple(x.shape), x.dtype)
        if key in self._memory_rows:
            return self._memory_rows[key]
        if self.device.type != "cuda":
            return default_batch_size(x.numel(), self.device)
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        with self._mode():
            batch = x.to(self.device).expand((probe,) + tuple(x.shape)).clone()
            self._votes(batch)
        torch.cuda.synchronize(self.device)
        per_sample = max(1.0, (torch.cuda.max_memory_allocated(self.device) - base) / probe)
        free = torch.cuda.mem_get_info(self.device)[0] if free_bytes is None else free_bytes
        self._memory_rows[key] = rows_for_memory(per_sample, free)
        return self._memory_rows[key]

    # ------------------------------------------------------------------ helpers
    def _votes_fitting(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`_votes` of a drawn chunk, split into halves (recursively) when the device runs out
        of memory: the draws are already made, so the votes -- and the log -- do not change."""
        rows = self._max_rows or batch.shape[0]
        try:
            if rows >= batch.shape[0]:  # the usual case: one call, no copy
                return self._votes(batch)
            return torch.cat([self._votes(batch[i:i + rows]) for i in range(0, batch.shape[0], rows)])
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self._max_rows = max(1, rows // 2)
            warnings.warn(f"out of memory at {rows} samples per call; continuing with {self._max_rows}")
            return self._votes_fitting(batch)

    def _votes(self, batch: torch.Tensor, call=None) -> torch.Tensor:
        """Votes in 0..num_outcomes-1 of f_R(D(batch)) for a batch [rows, *shape]: LongTensor[rows].

        ``call(stage, fn, batch)`` runs one stage (the probe wraps it to name a failing stage)."""
        call = call or (lambda stage, fn, arg: fn(arg))
        rows = batch.shape[0]
        if self.denoiser is not None:
            shape = batch.shape
            batch = call("denoiser", self.denoiser, batch)
            if not isinstance(batch, torch.Tensor) or batch.shape != shape:
                got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
                raise ValueError(f"denoiser must return a batch of its input's shape {tuple(shape)}; got {got}")
            _check_all_finite("denoiser", "outputs", batch)
        logits = call("classifier", self.classifier, batch)
        self._check_scores("classifier", "logits", logits, rows)
        votes = logits.argmax(1)
        if self.rejector is not None:
            reject = call("rejector", self.rejector, batch)
            self._check_scores("rejector", "reject logits", reject, rows)
            rejected = reject.gather(1, votes[:, None])[:, 0] > 0  # head f(x) decides (eq. 1)
            votes = votes.masked_fill(rejected, self.num_classes)
        return votes

    def _mode(self):
        if self.denoiser is not None and getattr(self.denoiser, "requires_grad", False):
            return nullcontext()  # already under no_grad; the denoiser enables grad itself
        return torch.inference_mode()

    def _check_scores(self, stage, what, scores, rows):
        if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != rows:
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"{stage} must return {what} of shape [batch, num_classes]; got {shape}")
        if scores.shape[1] != self.num_classes:
            raise ValueError(f"{stage} output has width {scores.shape[1]} but num_classes={self.num_classes}")
        _check_all_finite(stage, what, scores)

    def _check_work(self, samples: int, allow_large: bool):
        if samples > MAX_SAMPLES and not allow_large:
            raise ValueError(f"this call would draw {samples:.3g} noisy samples, more than MAX_SAMPLES = "
                             f"{MAX_SAMPLES:.0e} (hours to weeks of work); split the inputs or n, or pass "
                             "allow_large=True")

    def _check_inputs(self, xs, name, generator=None):
        if not isinstance(xs, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(xs).__name__}")
        if not xs.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {xs.dtype}")
        if xs.dim() < 2 or xs.shape[0] == 0:
            raise ValueError(f"{name} must have shape [B, *input_shape] with B >= 1, got {tuple(xs.shape)}")
        if self.input_shape is not None and tuple(xs.shape[1:]) != self.input_shape:
            raise ValueError(f"{name} has input shape {tuple(xs.shape[1:])}, expected {self.input_shape}")
        _check_generator(generator, self.device)
        p = _param(self.classifier, buffers=False)  # buffers may be constants of another dtype
        if p is not None and p.is_floating_point() and p.dtype != xs.dtype:
            raise TypeError(f"{name} has dtype {xs.dtype} but the classifier's parameters are {p.dtype}; "
                            f"convert the inputs ({name}.to({p.dtype}))")
        if xs.device != self.device:
            try:
                xs = xs.to(self.device)
            except (RuntimeError, NotImplementedError) as err:
                raise ValueError(f"{name} is on {xs.device} and cannot be copied to the model's device "
                                 f"{self.device}: {err}") from None
        check_finite(name, xs)
        span = self.noise.sigma * _NOISE_SPAN + float(xs.abs().max())
        if not span < torch.finfo(xs.dtype).max:
            raise ValueError(f"sigma = {self.noise.sigma:g} overflows {xs.dtype}: noisy inputs would not be "
                             f"finite (|x| + {_NOISE_SPAN:g} sigma > {torch.finfo(xs.dtype).max:.3g})")
        self._probe(xs[:1])
        return xs

    def _probe(self, x1):
        """Run the whole pipeline once on one clean input: shape, dtype and NaN errors surface
        before any sampling, naming the stage that failed."""
        def call(stage, fn, batch):
            try:
                return fn(batch)
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                raise ValueError(f"the {stage} failed on a clean input of shape {tuple(batch.shape)} "
                                 f"({batch.dtype}, {batch.device}): {err}. Inputs must be [B, *input_shape]; "
                                 "pass input_shape= to Smooth to have shapes checked up front") from err
        with torch.no_grad(), self._mode():
            self._votes(x1, call)


def _param(fn, buffers: bool = True) -> torch.Tensor | None:
    """The first parameter (or, with ``buffers``, buffer) of an nn.Module, else None."""
    if isinstance(fn, nn.Module):
        for t in fn.parameters():
            return t
        for t in fn.buffers() if buffers else ():
            return t
    return None


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _check_generator(generator, device=None):
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__} "
                        "(seed one with torch.Generator(device).manual_seed(seed))")
    if device is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but noise is drawn on {device}; "
                         "create the generator on the model's device")


def _check_all_finite(stage, what, t):
    # fast path (~1 us per chunk): a NaN or inf anywhere makes the sum non-finite; a finite sum
    # proves every entry finite. Only an overflowing sum of finite entries takes the exact check.
    if math.isfinite(t.sum().item()):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"the {stage} returned non-finite {what} (NaN or inf): a NaN row would vote for class 0; "
                         f"check the {stage}'s weights and inputs (sigma too large?)")
