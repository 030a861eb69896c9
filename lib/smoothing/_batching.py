"""How many noisy samples one draw and one pipeline call take: a default chunk per device, a probe
of the pipeline's peak memory on a GPU, rows per call on the CPU, and halving after an out-of-memory
error.

The chunk (``batch_size``) fixes the draws; the pipeline then runs on the drawn chunk in calls of at
most :func:`lib.utils.rows_per_call` rows. The draws are made before the chunk is split, so they do
not depend on the rows per call; the votes do not either wherever the pipeline's float results do
not depend on the rows of a call (the project's pipelines in tests/test_memory.py and
benchmarks/bench_cpu.py; in a quick run one pipeline, the one-step denoiser with the CNN rejector
at sigma = 1, moved single votes, no table cell: docs/performance.md).
"""
from __future__ import annotations

import warnings

import torch

from lib.utils import rows_per_call

#: noisy-sample floats per chunk on the CPU (1 MB: the chunk and the activations stay in cache)
CPU_CHUNK_FLOATS = 1 << 18
#: ... and on a GPU, where bigger batches keep the device busy
GPU_CHUNK_FLOATS = 1 << 26
#: share of the free device memory one pipeline call (denoiser + classifier + rejector) may use
MEMORY_FRACTION = 0.5


#: attribute of a certify function whose draws do not depend on the votes (:func:`fixed_draws`)
FIXED_DRAWS = "fixed_draws"


def fixed_draws(certify):
    """Mark ``certify`` (a function called like ``Smooth.certify_batch``) as drawing the same noise
    whatever the votes: a fixed number per input, in the chunks of ``Smooth.sample_counts``, as CERTIFY
    does (not a sequential or decision-mode test, which stops an input by its counts). Such a block
    can be split between processes by inputs (``Smooth.evaluating``) with the rows of a whole call."""
    setattr(certify, FIXED_DRAWS, True)
    return certify


def has_fixed_draws(certify) -> bool:
    """Whether ``certify`` was marked by :func:`fixed_draws` (a bound method: its function)."""
    return bool(getattr(certify, FIXED_DRAWS, False))


def default_batch_size(input_numel: int, device: torch.device) -> int:
    """Noisy samples per classifier call: ~1 MB of inputs on the CPU, ~256 MB on a GPU.

    On a GPU, ``Smooth`` further caps it by :func:`rows_for_memory` of the whole pipeline."""
    budget = GPU_CHUNK_FLOATS if device.type == "cuda" else CPU_CHUNK_FLOATS
    return max(1, budget // max(1, input_numel))


def rows_for_memory(per_sample_bytes: float, free_bytes: float, fraction: float = MEMORY_FRACTION) -> int:
    """Noisy samples per pipeline call that fit in ``fraction`` of ``free_bytes``, given the peak
    memory of one sample through the pipeline (from :func:`memory_batch_size`)."""
    if not per_sample_bytes > 0 or not free_bytes > 0:
        raise ValueError(f"per-sample and free memory must be positive, got {per_sample_bytes}, {free_bytes}")
    return max(1, int(fraction * free_bytes // per_sample_bytes))


def memory_batch_size(smooth, x: torch.Tensor, probe: int = 64, free_bytes: float | None = None) -> int:
    """Noisy samples per pipeline call of ``smooth`` that fit in the device's free memory.

    Runs the pipeline once on ``probe`` copies of x [*input_shape], reads the peak memory per sample
    and sizes the call to ``MEMORY_FRACTION`` of the free memory (``free_bytes`` overrides the
    device's reading). Cached per input shape; on the CPU the default size."""
    key = (tuple(x.shape), x.dtype)
    if key in smooth._memory_rows:
        return smooth._memory_rows[key]
    if smooth.device.type != "cuda":
        return default_batch_size(x.numel(), smooth.device)
    torch.cuda.synchronize(smooth.device)
    base = torch.cuda.memory_allocated(smooth.device)
    torch.cuda.reset_peak_memory_stats(smooth.device)
    with smooth.mode():
        batch = x.to(smooth.device).expand((probe,) + tuple(x.shape)).clone()
        smooth.votes(batch)
    torch.cuda.synchronize(smooth.device)
    per_sample = max(1.0, (torch.cuda.max_memory_allocated(smooth.device) - base) / probe)
    free = torch.cuda.mem_get_info(smooth.device)[0] if free_bytes is None else free_bytes
    smooth._memory_rows[key] = rows_for_memory(per_sample, free)
    return smooth._memory_rows[key]


def votes_fitting(smooth, batch: torch.Tensor) -> torch.Tensor:
    """``smooth.votes`` of a drawn chunk [rows, *shape] in calls of at most
    :func:`lib.utils.rows_per_call` rows, split into halves (recursively) when the device runs out
    of memory; ``smooth._max_rows`` remembers the size that fits."""
    rows = smooth._max_rows or rows_per_call(batch[0].numel(), smooth.device, bool(smooth._conv_layers)) or batch.shape[0]
    try:
        if rows >= batch.shape[0]:  # the usual case: one call, no copy
            return smooth.votes(batch)
        return torch.cat([smooth.votes(batch[i:i + rows]) for i in range(0, batch.shape[0], rows)])
    except torch.OutOfMemoryError:
        if rows == 1:
            raise
        if smooth.device.type == "cuda":
            torch.cuda.empty_cache()
        smooth._max_rows = max(1, rows // 2)
        warnings.warn(f"out of memory at {rows} samples per call; continuing with {smooth._max_rows}")
        return votes_fitting(smooth, batch)
