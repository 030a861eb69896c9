"""The sound sampler for inputs on a grid: exact cell noise from fair bits (Voráček & Hein 2023).

Randomized smoothing is proved for exact noise and exact addition; in float32 the noise is a
discrete law on floats and the sum is rounded, and a base classifier can read that rounding
(Voráček & Hein, "Sound randomized smoothing in floating-point arithmetic", ICLR 2023,
arXiv 2207.07209, the counterexamples). For inputs on the grid ``Z / q`` (image bytes / 255) the remedy
(their sound procedure for quantized inputs) is to smooth the base classifier composed with rounding to the grid,

    h(y) = f(G(round(q y))),    G(k) = float32(k / q)  (any fixed function of the integer k),

which is a base classifier like any other, so Cohen's (and Teng's, Yang's) certificates hold for
the smoothed h *in exact arithmetic*. The only random quantity h needs is the integer cell
``round(q (x + u))`` of each coordinate, and its law is known in closed form: with
``q x = j + o`` (j an integer, o the offset, 0 on the grid) the cell is ``j + k`` where

    P(k) = F((k + 1/2 - o) / q) - F((k - 1/2 - o) / q),    F the noise's one-coordinate CDF.

This module draws k exactly from fair bits: a 31-bit uniform word U per coordinate is compared
with ``floor(2^31 F_m)`` (a table computed in 256-bit arithmetic by mpmath); a word equal to a
table entry (probability about 2^-19 per coordinate) draws further 63-bit words and decides in
arbitrary precision (F by mpmath with 256 guard bits). So the votes are exact draws of the
smoothed h at x, and the certificate is sound whatever f computes in floating point, given fair
bits from the generator.

It serves every family whose CDF mpmath evaluates: Gaussian, Laplace, Uniform. It cannot serve
:class:`lib.smoothing.noise.LogitGaussian` (its votes are drawn in logit space, which assumes the
classifier is linear in x + u; composed with rounding it is not).
"""
from __future__ import annotations

import threading

import mpmath
import torch

from lib.smoothing import _sampler
from lib.smoothing.noise import Gaussian, Laplace, LogitGaussian, Uniform

__all__ = ["cell_table", "grid_index", "sound_noisy", "MAX_OFFSETS", "check_grid"]

#: bits of one uniform word of the fast path (torch's int32 ``random_`` draws 31 fair bits)
WORD = 31
#: bits of each further word that decides a tie (torch's int64 ``random_``: 63 fair bits)
EXTRA = 63
#: precision (bits) of the CDF table
PREC = 256
#: distinct offsets (q x - round(q x)) one call may hold; grid inputs have one (0)
MAX_OFFSETS = 16

_lock = threading.Lock()
_tables: dict = {}


def check_grid(grid) -> int:
    """The grid denominator q: an int in [1, 2^16]; ValueError otherwise."""
    if isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= 1 << 16:
        raise ValueError(f"grid must be an int q in [1, 65536] (inputs on Z / q, e.g. 255 for bytes / 255), got {grid!r}")
    return grid


def _cdf(noise):
    """The one-coordinate CDF of ``noise`` in mpmath (exact up to the working precision)."""
    s = mpmath.mpf(noise.sigma)
    if isinstance(noise, LogitGaussian):
        raise ValueError("the sound sampler cannot serve LogitGaussian: logit-space votes assume a classifier "
                         "linear in x + u, and the grid rounding makes it non-linear; use Gaussian noise")
    if type(noise) is Gaussian:
        return lambda t: mpmath.ncdf(t / s)
    if type(noise) is Laplace:
        b = s / mpmath.sqrt(2)
        return lambda t: mpmath.exp(t / b) / 2 if t < 0 else 1 - mpmath.exp(-t / b) / 2
    if type(noise) is Uniform:
        a = mpmath.sqrt(3) * s
        return lambda t: min(mpmath.mpf(1), max(mpmath.mpf(0), (t + a) / (2 * a)))
    raise ValueError(f"the sound sampler serves Gaussian, Laplace and Uniform noise, got {noise!r}")


def _boundary(noise, q: int, offset: float, m: int):
    """F_m = P(k <= m) = F((m + 1/2 - offset) / q), in mpmath at the current precision."""
    return _cdf(noise)((mpmath.mpf(m) + mpmath.mpf(0.5) - mpmath.mpf(offset)) / q)


def cell_table(noise, q: int, offset: float = 0.0) -> tuple[int, torch.Tensor]:
    """``(m0, T)``: T[i] = floor(2^31 P(k <= m0 + i)) as int32, from the last m with T = 0 to the
    first with T = 2^31 - 1 (cached per noise, q, offset). k is the cell offset of one coordinate."""
    key = (type(noise).__name__, float(noise.sigma), q, float(offset))
    with _lock:
        if key in _tables:
            return _tables[key]
    with mpmath.workprec(PREC):
        top = mpmath.mpf(2) ** WORD

        def entry(m):
            return min(int(mpmath.floor(_boundary(noise, q, offset, m) * top)), (1 << WORD) - 1)

        lo = -1
        while entry(lo) > 0:
            lo *= 2
        hi = 1
        while entry(hi) < (1 << WORD) - 1:
            hi *= 2
        # the last m with T = 0 and the first with T = 2^63 - 1 (T is non-decreasing in m)
        a, b = lo, 0
        while b - a > 1:
            c = (a + b) // 2
            a, b = (c, b) if entry(c) == 0 else (a, c)
        m0 = a
        a, b = m0, hi
        while b - a > 1:
            c = (a + b) // 2
            a, b = (a, c) if entry(c) == (1 << WORD) - 1 else (c, b)
        m1 = b
        if max(-m0, m1) + q > 1 << 23:
            raise ValueError(f"{noise!r} spreads over more than 2^23 cells of the grid Z / {q}: its cells are not "
                             "exact in float32; use a coarser grid or a smaller sigma")
        table = torch.tensor([entry(m) for m in range(m0, m1 + 1)], dtype=torch.int32)
    with _lock:
        _tables[key] = (m0, table)
    return m0, table


def _resolve(noise, q: int, offset: float, word: int, generator) -> int:
    """The cell k for a word equal to a table entry: extend the uniform V = 0.U W... with further
    fair words until one m has F_{m-1} <= V < F_m for every V left (exact comparisons)."""
    num, bits = int(word), WORD
    while True:
        device = generator.device if generator is not None else "cpu"
        extra = int(torch.empty(1, dtype=torch.int64, device=device).random_(generator=generator).item())
        num, bits = (num << EXTRA) | extra, bits + EXTRA
        with mpmath.workprec(bits + PREC):
            lo = mpmath.mpf(num) / mpmath.mpf(2) ** bits
            hi = mpmath.mpf(num + 1) / mpmath.mpf(2) ** bits

            def first(pred):  # smallest m with pred(F_m), F non-decreasing
                a = -1
                while pred(_boundary(noise, q, offset, a)):
                    a *= 2
                b = 1
                while not pred(_boundary(noise, q, offset, b)):
                    b *= 2
                while b - a > 1:
                    c = (a + b) // 2
                    a, b = (a, c) if pred(_boundary(noise, q, offset, c)) else (c, b)
                return b

            certain = first(lambda f: hi <= f)  # V < F_m for every V in [lo, hi)
            possible = first(lambda f: lo < f)  # below it, F_m <= lo <= V
            if certain == possible:
                return certain


def grid_index(x: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(j, o)``: j = round(q x) (int64) and the offset o = q x - j (float64), with o = 0 where x
    is the grid point j / q as its own dtype stores it (float32(j / q) for the bytes / 255 of
    :mod:`lib.data`): such an x encodes the real point j / q, which is the point certified.

    x: floating tensor (binary fractions, so q x is exact in float64 for float32 x, q <= 2^16)."""
    qx = x.double() * q
    j = torch.round(qx)
    on_grid = j.to(x.dtype) / q == x
    return j.long(), torch.where(on_grid, torch.zeros_like(qx), qx - j)


#: bits of a word's top part that index the bucket table of :func:`_buckets`
BUCKET_BITS = 16
_bucket_cache: dict = {}


def _buckets(noise, q: int, offset: float, device) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m0, T, first, crowded)`` for a fast search: bucket b holds the words with top
    ``BUCKET_BITS`` bits b; ``first[b]`` is the number of entries of T below the bucket and
    ``crowded[b]`` whether more than one entry lies inside it (then a binary search decides)."""
    key = (type(noise).__name__, float(noise.sigma), q, float(offset), str(device))
    if key not in _bucket_cache:
        m0, table = cell_table(noise, q, offset)
        starts = torch.arange(1 << BUCKET_BITS, dtype=torch.int64) << (WORD - BUCKET_BITS)
        wide = table.long()
        first = torch.searchsorted(wide, starts - 1, right=True)
        last = torch.searchsorted(wide, starts + ((1 << (WORD - BUCKET_BITS)) - 1), right=True)
        padded = torch.cat([table, table[-1:]])  # T[first] is read for a bucket above every entry too
        _bucket_cache[key] = (m0, padded.to(device), first.int().to(device), (last - first > 1).to(device))
    return _bucket_cache[key]


def _cells(noise, q: int, offset: float, words: torch.Tensor, generator) -> torch.Tensor:
    """The cell offsets k (int32) for fair 31-bit ``words`` (int32, any shape): the smallest m with V < F_m, where
    V = 0.U... is uniform on [0, 1); words equal to a table entry are decided by :func:`_resolve`."""
    m0, table, first, crowded = _buckets(noise, q, offset, words.device)
    flat = words.reshape(-1)
    bucket = flat >> (WORD - BUCKET_BITS)
    i = first.index_select(0, bucket)
    entry = table.index_select(0, i)
    tie = (flat == entry).view_as(words)
    i.sub_(entry.sub_(flat).sub_(1).bitwise_right_shift_(WORD))  # + 1 where word >= entry (sign of entry - word - 1)
    i = i.view_as(words)
    hard = crowded.index_select(0, bucket).view_as(words)
    if bool(hard.any()):
        w = words[hard]
        j = torch.searchsorted(table[:-1], w, right=True)
        i[hard] = j.int()
        tie[hard] = w == table[(j - 1).clamp_min(0)]
    k = i.add_(m0)
    if bool(tie.any()):
        for pos in tie.nonzero().tolist():
            pos = tuple(pos)
            k[pos] = _resolve(noise, q, offset, int(words[pos]), generator)
    return k


def sound_noisy(noise, q: int, group: torch.Tensor, s: int, generator: torch.Generator | None) -> torch.Tensor:
    """``s`` noisy copies of each input of ``group`` [m, 1, *shape] as the grid rounding sees them:
    float32(cell / q) with cell = round(q (x + u)) drawn exactly; returns [m, s, *shape] (group's dtype)."""
    m, shape = group.shape[0], tuple(group.shape[2:])
    j, offset = grid_index(group, q)
    offsets = torch.unique(offset)
    if offsets.numel() > MAX_OFFSETS:
        raise ValueError(f"the sound sampler needs inputs on the grid Z / {q} (or with at most {MAX_OFFSETS} "
                         f"distinct offsets from it); these have {offsets.numel()} distinct offsets")
    words = torch.empty((m, s) + shape, dtype=torch.int32, device=group.device)
    _sampler.fill(lambda piece, g: piece.random_(generator=g), words.view(-1), generator)
    if offsets.numel() == 1:
        cells = _cells(noise, q, float(offsets[0]), words, generator)
    else:
        cells = torch.empty_like(words)
        for o in offsets.tolist():
            mask = (offset == o).expand_as(words)
            cells[mask] = _cells(noise, q, o, words[mask], generator)
    cells.add_(j.int())  # broadcast over the s copies (|cell| < 2^24: exact in float32)
    return (cells.to(torch.float32) / q).to(group.dtype)
