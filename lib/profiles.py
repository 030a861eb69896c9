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
* **Run settings, per notebook** (``SETTINGS``, in :mod:`lib.profile_runs`): test points, n, alpha, sigma
  grids ... Both kinds of table keep their counts in ``"sizes"`` sub-dicts, apart from the choices, so
  that tiny full is derived from them (:func:`get`, :func:`model_settings`). A notebook's
  ``parameters`` cell holds plain literals (``profile = "quick"``, ``seed = 0``); the next cell
  calls ``cfg = lib.profiles.get("04", profile)`` and everything derives from ``cfg``, so a
  papermill override of ``profile`` changes every setting consistently. Library code never reads
  a notebook's section (notebook helpers receive what they need as arguments).
"""
from __future__ import annotations

import copy
import os

from lib.profile_models import MODELS, PROFILES, SIZES, SWEEPS
from lib.profile_runs import SETTINGS
from lib.utils import check_device

# ================================================================ tiny full (CI): full's choices, smoke's sizes
#: environment variable ("1") that shrinks the ``full`` profile to tiny sizes (``./run_all.sh --profile full --tiny``)
TINY_ENV = "COMPANION_TINY"
# Tiny full is derived from the tables' structure: every entry of a ``"sizes"`` sub-dict takes the smoke
# profile's value at the same place (full's where smoke has none), capped by TINY_CAPS where the full
# architectures (U-Net, ResNet-110, DnCNN-17) make smoke's sizes minutes of CPU; every list of a ``"sweeps"``
# sub-dict is cut to its two ends (07: the annealing levels L = 1 and Lee's L = 32, the training-budget
# multipliers x1 and the largest); every other entry (dataset, architectures, sigma grids, radii, alpha,
# methods, noise levels L ...) keeps full's value, so every line of the full run executes.
# `num_points` None (the whole test set) becomes smoke's count, still spread over the whole test set.
TINY_CAPS = {"num_points": 2, "curve_points": 2, "n": 10, "n0": 10, "iters": 3, "scratch_iters": 3, "epochs": 1, "steps": 2,
             "draws": 2, "n_train": 32, "train_limit": 64, "test_limit": 32, "n_eval": 16, "batch_size": 8, "n_images": 4,
             "n_val": 4, "val_points": 8, "h_points": 8, "pi_points": 2, "pi_n": 100, "recipe_points": 8,
             "probe_samples": 16, "warmup": 1, "steps_n": 10, "n_max_04": 200, "points_04": 2, "n_max_05": 40,
             "points_05": 2, "adam_epochs": 1}


def flat(table: dict) -> dict:
    """``table`` as the settings the notebooks read: the entries of every ``"sizes"`` and ``"sweeps"``
    sub-dict beside the choices of the same level (a copy)."""
    if not isinstance(table, dict):
        return copy.deepcopy(table)
    out = {}
    for k, v in table.items():
        if k in (SIZES, SWEEPS):
            out.update(flat(v))
        else:
            out[k] = flat(v)
    return out


def tiny() -> bool:
    """Whether ``COMPANION_TINY=1`` (tiny full) is set."""
    return os.environ.get(TINY_ENV, "0") == "1"


def _tiny(full: dict, smoke: dict) -> dict:
    """The table ``full`` with each of its sizes replaced by ``smoke``'s and capped, each sweep cut to its ends."""
    out = {}
    for k, v in full.items():
        if k == SIZES:
            out[k] = {name: _cap(name, copy.deepcopy(smoke.get(SIZES, {}).get(name, value))) for name, value in v.items()}
        elif k == SWEEPS:
            out[k] = {name: [x[0], x[-1]] if len(x) > 2 else list(x) for name, x in v.items()}
        elif isinstance(v, dict):  # nested settings (also those smoke lacks, e.g. full's per-data-set overrides)
            out[k] = _tiny(v, smoke[k] if isinstance(smoke.get(k), dict) else {})
        else:
            out[k] = copy.deepcopy(v)
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
    return {**flat(settings), **copy.deepcopy(overrides)}


# ================================================================ run settings, per notebook
# The tables live in lib/profile_runs.py (SETTINGS); get() reads them.


def get(notebook: str | int, profile: str) -> dict:
    """A copy of the settings of ``notebook`` ("04", 4 or "04_empirical...") under ``profile``.

    Every notebook starts with this call, so it is where ``full`` refuses to run without a GPU:
    :func:`lib.utils.check_device` raises ``DeviceError`` on a CPU unless ``COMPANION_ALLOW_CPU=1``
    (``./run_all.sh --allow-cpu``). Under tiny full
    (``COMPANION_TINY=1``) the sizes are smoke's, capped (:data:`TINY_CAPS`), the choices full's."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = f"{int(str(notebook).split('_')[0]):02d}"
    if key not in SETTINGS:
        raise KeyError(f"no settings for notebook {notebook!r}; known: {sorted(SETTINGS)}")
    table = SETTINGS[key][profile]
    if profile == "full" and tiny():
        table = _tiny(table, SETTINGS[key]["smoke"])
    out = flat(table)
    out["profile"] = profile
    if profile == "full":  # a notebook about to run at paper scale: a GPU, or an explicit CPU opt-in
        check_device(profile)
    return out
