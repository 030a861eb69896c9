"""Small shared helpers: argument checks, seeding, devices, atomic writes, config hashes.

Every public function of ``lib`` validates its arguments with the ``check_*`` helpers
below *before* doing any work, so that bad input fails fast with a message that names
the offending parameter.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm


# ---------------------------------------------------------------- argument checks
def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float; raise ``ValueError`` unless it is finite and > 0."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_sigma(sigma: Any, name: str = "sigma") -> float:
    """A noise level: finite and strictly positive."""
    return check_positive(name, sigma)


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A failure probability: strictly inside (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number in (0, 1), got {type(alpha).__name__}")
    alpha = float(alpha)
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"{name} must lie in (0, 1), got {alpha}")
    return alpha


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer count ``>= minimum`` (numpy integers accepted, floats and bools not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if the tensor holds NaN or infinity."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# ---------------------------------------------------------------- seeds and devices
def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch from one integer; return a CPU generator seeded alike."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: environment variable that fixes torch's intra-op threads (a positive integer)
THREADS_ENV = "COMPANION_THREADS"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the CPU count where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(window: float = 0.2) -> int:
    """CPU cores not busy with other processes, at least 1: :func:`usable_cores` minus the cores
    busy now (rounded), measured from ``/proc/stat`` over ``window`` seconds on Linux (the one-minute
    load average elsewhere). ``run_all.sh`` reads it to decide how its kernels wait and whether the two
    lecture notebooks run side by side; it never sets a thread count (see :func:`configure_threads`)."""
    cores = usable_cores()
    busy = _busy_cores(window)
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # not available on this platform
            busy = 0.0
    return max(1, min(cores, cores - int(busy + 0.5)))


def wait_policy(free: int, usable: int) -> str | None:
    """The ``OMP_WAIT_POLICY`` a run should give its kernels: ``"PASSIVE"`` when ``free`` < ``usable``
    cores (other work holds some: threads that spin while they wait would take turns with it on a
    shared core) and the environment sets none; else None (keep torch's default, spinning, the faster
    one on an idle machine). The thread count stays ``usable`` either way (:func:`configure_threads`)."""
    if os.environ.get("OMP_WAIT_POLICY") or free >= usable:
        return None
    return "PASSIVE"


def _busy_cores(window: float) -> float | None:
    """Busy cores over ``window`` seconds from the aggregate line of ``/proc/stat`` (None if unreadable)."""
    def sample():
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        ticks = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(ticks), ticks[3] + ticks[4], sum(line.startswith("cpu") for line in lines) - 1

    try:
        total0, idle0, ncpu = sample()
        time.sleep(window)
        total1, idle1, _ = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return ncpu * (1.0 - (idle1 - idle0) / (total1 - total0))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads and return the number used.

    ``threads`` if given; else the environment variable ``COMPANION_THREADS``; else (unless
    ``OMP_NUM_THREADS`` is set, which torch already honours) the number of :func:`usable_cores`,
    whatever else the machine is running. Float results depend on the thread count: a linear layer
    differs in the last bits between 1 and 2 threads (MKL's blocking), and a training run's weights
    with it, and every log downstream. So the default is fixed by the machine, never by its momentary
    load: the same profile and seed give the same numbers on the same machine, busy or idle. On a
    busy machine ``run_all.sh`` makes the kernels' threads wait passively (``OMP_WAIT_POLICY=PASSIVE``),
    which keeps most of the speed a thread per free core would have (figures in docs/environment.md).
    Set ``COMPANION_THREADS`` to choose another count (the numbers then are that count's)."""
    if threads is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ValueError(f"{THREADS_ENV} must be a positive integer, got {env!r}") from None
        elif os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        else:
            threads = usable_cores()
    threads = check_count("threads", threads)
    torch.set_num_threads(threads)
    return threads


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU (never a bare 'cuda')."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: environment variable that lets the ``full`` profile run on a CPU ("1"; ``./run_all.sh --allow-cpu``)
ALLOW_CPU_ENV = "COMPANION_ALLOW_CPU"


class DeviceError(RuntimeError):
    """The ``full`` profile found no usable GPU and was not allowed to run on the CPU."""


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here (None if it can): no CUDA in this torch build, a driver
    that fails to initialise (e.g. a driver/toolkit mismatch), or no visible device."""
    if not torch.backends.cuda.is_built():
        return f"this torch build ({torch.__version__}) has no CUDA support"
    try:
        torch.cuda.init()
    except Exception as e:  # noqa: BLE001 - the driver's own message is the diagnosis
        return f"CUDA failed to initialise: {e}"
    if torch.cuda.device_count() == 0:
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
    return None


def check_device(profile: str, device: str | torch.device | None = None) -> torch.device:
    """The device a run of ``profile`` uses (:func:`get_device`); under ``full`` a CPU is refused
    with :class:`DeviceError` (naming why CUDA is unusable and the fix) unless the environment
    variable ``COMPANION_ALLOW_CPU=1`` asks for it (``./run_all.sh --allow-cpu``): a paper-scale
    run must not fall back to weeks on a CPU silently."""
    dev = get_device(device)
    if profile == "full" and dev.type == "cpu" and os.environ.get(ALLOW_CPU_ENV, "0") != "1":
        why = cuda_problem() or f"device {str(device)!r} was requested"
        raise DeviceError(f"the 'full' profile needs a GPU, but {why}. To run it on the CPU anyway (days to "
                          f"months; see README 'full'), set {ALLOW_CPU_ENV}=1 or pass ./run_all.sh --allow-cpu; "
                          "for a CPU-sized run use profile 'quick'.")
    return dev


def lecture_threads(profile: str) -> int:
    """Torch threads for the lecture notebooks' toy-sized tensors: one under smoke/quick (fastest
    and no oversubscription on a shared CPU), every usable core under ``full``
    (:func:`configure_threads`), whose larger sizes gain from them."""
    return configure_threads(None if profile == "full" else 1)


#: input floats per call of a convolutional network on the CPU: a batch is run in row blocks this
#: size, so that the activations of a convolutional layer (16-32 channels: 16-32x the input) stay in
#: the cache (``benchmarks/bench_cpu.py`` measures the choice per pipeline)
CPU_CALL_FLOATS = 1 << 16


def conv_layers(*fns) -> list:
    """The convolutional layers of ``fns``: modules, or objects holding one as ``score``, ``net`` or
    ``energy`` (the denoisers), each layer once."""
    found: dict[int, torch.nn.Module] = {}
    for fn in fns:
        parts = [fn] + [getattr(fn, a, None) for a in ("score", "net", "energy")]
        for p in parts:
            if isinstance(p, torch.nn.Module):
                found.update((id(m), m) for m in p.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    return list(found.values())


def has_convolution(*fns) -> bool:
    """Whether any of ``fns`` -- modules, or objects holding one as ``score``, ``net`` or ``energy``
    (the denoisers) -- has a convolutional layer."""
    return bool(conv_layers(*fns))


#: whether CPU pipeline calls run 2-D convolutions with channels-last weights (:func:`channels_last`)
CPU_CHANNELS_LAST = True


@contextmanager
def channels_last(*fns, device: str | torch.device = "cpu") -> Iterator[None]:
    """Inside the block, the 2-D convolutions of ``fns`` (as in :func:`has_convolution`) hold their
    weights in channels-last layout when ``device`` is the CPU and :data:`CPU_CHANNELS_LAST` is set;
    afterwards each layer gets back the very weight tensor it had.

    Only the memory layout changes, never a value, whatever the interleaving of calls: oneDNN then
    runs channels-last kernels. On a 2-core Xeon (``benchmarks/bench_cpu.py``, docs/performance.md)
    the quick CNN gains x1.03, DnCNN + CNN x1.05, the one-step pipeline x1.01, the multi-step
    denoiser's score network nothing (x1.25, x1.14, x1.10 while the pooling after the convolutions was
    ``max_pool2d``, whose contiguous-input kernel is slow; see ``lib.models.MaxPool2x2``). A layer with one
    input channel keeps its kernel (its weight has the same memory either way), so the layers
    after it take their input in the default layout. Whether the float results equal those of the
    default layout is a property of the kernels, not a guarantee: ``tests/test_memory.py`` and
    every run of ``benchmarks/bench_cpu.py`` check that each pipeline's votes are identical both
    ways."""
    convs = [m for m in conv_layers(*fns) if getattr(m, "weight", None) is not None and m.weight.dim() == 4]
    if not (CPU_CHANNELS_LAST and convs and torch.device(device).type == "cpu"):
        yield
        return
    saved = [(m, m.weight.data) for m in convs]
    try:
        with torch.inference_mode(False):  # ordinary tensors: an energy model may differentiate through them
            for m, w in saved:
                m.weight.data = w.detach().contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for m, w in saved:
            m.weight.data = w


def rows_per_call(input_numel: int, device: str | torch.device, convolutional: bool = True) -> int | None:
    """Rows of one network call: ``CPU_CALL_FLOATS`` of inputs for a convolutional network on the
    CPU (83 MNIST images, 21 CIFAR-10 images); None (the whole batch) on a GPU, where larger calls
    keep the device busy, and for networks without convolutions, whose activations are as wide as
    their hidden layers (an MLP on 334 rows runs faster than on 83)."""
    if torch.device(device).type != "cpu" or not convolutional:
        return None
    return max(1, CPU_CALL_FLOATS // max(1, int(input_numel)))


def in_row_blocks(fn, batch: torch.Tensor, convolutional: bool = True) -> torch.Tensor:
    """``fn(batch)`` computed in blocks of :func:`rows_per_call` rows and concatenated: the same
    result for a row-wise ``fn`` (each output row a function of its input row alone) whose float
    results do not depend on the rows of a call, as for the project's networks (checked by
    tests/test_memory.py and on every run of ``benchmarks/bench_cpu.py``)."""
    rows = rows_per_call(batch[0].numel(), batch.device, convolutional) if batch.shape[0] else None
    if rows is None or rows >= batch.shape[0]:
        return fn(batch)
    return torch.cat([fn(batch[i:i + rows]) for i in range(0, batch.shape[0], rows)])


def synchronize(device: str | torch.device | None = None) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op on the CPU), so that a clock reads real time."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimate_seconds(label: str, probe, probe_units: float, total_units: float,
                     device: str | torch.device | None = None, warmup: bool = True) -> float:
    """Print and return the estimated seconds of a long step from a short synchronised probe.

    ``probe()`` does ``probe_units`` of the step's work (e.g. noisy samples through the real
    pipeline, at a chunk size comparable to the real one; optimiser steps at the real batch
    size); it runs once untimed (warm-up: kernels, allocator) if ``warmup``, then once timed
    between two :func:`synchronize` calls. The estimate is ``total_units`` at the probe's rate,
    printed with the device before the long step starts."""
    check_positive("probe_units", probe_units)
    device = torch.device(device) if device is not None else get_device()
    if warmup:
        probe()
    synchronize(device)
    t0 = time.perf_counter()
    probe()
    synchronize(device)
    elapsed = max(time.perf_counter() - t0, 1e-9)
    seconds = elapsed * float(total_units) / float(probe_units)
    print(f"[estimate] {label}: ~{human_seconds(seconds)} on {device} ({float(total_units):,.0f} units at "
          f"{float(probe_units) / elapsed:,.0f}/s, probe of {float(probe_units):,.0f})")
    return seconds


def human_seconds(s: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.1f} s"


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator | None:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (None -> None)."""
    if seed is None:
        return None
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


# ---------------------------------------------------------------- atomic files
@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto ``path`` on success.

    A crash while writing leaves the old file (or no file) in place, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes mode 600; a plain file respects the umask
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> Path:
    """Write JSON atomically; ``sort_keys=False`` keeps the dicts' order (e.g. a table's rows)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> dict:
    """``{"sha256", "bytes"}`` of a file: what a manifest records to verify it later (:func:`matches_digest`)."""
    return {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}


def matches_digest(path: str | os.PathLike, manifest: dict) -> bool:
    """Whether the file at ``path`` has the SHA-256 (and size, where recorded) of ``manifest``."""
    return manifest.get("bytes") in (None, Path(path).stat().st_size) and sha256_file(path) == manifest.get("sha256")


def config_hash(config: dict, length: int = 12) -> str:
    """A short stable hash of a JSON-serialisable config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def progress_bar(total: int | None = None, desc: str = "", disable: bool = False, **kwargs):
    """A progress bar: live in JupyterLab, quiet in headless runs.

    Live sessions get ``tqdm.auto``: an ipywidgets bar in JupyterLab, a text bar on a terminal.
    Headless runs (``COMPANION_HEADLESS=1``, set by run_all.sh, run_tests.sh and
    scripts/run_notebook.py) get a text bar that, off a terminal, refreshes at most every 15 s,
    since papermill stores every refresh as a line. ``leave=False``: the bar disappears when done.
    """
    if os.environ.get("COMPANION_HEADLESS", "0") == "1":
        tqdm = text_tqdm
        interactive = getattr(sys.stderr, "isatty", lambda: False)()
        kwargs.setdefault("mininterval", 0.5 if interactive else 15.0)
    else:
        tqdm = auto_tqdm
    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, disable=disable, **kwargs)
