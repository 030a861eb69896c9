"""Companion library for certified robustness by (denoised) randomized smoothing.

Modules: ``noise`` (Gaussian, Laplace, Uniform), ``stats`` (Clopper-Pearson, binomial test),
``smoothing`` (Smooth: PREDICT / CERTIFY), ``certify`` (per-example TSV logs, resumable),
``results`` (certified-accuracy tables and figures), ``data``, ``models``, ``cache``,
``profiles``, ``theory``, ``plots``, ``nets``, ``score``, ``denoise``, ``energy``, ``experiments``, ``paths``, ``utils``.
"""
from . import noise, paths, stats, utils  # noqa: F401
from .noise import Gaussian, Laplace, Uniform  # noqa: F401
from .smoothing import ABSTAIN, Smooth  # noqa: F401
