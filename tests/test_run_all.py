"""./run_all.sh takes one lock for the whole run (outputs and model cache) before any work: a second
run on the same checkout is refused at once, naming the first one (PID, start time, command).
The first holder here is a shell holding the lock through the same helper run_all.sh uses;
no notebook runs."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOLD = 'source scripts/run_lock.sh && companion_run_lock "$0" "$1" "$2" && echo locked && exec sleep 300'


@pytest.fixture
def dirs(tmp_path):
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    env = {**os.environ, "COMPANION_OUTPUTS": str(outputs), "COMPANION_DATA": str(data),
           "COMPANION_NO_APT": "1", "COMPANION_NO_SLIDES": "1"}
    return outputs, data, env


def _hold(outputs: Path, data: Path, command: str) -> subprocess.Popen:
    holder = subprocess.Popen(["bash", "-c", HOLD, command, str(outputs), str(data)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _stop(holder: subprocess.Popen) -> None:
    os.killpg(holder.pid, signal.SIGTERM)
    holder.wait(timeout=30)


@pytest.mark.parametrize("held", ["outputs", "data"])
def test_a_second_run_is_refused_at_once_naming_the_first(dirs, held):
    outputs, data, env = dirs
    other = Path(str(outputs if held == "data" else data) + "-elsewhere")
    holder = _hold(outputs if held == "outputs" else other, data if held == "data" else other,
                   "./run_all.sh --profile quick (first run)")
    try:
        out = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "smoke", "--only", "00"], env=env,
                             capture_output=True, text=True, timeout=120)
    finally:
        _stop(holder)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"pid {holder.pid}" in out.stderr and "./run_all.sh --profile quick (first run)" in out.stderr
    assert "started 20" in out.stderr and ".run_all.lock" in out.stderr
    # refused before any work: no environment step, no data, no executed notebook, no recorded time
    assert "[env]" not in out.stdout and "[run_all]" not in out.stdout, out.stdout
    assert not (outputs / "notebooks").exists() and not (outputs / "run_times.json").exists()


def test_the_lock_is_released_when_the_holder_ends(dirs):
    outputs, data, _ = dirs
    first = _hold(outputs, data, "first")
    _stop(first)
    second = _hold(outputs, data, "second")      # prints no "locked" (an assertion fails) if still held
    try:
        assert (outputs / ".run_all.lock").read_text().startswith(f"pid {second.pid},")
    finally:
        _stop(second)


def _run_times():
    import importlib.util

    spec = importlib.util.spec_from_file_location("companion_run_times", ROOT / "scripts" / "run_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_estimate_scales_recorded_times_by_the_probe_and_prefers_this_machine():
    rt = _run_times()
    here = {"cpu": "CPU X", "cores": 2}
    rec = lambda s, cpu="CPU X": {"seconds": s, "probe_cpu_seconds": 0.5, "machine": {"cpu": cpu, "cores": 2}}
    data = {"notebooks": {"quick": {"00_a": rec(600), "01_b": rec(1200, cpu="CPU Y")}}}
    line = rt.estimate(["00_a"], "quick", 1.0, here, data)        # a probe twice as slow: twice the time
    assert "ESTIMATE (not a measurement): about 20 min for 1 notebook on" in line and "this machine" in line
    line = rt.estimate(["00_a", "01_b", "99_c"], "quick", 0.5, here, data)   # 01_b: another CPU, not used
    assert "about 10 min for 1 notebook on" in line and "no recorded time for 01 99" in line
    assert "estimate: none" in rt.estimate(["99_c"], "quick", 0.5, here, data)
    assert [rt.duration(s) for s in (59.6, 3000, 9000)] == ["60 s", "50 min", "2.5 h"]
    # notebooks that run side by side count once, with the longer of their times
    data["notebooks"]["quick"]["02_c"] = rec(900)
    assert "about 50 min for 2 notebooks" in rt.estimate(["00_a", "02_c"], "quick", 1.0, here, data)
    assert "about 30 min for 2 notebooks" in rt.estimate(["00_a", "02_c"], "quick", 1.0, here, data,
                                                          together=["00_a", "02_c"])


def test_record_merges_per_notebook_atomically(tmp_path, monkeypatch):
    rt = _run_times()
    monkeypatch.setenv("COMPANION_OUTPUTS", str(tmp_path))
    monkeypatch.setattr(rt, "probe", lambda: 0.25)
    rt.main(["start", "--profile", "smoke", "00_a.ipynb", "01_b.ipynb"])
    rt.main(["record", "--profile", "smoke", "--notebook", "00_a", "--seconds", "12.34"])
    rt.main(["start", "--profile", "smoke", "01_b"])
    rt.main(["record", "--profile", "smoke", "--notebook", "01_b", "--seconds", "5"])
    data = rt.load()
    assert set(data["notebooks"]["smoke"]) == {"00_a", "01_b"}           # the second run kept the first's entry
    assert data["notebooks"]["smoke"]["00_a"]["seconds"] == 12.3
    assert data["last_run"]["notebooks"] == ["01_b"] and data["last_run"]["finished"]
    assert data["notebooks"]["smoke"]["01_b"]["machine"]["cores"] >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["run_times.json"]     # no temporary file left behind
    with pytest.raises(SystemExit, match="no run of profile quick"):
        rt.main(["record", "--profile", "quick", "--notebook", "00_a", "--seconds", "1"])


def test_the_profile_shares_each_notebooks_wall_time_over_its_phases(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("profile_run", ROOT / "scripts" / "profile_run.py")
    prof = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prof)
    train = "main;train_loop (lib/models/training.py:260);forward (lib/denoising/nets.py:90)"
    cert_den = "main;certify_block (lib/smoothing/distributed.py:50);denoise (lib/denoising/denoise.py:160)"
    cert = "main;_forked_part (lib/smoothing/distributed.py:70);fill (lib/smoothing/_sampler.py:99)"
    log_io = "main;read_log (lib/smoothing/logs.py:200)"
    plot = "main;savefig (matplotlib/figure.py:3000)"
    assert [prof.phase(s) for s in (train, cert_den, cert, log_io, plot, "main;x (y.py:1)")] == \
        ["training", "certification: denoiser", "certification: rest", "I/O", "plotting", "other"]
    (tmp_path / "05_x.txt").write_text(f"{train} 30\n{cert_den} 50\n{cert} 20\n")
    (tmp_path / "99_unrecorded.txt").write_text(f"{plot} 5\n")  # no wall time recorded: left out
    times = {"notebooks": {"quick": {"05_x": {"seconds": 200.0}}}, "last_run": {"command": "./run_all.sh"}}
    table = prof.summarize(tmp_path, times, "quick")
    row = next(line for line in table.splitlines() if line.startswith("| 05_x"))
    assert row == "| 05_x | 200 | 60 | 0 | 100 | 40 | 0 | 0 | 0 | 0 |"
    assert "99_unrecorded" not in table and "./run_all.sh" in table
