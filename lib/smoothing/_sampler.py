"""The fast CPU sampler: a large draw cut into parts, each filled by its own twister stream.

Torch's CPU generator (Mersenne twister) is sequential, so a CPU draw of more than ``PART``
floats is cut into parts of ``PART`` floats, each filled by its own stream in a thread pool (one
thread per torch thread). The streams are a function of ``generator`` alone: one call draws a
124-bit key from ``generator``, and part ``i`` gets a full 19,968-bit twister state expanded from
the key by NumPy's Philox generator. The parts are fixed by the size of the draw, never by the
thread count, so the same generator state gives the same noise on any machine. Every part is an
exact i.i.d. draw of the family's law.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

__all__ = ["PART", "fill"]

#: floats per independently seeded part of a large CPU draw (fixed: the noise must not depend on
#: the thread count; one CPU chunk of CERTIFY, 2^18 floats, makes two parts)
PART = 1 << 17


class _Streams:
    """Seeded Mersenne-twister streams for the parts of one draw, and the pool that fills them."""

    _lock = threading.Lock()
    _pool: ThreadPoolExecutor | None = None
    _pool_key: tuple = ()
    _template: torch.Tensor | None = None
    _layout_ok: bool | None = None

    @classmethod
    def available(cls) -> bool:
        """Whether torch's CPU generator state has the layout written by :meth:`generators`
        (checked once against torch's own seeding; otherwise draws stay single-stream)."""
        if cls._layout_ok is None:
            g = torch.Generator().manual_seed(7)
            st = g.get_state().numpy()
            words = np.zeros(624, dtype=np.uint64)
            words[0] = 7
            for j in range(1, 624):  # the twister's init_genrand, as torch seeds it
                p = int(words[j - 1])
                words[j] = (1812433253 * (p ^ (p >> 30)) + j) & 0xFFFFFFFF
            cls._layout_ok = bool(st.size == 5056 and np.array_equal(st[24:24 + 624 * 8].view(np.uint64), words))
            cls._template = g.get_state()
        return cls._layout_ok

    @classmethod
    def generators(cls, generator: torch.Generator | None, parts: int) -> list[torch.Generator]:
        """``parts`` CPU generators with full random states expanded from a key drawn from ``generator``
        (624 words of Philox4x64 output keyed by 124 bits per call: states never repeat in practice)."""
        key = torch.randint(0, 1 << 62, (2,), generator=generator, dtype=torch.int64).numpy().astype(np.uint64)
        words = np.random.Philox(key=key).random_raw(312 * parts).view(np.uint32).reshape(parts, 624)
        states = np.tile(cls._template.numpy(), (parts, 1))
        states[:, 24:24 + 624 * 8].view(np.uint64)[:] = words
        states[:, 8:12].view(np.int32)[:] = 1  # left = 1: regenerate the twister before the first draw
        states[:, 16:24] = 0  # next = 0
        out = []
        for row in states:
            g = torch.Generator()
            g.set_state(torch.from_numpy(row))
            out.append(g)
        return out

    @classmethod
    def pool(cls, workers: int) -> ThreadPoolExecutor:
        """A thread pool of ``workers`` threads (rebuilt after a fork or a change of size)."""
        with cls._lock:
            key = (os.getpid(), workers)
            if cls._pool is None or cls._pool_key != key:
                cls._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noise")
                cls._pool_key = key
            return cls._pool


def fill(fill_part: Callable[[torch.Tensor, torch.Generator | None], None], flat: torch.Tensor,
         generator: torch.Generator | None) -> None:
    """Fill the contiguous 1-D tensor ``flat`` with ``fill_part(piece, generator)``: in one call on a
    GPU or for a small draw, else part by part, each part with its own stream (in threads)."""
    parts = -(-flat.numel() // PART)
    if flat.device.type != "cpu" or parts < 2 or not _Streams.available():
        fill_part(flat, generator)
        return
    gens = _Streams.generators(generator, parts)
    pieces = [flat[i * PART:(i + 1) * PART] for i in range(parts)]
    workers = min(parts, max(1, torch.get_num_threads()))
    if workers == 1:
        for piece, g in zip(pieces, gens):
            fill_part(piece, g)
        return
    mode = torch.is_inference_mode_enabled()  # thread-local: the workers must share the caller's

    def one(piece, g):
        with torch.inference_mode(mode):
            fill_part(piece, g)

    list(_Streams.pool(workers).map(one, pieces, gens))
