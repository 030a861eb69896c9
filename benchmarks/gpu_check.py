"""The GPU check: the `full` profile's risky paths on the device, in a few minutes, with one report.

    python benchmarks/gpu_check.py                 # on a machine with CUDA (about 5-8 minutes)
    python benchmarks/gpu_check.py --cpu-fallback  # the same steps at tiny sizes on the CPU (CI)

Steps (each timed with ``torch.cuda.synchronize``; each failure is recorded, and the others still run):

1. ``certify``  -- ``benchmarks/bench_certify.py`` on the device: ours vs a Cohen-style per-image
   loop (the target on a GPU is >= 5x).
2. ``denoisers`` -- ``benchmarks/bench_denoisers.py`` on the device (images per second).
3. ``heavy_block`` -- one certification block of notebook 05's heaviest method at `full` sizes:
   the `full` score network (U-Net) in Lee's multi-step denoiser (L = 32) before the `full`
   classifier, n0 = 100, n = 10,000 per point. Untrained weights: this checks memory and speed
   (the case that ran out of memory before pipeline calls were sized by measured memory).
4. ``train`` -- a few hundred optimiser steps of the `full` score network on MNIST (steps/s).
5. ``cpu_load`` -- the checkpoint written on the device loads on the CPU with ``weights_only=True``
   and gives the same outputs.

The report goes to ``outputs/benchmarks/gpu_check.{json,md}`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import paths, profiles  # noqa: E402
from lib.data import datasets as data  # noqa: E402
from lib.denoising import annealed_map  # noqa: E402
from lib.denoising.score import build_score_model, score_config, train_dsm  # noqa: E402
from lib.models.classifiers import build_classifier, classifier_config  # noqa: E402
from lib.smoothing import Gaussian, Smooth  # noqa: E402
from lib.utils import atomic_torch_save  # noqa: E402

#: sizes: the device run uses `full` models and paper n; the fallback the smoke models, tiny n
SIZES = {"device": {"profile": "full", "points": 2, "n0": 100, "n": 10_000, "levels": 32, "train_steps": 300},
         "fallback": {"profile": "smoke", "points": 2, "n0": 10, "n": 40, "levels": 2, "train_steps": 5}}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, fn):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def _run(cmd: list[str], timeout: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.startswith(("[bench]", "|", "==")) or "img/s" in ln]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return {"seconds": round(time.perf_counter() - t0, 1), "output": lines}


def step_certify(device, fallback, out):
    args = ["--device", device.type, "--out", str(out)]
    if fallback:
        args += ["--quick", "--models", "linear", "--repeats", "1"]
    return _run([sys.executable, "benchmarks/bench_certify.py", *args], timeout=600)


def step_denoisers(device, fallback, out):
    args = ["--device", device.type, "--out", str(out), "--profile", "smoke" if fallback else "quick"]
    if fallback:
        args += ["--batch-sizes", "16", "--repeats", "1", "--walk-tau", "2"]
    return _run([sys.executable, "benchmarks/bench_denoisers.py", *args], timeout=600)


def _models(size, device):
    torch.manual_seed(0)
    scfg = score_config("mnist", "geometric", size["profile"])
    score = build_score_model(scfg).to(device).eval()
    arch = profiles.get("05", size["profile"])["classifier_arch"]
    arch = arch["mnist"] if isinstance(arch, dict) else arch
    ccfg = classifier_config(arch, "mnist", size["profile"])
    clf = build_classifier(ccfg).to(device).eval()
    return scfg, score, ccfg, clf


def step_heavy_block(device, size):
    scfg, score, ccfg, clf = _models(size, device)
    noise = Gaussian(0.5)
    sigmas = [s for s in scfg["sigmas"]][:: max(1, len(scfg["sigmas"]) // size["levels"])][: size["levels"]]
    den = annealed_map(score, noise, sigmas=sigmas)
    smooth = Smooth(clf, 10, noise, denoiser=den, device=device)
    xs, _ = data.load("mnist", "test", limit=size["points"])
    xs = xs.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch = smooth.memory_batch_size(xs[0])
    (preds, radii), seconds = _timed(device, lambda: smooth.certify_batch(
        xs, size["n0"], size["n"], 0.001, generator=torch.Generator(device=device).manual_seed(0))[:2])
    samples = size["points"] * (size["n0"] + size["n"])
    rep = {"score_arch": scfg["arch"], "levels": len(sigmas), "classifier": ccfg["arch"], "points": size["points"],
           "n0": size["n0"], "n": size["n"], "pipeline_batch": batch, "halved_to": smooth._max_rows,
           "seconds": round(seconds, 2), "noisy_samples_per_s": round(samples / seconds, 1),
           "predictions": preds.tolist()}
    if device.type == "cuda":
        rep["peak_memory_GB"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
        rep["device_memory_GB"] = round(torch.cuda.get_device_properties(device).total_memory / 1e9, 1)
    return rep


def step_train_and_load(device, size, out):
    cfg = score_config("mnist", "geometric", size["profile"])
    torch.manual_seed(0)
    model = build_score_model(cfg).to(device)
    x, _ = data.load("mnist", "train", limit=4096)
    x = x.to(device)
    steps = size["train_steps"]
    hist, seconds = _timed(device, lambda: train_dsm(model, x, cfg["sigmas"], steps, cfg["batch_size"], cfg["lr"],
                                                     cfg["ema"], seed=0, progress=False))
    train = {"arch": cfg["arch"], "steps": steps, "batch_size": cfg["batch_size"], "seconds": round(seconds, 2),
             "steps_per_s": round(steps / seconds, 2), "final_loss": float(hist["loss"][-1])}
    ckpt = Path(out) / "gpu_check_score.pt"
    atomic_torch_save(model.state_dict(), ckpt)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    cpu_model = build_score_model(cfg)
    cpu_model.load_state_dict(state)
    cpu_model.eval()
    model.eval()
    y = x[:8] + 0.5 * torch.randn_like(x[:8])
    with torch.no_grad():
        a = model(y, torch.full((8,), 0.5, device=device)).cpu()
        b = cpu_model(y.cpu(), torch.full((8,), 0.5))
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
    load = {"checkpoint": ckpt.name, "loaded_on": "cpu", "weights_only": True, "max_relative_difference": err,
            "ok": err < 1e-3}
    if not load["ok"]:
        raise AssertionError(f"the checkpoint gives other outputs on the CPU (relative difference {err:.2e})")
    return train, load


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-fallback", action="store_true", help="tiny sizes on the CPU (what CI runs)")
    parser.add_argument("--skip", nargs="*", default=[], help="steps to skip: certify denoisers heavy_block train")
    parser.add_argument("--out", default=str(paths.OUTPUTS / "benchmarks"))
    args = parser.parse_args(argv)
    fallback = args.cpu_fallback or not torch.cuda.is_available()
    device = torch.device("cpu" if fallback else "cuda")
    size = SIZES["fallback" if fallback else "device"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "mode": "cpu-fallback (tiny sizes)" if fallback else "device (full sizes)",
              "sizes": size, "steps": {}, "failed": []}
    steps = {"certify": lambda: step_certify(device, fallback, out),
             "denoisers": lambda: step_denoisers(device, fallback, out),
             "heavy_block": lambda: step_heavy_block(device, size)}
    t_all = time.perf_counter()
    for name, fn in steps.items():
        if name in args.skip:
            continue
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            report["steps"][name] = fn()
        except Exception as exc:  # record and go on: one report with every figure we could take
            report["failed"].append(name)
            report["steps"][name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
    if "train" not in args.skip:
        print("[gpu_check] train + cpu_load ...", flush=True)
        try:
            report["steps"]["train"], report["steps"]["cpu_load"] = step_train_and_load(device, size, out)
        except Exception as exc:
            report["failed"].append("train")
            report["steps"]["train"] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# GPU check: {report['device']} ({report['mode']}), torch {report['torch']}, {report['seconds']} s", ""]
    for name, rep in report["steps"].items():
        lines.append(f"## {name}")
        if "output" in rep:
            lines += rep["output"] + [""]
        else:
            lines += [f"- {k}: {v}" for k, v in rep.items() if k != "trace"] + [""]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"[gpu_check] report: {out / 'gpu_check.md'}; failed steps: {report['failed'] or 'none'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
