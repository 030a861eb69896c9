"""The GPU check script's CPU fallback (what CI can run): every step runs and reports numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_fallback_reports_every_step(tmp_path):
    env = {**os.environ, "COMPANION_HEADLESS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-fallback", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rep["failed"] == [] and rep["mode"].startswith("cpu-fallback")
    steps = rep["steps"]
    assert set(steps) == {"certify", "denoisers", "heavy_block", "train", "cpu_load"}
    assert any("ours" in ln for ln in steps["certify"]["output"])
    assert sum("img/s" in ln for ln in steps["denoisers"]["output"]) >= 5
    hb = steps["heavy_block"]
    assert hb["noisy_samples_per_s"] > 0 and len(hb["predictions"]) == hb["points"]
    assert steps["train"]["steps"] == rep["sizes"]["train_steps"] and steps["train"]["final_loss"] == steps["train"]["final_loss"]
    assert steps["cpu_load"]["ok"] and steps["cpu_load"]["weights_only"]
    assert (tmp_path / "gpu_check.md").read_text().count("## ") == 5
