"""Companion library for certified robustness by (denoised) randomized smoothing.

The library is grouped by the families of the papers, one folder each:

* ``lib.smoothing``   noise families, Clopper-Pearson statistics, ``Smooth`` (PREDICT / CERTIFY),
  certification of a data set into per-example logs
* ``lib.data``        MNIST, Fashion-MNIST, CIFAR-10 (fetch, verify, load) and synthetic densities
* ``lib.models``      classifiers, the training loop, the model cache
* ``lib.denoising``   score networks, energy (DEEN) models, denoisers (Tweedie, annealed MAP, walk-jump, MSE)
* ``lib.methods``     the method registry (every built-in method in one place), certification runs and
  their summaries
* ``lib.reporting``   tables, figures and metrics derived from the logs
* ``lib.theory``      closed forms and checks of the theory notebooks
* ``lib.experiments`` the notebooks' studies, one module per topic, built on the families above
* ``lib.profiles``, ``lib.paths``, ``lib.utils``

The names below are the stable public surface.
"""
from lib import paths, profiles, utils  # noqa: F401
from lib.smoothing import (  # noqa: F401
    ABSTAIN, Gaussian, Laplace, NoiseDistribution, Smooth, Uniform, certify_dataset, lower_confidence_bound,
    make_noise,
)
from lib.reporting import certified_accuracy, read_log  # noqa: F401

__all__ = ["ABSTAIN", "Gaussian", "Laplace", "NoiseDistribution", "Smooth", "Uniform", "certify_dataset",
           "certified_accuracy", "lower_confidence_bound", "make_noise", "read_log",
           "paths", "profiles", "utils"]
