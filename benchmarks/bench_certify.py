"""Noisy samples per second of CERTIFY: lib.smoothing.Smooth.certify_batch vs a per-image reference.

The reference (``reference_smooth.ReferenceSmooth``) is built like Cohen et al.'s
``core.Smooth``: one image at a time, batches of noise made with ``x.repeat`` +
``randn_like``, votes counted on the host. ``lib.smoothing.Smooth.certify_batch`` certifies
many images per call, draws noise on the model's device, runs under ``inference_mode``
(``no_grad`` for the DEEN denoiser, which needs autograd) and counts on the device.

Both run on the same models, images, n0, n, alpha, noisy-batch size and machine. Models
(MNIST-sized, randomly initialised with a fixed seed: throughput does not depend on the
weights):

* ``linear``       -- the 1-layer classifier of notebook 04 (cheap: noise generation dominates)
* ``deen+linear``  -- π = h ∘ x̂ with the DEEN MLP energy of notebook 04 (a forward and a
                      backward pass through the energy per noisy sample)
* ``cnn``          -- lib.models.SmallCNN (the model dominates)
* ``linear-logit`` -- the linear model certified through ``lib.smoothing.noise.LogitGaussian``:
                      W u ~ N(0, sigma^2 W W^T) drawn in the 10-dim logit space, the same law of votes
                      (exact for a linear classifier); the reference still samples 784-dim inputs

Each measurement is repeated ``--repeats`` times alternating reference and ours; the best
(shortest) wall time counts. The CPU time of the process is reported too: on a shared
machine its ratio is a steadier estimate of the work saved than the wall-time ratio.

``--sound`` also times ``Smooth(..., grid=255)``, the sampler that stays sound in floating point
(:mod:`lib.smoothing._sound`: each noisy copy's grid cell drawn exactly from fair bits), on the same
models, images, n0, n and generator seed, and reports its samples per second and its ratio to the
usual sampler in the same run (``linear-logit`` has no sound form: logit-space votes assume a linear
classifier of x + u).

Usage: ``python benchmarks/bench_certify.py [--device cpu|cuda|auto] [--threads N] [--quick]
[--single-stream] [--sound] [--models linear,cnn]`` (``--single-stream``: the CPU sampler before it drew
large draws in parts from several streams, for a before/after ratio);
writes ``outputs/benchmarks/certify.json`` and ``certify.md``. The default run takes about a
minute on an idle 2-core CPU. On a CPU shared with other jobs, ``--threads 1`` gives much
steadier ratios: a multi-threaded op waits for its slowest thread, and a preempted thread
stalls every small op (we saw 2-thread runs 2-3 times slower than 1-thread runs there).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_smooth import ReferenceSmooth  # noqa: E402

from lib import paths  # noqa: E402
from lib.denoising.energy import EnergyMLP  # noqa: E402
from lib.models import LinearClassifier, SmallCNN  # noqa: E402
from lib.smoothing import Gaussian  # noqa: E402
from lib.reporting.tables import markdown_table  # noqa: E402
from lib.smoothing import Smooth, default_batch_size  # noqa: E402
from lib.smoothing._sampler import _Streams  # noqa: E402
from lib.smoothing.noise import LogitGaussian  # noqa: E402
from lib.utils import atomic_write_json, atomic_write_text, get_device  # noqa: E402

SIGMA, ALPHA, N0 = 0.6, 0.001, 100
GRID = 255  # lib.data's images are bytes / 255
SHAPE = (1, 28, 28)

#: (images, n) per model and device type: enough work to time, small enough to stay short
WORK = {
    "cpu": {"linear": (8, 20_000), "linear-logit": (8, 20_000), "deen+linear": (4, 5_000), "cnn": (4, 2_000)},
    "cuda": {"linear": (32, 100_000), "linear-logit": (32, 100_000), "deen+linear": (32, 100_000),
             "cnn": (32, 100_000)},
}


def make_models(device: torch.device) -> dict:
    """name -> (classifier, denoiser or None), all on ``device``."""
    torch.manual_seed(0)
    linear = LinearClassifier(SHAPE, 10).to(device).eval()
    energy = EnergyMLP(784, SIGMA, hidden=(512, 512), activation="silu").to(device).eval()
    cnn = SmallCNN(SHAPE, 10).to(device).eval()
    return {"linear": (linear, None), "linear-logit": (linear, None), "deen+linear": (linear, energy.denoiser()),
            "cnn": (cnn, None)}


def load_images(count: int) -> torch.Tensor:
    """The first ``count`` MNIST test images, or uniform noise images if MNIST is unavailable."""
    try:
        from lib.data import datasets as data
        return data.load("mnist", "test", limit=count)[0]
    except Exception as exc:  # noqa: BLE001 - the benchmark does not need real digits
        print(f"[bench] MNIST unavailable ({exc}); timing on random images")
        return torch.rand((count,) + SHAPE, generator=torch.Generator().manual_seed(0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_model(name: str, classifier, denoiser, xs: torch.Tensor, n: int, device: torch.device,
                repeats: int, sound: bool = False) -> dict:
    """Best-of-``repeats`` timings of the reference loop and of certify_batch on xs [B, 1, 28, 28]."""
    batch_size = default_batch_size(xs[0].numel(), device)
    base = classifier if denoiser is None else torch.nn.Sequential(denoiser, classifier)
    ref = ReferenceSmooth(base, 10, SIGMA)
    xs = xs.to(device)
    if name == "linear-logit":  # exact sampling of W u ~ N(0, sigma^2 W W^T) for the linear model
        ours = Smooth(torch.nn.Identity(), 10, LogitGaussian(SIGMA, classifier.linear.weight), device=device)
        logits = classifier(xs).detach()
    else:
        ours = Smooth(classifier, 10, Gaussian(SIGMA), denoiser=denoiser, device=device)
        logits = None

    def run_ref():
        return [ref.certify(x, N0, n, ALPHA, batch_size) for x in xs]

    our_xs = xs if logits is None else logits
    our_batch = batch_size if logits is None else None  # logit space: ~1 MB of K-dim samples per chunk

    def run_ours():
        gen = torch.Generator(device=device).manual_seed(0)
        return ours.certify_batch(our_xs, N0, n, ALPHA, batch_size=our_batch, generator=gen)

    runs = (("ref", run_ref), ("ours", run_ours))
    if sound and logits is None:  # the sound sampler on the grid Z / 255 of lib.data's images
        grid = Smooth(classifier, 10, Gaussian(SIGMA), denoiser=denoiser, device=device, grid=GRID)

        def run_sound():
            gen = torch.Generator(device=device).manual_seed(0)
            return grid.certify_batch(xs, N0, n, ALPHA, batch_size=batch_size, generator=gen)

        grid.certify_batch(xs[:1], N0, min(n, 2 * batch_size), ALPHA, batch_size=batch_size)
        runs += (("sound", run_sound),)

    # warm-up on one image (allocator, kernels, thread pools)
    ref.certify(xs[0], N0, min(n, 2 * batch_size), ALPHA, batch_size)
    ours.certify_batch(our_xs[:1], N0, min(n, 2 * batch_size), ALPHA, batch_size=our_batch)
    best = {key: (float("inf"), 0.0) for key, _ in runs}
    for _ in range(repeats):
        for key, fn in runs:
            wall, cpu = _timed(fn, device)
            if wall < best[key][0]:
                best[key] = (wall, cpu)
    samples = xs.shape[0] * (N0 + n)
    ref_rate, our_rate = samples / best["ref"][0], samples / best["ours"][0]
    row = {"model": name, "device": device.type, "images": xs.shape[0], "n0": N0, "n": n,
           "batch_size": batch_size, "reference_samples_per_s": round(ref_rate),
           "ours_samples_per_s": round(our_rate), "speedup_wall": round(our_rate / ref_rate, 2),
           "speedup_cpu_time": round(best["ref"][1] / max(best["ours"][1], 1e-9), 2)}
    if sound:
        sound_rate = samples / best["sound"][0] if "sound" in best else None
        row["sound_samples_per_s"] = round(sound_rate) if sound_rate else None
        row["sound_over_usual_wall"] = round(sound_rate / our_rate, 3) if sound_rate else None
        row["sound_over_usual_cpu_time"] = (round(best["ours"][1] / max(best["sound"][1], 1e-9), 3)
                                            if sound_rate else None)
    return row


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="all", help="cpu, cuda, auto or all (cpu and, if present, cuda)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a quarter of the work (a smoke run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); 1 gives steadier figures on a busy machine")
    parser.add_argument("--single-stream", action="store_true",
                        help="draw CPU noise from one generator (the sampler before parts in threads, for comparison)")
    parser.add_argument("--models", default=",".join(WORK["cpu"]), help="comma-separated subset of the models")
    parser.add_argument("--sound", action="store_true",
                        help="also time the sampler that is sound in floating point (Smooth(..., grid=255))")
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.single_stream:
        _Streams._layout_ok = False  # lib.smoothing.noise then fills every draw from the one generator
    if args.device == "all":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [get_device(args.device)]

    def work(device_type: str, name: str) -> tuple[int, int]:
        images, n = WORK[device_type][name]
        return (max(1, images // 2), max(500, n // 4)) if args.quick else (images, n)

    # load the images once: every run takes the first ``images`` of the largest count needed
    all_images = load_images(max(work(d.type, name)[0] for d in devices for name in WORK[d.type]))
    rows = []
    for device in devices:
        models = make_models(device)
        for name, (classifier, denoiser) in models.items():
            if name not in args.models.split(","):
                continue
            images, n = work(device.type, name)
            row = bench_model(name, classifier, denoiser, all_images[:images], n, device, args.repeats, args.sound)
            rows.append(row)
            sound = (f"  sound {row['sound_samples_per_s']:>10,d}/s = x{row['sound_over_usual_wall']:.3f} of ours"
                     if row.get("sound_samples_per_s") else "")
            print(f"[bench] {device.type:4s} {name:12s} reference {row['reference_samples_per_s']:>10,d}/s  "
                  f"ours {row['ours_samples_per_s']:>10,d}/s  x{row['speedup_wall']:.2f} "
                  f"(CPU time x{row['speedup_cpu_time']:.2f}){sound}", flush=True)
    machine = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": "python benchmarks/bench_certify.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "load": os.getloadavg(),
               "sampler": "one stream" if args.single_stream else "parts in threads",
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    out = Path(args.out)
    atomic_write_json(out / "certify.json", {"machine": machine, "sigma": SIGMA, "alpha": ALPHA, "results": rows})
    table = pd.DataFrame(rows).set_index(["device", "model"])
    md = markdown_table(table) + (f"\n{machine['date']}, `{machine['command']}`. Machine: {machine['processor']}, torch {machine['torch']}, "
                                  f"{machine['threads']} threads, CUDA: {machine['cuda']}, sampler: "
                                  f"{machine['sampler']}, load average {machine['load']}.\n")
    atomic_write_text(out / "certify.md", md)
    print(md)
    return rows


if __name__ == "__main__":
    main()
