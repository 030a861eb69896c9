"""Model settings by family and profile: everything that determines a cached model's weights.

``MODELS[family][profile]`` for the families ``classifier/<arch>`` (linear, mlp, cnn, resnet),
``linear_h``, ``score``, ``mse``, ``deen``, ``multi_step`` and those further down. Each entry holds
its choices (architecture, optimiser, learning rate ...) and, under ``"sizes"``, its counts (epochs,
steps, batch size, training images); read them through :func:`lib.profiles.model_settings`, which
returns them as one flat dict and derives tiny full from the ``"sizes"``.
"""
from __future__ import annotations

PROFILES = ("smoke", "quick", "full")
#: the key of a table's counts (work, not choices): tiny full takes smoke's value of each, capped
SIZES = "sizes"
#: the key of a table's lists of choices run in turn (e.g. annealing levels): tiny full keeps their two ends
SWEEPS = "sweeps"

# ================================================================ model settings, by family
# classifiers: choices per architecture, then data size and epochs per profile. The quick
# sizes fit a 2-core CPU (3 epochs on 30k images); full is paper scale
# (ResNet-110 of Cohen et al. on CIFAR-10).
_CLASSIFIER_ARCH = {
    "linear": {"optimizer": "adam", "lr": 1e-3},
    "mlp": {"hidden": [512, 512], "optimizer": "adam", "lr": 1e-3},
    "cnn": {"width": 32, "hidden": 128, "optimizer": "adam", "lr": 1e-3},
    "resnet": {"depth": 20, "width": 16, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
}
_CLASSIFIER_BATCH = {"linear": 128, "mlp": 128, "cnn": 128, "resnet": 256}
_CLASSIFIER_SPLIT = {"smoke": "train", "quick": "trainval", "full": "trainval"}
_CLASSIFIER_SIZES = {
    "smoke": {"train_limit": 2000, "test_limit": 1000, "epochs": 2},
    "quick": {"train_limit": 30000, "test_limit": None, "epochs": 3},
    "full": {"train_limit": None, "test_limit": None, "epochs": 30},
}
_CLASSIFIER_PROFILE_ARCH = {  # per profile and arch, on top of the choices above
    "smoke": {"cnn": {"width": 16}, "resnet": {"depth": 8, "width": 8}},
    "quick": {"cnn": {"width": 16}, "resnet": {"depth": 8, "width": 8, "lr_step": None}},
    "full": {"resnet": {"depth": 110, "lr_step": 30}},
}
_CLASSIFIER_PROFILE_EPOCHS = {"smoke": {"resnet": 1}, "quick": {}, "full": {"resnet": 90}}


def _classifier(arch: str, profile: str) -> dict:
    """The settings of ``classifier/<arch>`` under ``profile`` (the four tables above, combined)."""
    epochs = _CLASSIFIER_PROFILE_EPOCHS[profile].get(arch, _CLASSIFIER_SIZES[profile]["epochs"])
    return {**_CLASSIFIER_ARCH[arch], "train_split": _CLASSIFIER_SPLIT[profile],
            **_CLASSIFIER_PROFILE_ARCH[profile].get(arch, {}),
            SIZES: {"batch_size": _CLASSIFIER_BATCH[arch], **_CLASSIFIER_SIZES[profile], "epochs": epochs}}


MODELS: dict[str, dict[str, dict]] = {
    **{f"classifier/{arch}": {p: _classifier(arch, p) for p in PROFILES} for arch in _CLASSIFIER_ARCH},
    # Saremi & Srivastava's 1-layer h (notebook 04): plain SGD matches the paper's test accuracy 0.9218
    # and its g[h] row, Adam does not
    "linear_h": {
        "smoke": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "train_split": "train",
                  SIZES: {"epochs": 5, "batch_size": 128, "train_limit": 2000, "test_limit": 1000}},
        "quick": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "train_split": "trainval",
                  SIZES: {"epochs": 20, "batch_size": 128, "train_limit": None, "test_limit": None}},
        "full": {"arch": "linear", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "train_split": "trainval",
                 SIZES: {"epochs": 20, "batch_size": 128, "train_limit": None, "test_limit": None}},
    },
    # the noise-conditional score network (lib.denoising.score_config): network per arch, DSM steps per
    # kind: "multi" (geometric and uniform schedules), "single" (one sigma), "energy" (sigma-conditional DEEN)
    "score": {
        "smoke": {"arch": "mlp", "nets": {"mlp": {"hidden": 64, "depth": 1, "emb_dim": 16, "conv": 4},
                                          "unet": {"base": 8, "mults": [1, 2], "emb_dim": 16}},
                  "lr": 2e-3, "ema": 0.99,
                  SIZES: {"iters": {"multi": 200, "single": 100, "energy": 100}, "batch_size": 32,
                          "n_train": 2000, "n_eval": 100}},
        "quick": {"arch": "mlp", "nets": {"mlp": {"hidden": 512, "depth": 3, "emb_dim": 64, "conv": 16},
                                          "unet": {"base": 8, "mults": [1, 2, 2], "emb_dim": 32}},
                  "lr": 1e-3, "ema": 0.999,
                  SIZES: {"iters": {"multi": 1200, "single": 300, "energy": 500}, "batch_size": 128,
                          "n_train": None, "n_eval": 1000}},
        "full": {"arch": "unet", "nets": {"mlp": {"hidden": 2048, "depth": 4, "emb_dim": 128},
                                         "unet": {"base": 64, "mults": [1, 2, 2], "emb_dim": 128}},
                 "lr": 2e-4, "ema": 0.9999,
                 SIZES: {"iters": {"multi": 100_000, "single": 30_000, "energy": 50_000}, "batch_size": 128,
                         "n_train": None, "n_eval": 10_000}},
    },
    # the DnCNN MSE denoisers of Salman et al. (lib.denoising.mse_config), one per noise and sigma
    "mse": {
        "smoke": {"net": {"depth": 3, "features": 8}, "lr": 2e-3, "ema": 0.99,
                  SIZES: {"iters": 60, "batch_size": 32, "n_train": 1000}},
        "quick": {"net": {"depth": 5, "features": 16}, "lr": 2e-3, "ema": 0.99,
                  SIZES: {"iters": 400, "batch_size": 64, "n_train": None}},
        "full": {"net": {"depth": 17, "features": 64}, "lr": 1e-3, "ema": 0.999,
                 SIZES: {"iters": 30_000, "batch_size": 128, "n_train": None}},
    },
    # the fixed-sigma DEEN of Saremi & Srivastava (lib.denoising.energy_config)
    "deen": {
        "smoke": {"hidden": [256, 256], "lr": 3e-3, "train_split": "train",
                  SIZES: {"epochs": 6, "batch_size": 64, "train_limit": 2000, "test_limit": 500}},
        # quick: the architecture chosen by lib.experiments.fidelity.deen_sweep (equal CPU budget per candidate)
        "quick": {"hidden": [512, 512], "lr": 1e-3, "train_split": "trainval",
                  SIZES: {"epochs": 8, "batch_size": 128, "train_limit": None, "test_limit": 2000}},
        "full": {"hidden": [1024, 1024], "lr": 1e-3, "train_split": "trainval",
                 SIZES: {"epochs": 30, "batch_size": 128, "train_limit": None, "test_limit": None}},
    },
    # Lee's multi-step (annealed MAP) denoiser: kwargs of lib.denoising.annealed_map (L levels, T steps each)
    "multi_step": {"smoke": {"num_levels": 4, SIZES: {"steps_per_level": 1}},
                   "quick": {"num_levels": 32, SIZES: {"steps_per_level": 1}},
                   "full": {"num_levels": 32, SIZES: {"steps_per_level": 1}}},
    # ---- families of later features: add one entry per family here, {profile: settings}, e.g.
    # "rejector": {"smoke": {...}, "quick": {...}, "full": {...}},
    # Sheikholeslami et al.'s rejector (lib.models.rejector_config): a small CNN backbone + K heads, T noise
    # draws per image, Adam for the first epochs then SGD divided by 10 every `sgd_step` epochs (section 6.3:
    # 20 epochs, 5 Adam at 1e-4, SGD from 1e-3 / 10 every 5; quick and smoke scale the epochs down and the
    # learning rates up); `head`: "clean" trains head f(x_i) (eq. 9), "noisy" head f(D(x_i + eps))
    "rejector": {
        "smoke": {"net": {"width": 4, "hidden": 16, "use_classifier": True}, "adam_lr": 1e-3, "sgd_lr": 1e-2,
                  "momentum": 0.9, "head": "clean",
                  SIZES: {"draws": 2, "epochs": 2, "adam_epochs": 1, "sgd_step": 1, "batch_size": 32, "n_train": 256}},
        "quick": {"net": {"width": 8, "hidden": 64, "use_classifier": True}, "adam_lr": 1e-3, "sgd_lr": 1e-2,
                  "momentum": 0.9, "head": "clean",
                  SIZES: {"draws": 4, "epochs": 4, "adam_epochs": 1, "sgd_step": 1, "batch_size": 32, "n_train": 1000}},
        "full": {"net": {"width": 32, "hidden": 256, "use_classifier": True}, "adam_lr": 1e-4, "sgd_lr": 1e-3,
                 "momentum": 0.9, "head": "clean",
                 SIZES: {"draws": 20, "epochs": 20, "adam_epochs": 5, "sgd_step": 5, "batch_size": 32, "n_train": None}},
    },
    # Salman et al.'s stability objective for the DnCNN (lib.denoising.stability_config): `iters` of
    # fine-tuning the MSE model ("MSE+Stab"), `scratch_iters` from scratch ("Stab"); budgets in the ratio of
    # Sheikholeslami et al. Table 1 to the MSE budget (MSE 90 epochs, +Stab 20, Stab alone 600);
    # `surrogate_arch`: the classifier that trains the query-access denoiser
    "stability": {
        "smoke": {"lr": 1e-3, "ema": 0.99, "surrogate_arch": "mlp",
                  SIZES: {"iters": 30, "scratch_iters": 60, "batch_size": 32, "n_train": 1000}},
        "quick": {"lr": 1e-3, "ema": 0.99, "surrogate_arch": "mlp",
                  SIZES: {"iters": 100, "scratch_iters": 2700, "batch_size": 64, "n_train": None}},
        "full": {"lr": 1e-4, "ema": 0.999, "surrogate_arch": "mlp",
                 SIZES: {"iters": 6700, "scratch_iters": 200_000, "batch_size": 128, "n_train": None}},
    },
    # XHAT_ε / XHAT_0 / SmoothAdv_ε classifiers H (lib.models.adversarial, notebook 09): one trainer, the same
    # eps, m, PGD steps and schedule for all three (Saremi & Srivastava Figure 5: eps = 1.0, m = 1, 16 PGD steps;
    # their architecture, optimiser and epochs are not stated). x̂ is the "deen" family at the same sigma;
    # deen_low: overrides of "deen" for the walk-jump's sigma' = 0.05 energy; lecture_m: the m (noise draws per example)
    # shared by notebook 09's Lecture 14 §3 rows (Gaussian augmentation, smoothed objective, SmoothAdv; Salman et al.
    # use m in {1, 2, 4, 8}; with m = 1 augmentation and the smoothed objective coincide).
    "xhat": {
        "smoke": {"arch": "mlp", "hidden": [128], "eps": 1.0, "pgd_steps": 2, "clip": [0.0, 1.0], "lr": 2e-3,
                  "train_split": "train", "deen_low": {}, "lecture_m": 2,
                  SIZES: {"m": 1, "iters": 60, "batch_size": 32, "warmup": 20, "train_limit": 2000, "test_limit": 500}},
        "quick": {"arch": "mlp", "hidden": [256, 256], "eps": 1.0, "pgd_steps": 4, "clip": [0.0, 1.0], "lr": 1e-3,
                  "train_split": "trainval", "deen_low": {SIZES: {"epochs": 1}}, "lecture_m": 4,
                  SIZES: {"m": 1, "iters": 400, "batch_size": 64, "warmup": 100, "train_limit": None,
                          "test_limit": 2000}},
        "full": {"arch": "cnn", "width": 32, "hidden": 128, "eps": 1.0, "pgd_steps": 16, "clip": [0.0, 1.0],
                 "lr": 1e-3, "ema": 0.999, "train_split": "trainval", "deen_low": {}, "lecture_m": 4,
                 SIZES: {"m": 1, "epochs": 30, "batch_size": 128, "warmup": 4690, "train_limit": None,
                         "test_limit": None}},
    },
}
