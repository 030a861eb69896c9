"""Input and output checks shared by ``Smooth`` and sequential certification.

Each check raises a ``TypeError`` / ``ValueError`` naming the problem (shape, dtype, device,
non-finite values, too much work) before any noise is drawn, or names the pipeline stage whose
output is malformed.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lib.utils import check_finite

#: the label returned when the smoothed classifier abstains
ABSTAIN = -1
#: one call (all inputs, n0 + n votes each) may draw at most this many noisy samples unless
#: ``allow_large=True`` (10^4 inputs at Cohen et al.'s n = 10^5)
MAX_SAMPLES = 10**9
#: calls drawing more noisy samples than this show a progress bar (``progress=None``)
PROGRESS_SAMPLES = 10**7
#: no draw of any noise family exceeds this many sigma in magnitude: sigma * NOISE_SPAN + max|x|
#: must be finite in the input's dtype
NOISE_SPAN = 64.0


def first_param(fn, buffers: bool = True) -> torch.Tensor | None:
    """The first parameter (or, with ``buffers``, buffer) of an nn.Module, else None."""
    if isinstance(fn, nn.Module):
        for t in fn.parameters():
            return t
        for t in fn.buffers() if buffers else ():
            return t
    return None


def same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_generator(generator, device=None):
    """None or a torch.Generator (on ``device``'s type when given)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__} "
                        "(seed one with torch.Generator(device).manual_seed(seed))")
    if device is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but noise is drawn on {device}; "
                         "create the generator on the model's device")


def check_work(samples: int, allow_large: bool, limit: int = MAX_SAMPLES):
    """Refuse a call drawing more than ``limit`` noisy samples unless ``allow_large``."""
    if samples > limit and not allow_large:
        raise ValueError(f"this call would draw {samples:.3g} noisy samples, more than MAX_SAMPLES = "
                         f"{limit:.0e} (hours to weeks of work); split the inputs or n, or pass "
                         "allow_large=True")


def check_all_finite(stage, what, t):
    """ValueError naming ``stage`` when ``t`` holds a NaN or inf (a NaN row would vote for class 0)."""
    # a finite sum proves every entry finite; only an overflowing sum takes the exact check
    if math.isfinite(t.sum().item()):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"the {stage} returned non-finite {what} (NaN or inf): a NaN row would vote for class 0; "
                         f"check the {stage}'s weights and inputs (sigma too large?)")


def check_scores(stage, what, scores, rows, num_classes):
    """``scores`` must be a finite [rows, num_classes] tensor."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != rows:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"{stage} must return {what} of shape [batch, num_classes]; got {shape}")
    if scores.shape[1] != num_classes:
        raise ValueError(f"{stage} output has width {scores.shape[1]} but num_classes={num_classes}")
    check_all_finite(stage, what, scores)


def check_inputs(smooth, xs, name, generator=None) -> torch.Tensor:
    """Check a batch xs [B, *input_shape] for ``smooth`` (a ``Smooth``) and return it on its device.

    Type, shape, dtype, device, finiteness and overflow of x + noise are checked, then the whole
    pipeline runs once on one clean input so that a failing stage is named before any sampling."""
    if not isinstance(xs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(xs).__name__}")
    if not xs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {xs.dtype}")
    if xs.dim() < 2 or xs.shape[0] == 0:
        raise ValueError(f"{name} must have shape [B, *input_shape] with B >= 1, got {tuple(xs.shape)}")
    if smooth.input_shape is not None and tuple(xs.shape[1:]) != smooth.input_shape:
        raise ValueError(f"{name} has input shape {tuple(xs.shape[1:])}, expected {smooth.input_shape}")
    check_generator(generator, smooth.device)
    p = first_param(smooth.classifier, buffers=False)  # buffers may be constants of another dtype
    if p is not None and p.is_floating_point() and p.dtype != xs.dtype:
        raise TypeError(f"{name} has dtype {xs.dtype} but the classifier's parameters are {p.dtype}; "
                        f"convert the inputs ({name}.to({p.dtype}))")
    if xs.device != smooth.device:
        try:
            xs = xs.to(smooth.device)
        except (RuntimeError, NotImplementedError) as err:
            raise ValueError(f"{name} is on {xs.device} and cannot be copied to the model's device "
                             f"{smooth.device}: {err}") from None
    check_finite(name, xs)
    span = smooth.noise.sigma * NOISE_SPAN + float(xs.abs().max())
    if not span < torch.finfo(xs.dtype).max:
        raise ValueError(f"sigma = {smooth.noise.sigma:g} overflows {xs.dtype}: noisy inputs would not be "
                         f"finite (|x| + {NOISE_SPAN:g} sigma > {torch.finfo(xs.dtype).max:.3g})")
    probe(smooth, xs[:1])
    return xs


def probe(smooth, x1):
    """Run the whole pipeline of ``smooth`` once on one clean input [1, *input_shape]: shape, dtype and
    NaN errors surface before any sampling, naming the stage that failed."""
    def call(stage, fn, batch):
        try:
            return fn(batch)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"the {stage} failed on a clean input of shape {tuple(batch.shape)} "
                             f"({batch.dtype}, {batch.device}): {err}. Inputs must be [B, *input_shape]; "
                             "pass input_shape= to Smooth to have shapes checked up front") from err
    with torch.no_grad(), smooth.mode():
        smooth.votes(x1, call)
