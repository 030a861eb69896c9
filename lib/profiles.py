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

SETTINGS: dict[str, dict[str, dict]] = {
    # ---------------------------------------------------------------- 00 lecture
    "00": {"smoke": {}, "quick": {}, "full": {}},
    # ---------------------------------------------------------------- 01 empirical Bayes theory
    "01": {"smoke": {}, "quick": {}, "full": {}},
    # ---------------------------------------------------------------- 02 score training
    "02": {"smoke": {}, "quick": {}, "full": {}},
    # ---------------------------------------------------------------- 03 denoising
    "03": {"smoke": {}, "quick": {}, "full": {}},
    # ---------------------------------------------------------------- 04 empirical Bayes, linear MNIST
    "04": {"smoke": {}, "quick": {}, "full": {}},
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
