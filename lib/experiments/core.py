"""Certification experiments shared by notebooks 05-07 (and the tables of notebook 10).

A *method* of denoised smoothing is a pair (base classifier f, denoiser D) behind the same
randomized smoothing: the smoothed classifier is

    g(x) = argmax_c P_{u ~ q_sigma}( f(D(x + u)) = c ),        D = identity without a denoiser,

certified by Cohen et al.'s CERTIFY (``lib.smoothing.Smooth.certify_batch``). The registry
:data:`METHODS` builds the pair for every method the papers compare, so a notebook swaps a
method in one line:

==============  =========================================================================
key             (classifier, denoiser)
==============  =========================================================================
none            standard classifier, no denoiser ("no denoiser" baseline, Salman et al. 2020)
white_box       classifier trained on x + u, u ~ q_sigma (Cohen et al. 2019 for Gaussian,
                Teng et al. / Yang et al. 2020 for Laplace / uniform): one classifier per sigma
mse             standard classifier behind a DnCNN trained with the MSE loss for this noise
                and sigma (Salman et al. 2020): one denoiser per sigma
one_step        standard classifier behind x̂ = y + sigma^2 s(y; sigma) (Lee eq. 3) with ONE
                multi-scale score network for every sigma (Gaussian noise only)
one_step_single as one_step, but with a score network trained at this sigma only (Lee D.1)
multi_step      standard classifier behind Lee's Algorithm 1 (annealed MAP gradient steps,
                eq. 6) with the same multi-scale network; any noise family
==============  =========================================================================

:func:`certify_method` certifies a fixed test subset with one method, noise and sigma and
returns the path of its per-example log (Cohen's TSV format, via
:func:`lib.certify.certify_dataset`), named ``LOGS/<notebook>/<dataset>-<method>-<noise>-
s<sigma>-<profile>-<hash>.tsv`` where ``<hash>`` is a hash of everything that determines the
rows (model configs, n0, n, alpha, seed, test indices). Rerunning with the same settings
reuses (or resumes) the log, so tables are rebuilt from logs, never from memory.

The second half turns registered tables (``lib.results.register_table``) into
``figures/RESULTS.md``: every table with its settings, the published reference rows, and
a one-line *finding* computed from the numbers (which method is best at each radius, ours
against the paper's).
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lib import paths
from lib.smoothing.noise import NoiseDistribution, make_noise
from lib.reporting.tables import (best_over, best_over_logs, certified_accuracy, load_table_specs, log_settings_of, prefixed,
                      read_log, render_table, table_caption, _log_abs)
from lib.smoothing.smooth import Smooth
from lib.utils import atomic_write_json, atomic_write_text, check_alpha, check_count, config_hash, get_device

__all__ = ["Setup", "Pipeline", "Method", "METHODS", "register_method", "method_label", "build_pipeline",
           "build_smooth", "TestSubset", "test_subset", "log_path", "certify_method", "certify_grid",
           "log_seconds", "log_summary", "table_settings", "average_certified_radius", "timing_table", "rows_by_method",
           "measure_throughput", "plot_certified_curves", "table_numbers", "table_finding",
           "results_markdown", "write_results", "EXPECTED_TABLES", "settings_line", "rebuild_table",
           "PUBLISHED", "published_rows", "grid_metrics", "model_summary",
           "annealing_kwargs", "cost_table", "plot_cost", "log_cpu_seconds",
           "paired_difference", "paired_table"]


# ====================================================================== setup and models
@dataclass
class Setup:
    """Everything that selects the trained models of an experiment (not the certification sizes).

    dataset, profile ("smoke" | "quick" | "full": the profile the *models* are trained under,
    through the shared caches of ``lib.models`` / ``lib.score`` / ``lib.denoise``), seed,
    device; ``classifier_arch`` (the standard classifier behind every denoiser);
    ``classifier_overrides`` {arch: training overrides for ``lib.models.get_classifier``},
    applied alike to the standard and the noise-trained classifiers so that they differ only in
    the noise; ``score`` (kwargs of ``lib.score.get_score_model``: schedule, param, arch);
    ``multi_step`` (see :func:`annealing_kwargs`: kwargs of ``lib.denoise.annealed_map``);
    ``mse`` (extra kwargs of ``lib.denoise.mse_denoiser``, e.g. ``progress``).
    """

    dataset: str = "mnist"
    profile: str = "quick"
    seed: int = 0
    device: str | None = None
    classifier_arch: str = "cnn"
    classifier_overrides: dict = field(default_factory=dict)
    score: dict = field(default_factory=lambda: {"schedule": "geometric"})
    multi_step: dict = field(default_factory=dict)
    mse: dict = field(default_factory=dict)
    _models: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_profile(cls, cfg: Mapping, dataset: str | None = None, seed: int = 0, **changes) -> "Setup":
        """A setup from a notebook's profile dict (keys ``dataset``, ``classifier_arch``,
        ``classifier_overrides``, ``score``, ``multi_step``, ``mse``; ``profile``)."""
        dataset = dataset or cfg.get("dataset", "mnist")
        kw = {k: cfg[k] for k in ("classifier_arch", "classifier_overrides", "score", "multi_step", "mse")
              if k in cfg}
        if isinstance(kw.get("classifier_arch"), Mapping):  # per dataset, e.g. {"mnist": "cnn", "cifar10": "resnet"}
            kw["classifier_arch"] = kw["classifier_arch"][dataset]
        return cls(dataset=dataset, profile=cfg["profile"], seed=int(seed), **{**kw, **changes})

    def replace(self, **changes) -> "Setup":
        """A copy with some fields changed (shares the loaded-model memo)."""
        new = dataclasses.replace(self, **changes)
        new._models = self._models
        return new

    @property
    def torch_device(self) -> torch.device:
        return get_device(self.device)

    # ------------------------------------------------------------------ models
    def _memo(self, key: tuple, load: Callable[[], tuple]):
        if key not in self._models:
            self._models[key] = load()
        return self._models[key]

    def classifier(self, noise: str | None = None, sigma: float | None = None, arch: str | None = None):
        """(classifier in eval mode, its training config, its history); trained on a cache miss.

        ``noise``/``sigma`` select a classifier trained on noisy inputs (white-box smoothing)."""
        from lib.models import classifiers as models

        arch = arch or self.classifier_arch
        over = dict(self.classifier_overrides.get(arch, {}))
        cfg = models.classifier_config(arch, self.dataset, self.profile, noise, sigma, self.seed, **over)

        def load():
            model, hist = models.get_classifier(arch, self.dataset, self.profile, noise, sigma, self.seed,
                                                device=self.torch_device, **over)
            return model, cfg, hist

        return self._memo(("classifier", config_hash(cfg)), load)

    def score_model(self, schedule: str | None = None, sigma: float | None = None):
        """(score model, its config, its history) from ``lib.score.get_score_model``."""
        from lib.denoising import score as score_lib

        kw = dict(self.score)
        if schedule is not None:
            kw["schedule"] = schedule
        if kw.get("schedule") == "single":
            kw["sigma"] = sigma
        cfg = score_lib.score_config(self.dataset, profile=self.profile, seed=self.seed, **kw)

        def load():
            model, hist = score_lib.get_score_model(self.dataset, profile=self.profile, seed=self.seed,
                                                    device=self.torch_device, **kw)
            return model, cfg, hist

        return self._memo(("score", config_hash(cfg)), load)

    def mse_denoiser(self, noise: NoiseDistribution):
        """(MSE-trained DnCNN denoiser for this noise, its config, history) from ``lib.denoise``."""
        from lib.denoising import denoise as denoise

        cfg = denoise.mse_config(self.dataset, noise.sigma, noise.name, profile=self.profile, seed=self.seed)

        def load():
            den = denoise.mse_denoiser(self.dataset, noise.sigma, noise.name, profile=self.profile, seed=self.seed,
                                       device=self.torch_device, **self.mse)
            return den, cfg, getattr(den, "history", {})

        return self._memo(("mse", config_hash(cfg)), load)


@dataclass
class Pipeline:
    """What ``Smooth`` needs: classifier [B, *shape] -> logits, denoiser (or None), and
    ``config``, a JSON dict identifying every model in it (hashed into the log name)."""

    classifier: Callable
    denoiser: Callable | None
    num_classes: int
    config: dict
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A named way of building (classifier, denoiser) for a noise: ``build(setup, noise) -> Pipeline``.

    ``noises``: the noise families it supports (others raise ``ValueError``).
    """

    key: str
    label: str
    build: Callable[[Setup, NoiseDistribution], Pipeline]
    noises: tuple = ("gaussian", "laplace", "uniform")
    reference: str = ""


def _num_classes(dataset: str) -> int:
    from lib.data import datasets as data

    return int(data.num_classes(dataset))


def _build_none(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    clf, cfg, hist = setup.classifier()
    return Pipeline(clf, None, _num_classes(setup.dataset), {"classifier": cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy")})


def _build_white_box(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    clf, cfg, hist = setup.classifier(noise.name, noise.sigma)
    return Pipeline(clf, None, _num_classes(setup.dataset), {"classifier": cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy"),
                     "classifier_test_accuracy_noisy": hist.get("test_accuracy_noisy")})


def _with_denoiser(setup: Setup, denoiser, den_cfg: dict, extra_info: dict | None = None) -> Pipeline:
    clf, cfg, hist = setup.classifier()
    return Pipeline(clf, denoiser, _num_classes(setup.dataset), {"classifier": cfg, "denoiser": den_cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy"), **(extra_info or {})})


def _build_mse(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    model, cfg, _ = setup.mse_denoiser(noise)
    return _with_denoiser(setup, model, {"kind": "mse", "model": cfg})


def _build_one_step(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    from lib.denoising import denoise as denoise

    score, cfg, _ = setup.score_model()
    return _with_denoiser(setup, denoise.tweedie(score, noise.sigma), {"kind": "one_step", "score": cfg})


def _build_one_step_single(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    from lib.denoising import denoise as denoise

    score, cfg, _ = setup.score_model(schedule="single", sigma=noise.sigma)
    return _with_denoiser(setup, denoise.tweedie(score, noise.sigma), {"kind": "one_step", "score": cfg})


def annealing_kwargs(multi_step: Mapping) -> dict:
    """Keyword arguments of ``lib.denoise.annealed_map`` from a profile's ``multi_step`` dict.

    ``num_levels`` (with optional ``sigma_max``, default 1.0, and ``sigma_min``, default 0.01)
    becomes Lee's geometric schedule ``sigmas`` (appendix C.1: 1.0 -> 0.01, L = 32); every
    other key (``step_size``, ``steps_per_level``, ...) is passed through."""
    from lib.denoising.score import geometric_sigmas

    kw = dict(multi_step)
    if "num_levels" in kw:
        kw["sigmas"] = geometric_sigmas(kw.pop("sigma_max", 1.0), kw.pop("sigma_min", 0.01), kw.pop("num_levels"))
    return kw


def _build_multi_step(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    from lib.denoising import denoise as denoise

    score, cfg, _ = setup.score_model()
    kw = annealing_kwargs(setup.multi_step)
    return _with_denoiser(setup, denoise.annealed_map(score, noise, **kw),
                          {"kind": "multi_step", "score": cfg, "annealing": kw})


#: the registry (see the module docstring); extend it with :func:`register_method`
METHODS: dict[str, Method] = {}


def register_method(method: Method, replace: bool = False) -> Method:
    """Add a method to :data:`METHODS` (``replace=True`` to overwrite an existing key)."""
    if not isinstance(method, Method):
        raise TypeError(f"method must be a lib.experiments.Method, got {type(method).__name__}")
    if method.key in METHODS and not replace:
        raise ValueError(f"method {method.key!r} is already registered")
    METHODS[method.key] = method
    return method


for _m in (
    Method("none", "no denoiser", _build_none, reference="Salman et al. 2020 (baseline)"),
    Method("white_box", "white-box", _build_white_box,
           reference="Cohen et al. 2019 (Gaussian); Teng et al. 2020, Yang et al. 2020 (Laplace, uniform)"),
    Method("mse", "MSE denoiser", _build_mse, noises=("gaussian",), reference="Salman et al. 2020"),
    Method("one_step", "one-step score", _build_one_step, noises=("gaussian",), reference="Lee 2021, eq. 3"),
    Method("one_step_single", "one-step score, single-sigma net", _build_one_step_single,
           noises=("gaussian",), reference="Lee 2021, appendix D.1"),
    Method("multi_step", "multi-step score", _build_multi_step, reference="Lee 2021, Algorithm 1"),
):
    register_method(_m)


def _method(name: str) -> Method:
    if not isinstance(name, str):
        raise TypeError(f"method must be a string key of lib.experiments.METHODS, got {type(name).__name__}")
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name]


def method_label(name: str) -> str:
    """The display label of a registered method ("one_step" -> "one-step score")."""
    return _method(name).label


def _as_noise(noise, sigma: float | None = None) -> NoiseDistribution:
    if isinstance(noise, NoiseDistribution):
        if sigma is not None and float(sigma) != noise.sigma:
            raise ValueError(f"sigma={sigma} contradicts noise {noise!r}")
        return noise
    if isinstance(noise, str):
        if sigma is None:
            raise ValueError("sigma is required when noise is given by name")
        return make_noise(noise, sigma)
    raise TypeError(f"noise must be a NoiseDistribution or a name, got {type(noise).__name__}")


def build_pipeline(method: str, noise, setup: Setup, sigma: float | None = None) -> Pipeline:
    """The (classifier, denoiser) pair of ``method`` for ``noise`` (loads or trains models)."""
    m = _method(method)
    noise = _as_noise(noise, sigma)
    if noise.name not in m.noises:
        raise ValueError(f"method {method!r} supports noise {m.noises}, got {noise.name!r}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a lib.experiments.Setup, got {type(setup).__name__}")
    return m.build(setup, noise)


def build_smooth(method: str, noise, setup: Setup, sigma: float | None = None) -> tuple[Smooth, Pipeline]:
    """``(Smooth(classifier, K, noise, denoiser), pipeline)`` for a registered method."""
    noise = _as_noise(noise, sigma)
    pipe = build_pipeline(method, noise, setup)
    return Smooth(pipe.classifier, pipe.num_classes, noise, denoiser=pipe.denoiser,
                  device=setup.torch_device), pipe


# ====================================================================== test subsets and logs
@dataclass
class TestSubset:
    """A fixed subset of a test split: xs [N, C, H, W], ys [N], and their dataset ``indices``."""

    __test__ = False  # not a pytest class

    xs: torch.Tensor
    ys: torch.Tensor
    indices: list
    dataset: str
    split: str = "test"

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def key(self) -> str:
        """A short hash of (dataset, split, indices): two subsets with the same key are the same points."""
        return config_hash([self.dataset, self.split, [int(i) for i in self.indices]])


def test_subset(dataset: str, num: int | None, split: str = "test") -> TestSubset:
    """Every ``skip``-th point of the split (Cohen et al.'s ``--skip``), ``num`` points in all;
    ``num=None`` takes the whole split. The same points for every method of a notebook."""
    from lib.data import datasets as data

    x, y = data.load(dataset, split)
    total = len(y)
    if num is None:
        idx = np.arange(total)
    else:
        num = check_count("num", num)
        if num > total:
            raise ValueError(f"num={num} exceeds the {total} points of {dataset}/{split}")
        idx = np.arange(0, total, total // num)[:num]
    sel = torch.as_tensor(idx)
    return TestSubset(x[sel], y[sel], [int(i) for i in idx], dataset, split)


def _log_key(method: str, noise: NoiseDistribution, pipe_config: dict, subset_key: str, n0: int, n: int,
             alpha: float, seed: int) -> str:
    return config_hash({"method": method, "noise": noise.name, "sigma": noise.sigma, "models": pipe_config,
                        "subset": subset_key, "n0": int(n0), "n": int(n), "alpha": float(alpha),
                        "seed": int(seed)})


def log_path(notebook: str, dataset: str, method: str, noise: NoiseDistribution, profile: str, key: str,
             tag: str = "") -> Path:
    """``LOGS/<notebook>/<dataset>-<method>[-<tag>]-<noise>-s<sigma>-<profile>-<key>.tsv``."""
    _method(method)
    if not re.fullmatch(r"[A-Za-z0-9_.]*", tag):
        raise ValueError(f"tag may hold letters, digits, '_' and '.', got {tag!r}")
    name = "-".join(p for p in (dataset, method, tag, noise.name, f"s{noise.sigma:g}", profile, key) if p)
    return paths.LOGS / str(notebook) / f"{name}.tsv"


def certify_method(method: str, noise, setup: Setup, subset: TestSubset, n0: int, n: int, alpha: float,
                   notebook: str, sigma: float | None = None, batch_size: int | None = None,
                   chunk: int | None = None, tag: str = "", progress: bool = True) -> Path:
    """CERTIFY every point of ``subset`` with ``method`` under ``noise``; return the log path.

    The log (Cohen's TSV: ``idx label predict radius correct time``) is reused when it is
    complete, resumed when it is partial, and written otherwise. Its sidecar JSON records
    the method, the configs of its models, the profile and the sizes.
    """
    noise = _as_noise(noise, sigma)
    n0, n = check_count("n0", n0), check_count("n", n)
    alpha = check_alpha(alpha)
    if not isinstance(subset, TestSubset):
        raise TypeError(f"subset must be a TestSubset (lib.experiments.test_subset), got {type(subset).__name__}")
    if subset.dataset != setup.dataset:
        raise ValueError(f"subset is from {subset.dataset!r} but setup.dataset is {setup.dataset!r}")
    smooth, pipe = build_smooth(method, noise, setup)
    key = _log_key(method, noise, pipe.config, subset.key, n0, n, alpha, setup.seed)
    path = log_path(notebook, setup.dataset, method, noise, setup.profile, key, tag)
    if chunk is None:  # keep blocks small enough for frequent checkpoints, big enough for batching
        chunk = max(1, min(64, (1 << 16) // max(n, 1)))
    settings = {"method": method, "method_label": method_label(method), "dataset": setup.dataset,
                "split": subset.split, "subset": subset.key, "profile": setup.profile, "log_key": key,
                "models": pipe.config}
    from lib.smoothing.certify import certify_dataset

    try:
        before = len(read_log(path)) if path.exists() else 0
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        before = 0  # an empty or torn log: certify_dataset repairs it
    cpu0 = time.process_time()
    df = certify_dataset(smooth, subset.xs, subset.ys, n0, n, alpha, path, indices=subset.indices, seed=setup.seed,
                         chunk=chunk, batch_size=batch_size, settings=settings, progress=progress)
    _add_cpu_seconds(path, time.process_time() - cpu0, len(df) - before)
    return path


def _cpu_path(path) -> Path:
    return Path(str(path) + ".cpu.json")


def _add_cpu_seconds(path, seconds: float, rows: int) -> None:
    """Accumulate the process CPU time spent writing ``rows`` new rows of a log (a sidecar
    ``<log>.cpu.json``): on a shared machine CPU time is steadier than wall time."""
    if rows <= 0:
        return
    side = _cpu_path(path)
    old = json.loads(side.read_text()) if side.exists() else {"cpu_seconds": 0.0, "rows": 0}
    atomic_write_json(side, {"cpu_seconds": old["cpu_seconds"] + float(seconds), "rows": old["rows"] + int(rows)})


def log_cpu_seconds(path) -> float:
    """Process CPU seconds of certification per test point x points of the log (NaN if unknown)."""
    side = _cpu_path(path)
    if not side.exists():
        return float("nan")
    d = json.loads(side.read_text())
    return d["cpu_seconds"] / max(d["rows"], 1) * len(read_log(path))


def certify_grid(methods: Sequence[str], noise: str, sigmas: Sequence[float], setup: Setup, subset: TestSubset,
                 n0: int, n: int, alpha: float, notebook: str, verbose: bool = True, progress: bool = False,
                 **kwargs) -> dict:
    """:func:`certify_method` for every (method, sigma); returns {(method, sigma): log path}.

    Methods that do not support ``noise`` are skipped. With ``verbose`` prints one line per
    run with its wall time (the sum of the per-example times in its log); ``progress`` shows
    a progress bar per run instead.
    """
    out = {}
    for m in methods:
        if noise not in _method(m).noises:
            continue
        for s in sigmas:
            t0 = time.perf_counter()
            path = certify_method(m, noise, setup, subset, n0, n, alpha, notebook, sigma=s, progress=progress,
                                  **kwargs)
            out[(m, float(s))] = path
            if verbose:
                print(f"{method_label(m):<34} {noise} sigma={s:<5g} {len(subset)} points, n={n}: "
                      f"{log_seconds(path):7.1f} s certifying (this call {time.perf_counter() - t0:6.1f} s)")
    return out


# ====================================================================== reading logs
def _parse_time(value) -> float:
    """Seconds of a ``H:MM:SS.ffffff`` (or ``D day, H:MM:SS``) timedelta string of a log."""
    text = str(value)
    days = 0
    if "day" in text:
        d, text = text.split(",", 1)
        days = int(d.split()[0])
    h, m, s = text.strip().split(":")
    return days * 86400 + int(h) * 3600 + int(m) * 60 + float(s)


def log_seconds(log: str | Path | pd.DataFrame) -> float:
    """Wall time of certification recorded in a log (a path or a frame read from one): the sum of
    its per-example times."""
    df = log if isinstance(log, pd.DataFrame) else read_log(log)
    return float(sum(_parse_time(t) for t in df["time"]))


def average_certified_radius(df: pd.DataFrame) -> float:
    """ACR: mean over test points of (radius if correct else 0) (Zhai et al. 2020)."""
    return float((df["radius"].to_numpy(float) * df["correct"].to_numpy(bool)).mean()) if len(df) else float("nan")


def log_summary(path: str | Path, radii: Sequence[float]) -> dict:
    """Numbers of one log: certified accuracy (fractions) at ``radii`` and 0, ACR, points,
    seconds and noisy samples per second (n0 + n per point)."""
    df = read_log(path)
    meta = log_settings_of(path)
    secs = log_seconds(df)
    samples = len(df) * (int(meta.get("n0", 0)) + int(meta.get("n", 0)))
    acc = certified_accuracy(df, [0.0] + [float(r) for r in radii])
    return {"points": len(df), "clean": float(acc[0]), "certified": {f"{r:g}": float(a) for r, a in zip(radii, acc[1:])},
            "acr": average_certified_radius(df), "seconds": secs, "cpu_seconds": log_cpu_seconds(path),
            "samples_per_second": samples / secs if secs > 0 else float("nan")}


def table_settings(subset: TestSubset, profile: str, model: str, sigma, n0: int, n, alpha: float,
                   **extra) -> dict:
    """The settings printed under a registered table (``register_table(settings=...)``), in
    one order for every notebook: data, model, sigma, n0, n, alpha, test points, profile, extras."""
    return {"data": f"{subset.dataset} {subset.split}, {len(subset)} points", "model": model, "sigma": sigma,
            "n0": n0, "n": n, "alpha": alpha, "test points": len(subset), "profile": profile, **extra}


def timing_table(logs: Mapping[tuple, str | Path]) -> pd.DataFrame:
    """One row per (method, sigma) log: points, n, wall seconds, noisy samples per second."""
    rows = []
    for (m, s), path in logs.items():
        meta, summ = log_settings_of(path), log_summary(path, [])
        rows.append({"method": method_label(m), "noise": meta.get("noise"), "sigma": s, "points": summ["points"],
                     "n": meta.get("n"), "seconds": round(summ["seconds"], 1),
                     "CPU seconds": round(summ["cpu_seconds"], 1), "samples/s": round(summ["samples_per_second"])
                     if summ["seconds"] > 0 else float("nan")})
    return pd.DataFrame(rows)


def rows_by_method(logs: Mapping[tuple, str | Path], labels: Mapping[str, str] | None = None,
                   suffix: str = "") -> dict:
    """{label: [log paths over sigma]} for ``register_table`` (best over sigma per radius).

    ``logs``: {(method, sigma): path} of :func:`certify_grid`; the label of a method is
    ``labels[method]`` or its registry label, followed by ``suffix`` (e.g. ", Laplace")."""
    out: dict[str, list] = {}
    for (m, _s), path in logs.items():
        label = (labels or {}).get(m, method_label(m)) + suffix
        out.setdefault(label, []).append(str(path))
    return out


def paired_difference(path_a: str | Path, path_b: str | Path, radius: float | None = None) -> dict:
    """Method A minus method B on the *same* test points (matched on ``idx``).

    Per point, the score is the certified radius if correct, else 0 (its mean is the ACR);
    with ``radius`` it is instead 1[correct and R >= radius] (its mean is the certified
    accuracy at ``radius``). Returns the mean difference, a 95% normal-approximation interval
    of the paired differences (``lo``, ``hi``), the number of points, and ``verdict``:
    "A better", "B better" or "not resolved" (the interval contains 0)."""
    a, b = read_log(path_a).set_index("idx"), read_log(path_b).set_index("idx")
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ValueError("the two logs share no test point")
    a, b = a.loc[common], b.loc[common]

    def score(df):
        ok = df["correct"].to_numpy(bool)
        rad = df["radius"].to_numpy(float)
        return (ok & (rad >= radius)).astype(float) if radius is not None else rad * ok

    d = score(a) - score(b)
    mean = float(d.mean())
    half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else float("inf")
    lo, hi = mean - half, mean + half
    verdict = "A better" if lo > 0 else "B better" if hi < 0 else "not resolved"
    return {"diff": mean, "lo": lo, "hi": hi, "points": int(len(d)), "verdict": verdict}


def paired_table(logs: Mapping[tuple, str | Path], pairs: Sequence[tuple[str, str]],
                 radius: float | None = None) -> pd.DataFrame:
    """:func:`paired_difference` of method A minus method B at every sigma both were run at;
    ``logs`` = {(method, sigma): path}. One row per (A, B, sigma); ACR differences unless
    ``radius`` is given (then certified-accuracy differences in points of %)."""
    rows = []
    scale = 100.0 if radius is not None else 1.0
    for a, b in pairs:
        for (m, s), path in logs.items():
            if m != a or (b, s) not in logs:
                continue
            d = paired_difference(path, logs[(b, s)], radius)
            rows.append({"A": method_label(a), "B": method_label(b), "sigma": s,
                         "A - B": round(scale * d["diff"], 3), "95% CI": f"[{scale * d['lo']:.3f}, {scale * d['hi']:.3f}]",
                         "verdict": d["verdict"].replace("A better", f"{method_label(a)} better")
                                                 .replace("B better", f"{method_label(b)} better")})
    return pd.DataFrame(rows)


def grid_metrics(logs: Mapping[tuple, str | Path], radii: Sequence[float], curve_grid: Sequence[float]) -> dict:
    """Numbers a notebook records for its smoke test, from {(method, sigma): log path}:

    ``certified[method][sigma]`` = {"clean", "acr", "r": {radius: accuracy}} (fractions),
    ``curves[method][sigma]`` = certified accuracy on ``curve_grid``, ``seconds[method][sigma]``,
    ``best_over_sigma[method]`` = {radius: max over sigma}."""
    cert, curves, secs, best = {}, {}, {}, {}
    grid = [float(r) for r in curve_grid]
    for (m, sig), path in logs.items():
        df = read_log(path)
        summ = log_summary(path, radii)
        key = f"{sig:g}"
        cert.setdefault(m, {})[key] = {"clean": summ["clean"], "acr": summ["acr"], "r": summ["certified"],
                                      "points": summ["points"]}
        curves.setdefault(m, {})[key] = [float(v) for v in certified_accuracy(df, grid)]
        secs.setdefault(m, {})[key] = summ["seconds"]
        b = best.setdefault(m, {})
        for r, v in summ["certified"].items():
            b[r] = max(b.get(r, 0.0), v)
    return {"certified": cert, "curves": curves, "curve_grid": grid, "seconds": secs, "best_over_sigma": best}


def model_summary(methods: Sequence[str], noise: str, sigmas: Sequence[float], setup: Setup) -> pd.DataFrame:
    """Build (load or train) the models of every (method, sigma) and list them: the classifier
    (arch, training noise, clean test accuracy) and the denoiser. Call it before certifying,
    so that training time (a cache miss) is not mistaken for certification time."""
    rows = []
    for m in methods:
        if noise not in _method(m).noises:
            continue
        for s in sigmas:
            pipe = build_pipeline(m, noise, setup, sigma=s)
            c = pipe.config["classifier"]
            d = pipe.config.get("denoiser") or {}
            acc = pipe.info.get("classifier_test_accuracy")
            rows.append({"method": method_label(m), "sigma": s, "classifier": c.get("arch"),
                         "trained on": f"{c['noise']} {c['sigma']:g}" if c.get("noise") else "clean",
                         "clean test acc": round(100 * acc, 2) if acc is not None else None,
                         "denoiser": d.get("kind", "none"),
                         "score schedule": (d.get("score") or {}).get("schedule", "")})
    return pd.DataFrame(rows)


def cost_table(logs: Mapping[str, str | Path], radii: Sequence[float]) -> pd.DataFrame:
    """One row per labelled log: clean and certified accuracy (%) at ``radii``, ACR, wall
    seconds, seconds per test point and noisy samples per second -- accuracy beside cost."""
    rows = {}
    for label, path in logs.items():
        summ = log_summary(path, radii)
        rows[label] = {"clean": round(100 * summ["clean"], 1),
                       **{f"r={r}": round(100 * v, 1) for r, v in summ["certified"].items()},
                       "ACR": round(summ["acr"], 3), "seconds": round(summ["seconds"], 1),
                       "CPU seconds": round(summ["cpu_seconds"], 1),
                       "s/point": round(summ["seconds"] / max(summ["points"], 1), 3),
                       "samples/s": round(summ["samples_per_second"])}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_cost(df: pd.DataFrame, x: Sequence[float], xlabel: str, radius: str, ax=None, logx: bool = True):
    """Certified accuracy at ``radius`` (a column "r=...") and clean accuracy against ``x``
    (samples n or annealing steps), with wall and CPU seconds on a second axis. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, df["clean"], "o-", label="clean (r = 0)")
    ax.plot(x, df[radius], "s-", label=f"certified, {radius}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    if logx:
        ax.set_xscale("log")
    ax2 = ax.twinx()
    ax2.plot(x, df["seconds"], "k--", alpha=0.6, label="wall time (s)")
    if "CPU seconds" in df and df["CPU seconds"].notna().all():
        ax2.plot(x, df["CPU seconds"], "k:", alpha=0.6, label="CPU time (s)")
    ax2.set_ylabel("certification time (s)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=10, loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def measure_throughput(method: str, noise, setup: Setup, xs: torch.Tensor, num: int = 256,
                       sigma: float | None = None, batch_size: int | None = None) -> float:
    """Noisy samples per second of a method (denoiser + classifier): ``num`` votes for each of
    ``xs`` [B, *shape], timed after one warm-up call."""
    smooth, _ = build_smooth(method, noise, setup, sigma)
    gen = torch.Generator(device=smooth.device).manual_seed(0)
    smooth.sample_counts(xs[:1], min(num, 16), batch_size, gen)
    t0 = time.perf_counter()
    smooth.sample_counts(xs, num, batch_size, gen)
    return xs.shape[0] * num / (time.perf_counter() - t0)


def plot_certified_curves(rows: Mapping[str, Sequence[str | Path]], ax=None, max_radius: float | None = None,
                          title: str = "", norm: str = "ℓ2", styles: Mapping[str, dict] | None = None):
    """Certified accuracy against radius, one curve per label: the best over the label's logs
    at every radius (the envelope over sigma, Cohen et al. / Lee Figure 1 style). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    dfs = {label: [read_log(_log_abs(str(p))) for p in logs] for label, logs in rows.items()}
    top = max_radius or max(float(df["radius"].max()) for v in dfs.values() for df in v) * 1.05 or 1.0
    grid = np.linspace(0, top, 300)
    for label, frames in dfs.items():
        acc = best_over(frames, grid)
        ax.plot(grid, 100 * acc, label=label, lw=2, **((styles or {}).get(label, {})))
    ax.set_xlabel(f"{norm} radius")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, top)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=10)
    return ax


# ====================================================================== published references
#: Published certified accuracies (%), copied verbatim for *labelled reference rows only*
#: (``register_table(reference=...)``), never mixed with our results. Keys of each table are
#: "<source>: <row>", where <row> equals the label of our corresponding row when there is
#: one, so that :func:`table_finding` can compare orderings.
PUBLISHED = {
    # Lee (2021), Table 1: ResNet-110 on CIFAR-10, l2 radii 0.25 ... 1.50 (seed 000, section 4)
    "lee_table1": {
        "radii": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
        "source": "Lee (2021) Table 1 (CIFAR-10, ResNet-110, n=10,000, alpha=0.001)",
        "rows": {
            "Lee T1 CIFAR-10: white-box": [59, 45, 31, 21, 18, 13],
            "Lee T1 CIFAR-10: denoised smoothing, query access (Salman et al.)": [45, 20, 15, 13, 11, 10],
            "Lee T1 CIFAR-10: denoised smoothing, full access (Salman et al.)": [56, 41, 28, 19, 16, 13],
            "Lee T1 CIFAR-10: one-step score": [60, 42, 28, 19, 11, 6],
        },
    },
    # Lee (2021), Table 2: ResNet-50 on ImageNet, same radii
    "lee_table2": {
        "radii": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
        "source": "Lee (2021) Table 2 (ImageNet, ResNet-50, n=10,000, alpha=0.001)",
        "rows": {
            "Lee T2 ImageNet: white-box": [62, 52, 45, 39, 34, 29],
            "Lee T2 ImageNet: denoised smoothing, query access (Salman et al.)": [48, 31, 19, 12, 7, 4],
            "Lee T2 ImageNet: denoised smoothing, full access (Salman et al.)": [50, 33, 20, 14, 11, 6],
            "Lee T2 ImageNet: one-step score": [56, 41, 30, 24, 17, 11],
        },
    },
    # Yang et al. (2020), CIFAR-10 l1 certified accuracy (Laplace row: Teng et al.'s smoothing),
    # radii 0.5 / 1.0 / 1.5 / 2.0, as quoted in the companion's issue; Lee's Figure 1 (b, c)
    # shows these baselines only as curves, and the seed texts give no l1 numbers.
    "yang_l1": {
        "radii": [0.5, 1.0, 1.5, 2.0],
        "source": "Yang et al. (2020), CIFAR-10 white-box l1 smoothing (quoted in the project issue; not in the seed texts)",
        "rows": {
            "Yang CIFAR-10: white-box, Laplace": [61, 39, 24, 16],
            "Yang CIFAR-10: white-box, uniform": [70, 59, 51, 43],
        },
    },
}


def published_rows(*keys: str) -> tuple[dict, str]:
    """(reference rows, source text) of one or more :data:`PUBLISHED` tables, for ``register_table``."""
    rows, sources = {}, []
    for k in keys:
        if k not in PUBLISHED:
            raise ValueError(f"published table must be one of {sorted(PUBLISHED)}, got {k!r}")
        rows.update(PUBLISHED[k]["rows"])
        sources.append(PUBLISHED[k]["source"])
    return rows, "; ".join(sources)


# ====================================================================== findings and RESULTS.md
#: notebooks expected to register certified-accuracy tables, and what they hold
EXPECTED_TABLES = {
    "04": "Saremi & Srivastava Table 1 (empirical Bayes smoothed linear classifier, MNIST)",
    "05": "denoised smoothing, ℓ2 (Lee Tables 1-2 layout)",
    "06": "denoised smoothing, ℓ1 (Lee Figure 1 b, c, e, f; Yang et al.)",
    "07": "ablations (Lee D.1, D.2, cost)",
}


def _ref_split(label: str) -> tuple[str, str]:
    """A reference label "<source>: <row>" -> (source, row); no colon -> ("published", label)."""
    if ": " in label:
        src, row = label.split(": ", 1)
        return src.strip(), row.strip()
    return "published", label.strip()


def _num(v) -> float:
    try:
        return float(str(v).split()[0])
    except (ValueError, IndexError):
        return float("nan")


def table_numbers(spec: Mapping) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ours %, our lower CI %, our upper CI %, published %) of a registered table, as floats.

    Columns are the radii (as strings, plus "clean" for ours when the spec has it); a cell
    is the best over the row's logs (``lib.results.best_over_logs``). Published rows
    are right-aligned to the radii (a missing clean column is NaN).
    """
    acc, lo, hi = best_over_logs(spec["rows"], spec["radii"], clean=spec.get("clean", True))
    cols = list(acc.columns)
    ref = {}
    for label, values in (spec.get("reference") or {}).items():
        values = [_num(v) for v in values]
        ref[label] = [float("nan")] * (len(cols) - len(values)) + values
    refs = pd.DataFrame.from_dict(ref, orient="index", columns=cols) if ref else pd.DataFrame(columns=cols)
    return 100 * acc, 100 * lo, 100 * hi, refs


def _winners(df: pd.DataFrame, cols: Sequence[str]) -> dict:
    """{column: (labels of the best rows (several on a tie), best value)}."""
    out = {}
    for c in cols:
        col = df[c].dropna()
        if len(col):
            top = float(col.max())
            out[c] = ([str(i) for i in col.index[col == top]], top)
    return out


def _runs(winners: Mapping[str, tuple], cols: Sequence[str]) -> str:
    """Group consecutive radii with the same winner: "one-step score at r=0.25-0.5; white-box at r=0.75"."""
    parts, cur, start, end = [], None, None, None
    for c in cols:
        if c not in winners:
            continue
        w = " = ".join(winners[c][0]) if winners[c][1] > 0 else "none (0%)"
        if w != cur:
            if cur is not None:
                parts.append((cur, start, end))
            cur, start = w, c
        end = c
    if cur is not None:
        parts.append((cur, start, end))
    return "; ".join(f"{w} at r={s}" + (f"–{e}" if e != s else "") for w, s, e in parts)


def table_finding(spec: Mapping) -> str:
    """A one-paragraph finding computed from a registered table's numbers.

    Ours: the best row at each radius (ties within the 95% intervals are flagged). For each
    published source ("<source>: <row>" reference labels), its best row at each radius,
    and, over the rows whose name matches one of ours, how many pairwise orderings
    (row A above row B at radius r) agree with ours.
    """
    ours, lo, hi, refs = table_numbers(spec)
    radii = [f"{float(r):g}" for r in spec["radii"]]
    w = _winners(ours, radii)
    text = f"Ours: best {_runs(w, radii)}"
    # is the winner separated from the runner-up beyond the intervals?
    unresolved = []  # radii where the winner is tied or within the 95% interval of the runner-up
    for c in radii:
        if c in w and len(ours) > 1 and w[c][1] > 0:
            best = w[c][0]
            rest = ours[c].drop(best)
            if len(best) > 1 or (len(rest) and hi.loc[rest.idxmax(), c] >= lo.loc[best[0], c]):
                unresolved.append(c)
    if unresolved:
        text += f" (95% intervals of the best two overlap at r={', '.join(unresolved)})"
    text += "."
    if len(refs):
        groups: dict[str, dict] = {}
        for label in refs.index:
            src, row = _ref_split(label)
            groups.setdefault(src, {})[row] = refs.loc[label]
        for src, rows in groups.items():
            pub = pd.DataFrame(rows).T
            pw = _winners(pub, radii)
            if pw:
                text += f" {src}: best {_runs(pw, radii)}."
            shared = [r for r in pub.index if r in ours.index]
            agree = total = within = 0
            for i, a in enumerate(shared):
                for b in shared[i + 1:]:
                    for c in radii:
                        pa, pb, oa, ob = pub.loc[a, c], pub.loc[b, c], ours.loc[a, c], ours.loc[b, c]
                        if np.isnan(pa) or np.isnan(pb) or pa == pb:
                            continue
                        total += 1
                        if (oa > ob) == (pa > pb) and oa != ob:
                            agree += 1
                        elif max(lo.loc[a, c], lo.loc[b, c]) <= min(hi.loc[a, c], hi.loc[b, c]):
                            within += 1  # our intervals overlap: the disagreement is not resolved
            if total:
                text += f" Pairwise orderings of {', '.join(shared)} agree with {src} in {agree}/{total} (rows, radius) comparisons"
                if agree < total:
                    text += (f"; our ordering contradicts the published one in the other {total - agree}"
                             f" ({within} of them within our 95% intervals, i.e. not resolved by our sample).")
                else:
                    text += "."
    return text


def settings_line(spec: Mapping) -> str:
    """The settings of a registered table as one line: "data=mnist, model=..., n=1000, ..."."""
    return ", ".join(f"{k}={v}" for k, v in (spec.get("settings") or {}).items())


def rebuild_table(spec: Mapping, save: bool = True) -> tuple[pd.DataFrame, str]:
    """(table, finding) of a registered spec, rebuilt from its logs; ``save`` rewrites its
    CSV / Markdown / LaTeX files in ``figures/``. Raises ``FileNotFoundError`` if a log is gone."""
    from lib.reporting.tables import save_table

    table = render_table(spec)
    if save:
        save_table(table, spec["stem"], spec["notebook"], caption=table_caption(spec))
    return table, table_finding(spec)


def results_markdown(specs: Sequence[Mapping] | None = None, figures: Iterable[str] = (),
                     profile_note: str = "") -> tuple[str, list[str]]:
    """The text of ``RESULTS.md`` and the list of table names that could not be rendered.

    Each table: title, the Markdown table (ours with 95% intervals + published rows), the
    settings line, the computed finding, and the caption of ``lib.results.table_caption``.
    """
    from lib.reporting.tables import markdown_table

    specs = list(load_table_specs() if specs is None else specs)
    lines = ["# Results", "",
             "Every table of the companion, rebuilt from the per-example certification logs "
             "(Cohen et al.'s TSV format, under `outputs/logs/`). Cells are certified accuracy (%) "
             "with a 95% Clopper–Pearson interval over the test points; rows marked *(published)* are "
             "numbers copied from the papers for reference, **not** our results, and were obtained in "
             "another setting (CIFAR-10 / ImageNet, large networks, n = 10,000–100,000) than ours "
             "(see each table's settings line).", ""]
    if profile_note:
        lines += [profile_note, ""]
    profiles_used = sorted({str((s.get("settings") or {}).get("profile", "?")) for s in specs})
    if specs:
        lines += [f"Profiles of the tables below: {', '.join(profiles_used)} "
                  "(smoke = a few seconds for tests; quick = a 2-core CPU; full = paper scale on a GPU).", ""]
    have = {str(s["notebook"]).split("_")[0] for s in specs}
    missing = [f"{k} ({v})" for k, v in EXPECTED_TABLES.items() if k not in have]
    if missing:
        lines += ["**Not yet run** (no registered table): " + "; ".join(missing) + ".", ""]
    failed = []
    lines += ["## Contents", ""]
    for s in specs:
        name = prefixed(s["notebook"], s["stem"])
        lines.append(f"- [{name}: {s['title']}](#{_anchor(name, s['title'])})")
    lines.append("")
    for s in specs:
        name = prefixed(s["notebook"], s["stem"])
        lines += [f"## {name}: {s['title']}", ""]
        try:
            table = render_table(s)
            finding = table_finding(s)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            failed.append(name)
            lines += [f"*Could not be rebuilt from its logs ({type(exc).__name__}: {exc}); rerun notebook "
                      f"{s['notebook']}.*", ""]
            continue
        source = s.get("reference_source") or "none given for this table"
        lines += [markdown_table(table), f"**Settings:** {settings_line(s)}.", "",
                  f"**Published reference:** {source}"
                  + (" (the rows marked *(published)*)." if s.get("reference") else "."), "",
                  f"**Finding (computed from the numbers above):** {finding}", "",
                  f"*{table_caption(s)}*", ""]
    figs = [f for f in figures]
    if figs:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figs] + [""]
    return "\n".join(lines), failed


def _anchor(name: str, title: str) -> str:
    text = f"{name}: {title}".lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def write_results(path: str | Path | None = None, specs: Sequence[Mapping] | None = None,
                  figures: Iterable[str] = (), profile_note: str = "") -> tuple[Path, list[str]]:
    """Write ``figures/RESULTS.md`` (see :func:`results_markdown`); returns (path, failed tables)."""
    path = Path(path) if path is not None else paths.FIGURES / "RESULTS.md"
    text, failed = results_markdown(specs, figures, profile_note)
    atomic_write_text(path, text)
    return path, failed
