"""Where a run's time goes: each notebook's wall time split into training, denoising, certification,
plotting and I/O, from the stacks of its kernel sampled by py-spy.

    pip install py-spy                                      # not a dependency of the project
    python scripts/profile_run.py run -- ./run_all.sh       # run, sample every kernel, write the profile
    python scripts/profile_run.py summarize                 # the table again, from the stacks kept

``run`` starts the command, attaches ``py-spy record --subprocesses`` (20 samples per second, without
pausing the process) to every notebook kernel the run starts, keeps the stacks in
``outputs/profile/<notebook>.txt`` and writes ``outputs/profile/profile.md``: per notebook, the wall
time recorded by ``run_all.sh`` (``outputs/run_times.json``) shared out over the phases in proportion
to the stack samples of each. A sample counts as

* training: inside ``lib.models.training.train_loop`` (every model of the project trains there);
* I/O: reading or writing logs, checkpoints or data outside a certification;
* certification: inside ``lib.smoothing`` (CERTIFY, the samplers, the forked workers), split into
  the denoiser's share (a ``lib.denoising`` frame inside) and the rest (noise, classifier, bounds);
* denoising: ``lib.denoising`` outside a certification (denoiser studies, Langevin sampling);
* plotting: matplotlib or seaborn; imports; other.

Sampling overhead is small (py-spy reads the process from outside), and the shares are estimates
with the sampling error of a few thousand samples per notebook.
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lib import paths  # noqa: E402

PHASES = ["training", "denoising", "certification: denoiser", "certification: rest", "plotting", "I/O",
          "imports", "other"]
_IO = ("lib/smoothing/logs.py", "torch/serialization.py", "lib/data/", "read_csv", "to_csv", "npyio",
       "numpy/lib/format", "json/")


def phase(stack: str) -> str:
    """The phase of one sampled stack (frames joined by ';', outermost first)."""
    if "train_loop" in stack or "lib/models/training.py" in stack:
        return "training"
    in_cert = "lib/smoothing/" in stack or "_forked_part" in stack or "concurrent/futures/thread.py" in stack
    if any(k in stack for k in _IO) and "certify_block" not in stack and "_forked_part" not in stack:
        return "I/O"
    if in_cert:
        return "certification: denoiser" if "lib/denoising/" in stack else "certification: rest"
    if "lib/denoising/" in stack or "lib/experiments/denoisers.py" in stack:
        return "denoising"
    if "matplotlib" in stack or "seaborn" in stack:
        return "plotting"
    if "_find_and_load" in stack:
        return "imports"
    return "other"


def summarize(stacks_dir: Path, times: dict, profile: str) -> str:
    """The markdown table of ``stacks_dir``'s notebooks: wall seconds shared out over the phases."""
    recorded = times.get("notebooks", {}).get(profile, {})
    rows, total = [], collections.Counter()
    for f in sorted(stacks_dir.glob("*.txt")):
        name = f.stem
        counts = collections.Counter()
        for line in f.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                counts[phase(stack)] += int(n)
        if name not in recorded or not counts:
            continue
        wall = float(recorded[name]["seconds"])
        share = {p: wall * counts[p] / sum(counts.values()) for p in PHASES}
        rows.append(f"| {name} | {wall:.0f} | " + " | ".join(f"{share[p]:.0f}" for p in PHASES) + " |")
        total.update(share)
        total["wall"] += wall
    head = "| notebook | wall s | " + " | ".join(PHASES) + " |\n|" + "---|" * (len(PHASES) + 2) + "\n"
    foot = f"| all profiled | {total['wall']:.0f} | " + " | ".join(f"{total[p]:.0f}" for p in PHASES) + " |"
    last = times.get("last_run", {})
    meta = (f"Profile {profile}; run of {last.get('started', '?')} on {last.get('machine', {}).get('cpu', '?')} "
            f"({last.get('machine', {}).get('cores', '?')} cores), commit {last.get('commit', '?')}; "
            f"command `{last.get('command', '?')}`; seconds of wall time per phase, from py-spy stack samples.\n\n")
    return meta + head + "\n".join(rows) + "\n" + foot + "\n"


def _kernels(seen: set) -> list[tuple[int, str]]:
    """(pid, notebook) of the notebook kernels started since the last call: children of run_notebook.py."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in seen:
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if b"ipykernel_launcher" not in b" ".join(args):
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        nb = next((Path(a.decode()).stem for a in parent if a.endswith(b".ipynb") and b"notebooks/" in a
                   and not a.startswith(b"outputs")), None)
        if nb:
            seen.add(int(proc.name))
            out.append((int(proc.name), nb))
    return out


def run(command: list[str], out: Path) -> int:
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy (it samples the kernels from outside)")
    out.mkdir(parents=True, exist_ok=True)
    main = subprocess.Popen(command, cwd=ROOT)
    seen: set[int] = set()
    spies = []
    try:
        while main.poll() is None:
            for pid, nb in _kernels(seen):
                spies.append(subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "20", "--format", "raw",
                                               "--nonblocking", "--subprocesses", "-o", str(out / f"{nb}.txt")],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)
    except KeyboardInterrupt:
        main.send_signal(signal.SIGINT)
        main.wait()
    for s in spies:  # each ends with its kernel and writes its file
        s.wait(timeout=60)
    return main.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a command (./run_all.sh ...) and profile its notebooks")
    r.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("summarize", help="the table from the stacks kept")
    for p in (r, s):
        p.add_argument("--out", default=str(paths.OUTPUTS / "profile"))
        p.add_argument("--profile", default=None, help="default: the last run's")
    args = ap.parse_args()
    out = Path(args.out)
    rc = 0
    if args.cmd == "run":
        command = [c for c in args.command if c != "--"]
        if not command:
            sys.exit("give the command to profile after --, e.g. -- ./run_all.sh")
        rc = run(command, out)
    times = json.loads((paths.OUTPUTS / "run_times.json").read_text())
    profile = args.profile or times.get("last_run", {}).get("profile", "quick")
    table = summarize(out, times, profile)
    (out / "profile.md").write_text(table)
    print(table)
    sys.exit(rc)


if __name__ == "__main__":
    main()
