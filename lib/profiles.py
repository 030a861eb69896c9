"""Run profiles, defined once: ``smoke`` (seconds, for tests), ``quick`` (the default of
``./run_all.sh``, a 2-core CPU) and ``full`` (paper scale, meant for a GPU).

Two kinds of settings live here, and nowhere else:

* **Model settings, by model family** (``MODELS``): everything that determines a cached model's
  weights, defined once per family and profile, e.g. "the standard CNN classifier", "the
  multi-scale score network", "the DnCNN MSE denoiser", "the DEEN". Library code reads them with
  ``model_settings(family, profile, **overrides)``; every notebook that uses a family gets the same
  model from the same place. Families: ``classifier/<arch>`` (linear, mlp, cnn, resnet),
  ``linear_h`` (Saremi & Srivastava's linear h, notebook 04), ``score``, ``mse``, ``deen``,
  ``multi_step`` (Lee's annealed denoiser), and those added by later features (end of ``MODELS``).
* **Run sizes, per notebook** (``SETTINGS``, in :mod:`lib.profile_runs`): test points, n, alpha, sigma grids ... A notebook's
  ``parameters`` cell holds plain literals (``profile = "quick"``, ``seed = 0``); the next cell
  calls ``cfg = lib.profiles.get("04", profile)`` and everything derives from ``cfg``, so a
  papermill override of ``profile`` changes every setting consistently. Library code never reads
  a notebook's section (notebook helpers receive what they need as arguments).
"""
from __future__ import annotations

import copy
import os

from lib.profile_models import MODELS, PROFILES
from lib.profile_runs import SETTINGS
from lib.utils import check_device

# ================================================================ tiny full (CI): full's choices, smoke's sizes
#: environment variable ("1") that shrinks the ``full`` profile to tiny sizes (``./run_all.sh --profile full --tiny``)
TINY_ENV = "COMPANION_TINY"
# the keys that are *sizes* (work, not choices): under tiny full each takes the smoke profile's value of the same
# notebook section / model family; every other key (dataset, architectures and their nets, sigma grids, radii,
# n0, alpha, methods, noise levels L, draws T ...) keeps its full value, so every line of the full run executes.
# `num_points` None (the whole test set) becomes smoke's count, still spread over the whole test set.
TINY_SIZE_KEYS = frozenset({
    "num_points", "n", "iters", "epochs", "n_train", "n_eval", "train_limit", "test_limit", "batch_size",
    "scratch_iters", "warmup", "val_points", "n_max_04", "points_04", "n_max_05", "points_05", "h_points",
    "pi_points", "pi_n", "pi_chunk", "recipe_points", "n_images", "n_val", "steps", "m", "tau", "ns", "n_grid",
    "steps_n", "probe_samples", "grid_1d", "grid_2d", "stein_ns", "stein_reps", "lip_functions", "lip_points",
    "gh_nodes", "certify_points", "n_ref", "tradeoff_grid", "sim_copies", "rmax_certify_ns", "conc_dims",
    "conc_samples", "train_n", "train_steps", "test_points", "train_cert_n", "objective_samples", "eb_points",
    "e_samples", "mog_steps", "mog_batch", "mog_eval", "lee_num", "lee_steps", "lee_dim", "fig3_samples",
    "grid_images", "steps_per_level", "lip_dims", "tradeoff_ns", "nc_sweep", "n_max", "adam_epochs", "sgd_step"})


# ... and below smoke where the full architectures (U-Net, ResNet-110, DnCNN-17) make smoke's sizes minutes of CPU
TINY_CAPS = {"num_points": 2, "n": 10, "n0": 10, "iters": 3, "scratch_iters": 3, "epochs": 1, "steps": 2,
             "draws": 2, "n_train": 32, "train_limit": 64, "test_limit": 32, "n_eval": 16, "batch_size": 8, "n_images": 4,
             "n_val": 4, "val_points": 8, "h_points": 8, "pi_points": 2, "pi_n": 100, "recipe_points": 8,
             "probe_samples": 16, "warmup": 1, "steps_n": 10, "n_max_04": 200, "points_04": 2, "n_max_05": 40,
             "points_05": 2, "adam_epochs": 1}

# lists cut to their two ends under tiny full (07: the annealing levels L = 1 and Lee's L = 32; the training-budget
# multipliers x1 and the largest), so that the first and the last choice still run
TINY_ENDS = frozenset({"levels", "multipliers"})


def tiny() -> bool:
    """Whether ``COMPANION_TINY=1`` (tiny full) is set."""
    return os.environ.get(TINY_ENV, "0") == "1"


def _tiny(full: dict, smoke: dict) -> dict:
    """``full`` with every size key (:data:`TINY_SIZE_KEYS`) replaced by ``smoke``'s, recursively."""
    out = {}
    for k, v in full.items():
        if k in TINY_SIZE_KEYS and k in smoke:
            out[k] = _cap(k, copy.deepcopy(smoke[k]))
        elif k in TINY_CAPS and isinstance(v, int):
            out[k] = _cap(k, v)
        elif k in TINY_ENDS and isinstance(v, list) and len(v) > 2:
            out[k] = [v[0], v[-1]]
        elif isinstance(v, dict):  # nested settings (also those smoke lacks, e.g. full's per-data-set overrides)
            out[k] = _tiny(v, smoke[k] if isinstance(smoke.get(k), dict) else {})
        else:
            out[k] = v
    return out


def _cap(key: str, value):
    """``value`` (an int, None meaning "all", or a dict of ints) at most ``TINY_CAPS[key]``."""
    cap = TINY_CAPS.get(key)
    if cap is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: _cap(key, v) for k, v in value.items()}
    return cap if value is None else min(value, cap) if isinstance(value, int) else value


def model_settings(family: str, profile: str, **overrides) -> dict:
    """A copy of the settings of model ``family`` under ``profile``, with ``overrides`` replacing keys.

    ``model_settings("classifier/cnn", "quick")``, ``model_settings("score", "smoke")``. These are
    the settings that determine a cached model's weights (and so its cache hash). Under tiny full
    (:func:`tiny`), ``full``'s settings with smoke's sizes."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if family not in MODELS:
        raise KeyError(f"no model family {family!r}; known: {sorted(MODELS)}")
    settings = MODELS[family][profile]
    if profile == "full" and tiny():
        settings = _tiny(settings, MODELS[family]["smoke"])
    return {**copy.deepcopy(settings), **copy.deepcopy(overrides)}


# ================================================================ run sizes, per notebook
# The tables live in lib/profile_runs.py (SETTINGS); get() reads them.


def get(notebook: str | int, profile: str) -> dict:
    """A copy of the settings of ``notebook`` ("04", 4 or "04_empirical...") under ``profile``.

    Every notebook starts with this call, so it is where ``full`` refuses to run without a GPU:
    :func:`lib.utils.check_device` raises ``DeviceError`` on a CPU unless ``COMPANION_ALLOW_CPU=1``
    (``./run_all.sh --allow-cpu``). Under tiny full
    (``COMPANION_TINY=1``) the sizes are smoke's (:data:`TINY_SIZE_KEYS`), the choices full's."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = f"{int(str(notebook).split('_')[0]):02d}"
    if key not in SETTINGS:
        raise KeyError(f"no settings for notebook {notebook!r}; known: {sorted(SETTINGS)}")
    out = copy.deepcopy(SETTINGS[key][profile])
    if profile == "full" and tiny():
        out = _tiny(out, SETTINGS[key]["smoke"])
    out["profile"] = profile
    if profile == "full":  # a notebook about to run at paper scale: a GPU, or an explicit CPU opt-in
        check_device(profile)
    return out
