"""The method registry: every way the papers build a smoothed classifier, by name.

A *method* of denoised smoothing is a pair (base classifier f, denoiser D) behind the same
randomized smoothing: the smoothed classifier is

    g(x) = argmax_c P_{u ~ q_sigma}( f(D(x + u)) = c ),        D = identity without a denoiser,

certified by Cohen et al.'s CERTIFY (``lib.smoothing.Smooth.certify_batch``). The registry
:data:`METHODS` builds the pair for every method the papers compare, so a notebook swaps a
method in one line:

==============  =========================================================================
key             (classifier, denoiser)
==============  =========================================================================
none            standard classifier, no denoiser ("no denoiser" baseline, Salman et al. 2020)
white_box       classifier trained on x + u, u ~ q_sigma (Cohen et al. 2019 for Gaussian,
                Teng et al. / Yang et al. 2020 for Laplace / uniform): one classifier per sigma
mse             standard classifier behind a DnCNN trained with the MSE loss for this noise
                and sigma (Salman et al. 2020): one denoiser per sigma
one_step        standard classifier behind x̂ = y + sigma^2 s(y; sigma) (Lee eq. 3) with ONE
                multi-scale score network for every sigma (Gaussian noise only)
one_step_single as one_step, but with a score network trained at this sigma only (Lee D.1)
multi_step      standard classifier behind Lee's Algorithm 1 (annealed MAP gradient steps,
                eq. 6) with the same multi-scale network; any noise family
empirical_bayes linear classifier h behind the empirical Bayes denoiser of a DEEN energy model
                (Saremi & Srivastava 2022, g[pi]); Gaussian noise only
==============  =========================================================================

Stability denoisers and rejectors (Salman et al. 2020; Sheikholeslami et al.):

==================  =====================================================================================
mse_stab            the MSE DnCNN fine-tuned with the stability loss through the classifier (full access)
mse_stab_query      as mse_stab, the stability gradient from a surrogate classifier (query access)
stab                a DnCNN trained with the stability loss only, from scratch (full access)
mse_rejector        the MSE denoiser + a rejector trained for it (Sheikholeslami et al. eq. 7-9)
mse_stab_rejector   the MSE+Stab denoiser + its rejector
one_step_rejector   the one-step score denoiser (Lee eq. 3) + its rejector
==================  =====================================================================================

Learned empirical Bayes (Saremi & Srivastava §3-4; the classifier H of ``lib.models.adversarial``):
``xhat_eps`` (XHAT_ε, eq. 13), ``xhat_0`` (ε = 0), ``smoothadv`` (SmoothAdv_ε, Salman et al. 2019),
the lecture's three objectives ``gaussian_aug``, ``smoothed_obj``, ``smoothadv_lecture``, and the
walk-jump classifiers ``xhat_wj_tau<T>`` added by :func:`register_walk_jump`.

All built-in methods are listed in :data:`METHODS` below; :func:`register_method` adds others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch

from lib import profiles
from lib.data import datasets as data
from lib.denoising import denoise, energy
from lib.denoising import score as score_lib
from lib.denoising.stability import stability_denoiser
from lib.methods.setup import Setup
from lib.models.adversarial import get_xhat_classifier, xhat_config
from lib.models.rejector import get_rejector
from lib.smoothing.noise import NoiseDistribution, make_noise
from lib.smoothing.smooth import Smooth
from lib.utils import check_count, check_sigma, config_hash

__all__ = ["Pipeline", "Method", "METHODS", "REJECTOR_BASES", "register_method", "method_label",
           "build_pipeline", "build_smooth", "annealing_kwargs", "model_summary", "stability_model",
           "rejector_model", "rejector_pipeline", "TwoLevelEnergyScore", "walk_jump_key", "register_walk_jump"]


@dataclass
class Pipeline:
    """What ``Smooth`` needs: classifier [B, *shape] -> logits, denoiser (or None), rejector
    [B, *shape] -> reject logits [B, K] (or None: Cohen's certificate; else Theorem 3.1), and
    ``config``, a JSON dict identifying every model in it (hashed into the log name)."""

    classifier: Callable
    denoiser: Callable | None
    num_classes: int
    config: dict
    info: dict = field(default_factory=dict)
    rejector: Callable | None = None


@dataclass(frozen=True)
class Method:
    """A named way of building (classifier, denoiser) for a noise: ``build(setup, noise) -> Pipeline``.

    ``noises``: the noise families it supports (others raise ``ValueError``).
    """

    key: str
    label: str
    build: Callable[[Setup, NoiseDistribution], Pipeline]
    noises: tuple = ("gaussian", "laplace", "uniform")
    reference: str = ""


def _num_classes(dataset: str) -> int:
    return int(data.num_classes(dataset))


def _build_none(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    clf, cfg, hist = setup.classifier()
    return Pipeline(clf, None, _num_classes(setup.dataset), {"classifier": cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy")})


def _build_white_box(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    clf, cfg, hist = setup.classifier(noise.name, noise.sigma)
    return Pipeline(clf, None, _num_classes(setup.dataset), {"classifier": cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy"),
                     "classifier_test_accuracy_noisy": hist.get("test_accuracy_noisy")})


def _with_denoiser(setup: Setup, denoiser, den_cfg: dict, extra_info: dict | None = None) -> Pipeline:
    clf, cfg, hist = setup.classifier()
    return Pipeline(clf, denoiser, _num_classes(setup.dataset), {"classifier": cfg, "denoiser": den_cfg},
                    {"classifier_test_accuracy": hist.get("test_accuracy"), **(extra_info or {})})


def _build_mse(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    model, cfg, _ = setup.mse_denoiser(noise)
    return _with_denoiser(setup, model, {"kind": "mse", "model": cfg})


def _build_one_step(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    score, cfg, _ = setup.score_model()
    return _with_denoiser(setup, denoise.tweedie(score, noise.sigma), {"kind": "one_step", "score": cfg})


def _build_one_step_single(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    score, cfg, _ = setup.score_model(schedule="single", sigma=noise.sigma)
    return _with_denoiser(setup, denoise.tweedie(score, noise.sigma), {"kind": "one_step", "score": cfg})


def annealing_kwargs(multi_step: Mapping) -> dict:
    """Keyword arguments of ``lib.denoising.annealed_map`` from a profile's ``multi_step`` dict.

    ``num_levels`` (with optional ``sigma_max``, default 1.0, and ``sigma_min``, default 0.01)
    becomes Lee's geometric schedule ``sigmas`` (appendix C.1: 1.0 -> 0.01, L = 32); every
    other key (``step_size``, ``steps_per_level``, ...) is passed through."""
    kw = dict(multi_step)
    if "num_levels" in kw:
        kw["sigmas"] = score_lib.geometric_sigmas(kw.pop("sigma_max", 1.0), kw.pop("sigma_min", 0.01), kw.pop("num_levels"))
    return kw


def _build_multi_step(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    score, cfg, _ = setup.score_model()
    kw = annealing_kwargs(setup.multi_step)
    return _with_denoiser(setup, denoise.annealed_map(score, noise, **kw),
                          {"kind": "multi_step", "score": cfg, "annealing": kw})


def _build_empirical_bayes(setup: Setup, noise: NoiseDistribution) -> Pipeline:
    model, cfg, hist = setup.energy_model(noise)
    return _with_denoiser(setup, model.denoiser(), {"kind": "empirical_bayes", "deen": cfg},
                          {"deen_test_mse": hist.get("test_mse"), "deen_noisy_mse": hist.get("noisy_mse")})


# ====================================================================== stability denoisers and rejectors
#: rejector method -> the method whose (classifier, denoiser) it is trained for
REJECTOR_BASES = {"mse_rejector": "mse", "mse_stab_rejector": "mse_stab", "one_step_rejector": "one_step"}


def stability_model(setup: Setup, sigma: float, init: str = "mse", access: str = "full"):
    """(stability-trained DnCNN denoiser, its config) for ``setup`` at ``sigma`` (cached).

    ``access="query"`` trains through a surrogate classifier (``surrogate_arch`` of the stability
    settings, with the setup's training budget for that architecture)."""
    settings = profiles.model_settings("stability", setup.profile)
    arch = settings["surrogate_arch"] if access == "query" else None
    clf, clf_cfg, _ = setup.classifier(arch=arch)
    key = ("stab", str(setup.torch_device), float(sigma), init, access, config_hash(clf_cfg), config_hash(settings),
           setup.profile, setup.seed)

    def load():
        den = stability_denoiser(setup.dataset, sigma, clf, clf_cfg, settings, init=init, access=access,
                                 profile=setup.profile, seed=setup.seed, device=setup.torch_device,
                                 **setup.mse)
        return den, den.config

    return setup.cache.get(key, load)


def rejector_model(setup: Setup, base: str, noise, overrides: Mapping | None = None):
    """(rejector, its config, the base pipeline) trained for the (classifier, denoiser) of method
    ``base`` at this noise; ``overrides`` change rejector settings (e.g. ``{"draws": 4}``)."""
    pipe = build_pipeline(base, noise, setup)
    settings = {**profiles.model_settings("rejector", setup.profile), **dict(overrides or {})}
    clf_cfg, den_cfg = pipe.config["classifier"], pipe.config.get("denoiser")
    key = ("rej", str(setup.torch_device), base, noise.sigma, config_hash(pipe.config), config_hash(settings),
           setup.dataset, setup.seed)

    def load():
        rej = get_rejector(setup.dataset, noise.sigma, pipe.classifier, clf_cfg, pipe.denoiser, den_cfg, settings,
                           seed=setup.seed, device=setup.torch_device, progress=setup.mse.get("progress", True))
        return rej, rej.config

    rej, cfg = setup.cache.get(key, load)
    return rej, cfg, pipe


def _stab_builder(init: str, access: str):
    def build(setup: Setup, noise) -> Pipeline:
        den, cfg = stability_model(setup, noise.sigma, init, access)
        base = build_pipeline("none", noise, setup)  # the standard classifier
        return Pipeline(base.classifier, den, base.num_classes,
                        {"classifier": base.config["classifier"],
                         "denoiser": {"kind": "mse_stab" if init == "mse" else "stab", "model": cfg}},
                        {**base.info, "denoiser_history": getattr(den, "history", {})})
    return build


def _rejector_builder(base: str, overrides: Mapping | None = None):
    def build(setup: Setup, noise) -> Pipeline:
        rej, cfg, pipe = rejector_model(setup, base, noise, overrides)
        return Pipeline(pipe.classifier, pipe.denoiser, pipe.num_classes, {**pipe.config, "rejector": cfg},
                        {**pipe.info, "rejector_history": rej.history}, rejector=rej)
    return build


def rejector_pipeline(method: str, noise: NoiseDistribution, setup: Setup, overrides: Mapping) -> Pipeline:
    """The pipeline of rejector method ``method`` with its rejector trained under other settings."""
    if method not in REJECTOR_BASES:
        raise ValueError(f"rejector settings apply to {sorted(REJECTOR_BASES)}, got {method!r}")
    return _rejector_builder(REJECTOR_BASES[method], overrides)(setup, noise)


# ====================================================================== learned empirical Bayes
def _trained(setup: Setup, sigma: float, method: str, eps: float | None, **overrides):
    """(H, x̂ or None, H's config, history), trained or loaded once per config and device."""
    cfg = xhat_config(setup.dataset, sigma, method, setup.profile, eps, setup.seed, **overrides)
    key = ("xhat", config_hash(cfg), str(setup.torch_device))

    def load():
        model, den, hist = get_xhat_classifier(setup.dataset, sigma, method, setup.profile, eps, setup.seed,
                                               device=setup.torch_device, **overrides)
        return model, den, cfg, hist

    return setup.cache.get(key, load)


def _xhat_builder(method: str, eps_zero: bool, lecture: bool = False):
    """The Pipeline builder of one method; ``lecture``: with m = the family's ``lecture_m``."""
    def build(setup: Setup, noise) -> Pipeline:
        over = {"m": profiles.model_settings("xhat", setup.profile)["lecture_m"]} if lecture else {}
        model, den, cfg, hist = _trained(setup, noise.sigma, method, 0.0 if eps_zero else None, **over)
        return Pipeline(model, den, model.num_classes, {"classifier": cfg, "denoiser": cfg["deen"]},
                        {"classifier_test_accuracy_noisy": hist.get("test_accuracy_noisy"),
                         "train_seconds": hist.get("seconds"), "eps": cfg["eps"], "history": hist})
    return build


class TwoLevelEnergyScore:
    """score(y, s) = −∇φ_s(y) from one DEEN per noise level (a dict {sigma: EnergyMLP}), for
    ``lib.denoising.WalkJump``: the first jump uses φ_σ, the walk and last jump φ_σ'.
    ``requires_grad`` tells ``Smooth`` to keep autograd available (∇φ is taken by autograd)."""

    requires_grad = True

    def __init__(self, energies: dict):
        self.energies = {float(s): e.eval() for s, e in energies.items()}

    def __call__(self, y: torch.Tensor, sigma) -> torch.Tensor:
        s = float(sigma)
        match = [e for k, e in self.energies.items() if abs(k - s) <= 1e-6 * k]
        if not match:
            raise ValueError(f"no energy model for sigma={s:g}; have {sorted(self.energies)}")
        return match[0].score(y)


def walk_jump_key(tau: int) -> str:
    return f"xhat_wj_tau{check_count('tau', tau)}"


def register_walk_jump(tau: int, sigma_prime: float = 0.05, delta: float = 1e-3) -> str:
    """Register the walk-jump smoothed classifier with ``tau`` Langevin steps (key
    ``xhat_wj_tau<tau>``): base h∘x̂_σ'∘walk∘x̂_σ with H from XHAT_ε at the same σ and
    φ_σ' a DEEN trained at σ' (same family as φ_σ). Returns the key."""
    sigma_prime, delta = check_sigma(sigma_prime, "sigma_prime"), check_sigma(delta, "delta")

    def build(setup: Setup, noise) -> Pipeline:
        model, den, cfg, _ = _trained(setup, noise.sigma, "xhat", None)
        deen_over = profiles.model_settings("xhat", setup.profile).get("deen_low", {})
        low, _ = energy.get_energy_model(setup.dataset, sigma_prime, setup.profile, setup.seed,
                                         device=setup.torch_device, **deen_over)
        score = TwoLevelEnergyScore({noise.sigma: den.energy, sigma_prime: low})
        wj = denoise.WalkJump(score, noise.sigma, sigma_prime, delta, tau, seed=setup.seed)
        den_cfg = {"kind": "walk_jump", "deen": cfg["deen"], "deen_low": low.config, "sigma_prime": sigma_prime,
                   "delta": delta, "tau": tau}
        return Pipeline(model, wj, model.num_classes, {"classifier": cfg, "denoiser": den_cfg},
                        {"score_evaluations_per_sample": tau + 2})

    key = walk_jump_key(tau)
    register_method(Method(key, f"XHAT_ε + walk-jump (τ={tau})", build, noises=("gaussian",),
                           reference="Saremi & Srivastava 2020, §4.2 eq. 16-17 (proposed, not evaluated there)"),
                    replace=True)
    return key


# ====================================================================== the registry
_G = ("gaussian",)
#: every built-in method, by key (see the module docstring); :func:`register_method` adds others
METHODS: dict[str, Method] = {m.key: m for m in (
    Method("none", "no denoiser", _build_none, reference="Salman et al. 2020 (baseline)"),
    Method("white_box", "white-box", _build_white_box,
           reference="Cohen et al. 2019 (Gaussian); Teng et al. 2020, Yang et al. 2020 (Laplace, uniform)"),
    Method("mse", "MSE denoiser", _build_mse, noises=_G, reference="Salman et al. 2020"),
    Method("one_step", "one-step score", _build_one_step, noises=_G, reference="Lee 2021, eq. 3"),
    Method("one_step_single", "one-step score, single-sigma net", _build_one_step_single,
           noises=_G, reference="Lee 2021, appendix D.1"),
    Method("multi_step", "multi-step score", _build_multi_step, reference="Lee 2021, Algorithm 1"),
    Method("empirical_bayes", "empirical Bayes (DEEN)", _build_empirical_bayes, noises=_G,
           reference="Saremi & Srivastava 2022, g[pi]"),
    Method("mse_stab", "MSE+Stab denoiser (full access)", _stab_builder("mse", "full"), noises=_G,
           reference="Salman et al. 2020 (MSE then stability fine-tuning, gradients of f)"),
    Method("mse_stab_query", "MSE+Stab denoiser (query access)", _stab_builder("mse", "query"), noises=_G,
           reference="Salman et al. 2020 (stability fine-tuning through a surrogate classifier)"),
    Method("stab", "Stab denoiser (full access)", _stab_builder("scratch", "full"), noises=_G,
           reference="Salman et al. 2020 (stability objective alone)"),
    Method("mse_rejector", "MSE denoiser + rejector", _rejector_builder("mse"), noises=_G,
           reference="Sheikholeslami et al. (Theorem 3.1, eq. 7-9)"),
    Method("mse_stab_rejector", "MSE+Stab denoiser + rejector", _rejector_builder("mse_stab"), noises=_G,
           reference="Sheikholeslami et al. (Theorem 3.1, eq. 7-9)"),
    Method("one_step_rejector", "one-step score + rejector", _rejector_builder("one_step"), noises=_G,
           reference="Lee eq. 3 + Sheikholeslami et al. rejector (beyond both papers)"),
    Method("xhat_eps", "XHAT_ε", _xhat_builder("xhat", False), noises=_G,
           reference="Saremi & Srivastava 2020, eq. 13"),
    Method("xhat_0", "XHAT_0", _xhat_builder("xhat", True), noises=_G,
           reference="Saremi & Srivastava 2020, eq. 13 with ε = 0"),
    Method("smoothadv", "SmoothAdv_ε", _xhat_builder("smoothadv", False), noises=_G,
           reference="Salman et al. 2019"),
    Method("gaussian_aug", "Gaussian augmentation", _xhat_builder("augment", True, True), noises=_G,
           reference="Cohen et al. 2019; Lecture 14 §3 eq. 8"),
    Method("smoothed_obj", "smoothed objective", _xhat_builder("smoothadv", True, True), noises=_G,
           reference="Salman et al. 2019 (ε = 0); Lecture 14 §3 eq. 9, plug-in estimator"),
    Method("smoothadv_lecture", "SmoothAdv", _xhat_builder("smoothadv", False, True), noises=_G,
           reference="Salman et al. 2019; Lecture 14 §3 Attempt 3"),
)}


def register_method(method: Method, replace: bool = False) -> Method:
    """Add a method to :data:`METHODS` (``replace=True`` to overwrite an existing key)."""
    if not isinstance(method, Method):
        raise TypeError(f"method must be a lib.methods.Method, got {type(method).__name__}")
    if method.key in METHODS and not replace:
        raise ValueError(f"method {method.key!r} is already registered")
    METHODS[method.key] = method
    return method


def _method(name: str) -> Method:
    if not isinstance(name, str):
        raise TypeError(f"method must be a string key of lib.methods.METHODS, got {type(name).__name__}")
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name]


def method_label(name: str) -> str:
    """The display label of a registered method ("one_step" -> "one-step score")."""
    return _method(name).label


def _as_noise(noise) -> NoiseDistribution:
    """``noise`` itself, checked: the one form a noise takes here is a distribution object."""
    if isinstance(noise, NoiseDistribution):
        return noise
    got = f"the name {noise!r}" if isinstance(noise, str) else f"a {type(noise).__name__}"
    raise TypeError(f"noise must be a noise distribution, e.g. lib.smoothing.make_noise('gaussian', 0.5) or "
                    f"lib.smoothing.Gaussian(0.5); got {got}")


def build_pipeline(method: str, noise: NoiseDistribution, setup: Setup) -> Pipeline:
    """The (classifier, denoiser) pair of ``method`` for ``noise`` (loads or trains models)."""
    m = _method(method)
    noise = _as_noise(noise)
    if noise.name not in m.noises:
        raise ValueError(f"method {method!r} supports noise {m.noises}, got {noise.name!r}")
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a lib.methods.Setup, got {type(setup).__name__}")
    return m.build(setup, noise)


def build_smooth(method: str, noise: NoiseDistribution, setup: Setup,
                 pipeline: Pipeline | None = None) -> tuple[Smooth, Pipeline]:
    """The smoothed classifier of ``method`` under ``noise``: ``(Smooth(classifier, K, noise, denoiser,
    rejector), pipeline)`` on the setup's device; ``pipeline``: an already built one (e.g. a variant)."""
    noise = _as_noise(noise)
    pipe = build_pipeline(method, noise, setup) if pipeline is None else pipeline
    smooth = Smooth(pipe.classifier, pipe.num_classes, noise, denoiser=pipe.denoiser, rejector=pipe.rejector,
                    device=setup.torch_device)
    return smooth, pipe


def model_summary(methods: Sequence[str], noise: str, sigmas: Sequence[float], setup: Setup) -> pd.DataFrame:
    """Build (load or train) the models of every (method, sigma) of the grid of noise family ``noise``
    (a name) and ``sigmas`` and list them: the classifier
    (arch, training noise, clean test accuracy) and the denoiser. Call it before certifying,
    so that training time (a cache miss) is not mistaken for certification time."""
    rows = []
    for m in methods:
        if noise not in _method(m).noises:
            continue
        for s in sigmas:
            pipe = build_pipeline(m, make_noise(noise, s), setup)
            c = pipe.config["classifier"]
            d = pipe.config.get("denoiser") or {}
            acc = pipe.info.get("classifier_test_accuracy")
            rows.append({"method": method_label(m), "sigma": s, "classifier": c.get("arch"),
                         "trained on": f"{c['noise']} {c['sigma']:g}" if c.get("noise") else "clean",
                         "clean test acc": round(100 * acc, 2) if acc is not None else None,
                         "denoiser": d.get("kind", "none"),
                         "score schedule": (d.get("score") or {}).get("schedule", "")})
    return pd.DataFrame(rows)


