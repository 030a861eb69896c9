"""Model settings by family and profile: everything that determines a cached model's weights.

``MODELS[family][profile]`` for the families ``classifier/<arch>`` (linear, mlp, cnn, resnet),
``linear_h``, ``score``, ``mse``, ``deen``, ``multi_step`` and those further down. Read them through
:func:`lib.profiles.model_settings`, which applies the tiny-full overlay.
"""
from __future__ import annotations

PROFILES = ("smoke", "quick", "full")

# ================================================================ model settings, by family
# classifiers: options and optimiser per architecture, then data size and epochs per profile. The quick
# sizes fit a 2-core CPU (3 epochs on 30k images); full is paper scale
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
        # quick: the architecture chosen by lib.experiments.fidelity.deen_sweep (equal CPU budget per candidate)
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
