"""Nanoseconds per float of CPU noise samplers: the alternatives weighed for lib.smoothing.noise.

Every candidate fills the same float32 buffer of ``--floats`` floats (default 2^18: one CPU
chunk of CERTIFY, 334 MNIST images) with N(0, sigma^2) draws:

* ``torch, 1 stream``           -- ``Tensor.normal_`` on one torch CPU generator (the former sampler)
* ``lib (parts in threads)``    -- ``lib.smoothing.Gaussian.sample``: parts of ``PART`` floats, each
                                   from its own seeded twister stream, filled in a thread pool
* ``numpy <bitgen>, 1 stream``  -- ``np.random.Generator(bitgen).standard_normal(dtype=float32, out=...)``
                                   (ziggurat; releases the GIL), scaled by sigma
* ``numpy SFC64, per-part seeds, threads`` -- the same cut into parts, each seeded from a SeedSequence
* ``torch, per-part manual_seed, threads`` -- parts seeded with ``manual_seed`` (32-bit seeds only:
                                   kept as a speed reference, not usable: seeds collide in long runs)

and the Laplace and uniform families through ``lib`` against their single-stream fill. Rounds
alternate the candidates; the minimum and the median over ``--rounds`` are reported. On a
shared machine, report the load (``os.getloadavg``) with the figures, as this script does.

Usage: ``python benchmarks/bench_sampler.py [--floats N] [--threads T] [--rounds R]``; writes
``outputs/benchmarks/sampler.json`` and ``sampler.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib import paths  # noqa: E402
from lib.reporting import markdown_table  # noqa: E402
from lib.smoothing import Gaussian, Laplace, Uniform  # noqa: E402
from lib.smoothing._sampler import PART  # noqa: E402
from lib.utils import atomic_write_json, atomic_write_text  # noqa: E402

SIGMA = 0.5


def candidates(numel: int, threads: int) -> dict:
    """name -> a function drawing ``numel`` floats (each call a fresh draw)."""
    out = torch.empty(numel)
    arr = out.numpy()
    parts = -(-numel // PART)
    pieces_t = [out[i * PART:(i + 1) * PART] for i in range(parts)]
    pieces_n = [arr[i * PART:(i + 1) * PART] for i in range(parts)]
    pool = ThreadPoolExecutor(threads)
    g = torch.Generator().manual_seed(0)
    counter = iter(range(1 << 62))

    def np_parts():
        key = next(counter)

        def fill(i):
            r = np.random.Generator(np.random.SFC64(np.random.SeedSequence([key, i])))
            r.standard_normal(dtype=np.float32, out=pieces_n[i])
            pieces_n[i] *= np.float32(SIGMA)
        list(pool.map(fill, range(parts)))

    def torch_parts():
        key = next(counter)
        list(pool.map(lambda i: pieces_t[i].normal_(0.0, SIGMA, generator=torch.Generator().manual_seed(key * parts + i)),
                      range(parts)))

    cands = {"torch, 1 stream": lambda: out.normal_(0.0, SIGMA, generator=g),
             "lib Gaussian (parts in threads)": lambda: Gaussian(SIGMA).sample((numel,), generator=g)}
    for bg in (np.random.PCG64, np.random.SFC64, np.random.Philox):
        rg = np.random.Generator(bg(0))
        cands[f"numpy {bg.__name__}, 1 stream"] = (
            lambda rg=rg: np.multiply(rg.standard_normal(dtype=np.float32, out=arr), np.float32(SIGMA), out=arr))
    cands["numpy SFC64, per-part seeds, threads"] = np_parts
    cands["torch, per-part manual_seed, threads (32-bit seeds)"] = torch_parts
    for cls in (Laplace, Uniform):
        noise = cls(SIGMA)
        cands[f"{cls.__name__}: 1 stream"] = lambda noise=noise: noise._fill(out, g)
        cands[f"{cls.__name__}: lib (parts in threads)"] = lambda noise=noise: noise.sample((numel,), generator=g)
    return cands


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--floats", type=int, default=1 << 18)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=40, help="draws per timing")
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load0 = os.getloadavg()
    cands = candidates(args.floats, threads)
    times = {k: [] for k in cands}
    for fn in cands.values():
        fn()
    for _ in range(args.rounds):
        for k, fn in cands.items():
            t0 = time.perf_counter()
            for _ in range(args.reps):
                fn()
            times[k].append((time.perf_counter() - t0) / args.reps / args.floats * 1e9)
    base = float(np.median(times["torch, 1 stream"]))
    rows = {k: {"min ns/float": round(min(v), 2), "median ns/float": round(float(np.median(v)), 2),
                "speed vs torch 1 stream (median)": round(base / float(np.median(v)), 2)} for k, v in times.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    info = {"floats": args.floats, "part": PART, "threads": threads, "cpus": os.cpu_count(), "rounds": args.rounds,
            "load_before": load0, "load_after": os.getloadavg(), "torch": torch.__version__, "numpy": np.__version__}
    out = Path(args.out)
    atomic_write_json(out / "sampler.json", {"info": info, "results": rows})
    md = markdown_table(table) + f"\n\n{info}\n"
    atomic_write_text(out / "sampler.md", md)
    print(md)
    return table


if __name__ == "__main__":
    main()
