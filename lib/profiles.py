"""Run profiles, defined once: ``smoke`` (seconds, for tests), ``quick`` (the default of
``./run_all.sh``, a 2-core CPU) and ``full`` (paper scale, meant for a GPU).

A notebook's ``parameters`` cell holds plain literals (``profile = "quick"``, ``seed = 0``);
the next cell calls ``cfg = lib.profiles.get("04", profile)`` and everything derives from
``cfg``, so a papermill override of ``profile`` changes every setting consistently.

Each notebook owns one section of ``SETTINGS``, keyed by its two-digit number.
"""
from __future__ import annotations

import copy

PROFILES = ("smoke", "quick", "full")

# ---------------------------------------------------------------- 05-07: shared by the denoised-smoothing notebooks
# (owned by lib/experiments.py). Sizes were chosen from measured throughputs on the 2-core CPU: the
# multi-step denoiser costs L score evaluations per noisy sample and dominates (see notebook 07).
_DS_NOTE = {
    "smoke": "smoke test: tiny models, {points} points, n={n}, alpha=0.01 -- the numbers are not meaningful",
    "quick": ("MNIST on a 2-core CPU: small CNN classifier, MLP score network, {points} test points, n={n}, "
              "n0={n0}, alpha=0.001 (the papers: CIFAR-10 / ImageNet, ResNet-110 / ResNet-50, NCSNv2 score "
              "networks, n=10,000, n0=100, the full test sets); multi-step denoiser with Lee's L=32 levels, T=1"),
    "full": ("paper sizes: n=10,000, n0=100, alpha=0.001 (Lee C.4; Cohen et al. use n=100,000), the full test "
             "set, L=32 levels; CIFAR-10 with dataset='cifar10' (ResNet-110, U-Net score network)"),
}
_CLF_QUICK = {"cnn": {"width": 16, "epochs": 3, "train_limit": 30000}, "mlp": {"epochs": 3, "train_limit": 30000},
              "linear": {"epochs": 3, "train_limit": 30000},
              "resnet": {"depth": 8, "width": 8, "epochs": 3, "lr_step": None, "train_limit": 30000}}
_DS = {  # the models: one standard classifier, white-box classifiers, one multi-scale score network
    "smoke": {"dataset": "mnist", "classifier_arch": "cnn", "classifier_overrides": {"cnn": {"width": 16}},
              "score": {"schedule": "geometric"}, "mse": {},
              "multi_step": {"num_levels": 4, "steps_per_level": 1},
              "model_note": "CNN classifier (smoke), multi-scale MLP score network (smoke)"},
    "quick": {"dataset": "mnist", "classifier_arch": "cnn", "classifier_overrides": _CLF_QUICK,
              "score": {"schedule": "geometric"}, "mse": {},
              "multi_step": {"num_levels": 32, "steps_per_level": 1},
              "model_note": "CNN classifier (3 epochs on 30k images), multi-scale MLP score network of notebook 02"},
    "full": {"dataset": "mnist", "classifier_arch": {"mnist": "cnn", "fashion_mnist": "cnn", "cifar10": "resnet"},
             "classifier_overrides": {}, "score": {"schedule": "geometric"}, "mse": {},
             "multi_step": {"num_levels": 32, "steps_per_level": 1},
             "model_note": "CNN (MNIST) or ResNet-110 (CIFAR-10); multi-scale score network of notebook 02"},
}
_DS_SIZES = {"smoke": {"num_points": 24, "n0": 10, "n": 60, "alpha": 0.01, "probe_samples": 64},
             "quick": {"num_points": 150, "n0": 20, "n": 200, "alpha": 0.001, "probe_samples": 256},
             "full": {"num_points": None, "n0": 100, "n": 10_000, "alpha": 0.001, "probe_samples": 2048}}
_DS_SIGMAS_L1 = {"smoke": [0.5], "quick": [0.5, 1.0], "full": [0.25, 0.5, 1.0]}
_DS_05 = {p: {**_DS_SIZES[p], "sigmas": [0.25, 0.5, 1.0], "radii": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
              "methods": ["none", "white_box", "mse", "one_step", "multi_step"],
              "curve_grid": [round(0.05 * i, 2) for i in range(61)]} for p in PROFILES}
_DS_06 = {p: {**_DS_SIZES[p], "sigmas": _DS_SIGMAS_L1[p], "radii": [0.5, 1.0, 1.5, 2.0],
              "noises": ["laplace", "uniform"], "methods": ["white_box", "multi_step"],
              "curve_grid": [round(0.05 * i, 2) for i in range(81)]} for p in PROFILES}
_DS_07 = {
    "smoke": {"d1": {"sigmas": [0.25, 0.5], "num_points": 24, "n0": 10, "n": 60, "alpha": 0.01,
                     "radii": [0.25, 0.5, 0.75], "val_points": 100},
              "d2": {"archs": ["linear", "mlp", "cnn"], "sigmas": [0.5], "num_points": 20, "n0": 10, "n": 60,
                     "alpha": 0.01, "radii": [0.25, 0.5, 0.75]},
              "cost": {"sigma": 0.5, "num_points": 16, "n0": 10, "n_grid": [30, 120], "n_method": "one_step",
                       "levels": [1, 4], "steps_n": 30, "steps_sigmas": [0.5], "alpha": 0.01, "radii": [0.25, 0.5, 0.75]}},
    "quick": {"d1": {"sigmas": [0.12, 0.25, 0.5, 1.0], "num_points": 150, "n0": 20, "n": 200, "alpha": 0.001,
                     "radii": [0.25, 0.5, 0.75, 1.0, 1.5], "val_points": 1000},
              "d2": {"archs": ["linear", "mlp", "cnn", "resnet"], "sigmas": [0.5], "num_points": 150,
                     "n0": 20, "n": 200, "alpha": 0.001, "radii": [0.25, 0.5, 0.75]},
              "cost": {"sigma": 0.5, "num_points": 30, "n0": 20, "n_grid": [100, 400, 1600], "n_method": "one_step",
                       "levels": [1, 4, 8, 16, 32], "steps_n": 100, "steps_sigmas": [0.5, 1.0], "alpha": 0.001,
                       "radii": [0.25, 0.5, 0.75]}},
    "full": {"d1": {"sigmas": [0.12, 0.25, 0.5, 1.0], "num_points": 500, "n0": 100, "n": 10_000, "alpha": 0.001,
                    "radii": [0.25, 0.5, 0.75, 1.0, 1.5], "val_points": 10_000},
             "d2": {"archs": ["linear", "mlp", "cnn", "resnet"], "sigmas": [0.25, 0.5, 1.0], "num_points": 500,
                    "n0": 100, "n": 10_000, "alpha": 0.001, "radii": [0.25, 0.5, 0.75, 1.0, 1.5]},
             "cost": {"sigma": 0.5, "num_points": 500, "n0": 100, "n_grid": [100, 1000, 10_000, 100_000],
                      "n_method": "one_step", "levels": [1, 2, 4, 8, 16, 32], "steps_n": 10_000,
                      "steps_sigmas": [0.5, 1.0], "alpha": 0.001,
                      "radii": [0.25, 0.5, 0.75, 1.0, 1.5]}},
}
for _p in PROFILES:
    for _d in (_DS_05[_p], _DS_06[_p]):
        _d["note"] = _DS_NOTE[_p].format(points=_d["num_points"], n=_d["n"], n0=_d["n0"])
    _DS_07[_p]["note"] = _DS_NOTE[_p].format(points=_DS_07[_p]["d1"]["num_points"], n=_DS_07[_p]["d1"]["n"],
                                             n0=_DS_07[_p]["d1"]["n0"])

SETTINGS: dict[str, dict[str, dict]] = {
    # ---------------------------------------------------------------- 00 lecture
    "00": {
        "smoke": {"sigma": 0.5, "picture_sigmas": [0.25, 0.5, 1.0], "grid_1d": 801, "grid_2d": 121,
                  "stein_dim": 5, "stein_ns": [100, 1000, 10000], "stein_reps": 4,
                  "lip_functions": 3, "lip_points": 30, "lip_dims": [2, 10, 100], "gh_nodes": 40,
                  "certify_points": 24, "n0": 64, "n": 1000, "alpha": 0.001, "n_ref": 20000,
                  "tradeoff_ns": [100, 1000, 10000], "tradeoff_alphas": [0.1, 0.01, 0.001], "tradeoff_grid": 41,
                  "sim_p": [0.6, 0.75, 0.9], "sim_copies": 300, "sim_n0": 10, "sim_n": 100,
                  "rmax_certify_ns": [100, 1000], "conc_dims": [2, 10, 100, 1000, 10000], "conc_samples": 1000,
                  "train_sigma": 1.0, "train_n": 2000, "train_steps": 150, "train_k": 8, "test_points": 60, "train_cert_n": 300,
                  "objective_samples": 64},
        "quick": {"sigma": 0.5, "picture_sigmas": [0.25, 0.5, 1.0], "grid_1d": 1601, "grid_2d": 241,
                  "stein_dim": 5, "stein_ns": [100, 1000, 10000, 100000], "stein_reps": 8,
                  "lip_functions": 10, "lip_points": 60, "lip_dims": [2, 10, 100], "gh_nodes": 64,
                  "certify_points": 40, "n0": 100, "n": 10000, "alpha": 0.001, "n_ref": 200000,
                  "tradeoff_ns": [100, 1000, 10000, 100000], "tradeoff_alphas": [0.1, 0.01, 0.001, 0.0001],
                  "tradeoff_grid": 61, "sim_p": [0.55, 0.6, 0.7, 0.8, 0.9], "sim_copies": 1000, "sim_n0": 10,
                  "sim_n": 100, "rmax_certify_ns": [100, 1000, 10000, 100000],
                  "conc_dims": [2, 10, 100, 1000, 10000, 100000], "conc_samples": 2000,
                  "train_sigma": 1.0, "train_n": 4000, "train_steps": 1000, "train_k": 8, "test_points": 200, "train_cert_n": 2000,
                  "objective_samples": 256},
        "full": {"sigma": 0.5, "picture_sigmas": [0.25, 0.5, 1.0], "grid_1d": 3201, "grid_2d": 361,
                 "stein_dim": 5, "stein_ns": [100, 1000, 10000, 100000, 1000000], "stein_reps": 16,
                 "lip_functions": 30, "lip_points": 100, "lip_dims": [2, 10, 100, 1000], "gh_nodes": 80,
                 "certify_points": 60, "n0": 100, "n": 100000, "alpha": 0.001, "n_ref": 1000000,
                 "tradeoff_ns": [100, 1000, 10000, 100000], "tradeoff_alphas": [0.1, 0.01, 0.001, 0.0001],
                 "tradeoff_grid": 101, "sim_p": [0.55, 0.6, 0.7, 0.8, 0.9], "sim_copies": 4000, "sim_n0": 10,
                 "sim_n": 100, "rmax_certify_ns": [100, 1000, 10000, 100000],
                 "conc_dims": [2, 10, 100, 1000, 10000, 100000, 1000000], "conc_samples": 1000,
                 "train_sigma": 1.0, "train_n": 10000, "train_steps": 4000, "train_k": 16, "test_points": 500, "train_cert_n": 10000,
                 "objective_samples": 1024},
    },
    # ---------------------------------------------------------------- 01 empirical Bayes theory
    "01": {
        "smoke": {"sigma": 0.5, "sigma0": 1.0, "eb_dim": 100, "eb_points": 12, "n0": 64, "n": 1000,
                  "alpha": 0.001, "e_samples": 2000, "mog_mu": [1.5, 0.5], "mog_sigma0": 0.5,
                  "mog_sigmas": [0.5], "mog_steps": 300, "mog_batch": 256, "mog_hidden": 64,
                  "mog_eval": 20000, "net_tol": 0.4, "collapse_sigmas": [0.1, 0.5, 1.0, 2.0, 5.0],
                  "lee_dim": 100, "lee_sigmas": [0.25, 0.5, 1.0], "lee_sigma_tildes": [0.0, 0.1, 0.2, 0.4, 0.8],
                  "lee_num": 500, "lee_steps": 40},
        "quick": {"sigma": 0.5, "sigma0": 1.0, "eb_dim": 784, "eb_points": 20, "n0": 100, "n": 10000,
                  "alpha": 0.001, "e_samples": 10000, "mog_mu": [1.5, 0.5], "mog_sigma0": 0.5,
                  "mog_sigmas": [0.25, 0.5, 1.0], "mog_steps": 2000, "mog_batch": 512, "mog_hidden": 64,
                  "mog_eval": 50000, "net_tol": 0.2, "collapse_sigmas": [0.1, 0.5, 1.0, 2.0, 5.0, 20.0],
                  "lee_dim": 784, "lee_sigmas": [0.25, 0.5, 1.0], "lee_sigma_tildes": [0.0, 0.1, 0.2, 0.4, 0.8],
                  "lee_num": 2000, "lee_steps": 40},
        "full": {"sigma": 0.5, "sigma0": 1.0, "eb_dim": 784, "eb_points": 20, "n0": 100, "n": 100000,
                 "alpha": 0.001, "e_samples": 50000, "mog_mu": [1.5, 0.5], "mog_sigma0": 0.5,
                 "mog_sigmas": [0.25, 0.5, 1.0], "mog_steps": 5000, "mog_batch": 1024, "mog_hidden": 128,
                 "mog_eval": 200000, "net_tol": 0.1, "collapse_sigmas": [0.1, 0.5, 1.0, 2.0, 5.0, 20.0],
                 "lee_dim": 3072, "lee_sigmas": [0.25, 0.5, 1.0], "lee_sigma_tildes": [0.0, 0.1, 0.2, 0.4, 0.8],
                 "lee_num": 1000, "lee_steps": 40},
    },
    # ---------------------------------------------------------------- 02 score training
    "02": {
        # score: everything that determines a cached score model (lib.score.score_config); iters per
        # kind: "multi" (geometric and uniform schedules), "single" (one sigma), "energy" (DEEN)
        "smoke": {"score": {"arch": "mlp", "nets": {"mlp": {"hidden": 64, "depth": 1, "emb_dim": 16, "conv": 4},
                                                    "unet": {"base": 8, "mults": [1, 2], "emb_dim": 16}},
                            "iters": {"multi": 200, "single": 100, "energy": 100}, "batch_size": 32,
                            "lr": 2e-3, "ema": 0.99, "n_train": 2000, "n_eval": 100},
                  "single_sigmas": [0.12, 0.25, 0.5, 1.0], "eval_sigmas": [0.05, 0.12, 0.25, 0.33, 0.5, 0.67, 1.0],
                  "unseen_sigmas": [0.33, 0.67], "n_eval": 100,
                  "langevin": {"n": 8, "num_levels": 10, "steps_per_level": 2, "eps": 2e-5},
                  "arch_compare": {"seconds": 2, "n_eval": 100, "variants": {
                      "MLP": {"arch": "mlp", "net": {"hidden": 64, "depth": 1, "emb_dim": 16}},
                      "U-Net": {"arch": "unet", "net": {"base": 8, "mults": [1, 2], "emb_dim": 16}}}}},
        "quick": {"score": {"arch": "mlp", "nets": {"mlp": {"hidden": 512, "depth": 3, "emb_dim": 64, "conv": 16},
                                                    "unet": {"base": 8, "mults": [1, 2, 2], "emb_dim": 32}},
                            "iters": {"multi": 1200, "single": 300, "energy": 500}, "batch_size": 128,
                            "lr": 1e-3, "ema": 0.999, "n_train": None, "n_eval": 1000},
                  "single_sigmas": [0.12, 0.25, 0.5, 1.0], "eval_sigmas": [0.02, 0.05, 0.12, 0.25, 0.33, 0.5, 0.67, 1.0],
                  "unseen_sigmas": [0.33, 0.67], "n_eval": 1000,
                  "langevin": {"n": 36, "num_levels": 32, "steps_per_level": 5, "eps": 2e-5},
                  "arch_compare": {"seconds": 20, "n_eval": 500, "variants": {
                      "MLP": {"arch": "mlp", "net": {"hidden": 512, "depth": 3, "emb_dim": 64}},
                      "MLP + conv path": {"arch": "mlp", "net": {"hidden": 512, "depth": 3, "emb_dim": 64, "conv": 16}},
                      "U-Net": {"arch": "unet", "net": {"base": 8, "mults": [1, 2, 2], "emb_dim": 32}}}}},
        "full": {"score": {"arch": "unet", "nets": {"mlp": {"hidden": 2048, "depth": 4, "emb_dim": 128},
                                                   "unet": {"base": 64, "mults": [1, 2, 2], "emb_dim": 128}},
                           "iters": {"multi": 100_000, "single": 30_000, "energy": 50_000}, "batch_size": 128,
                           "lr": 2e-4, "ema": 0.9999, "n_train": None, "n_eval": 10_000},
                 "single_sigmas": [0.12, 0.25, 0.5, 1.0], "eval_sigmas": [0.02, 0.05, 0.12, 0.25, 0.33, 0.5, 0.67, 1.0],
                 "unseen_sigmas": [0.33, 0.67], "n_eval": 10_000,
                 "langevin": {"n": 64, "num_levels": 32, "steps_per_level": 5, "eps": 2e-5},
                 "arch_compare": {"seconds": 300, "n_eval": 2000, "variants": {
                     "MLP": {"arch": "mlp", "net": {"hidden": 2048, "depth": 4, "emb_dim": 128}},
                     "MLP + conv path": {"arch": "mlp", "net": {"hidden": 2048, "depth": 4, "emb_dim": 128, "conv": 32}},
                     "U-Net": {"arch": "unet", "net": {"base": 64, "mults": [1, 2, 2], "emb_dim": 128}}}}},
    },
    # ---------------------------------------------------------------- 03 denoising
    "03": {
        # mse: the cached DnCNN MSE denoisers (lib.denoise.mse_config), one per noise and sigma
        "smoke": {"sigmas": [0.5], "noises": ["gaussian", "laplace", "uniform"], "n_images": 32, "n_val": 32,
                  "batch_size": 64, "unseen_sigmas": [0.33], "grid_images": 4,
                  "annealed": {"steps_per_level": 1, "tune_step_sizes": [2e-5, 5e-6]},
                  "walk_jump": {"sigma_prime": 0.05, "delta": 1e-3, "tau": 5},
                  "mse": {"net": {"depth": 3, "features": 8}, "iters": 60, "batch_size": 32, "lr": 2e-3,
                          "ema": 0.99, "n_train": 1000},
                  "toy": {"mu": [1.5, 0.5], "sigma0": 0.3, "sigmas": [0.1, 0.25, 0.5, 1.0], "n_train": 4000,
                          "iters": 300, "hidden": 64, "depth": 2, "n_eval": 2000}},
        "quick": {"sigmas": [0.25, 0.5, 1.0], "noises": ["gaussian", "laplace", "uniform"], "n_images": 500,
                  "n_val": 200, "batch_size": 250, "unseen_sigmas": [0.33, 0.67], "grid_images": 8,
                  "annealed": {"steps_per_level": 1, "tune_step_sizes": [1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6]},
                  "walk_jump": {"sigma_prime": 0.05, "delta": 1e-3, "tau": 100},
                  "mse": {"net": {"depth": 5, "features": 16}, "iters": 400, "batch_size": 64, "lr": 2e-3,
                          "ema": 0.99, "n_train": None},
                  "toy": {"mu": [1.5, 0.5], "sigma0": 0.3, "sigmas": [0.1, 0.25, 0.5, 1.0], "n_train": 20000,
                          "iters": 3000, "hidden": 128, "depth": 2, "n_eval": 20000}},
        "full": {"sigmas": [0.12, 0.25, 0.5, 1.0], "noises": ["gaussian", "laplace", "uniform"], "n_images": 10_000,
                 "n_val": 1000, "batch_size": 1000, "unseen_sigmas": [0.33, 0.67], "grid_images": 8,
                 "annealed": {"steps_per_level": 1, "tune_step_sizes": [1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6]},
                 "walk_jump": {"sigma_prime": 0.05, "delta": 1e-3, "tau": 100},
                 "mse": {"net": {"depth": 17, "features": 64}, "iters": 30_000, "batch_size": 128, "lr": 1e-3,
                         "ema": 0.999, "n_train": None},
                 "toy": {"mu": [1.5, 0.5], "sigma0": 0.3, "sigmas": [0.1, 0.25, 0.5, 1.0], "n_train": 100_000,
                         "iters": 20_000, "hidden": 256, "depth": 3, "n_eval": 100_000}},
    },
    # ---------------------------------------------------------------- 04 empirical Bayes, linear MNIST
    # classifier / deen: overrides of lib.models.get_classifier / lib.energy.get_energy_model
    # (plain SGD for h: it matches the paper's test accuracy 0.9218 and its g[h] row, Adam does not);
    # certification on `num_points` evenly spaced test images (every N/num_points-th, as Cohen's --skip)
    "04": {
        "smoke": {"dataset": "mnist", "sigmas": [0.3, 0.6], "radii": [0.5, 1.0, 1.5, 2.0],
                  "classifier": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 5},
                  "deen": {"hidden": [256, 256], "activation": "silu", "epochs": 6, "batch_size": 64, "lr": 3e-3},
                  "n0": 50, "n": 2000, "alpha": 0.001, "num_points": 20, "chunk": 10,
                  "fig3_sigma": 0.6, "fig3_samples": 6},
        "quick": {"dataset": "mnist", "sigmas": [0.3, 0.6], "radii": [0.5, 1.0, 1.5, 2.0],
                  "classifier": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 20},
                  "deen": {"hidden": [512, 512], "activation": "silu", "epochs": 3},
                  "n0": 100, "n": 40_000, "alpha": 0.001, "num_points": 100, "chunk": 10,
                  "fig3_sigma": 0.6, "fig3_samples": 8},
        "full": {"dataset": "mnist", "sigmas": [0.3, 0.6], "radii": [0.5, 1.0, 1.5, 2.0],
                 "classifier": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "epochs": 20},
                 "deen": {"hidden": [1024, 1024], "activation": "silu", "epochs": 30},
                 "n0": 100, "n": 100_000, "alpha": 0.001, "num_points": 10_000, "chunk": 50,
                 "fig3_sigma": 0.6, "fig3_samples": 8},
    },
    # ---------------------------------------------------------------- 05-07 denoised smoothing, 10 tables
    # (owned by lib/experiments.py; the model keys are shared by 05, 06 and 07 through _DS, above)
    "05": {p: {**_DS[p], **_DS_05[p]} for p in PROFILES},
    "06": {p: {**_DS[p], **_DS_06[p]} for p in PROFILES},
    "07": {p: {**_DS[p], **_DS_07[p]} for p in PROFILES},
    "10": {"smoke": {}, "quick": {}, "full": {}},
}


def get(notebook: str | int, profile: str) -> dict:
    """A copy of the settings of ``notebook`` ("04", 4 or "04_empirical...") under ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = f"{int(str(notebook).split('_')[0]):02d}"
    if key not in SETTINGS:
        raise KeyError(f"no settings for notebook {notebook!r}; known: {sorted(SETTINGS)}")
    out = copy.deepcopy(SETTINGS[key][profile])
    out["profile"] = profile
    return out
