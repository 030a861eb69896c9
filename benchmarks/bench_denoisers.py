"""Throughput of every denoiser (images per second) at the batch sizes of certification.

    .venv/bin/python benchmarks/bench_denoisers.py                    # CPU (and CUDA if present)
    .venv/bin/python benchmarks/bench_denoisers.py --device cpu --batch-sizes 256 2674 --profile quick

Certification (``lib.smoothing.Smooth``) denoises chunks of noisy copies: by default
``2**18 / d`` samples per chunk on a CPU (334 for MNIST) and ``2**26 / d`` on a GPU, so those
are the default batch sizes here. Throughput does not depend on the weights, so a model that is
not in the cache yet is benchmarked untrained (same architecture) instead of being trained;
the result says which. Writes ``outputs/benchmarks/denoisers-<device>.json`` and ``.md``.
Timings on a machine shared with other jobs are noisy: the process CPU time is reported too.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import paths, utils
from lib.models import cache
from lib.data import datasets as data
from lib.denoising import denoise
from lib import smoothing as noise
from lib.denoising import score  # noqa: E402
from lib.smoothing import default_batch_size  # noqa: E402


def _score_model(dataset, profile, device, **kw):
    config = score.score_config(dataset, profile=profile, **kw)
    kind = f"score-{config['param']}-{dataset}-{config['schedule']}"
    path = cache.checkpoint_path(kind, config)
    model = score.build_score_model(config)
    trained = path.exists()
    if trained:
        model.load_state_dict(cache.load_checkpoint(path, config)["state_dict"])
    return model.to(device).eval(), trained


def _mse_model(dataset, sigma, profile, device):
    config = denoise.mse_config(dataset, sigma, "gaussian", profile)
    path = cache.checkpoint_path(f"dncnn-{dataset}-gaussian", config)
    net = denoise._build_dncnn(config)
    trained = path.exists()
    if trained:
        net.load_state_dict(cache.load_checkpoint(path, config)["state_dict"])
    return denoise.NetworkDenoiser(net.to(device).eval(), "dncnn"), trained


def denoisers(dataset, profile, sigma, device, walk_tau):
    geo, t_geo = _score_model(dataset, profile, device, schedule="geometric")
    uni, t_uni = _score_model(dataset, profile, device, schedule="uniform")
    ene, t_ene = _score_model(dataset, profile, device, schedule="geometric", param="energy")
    mse, t_mse = _mse_model(dataset, sigma, profile, device)
    levels = score.make_schedule("geometric")
    return {
        "MSE (DnCNN)": (mse, t_mse),
        "one-step (Tweedie)": (denoise.tweedie(uni, sigma), t_uni),
        "one-step, DEEN energy": (denoise.tweedie(ene, sigma), t_ene),
        "multi-step, Gaussian, L=32, T=1": (denoise.annealed_map(geo, noise.Gaussian(sigma), levels), t_geo),
        "multi-step, Laplace, L=32, T=1": (denoise.annealed_map(geo, noise.Laplace(sigma), levels), t_geo),
        "multi-step, uniform, L=32, T=1": (denoise.annealed_map(geo, noise.Uniform(sigma), levels), t_geo),
        f"walk-jump, tau={walk_tau}": (denoise.walk_jump(geo, sigma, tau=walk_tau, seed=0), t_geo),
    }


def bench(den, x, repeats, device):
    # the grad mode of certification (lib.smoothing.Smooth.sample_counts under no_grad + _mode):
    # inference_mode, or plain no_grad for a denoiser that needs autograd (it enables it itself)
    mode = torch.no_grad if getattr(den, "requires_grad", False) else torch.inference_mode

    def run():
        with mode():
            den(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = repeats * len(x)
    return {"images_per_second": n / wall, "cpu_seconds_per_image": cpu / n}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--profile", default="quick", help="which cached models (architecture) to use")
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--device", nargs="*", default=None, help="cpu and/or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None,
                        help="default: 256 and the certification chunk size of the device")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--walk-tau", type=int, default=100)
    parser.add_argument("--out", default=None, help="output folder (default outputs/benchmarks)")
    args = parser.parse_args(argv)
    utils.configure_threads()  # torch threads: COMPANION_THREADS, else the usable cores

    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    shape = data.image_shape(args.dataset)
    d = shape[0] * shape[1] * shape[2]
    out_dir = paths.ensure(Path(args.out) if args.out else paths.OUTPUTS / "benchmarks")
    for dev_name in devices:
        device = utils.get_device(dev_name)
        sizes = args.batch_sizes or sorted({256, default_batch_size(d, device)})
        print(f"\n== {device} (torch threads {torch.get_num_threads()}), {args.dataset}, sigma={args.sigma}, "
              f"profile {args.profile}; batch sizes {sizes}")
        g = torch.Generator(device=device).manual_seed(0)
        rows = []
        for name, (den, trained) in denoisers(args.dataset, args.profile, args.sigma, device, args.walk_tau).items():
            for b in sizes:
                x = torch.rand((b, *shape), generator=g, device=device)
                res = bench(den, x, args.repeats, device)
                rows.append({"denoiser": name, "batch_size": b, "trained_weights": trained, **res})
                print(f"  {name:38s} batch {b:6d}: {res['images_per_second']:10.1f} img/s   "
                      f"{1e3 * res['cpu_seconds_per_image']:.3f} CPU ms/img{'' if trained else '  (untrained weights)'}",
                      flush=True)
        meta = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "machine": platform.machine(), "processor": platform.processor(), "dataset": args.dataset,
                "profile": args.profile, "sigma": args.sigma, "repeats": args.repeats,
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
        stem = out_dir / f"denoisers-{device.type}"
        utils.atomic_write_json(stem.with_suffix(".json"), {"meta": meta, "rows": rows})
        lines = [f"# Denoiser throughput on {meta['gpu'] or 'CPU'} ({args.dataset}, profile {args.profile})", "",
                 "| denoiser | batch | images/s | CPU ms/image |", "|---|---|---|---|"]
        lines += [f"| {r['denoiser']} | {r['batch_size']} | {r['images_per_second']:.1f} | "
                  f"{1e3 * r['cpu_seconds_per_image']:.3f} |" for r in rows]
        utils.atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
        print(f"wrote {stem}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
