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

PROFILES = ("smoke", "quick", "full")

# ================================================================ model settings, by family
# classifiers: options and optimiser per architecture, then data size and epochs per profile. The quick
# sizes fit a 2-core CPU (3 epochs on 30k images; measured in notebook 07); full is paper scale
# (ResNet-110 of Cohen et al. on CIFAR-10).
_CLASSIFIER_ARCH = {
    "linear": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128},
    "mlp": {"hidden": [512, 512], "optimizer": "adam", "lr": 1e-3, "batch_size": 128},
    "cnn": {"width": 32, "hidden": 128, "optimizer": "adam", "lr": 1e-3, "batch_size": 128},
    "resnet": {"depth": 20, "width": 16, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
               "weight_decay": 1e-4, "batch_size": 256},
}
_CLASSIFIER_DATA = {
    "smoke": {"train_split": "train", "train_limit": 2000, "test_limit": 1000, "epochs": 2},
    "quick": {"train_split": "trainval", "train_limit": 30000, "test_limit": None, "epochs": 3},
    "full": {"train_split": "trainval", "train_limit": None, "test_limit": None, "epochs": 30},
}
_CLASSIFIER_PROFILE_ARCH = {  # per profile and arch, on top of the two above
    "smoke": {"cnn": {"width": 16}, "resnet": {"depth": 8, "width": 8, "epochs": 1}},
    "quick": {"cnn": {"width": 16}, "resnet": {"depth": 8, "width": 8, "lr_step": None}},
    "full": {"resnet": {"depth": 110, "epochs": 90, "lr_step": 30}},
}

MODELS: dict[str, dict[str, dict]] = {
    **{f"classifier/{arch}": {p: {**opts, **_CLASSIFIER_DATA[p], **_CLASSIFIER_PROFILE_ARCH[p].get(arch, {})}
                              for p in PROFILES}
       for arch, opts in _CLASSIFIER_ARCH.items()},
    # Saremi & Srivastava's 1-layer h (notebook 04): plain SGD matches the paper's test accuracy 0.9218
    # and its g[h] row, Adam does not
    "linear_h": {
        "smoke": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 5, "batch_size": 128,
                  "train_split": "train", "train_limit": 2000, "test_limit": 1000},
        "quick": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 20, "batch_size": 128,
                  "train_split": "trainval", "train_limit": None, "test_limit": None},
        "full": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 20, "batch_size": 128,
                 "train_split": "trainval", "train_limit": None, "test_limit": None},
    },
    # the noise-conditional score network (lib.denoising.score_config): network per arch, DSM steps per
    # kind: "multi" (geometric and uniform schedules), "single" (one sigma), "energy" (sigma-conditional DEEN)
    "score": {
        "smoke": {"arch": "mlp", "nets": {"mlp": {"hidden": 64, "depth": 1, "emb_dim": 16, "conv": 4},
                                          "unet": {"base": 8, "mults": [1, 2], "emb_dim": 16}},
                  "iters": {"multi": 200, "single": 100, "energy": 100}, "batch_size": 32,
                  "lr": 2e-3, "ema": 0.99, "n_train": 2000, "n_eval": 100},
        "quick": {"arch": "mlp", "nets": {"mlp": {"hidden": 512, "depth": 3, "emb_dim": 64, "conv": 16},
                                          "unet": {"base": 8, "mults": [1, 2, 2], "emb_dim": 32}},
                  "iters": {"multi": 1200, "single": 300, "energy": 500}, "batch_size": 128,
                  "lr": 1e-3, "ema": 0.999, "n_train": None, "n_eval": 1000},
        "full": {"arch": "unet", "nets": {"mlp": {"hidden": 2048, "depth": 4, "emb_dim": 128},
                                         "unet": {"base": 64, "mults": [1, 2, 2], "emb_dim": 128}},
                 "iters": {"multi": 100_000, "single": 30_000, "energy": 50_000}, "batch_size": 128,
                 "lr": 2e-4, "ema": 0.9999, "n_train": None, "n_eval": 10_000},
    },
    # the DnCNN MSE denoisers of Salman et al. (lib.denoising.mse_config), one per noise and sigma
    "mse": {
        "smoke": {"net": {"depth": 3, "features": 8}, "iters": 60, "batch_size": 32, "lr": 2e-3, "ema": 0.99,
                  "n_train": 1000},
        "quick": {"net": {"depth": 5, "features": 16}, "iters": 400, "batch_size": 64, "lr": 2e-3, "ema": 0.99,
                  "n_train": None},
        "full": {"net": {"depth": 17, "features": 64}, "iters": 30_000, "batch_size": 128, "lr": 1e-3,
                 "ema": 0.999, "n_train": None},
    },
    # the fixed-sigma DEEN of Saremi & Srivastava (lib.denoising.energy_config)
    "deen": {
        "smoke": {"hidden": [256, 256], "epochs": 6, "batch_size": 64, "lr": 3e-3,
                  "train_split": "train", "train_limit": 2000, "test_limit": 500},
        # quick: chosen by lib.experiments.fidelity.deen_sweep (issue 14): sigma = 0.6, every candidate trained for
        # ~60 CPU-s (its epochs from a measured per-step cost), test MSE per pixel (2000 test images; Wiener floor
        # 0.0235, noisy 0.36): 256-256 x 20 epochs 0.0165, 512-512 x 8 0.0158, 1024-1024 x 3 0.0171,
        # 512-512-512 x 6 0.0161 (shared 2-core CPU under load) -> 512-512, 8 epochs
        "quick": {"hidden": [512, 512], "epochs": 8, "batch_size": 128, "lr": 1e-3,
                  "train_split": "trainval", "train_limit": None, "test_limit": 2000},
        "full": {"hidden": [1024, 1024], "epochs": 30, "batch_size": 128, "lr": 1e-3,
                 "train_split": "trainval", "train_limit": None, "test_limit": None},
    },
    # Lee's multi-step (annealed MAP) denoiser: kwargs of lib.denoising.annealed_map (L levels, T steps each)
    "multi_step": {"smoke": {"num_levels": 4, "steps_per_level": 1},
                   "quick": {"num_levels": 32, "steps_per_level": 1},
                   "full": {"num_levels": 32, "steps_per_level": 1}},
    # ---- families of later features: add one entry per family here, {profile: settings}, e.g.
    # "rejector": {"smoke": {...}, "quick": {...}, "full": {...}},
    # Sheikholeslami et al.'s rejector (lib.models.rejector_config): a small CNN backbone + K heads, T noise
    # draws per image, Adam for the first epochs then SGD divided by 10 every `sgd_step` epochs (section 6.3:
    # 20 epochs, 5 Adam at 1e-4, SGD from 1e-3 / 10 every 5; quick and smoke scale the epochs down and the
    # learning rates up); `head`: "clean" trains head f(x_i) (eq. 9), "noisy" head f(D(x_i + eps))
    "rejector": {
        "smoke": {"net": {"width": 4, "hidden": 16, "use_classifier": True}, "draws": 2, "epochs": 2,
                  "adam_epochs": 1, "adam_lr": 1e-3, "sgd_lr": 1e-2, "momentum": 0.9, "sgd_step": 1,
                  "batch_size": 32, "n_train": 256, "head": "clean"},
        "quick": {"net": {"width": 8, "hidden": 64, "use_classifier": True}, "draws": 4, "epochs": 4,
                  "adam_epochs": 1, "adam_lr": 1e-3, "sgd_lr": 1e-2, "momentum": 0.9, "sgd_step": 1,
                  "batch_size": 32, "n_train": 1000, "head": "clean"},
        "full": {"net": {"width": 32, "hidden": 256, "use_classifier": True}, "draws": 20, "epochs": 20,
                 "adam_epochs": 5, "adam_lr": 1e-4, "sgd_lr": 1e-3, "momentum": 0.9, "sgd_step": 5,
                 "batch_size": 32, "n_train": None, "head": "clean"},
    },
    # Salman et al.'s stability objective for the DnCNN (lib.denoising.stability_config): `iters` of
    # fine-tuning the MSE model ("MSE+Stab"), `scratch_iters` from scratch ("Stab"); budgets in the ratio of
    # Sheikholeslami et al. Table 1 to the MSE budget (MSE 90 epochs, +Stab 20, Stab alone 600);
    # `surrogate_arch`: the classifier that trains the query-access denoiser
    "stability": {
        "smoke": {"iters": 30, "scratch_iters": 60, "batch_size": 32, "lr": 1e-3, "ema": 0.99, "n_train": 1000,
                  "surrogate_arch": "mlp"},
        "quick": {"iters": 100, "scratch_iters": 2700, "batch_size": 64, "lr": 1e-3, "ema": 0.99, "n_train": None,
                  "surrogate_arch": "mlp"},
        "full": {"iters": 6700, "scratch_iters": 200_000, "batch_size": 128, "lr": 1e-4, "ema": 0.999,
                 "n_train": None, "surrogate_arch": "mlp"},
    },
    # XHAT_ε / XHAT_0 / SmoothAdv_ε classifiers H (lib.models.adversarial, notebook 09): one trainer, the same
    # eps, m, PGD steps and schedule for all three (Saremi & Srivastava Figure 5: eps = 1.0, m = 1, 16 PGD steps;
    # their architecture, optimiser and epochs are not stated). x̂ is the "deen" family at the same sigma;
    # deen_low: overrides of "deen" for the walk-jump's sigma' = 0.05 energy; lecture_m: the m (noise draws per example)
    # shared by notebook 09's Lecture 14 §3 rows (Gaussian augmentation, smoothed objective, SmoothAdv; Salman et al.
    # use m in {1, 2, 4, 8}; with m = 1 augmentation and the smoothed objective coincide). quick: 400 updates of 64 with 4 PGD
    # steps (~3 min on an idle 2-core CPU for both sigmas).
    "xhat": {
        "smoke": {"arch": "mlp", "hidden": [128], "eps": 1.0, "m": 1, "pgd_steps": 2, "clip": [0.0, 1.0], "iters": 60,
                  "batch_size": 32, "lr": 2e-3, "warmup": 20, "train_split": "train", "train_limit": 2000,
                  "test_limit": 500, "deen_low": {}, "lecture_m": 2},
        "quick": {"arch": "mlp", "hidden": [256, 256], "eps": 1.0, "m": 1, "pgd_steps": 4, "clip": [0.0, 1.0],
                  "iters": 400, "batch_size": 64, "lr": 1e-3, "warmup": 100, "train_split": "trainval",
                  "train_limit": None, "test_limit": 2000, "deen_low": {"epochs": 1}, "lecture_m": 4},
        "full": {"arch": "cnn", "width": 32, "hidden": 128, "eps": 1.0, "m": 1, "pgd_steps": 16, "clip": [0.0, 1.0],
                 "epochs": 30, "batch_size": 128, "lr": 1e-3, "ema": 0.999, "warmup": 4690, "train_split": "trainval",
                 "train_limit": None, "test_limit": None, "deen_low": {}, "lecture_m": 4},
    },
}


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
# The tables live in lib/profile_runs.py (SETTINGS); get() below reads them.


def __getattr__(name):  # lib.profiles.SETTINGS: the run-size tables (loaded on first use)
    if name == "SETTINGS":
        from lib.profile_runs import SETTINGS

        return SETTINGS
    raise AttributeError(f"module 'lib.profiles' has no attribute {name!r}")


def get(notebook: str | int, profile: str) -> dict:
    """A copy of the settings of ``notebook`` ("04", 4 or "04_empirical...") under ``profile``.

    Every notebook starts with this call, so it is where ``full`` refuses to run without a GPU:
    :func:`lib.utils.check_device` raises ``DeviceError`` on a CPU unless ``COMPANION_ALLOW_CPU=1``
    (``./run_all.sh --allow-cpu``). Under tiny full
    (``COMPANION_TINY=1``) the sizes are smoke's (:data:`TINY_SIZE_KEYS`), the choices full's."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    from lib.profile_runs import SETTINGS

    key = f"{int(str(notebook).split('_')[0]):02d}"
    if key not in SETTINGS:
        raise KeyError(f"no settings for notebook {notebook!r}; known: {sorted(SETTINGS)}")
    out = copy.deepcopy(SETTINGS[key][profile])
    if profile == "full" and tiny():
        out = _tiny(out, SETTINGS[key]["smoke"])
    out["profile"] = profile
    if profile == "full":  # a notebook about to run at paper scale: a GPU, or an explicit CPU opt-in
        from lib.utils import check_device

        check_device(profile)
    return out
