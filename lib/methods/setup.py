"""Which trained models a run uses: ``Setup`` (data set, profile, seed, device), its ``ModelConfig``
(what to train, by model family; the family settings are :data:`lib.profile_models.MODELS`) and its
``ModelCache`` (the models loaded so far, shared by a setup's copies; no module-level memo)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from lib.denoising import denoise, energy
from lib.denoising import score as score_lib
from lib.models import classifiers as models
from lib.smoothing.noise import NoiseDistribution
from lib.utils import config_hash, get_device

__all__ = ["Setup", "ModelConfig", "ModelCache"]

_FAMILY_FIELDS = ("classifier_arch", "classifier_overrides", "score", "multi_step", "mse", "deen")


@dataclass(frozen=True)
class ModelConfig:
    """What to train, by model family (the family settings themselves: :data:`lib.profile_models.MODELS`).

    ``classifier_arch`` (the standard classifier behind every denoiser); ``classifier_overrides``
    {arch: training overrides for ``lib.models.get_classifier``}, applied alike to the standard and the
    noise-trained classifiers so that they differ only in the noise; ``score`` (kwargs of
    ``lib.denoising.get_score_model``: schedule, param, arch); ``multi_step`` (see :func:`annealing_kwargs`);
    ``mse`` (extra kwargs of ``lib.denoising.mse_denoiser``, e.g. ``progress``); ``deen`` (kwargs of
    ``lib.denoising.get_energy_model``: the empirical Bayes energy model).
    """

    classifier_arch: str = "cnn"
    classifier_overrides: dict = field(default_factory=dict)
    score: dict = field(default_factory=lambda: {"schedule": "geometric"})
    multi_step: dict = field(default_factory=dict)
    mse: dict = field(default_factory=dict)
    deen: dict = field(default_factory=dict)

    @classmethod
    def from_profile(cls, cfg: Mapping, dataset: str) -> "ModelConfig":
        """From a notebook's profile dict (keys ``classifier_arch``, ``classifier_overrides``, ``score``,
        ``multi_step``, ``mse``, ``deen``); a ``classifier`` dict {"arch": ..., **training overrides}
        (notebook 04) is read as the arch and its overrides; per-data-set entries are resolved for ``dataset``."""
        kw = {k: cfg[k] for k in _FAMILY_FIELDS if k in cfg}
        if isinstance(cfg.get("classifier"), Mapping):
            clf = dict(cfg["classifier"])
            kw["classifier_arch"] = clf.pop("arch")
            kw["classifier_overrides"] = {kw["classifier_arch"]: clf}
        if isinstance(kw.get("classifier_arch"), Mapping):  # per dataset, e.g. {"mnist": "cnn", "cifar10": "resnet"}
            kw["classifier_arch"] = kw["classifier_arch"][dataset]
        over = kw.get("classifier_overrides")
        if isinstance(over, Mapping) and over and set(over) <= {"mnist", "fashion_mnist", "cifar10"}:
            kw["classifier_overrides"] = dict(over.get(dataset, {}))  # per dataset, then {arch: overrides}
        return cls(**kw)


class ModelCache:
    """The trained models an experiment has loaded, by key (family, config hash, device ...): each is
    loaded (or trained) once. Copies of a :class:`Setup` made by :meth:`Setup.replace` share it."""

    def __init__(self):
        self._models: dict = {}

    def get(self, key: tuple, load: Callable[[], tuple]):
        """The model stored under ``key``, from ``load()`` the first time."""
        if key not in self._models:
            self._models[key] = load()
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"ModelCache({len(self)} models)"


@dataclass
class Setup:
    """Everything that selects the trained models of an experiment (not the certification sizes).

    dataset, profile ("smoke" | "quick" | "full": the profile the *models* are trained under,
    through the shared caches of ``lib.models`` / ``lib.denoising``), seed, device; ``models``, what
    to train by family (:class:`ModelConfig`, whose fields read as attributes of the setup:
    ``setup.classifier_arch``, ``setup.score`` ...); ``cache``, the models loaded so far (:class:`ModelCache`).
    """

    dataset: str = "mnist"
    profile: str = "quick"
    seed: int = 0
    device: str | None = None
    models: ModelConfig = field(default_factory=ModelConfig)
    cache: ModelCache = field(default_factory=ModelCache, repr=False, compare=False)

    @classmethod
    def from_profile(cls, cfg: Mapping, dataset: str | None = None, seed: int = 0, **changes) -> "Setup":
        """A setup from a notebook's profile dict (:meth:`ModelConfig.from_profile`; ``profile``);
        ``changes``: fields of the setup or of its :class:`ModelConfig`."""
        dataset = dataset or cfg.get("dataset", "mnist")
        setup = cls(dataset=dataset, profile=cfg["profile"], seed=int(seed),
                    models=ModelConfig.from_profile(cfg, dataset))
        return setup.replace(**changes) if changes else setup

    def replace(self, **changes) -> "Setup":
        """A copy with some fields (of the setup or of its :class:`ModelConfig`) changed; it shares the cache."""
        family = {k: changes.pop(k) for k in _FAMILY_FIELDS if k in changes}
        if family:
            changes["models"] = dataclasses.replace(changes.get("models", self.models), **family)
        return dataclasses.replace(self, **changes, cache=self.cache)

    def __getattr__(self, name: str):  # the model configuration's fields, e.g. setup.classifier_arch
        if name in _FAMILY_FIELDS:
            return getattr(self.models, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def torch_device(self) -> torch.device:
        return get_device(self.device)

    # ------------------------------------------------------------------ models
    def _memo(self, key: tuple, load: Callable[[], tuple]):
        return self.cache.get(key, load)

    def classifier(self, noise: str | None = None, sigma: float | None = None, arch: str | None = None):
        """(classifier in eval mode, its training config, its history); trained on a cache miss.

        ``noise``/``sigma`` select a classifier trained on noisy inputs (white-box smoothing)."""
        arch = arch or self.classifier_arch
        over = dict(self.classifier_overrides.get(arch, {}))
        cfg = models.classifier_config(arch, self.dataset, self.profile, noise, sigma, self.seed, **over)

        def load():
            model, hist = models.get_classifier(arch, self.dataset, self.profile, noise, sigma, self.seed,
                                                device=self.torch_device, **over)
            return model, cfg, hist

        return self._memo(("classifier", config_hash(cfg)), load)

    def score_model(self, schedule: str | None = None, sigma: float | None = None):
        """(score model, its config, its history) from ``lib.denoising.get_score_model``."""
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
        """(MSE-trained DnCNN denoiser for this noise, its config, history) from ``lib.denoising``."""
        cfg = denoise.mse_config(self.dataset, noise.sigma, noise.name, profile=self.profile, seed=self.seed)

        def load():
            den = denoise.mse_denoiser(self.dataset, noise.sigma, noise.name, profile=self.profile, seed=self.seed,
                                       device=self.torch_device, **self.mse)
            return den, cfg, getattr(den, "history", {})

        return self._memo(("mse", config_hash(cfg)), load)

    def energy_model(self, noise: NoiseDistribution):
        """(DEEN energy model for this sigma, its config, history) from ``lib.denoising.get_energy_model``;
        ``model.denoiser()`` is the empirical Bayes estimator x̂(y) = y - sigma^2 grad phi(y)."""
        def load():
            model, hist = energy.get_energy_model(self.dataset, noise.sigma, self.profile, seed=self.seed,
                                                  device=self.torch_device, **self.deen)
            return model, model.config, hist

        cfg = energy.energy_config(self.dataset, noise.sigma, self.profile, self.seed, **self.deen)
        return self._memo(("deen", config_hash(cfg)), load)
