"""Noisy samples per second of CPU certification: rows per pipeline call, and processes per core.

**Rows per call.**
``Smooth.sample_counts`` draws the noise for a chunk of ``batch_size`` samples (on the CPU,
``lib.smoothing._batching.CPU_CHUNK_FLOATS`` of inputs: 334 MNIST images) and runs the pipeline
(denoiser, then classifier) on the drawn chunk in calls of at most ``rows`` samples
(``lib.utils.rows_per_call``: ``CPU_CALL_FLOATS`` of inputs for a convolutional pipeline, the
whole chunk otherwise). The draws do not depend on ``rows``, so the
votes must not either: this benchmark checks that the counts are identical for every ``rows``
and prints the throughput of each, and its ratio to one call per chunk (the whole drawn chunk).

**Layout.** On the CPU, pipeline calls run their 2-D convolutions with channels-last weights
(:func:`lib.utils.channels_last`); the benchmark measures each pipeline at its default rows per call
with and without (``lib.utils.CPU_CHANNELS_LAST``), and checks that the votes are identical.

**Score network.** For the score-driven pipelines (one-step, multi-step) the score network's
inference in two forms besides the eager default, measured alternately with it: ``torch.compile``
(TorchInductor's CPU code; its first call, which compiles, is timed apart) and bfloat16 autocast
(``torch.autocast("cpu", torch.bfloat16)``: fast only on a CPU with bfloat16 matrix units). Neither is
used by the companion: each is printed with its ratio to eager and how many of the votes it changed
(votes move when a float of the denoised image moves), so that the decision can be re-checked on
another machine or torch version.

**Processes.** ``certify_dataset`` on ``--blocks`` blocks of two points (n0 = 20, n = ``--proc-num``)
in one process with ``--threads`` torch threads (``SerialExecutor``) against ``--threads`` forked
processes of one thread each
(``ProcessExecutor``, what :func:`lib.smoothing.local_executor` picks for a CPU run of ``certify_batch``
of 10,000 samples or more; each block split by inputs, one point per process); the two
logs must be identical.

Pipelines: the quick profile's architectures (lib/profile_models.py), randomly initialised with a
fixed seed (throughput does not depend on the weights): the CNN classifier alone, the MSE DnCNN,
the one-step (Tweedie) and the multi-step (annealed MAP, L = 32) denoisers of the multi-scale
score network, each followed by the CNN; and notebook 04's g[π] (the DEEN's Bayes estimator, then
the linear classifier).

Usage: ``python benchmarks/bench_cpu.py [--threads N] [--points 2] [--num 668] [--repeats 3]
[--blocks 4] [--pipelines cnn,multi_step] [--no-variants]``; writes ``outputs/benchmarks/cpu.json`` and ``cpu.md``.
About five minutes on an idle 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib import paths  # noqa: E402
from lib.denoising import annealed_map, tweedie  # noqa: E402
from lib.denoising.denoise import NetworkDenoiser, _build_dncnn, mse_config  # noqa: E402
from lib.denoising.energy import EmpiricalBayesDenoiser, build_energy, energy_config  # noqa: E402
from lib.denoising.score import build_score_model, score_config  # noqa: E402
from lib.models.classifiers import build_classifier, classifier_config  # noqa: E402
from lib.reporting.tables import markdown_table  # noqa: E402
from lib.smoothing import (Gaussian, ProcessExecutor, SerialExecutor, Smooth, certify_dataset,  # noqa: E402
                           default_batch_size)
import lib.utils  # noqa: E402
from lib.utils import configure_threads, rows_per_call  # noqa: E402

PIPELINES = ("cnn", "mse", "one_step", "multi_step", "deen")
#: rows per call compared: None = the whole drawn chunk (one call), else inputs floats per call
CALL_FLOATS = (None, 1 << 17, 1 << 16, 1 << 15)


def build(name: str, sigma: float = 0.5) -> Smooth:
    torch.manual_seed(0)
    clf = build_classifier(classifier_config("cnn", "mnist", "quick")).eval()
    den = None
    if name == "deen":  # notebook 04's g[pi]: the linear h after the DEEN's Bayes estimator
        clf = build_classifier(classifier_config("linear", "mnist", "quick")).eval()
        den = EmpiricalBayesDenoiser(build_energy(energy_config("mnist", sigma, "quick")))
    elif name == "mse":
        den = NetworkDenoiser(_build_dncnn(mse_config("mnist", sigma, "gaussian", "quick")).eval(), "dncnn")
    elif name in ("one_step", "multi_step"):
        score = build_score_model(score_config("mnist", "geometric", "quick")).eval()
        for p in score.parameters():  # the last layers start at zero: give the network something to do
            torch.nn.init.normal_(p, std=0.02)
        den = tweedie(score, sigma) if name == "one_step" else annealed_map(score, Gaussian(sigma), "geometric")
    return Smooth(clf, 10, Gaussian(sigma), denoiser=den)


def measure(smooth: Smooth, xs: torch.Tensor, num: int, rows: int | None, repeats: int):
    smooth._max_rows = rows  # the rows of one call (None: rows_per_call's default is replaced below)
    best, counts = float("inf"), None
    for _ in range(repeats):
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        c = smooth.sample_counts(xs, num, None, gen)
        best = min(best, time.perf_counter() - t0)
        counts = c
    return xs.shape[0] * num / best, counts


def layout(smooth: Smooth, name: str, xs: torch.Tensor, num: int, rows: int, repeats: int) -> dict:
    """Samples per second with channels-last convolution weights (the default on the CPU) and with the
    default layout, measured alternately, and whether the votes are identical."""
    rates, counts = {True: 0.0, False: 0.0}, {}
    try:
        for _ in range(repeats):
            for flag in (False, True):
                lib.utils.CPU_CHANNELS_LAST = flag
                rate, counts[flag] = measure(smooth, xs, num, rows, 1)
                rates[flag] = max(rates[flag], rate)
    finally:
        lib.utils.CPU_CHANNELS_LAST = True
    return {"pipeline": name, "rows per call": rows, "channels-last: samples/s": round(rates[True], 1),
            "default layout: samples/s": round(rates[False], 1), "ratio": round(rates[True] / rates[False], 2),
            "votes identical": bool(torch.equal(counts[True], counts[False]))}


class _Autocast(torch.nn.Module):
    """``net`` run under bfloat16 autocast on the CPU, its output returned as float32."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(*args).float()


def score_variants(smooth: Smooth, name: str, xs: torch.Tensor, num: int, rows: int, repeats: int) -> list[dict]:
    """Samples per second of a score-driven pipeline with its score network compiled (``torch.compile``)
    and under bfloat16 autocast, each against eager (measured alternately), and the votes each changed:
    half the sum of absolute count differences (0 when the votes are identical)."""
    score = smooth.denoiser.score
    eager = score.net
    variants, first_call, failed = {}, {}, {}
    try:
        t0 = time.perf_counter()
        compiled = torch.compile(eager)
        with torch.inference_mode():
            compiled(xs[:1].expand(rows, *xs.shape[1:]).contiguous(), torch.full((rows,), 0.5))
        variants["torch.compile"], first_call["torch.compile"] = compiled, time.perf_counter() - t0
    except Exception as err:  # no C++ compiler, an unsupported platform: say so, measure the rest
        failed["torch.compile"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    variants["bfloat16 autocast"] = _Autocast(eager)
    out = []
    try:
        for label, net in variants.items():
            rates, counts = {"eager": 0.0, label: 0.0}, {}
            for _ in range(repeats):
                for key, module in (("eager", eager), (label, net)):
                    score.net = module
                    rate, counts[key] = measure(smooth, xs, num, rows, 1)
                    rates[key] = max(rates[key], rate)
            out.append({"pipeline": name, "variant": label, "rows per call": rows,
                        "eager: samples/s": round(rates["eager"], 1), "variant: samples/s": round(rates[label], 1),
                        "ratio": round(rates[label] / rates["eager"], 2),
                        "first call s": round(first_call.get(label, 0.0), 1),
                        "votes changed": int((counts[label] - counts["eager"]).abs().sum().item() // 2),
                        "votes": int(counts["eager"].sum().item())})
    finally:
        score.net = eager
    out += [{"pipeline": name, "variant": label, "unavailable": why} for label, why in failed.items()]
    return out


def processes(smooth: Smooth, name: str, blocks: int, num: int, workers: int) -> dict:
    """Samples per second of certify_dataset in one process (``workers`` threads) and in ``workers``
    forked processes (a thread each), on ``blocks`` blocks of two points (n0 = 20, n = ``num``, as in
    the quick notebooks' CERTIFY calls), and whether the logs agree."""
    torch.manual_seed(2)
    xs, ys = torch.rand(2 * blocks, 1, 28, 28), torch.randint(0, 10, (2 * blocks,))
    out, logs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, ex in (("one process", SerialExecutor()), (f"{workers} processes", ProcessExecutor(workers))):
            t0 = time.perf_counter()
            df = certify_dataset(smooth, xs, ys, 20, num, 0.001, f"{tmp}/{label[0]}.tsv", chunk=2, progress=False,
                                 executor=ex)
            out[label] = 2 * blocks * (num + 20) / (time.perf_counter() - t0)
            logs[label] = df.drop(columns=["time"])
    a, b = out
    return {"pipeline": name, "n": num, f"{a}, {workers} threads: samples/s": round(out[a], 1),
            f"{b}, 1 thread each: samples/s": round(out[b], 1), "ratio": round(out[b] / out[a], 2),
            "logs identical": bool(logs[a].equals(logs[b]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--points", type=int, default=2)
    ap.add_argument("--num", type=int, default=668, help="noisy samples per point (668: two MNIST chunks)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=8, help="blocks (two points each) of the process comparison")
    ap.add_argument("--proc-num", type=int, default=None,
                    help="n of the process comparison (default: 5,000; 300 for the multi-step denoiser)")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--no-variants", action="store_true",
                    help="skip the score network's torch.compile and bfloat16 comparison")
    ap.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = ap.parse_args()
    unknown = sorted(set(args.pipelines.split(",")) - set(PIPELINES))
    if unknown:
        raise SystemExit(f"unknown pipelines {unknown}: choose from {', '.join(PIPELINES)}")
    threads = configure_threads(args.threads)
    torch.manual_seed(1)
    xs = torch.rand(args.points, 1, 28, 28)
    chunk = default_batch_size(xs[0].numel(), torch.device("cpu"))
    rows_list = [chunk if f is None else max(1, f // xs[0].numel()) for f in CALL_FLOATS]
    out, procs, layouts, variants = [], [], [], []
    for name in args.pipelines.split(","):
        smooth = build(name)
        if threads > 1:
            num = args.proc_num or (300 if name == "multi_step" else 5000)
            procs.append(processes(smooth, name, args.blocks, num, threads))
            print(procs[-1], flush=True)
        default_rows = rows_per_call(xs[0].numel(), smooth.device, bool(smooth._conv_layers)) or chunk
        ref_rate, ref_counts = measure(smooth, xs, args.num, chunk, args.repeats)
        for rows in rows_list:
            rate, counts = (ref_rate, ref_counts) if rows == chunk else measure(smooth, xs, args.num, rows, args.repeats)
            out.append({"pipeline": name, "rows per call": rows, "default": rows == default_rows,
                        "samples/s": round(rate, 1), "ratio to one call per chunk": round(rate / ref_rate, 2),
                        "votes identical": bool(torch.equal(counts, ref_counts))})
            print(out[-1], flush=True)
        layouts.append(layout(smooth, name, xs, args.num, default_rows, args.repeats))
        print(layouts[-1], flush=True)
        if name in ("one_step", "multi_step") and not args.no_variants:
            variants += score_variants(smooth, name, xs, args.num, default_rows, args.repeats)
            print(*variants[-2:], sep="\n", flush=True)
    meta = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": threads,
                        "python": platform.python_version(), "torch": torch.__version__},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "chunk": chunk,
            "points": args.points, "num": args.num, "repeats": args.repeats,
            "command": "python benchmarks/bench_cpu.py " + " ".join(sys.argv[1:])}
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "cpu.json").write_text(json.dumps({"meta": meta, "rows": out, "layouts": layouts, "processes": procs,
                                               "score variants": variants},
                                              indent=1))
    md = markdown_table(pd.DataFrame(out), index=False) + "\n\n" + markdown_table(pd.DataFrame(layouts), index=False)
    if procs:
        md += "\n\n" + markdown_table(pd.DataFrame(procs), index=False)
    if variants:
        md += "\n\n" + markdown_table(pd.DataFrame(variants), index=False)
    (dest / "cpu.md").write_text(f"{meta}\n\n{md}\n")
    print(md)
    if (not all(r["votes identical"] for r in out + layouts) or not all(r["logs identical"] for r in procs)):
        raise SystemExit("the votes changed with the rows per call, the layout or the processes")


if __name__ == "__main__":
    main()
