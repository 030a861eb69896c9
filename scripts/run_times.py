"""Measured run times, written by the code that measures them (called by ./run_all.sh).

    python scripts/run_times.py start --profile quick 00_randomized_smoothing_lecture ...
    python scripts/run_times.py record --profile quick --notebook 00_randomized_smoothing_lecture --seconds 36
    python scripts/run_times.py last-profile
    python scripts/run_times.py show [--profile quick]

``start`` describes the machine (CPU model, cores, memory, GPU), the commit and the date, times a
fixed small torch workload (the *probe*, in CPU seconds of one thread, so that other jobs on the
machine barely change it), records the run as ``last_run`` and prints a one-line **estimate** of
the run's total: per-notebook wall times recorded earlier on a machine of the same CPU (else the
reference run in ``scripts/reference_times.json``), scaled by the ratio of the probes. ``record``
merges one notebook's wall time into ``outputs/run_times.json`` (atomic replace), with the
machine, date, commit and profile of the run. ``COMPANION_OUTPUTS`` moves ``outputs/``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).with_name("reference_times.json")


def outputs_dir() -> Path:
    return Path(os.environ.get("COMPANION_OUTPUTS", ROOT / "outputs")).resolve()


def times_path() -> Path:
    return outputs_dir() / "run_times.json"


def variant(profile: str, tiny: bool = False, dataset: str = "") -> str:
    """The key runs are grouped under: the profile, '-tiny' for tiny full, '-<dataset>' when given."""
    return profile + ("-tiny" if tiny else "") + (f"-{dataset}" if dataset else "")


# ------------------------------------------------------------------------------ what is recorded
def machine() -> dict:
    """CPU model, logical cores, memory (GiB), GPU name (or None), OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True)
        gpu = ", ".join(l.strip() for l in out.stdout.splitlines() if l.strip()) or None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "gpu": gpu,
            "os": platform.platform(terse=True), "python": platform.python_version()}


def commit() -> str:
    """The checked-out commit, with '+dirty' when tracked files differ from it ('unknown' outside git)."""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def probe(repeats: int = 7) -> float:
    """CPU seconds (one thread; the least of ``repeats``) of a fixed small torch workload: a few
    training steps of a small CNN on a fixed batch plus a matrix product, like the notebooks' work."""
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (128,), generator=gen)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    a = torch.randn(512, 512, generator=gen)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(10):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        for _ in range(20):
            a = torch.tanh(a @ a.T / 512)
        best = min(best, time.process_time() - t0)
    return round(best, 4)


# ------------------------------------------------------------------------------ the record file
def load() -> dict:
    path = times_path()
    if not path.exists():
        return {"notebooks": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"[run_times] {path} is not valid JSON ({exc}); move it away and rerun") from exc
    data.setdefault("notebooks", {})
    return data


def save(data: dict) -> Path:
    """Atomic replace: a reader sees the old file or the new one, never half of one."""
    path = times_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".run_times.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ the estimate
def duration(seconds: float) -> str:
    """Seconds under two minutes, minutes under two hours, else hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def estimate(notebooks: list[str], key: str, probe_now: float, here: dict, data: dict,
             together: list[str] = ()) -> str:
    """One line: the expected total for ``notebooks`` under the run variant ``key`` on this machine.
    ``together``: notebooks that run side by side (run_all.sh's lecture pair): they add their longest
    time, not their sum."""
    own = {nb: rec for nb, rec in data.get("notebooks", {}).get(key, {}).items()
           if rec.get("machine", {}).get("cpu") == here["cpu"] and rec.get("machine", {}).get("cores") == here["cores"]
           and rec.get("probe_cpu_seconds")}
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    ref = reference.get("runs", {}).get(key, {})
    total, side, sources, missing = 0.0, 0.0, set(), []
    for nb in notebooks:
        if nb in own:
            seconds = own[nb]["seconds"] * probe_now / own[nb]["probe_cpu_seconds"]
            sources.add("this machine's recorded times")
        elif nb in ref.get("seconds", {}):
            seconds = ref["seconds"][nb] * probe_now / ref["probe_cpu_seconds"]
            sources.add(f"the reference run of {ref['date']} ({ref['machine']['cores']} cores, {ref['machine']['cpu']})")
        else:
            missing.append(nb.split("_")[0])
            continue
        if nb in together:
            side = max(side, seconds)
        else:
            total += seconds
    total += side
    if len(missing) == len(notebooks):
        return (f"[run_all] estimate: none for profile {key} (no recorded run on this CPU and no reference run); "
                "this run's times will be recorded in " + str(times_path()))
    count = len(notebooks) - len(missing)
    line = (f"[run_all] ESTIMATE (not a measurement): about {duration(total)} for "
            f"{count} notebook{'s' * (count != 1)} on an idle machine like this one, from "
            f"{' and '.join(sorted(sources))}, scaled by a CPU probe ({probe_now:.2f} s here)")
    if missing:
        line += f"; no recorded time for {' '.join(missing)}"
    return line


# ------------------------------------------------------------------------------ commands
def cmd_start(args) -> None:
    here = machine()
    probe_now = probe()
    data = load()
    key = variant(args.profile, args.tiny, args.dataset)
    args.notebooks = [n.removesuffix(".ipynb") for n in args.notebooks]
    together = [n.removesuffix(".ipynb") for n in args.together.split(",") if n]
    print(estimate(args.notebooks, key, probe_now, here, data, together), flush=True)
    data["last_run"] = {"profile": args.profile, "variant": key, "tiny": args.tiny, "dataset": args.dataset or None,
                        "started": now(), "commit": commit(), "machine": here, "probe_cpu_seconds": probe_now,
                        "command": args.command, "notebooks": args.notebooks, "finished": None,
                        "load_average_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    save(data)


def cmd_record(args) -> None:
    data = load()
    run = data.get("last_run") or {}
    if run.get("profile") != args.profile:
        raise SystemExit(f"[run_times] no run of profile {args.profile} was started (run_times.py start first)")
    entry = {"seconds": round(args.seconds, 1), "finished": now(), "profile": args.profile,
             "commit": run["commit"], "machine": run["machine"], "probe_cpu_seconds": run["probe_cpu_seconds"],
             "run_started": run["started"], "dataset": run.get("dataset"),
             "load_average_at_start": run.get("load_average_at_start")}
    data["notebooks"].setdefault(run["variant"], {})[args.notebook] = entry
    if args.notebook == run["notebooks"][-1]:
        run["finished"] = entry["finished"]
    save(data)


def cmd_last_profile(args) -> None:
    run = load().get("last_run")
    if not run:
        raise SystemExit(f"[run_times] no run recorded in {times_path()}: run ./run_all.sh first")
    print(run["profile"])


def markdown(data: dict, key: str | None = None) -> str:
    """The recorded times as Markdown: per run variant, one table per run (machine, commit, start)."""
    lines = []
    for var, recs in sorted(data.get("notebooks", {}).items()):
        if key and var != key:
            continue
        lines += [f"### {var}", ""]
        runs: dict[tuple, list] = {}
        for nb, r in sorted(recs.items()):
            m = r["machine"]
            desc = f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB" + (f", {m['gpu']}" if m.get("gpu") else ", no GPU")
            runs.setdefault((r.get("run_started", "?"), r["commit"], desc), []).append((nb, r))
        for (started, commit_, desc), rows in sorted(runs.items()):
            lines += [f"Run started {started}, commit `{commit_}`, on {desc}:", "",
                      "| notebook | wall time | finished (UTC) |", "|---|---|---|"]
            lines += [f"| {nb} | {r['seconds']:.0f} s | {r['finished']} |" for nb, r in rows]
            lines.append("")
        total = sum(r["seconds"] for r in recs.values())
        lines += [f"Sum over the {len(recs)} notebooks of {var}: {total / 60:.1f} min.", ""]
    return "\n".join(lines) if lines else "No run time recorded yet.\n"


def cmd_show(args) -> None:
    print(markdown(load(), args.profile))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--profile", required=True)
    s.add_argument("--tiny", action="store_true")
    s.add_argument("--dataset", default="")
    s.add_argument("--command", default="./run_all.sh")
    s.add_argument("--together", default="", help="comma-separated notebooks that run side by side")
    s.add_argument("notebooks", nargs="+")
    r = sub.add_parser("record")
    r.add_argument("--profile", required=True)
    r.add_argument("--notebook", required=True)
    r.add_argument("--seconds", type=float, required=True)
    sub.add_parser("last-profile")
    sh = sub.add_parser("show")
    sh.add_argument("--profile", default=None)
    sub.add_parser("probe")
    args = p.parse_args(argv)
    if args.cmd == "probe":
        print(probe())
        return
    {"start": cmd_start, "record": cmd_record, "last-profile": cmd_last_profile, "show": cmd_show}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
