"""Training for randomized smoothing (Lecture 14 §3), for notebook 00: the lecture's three methods on
a toy problem, all through one trainer (:func:`lib.models.adversarial.train_smoothed`, which runs
the project's one training loop), and paired comparisons of the resulting smoothed classifiers.

=============================  ==========================================================
method (Lecture 14 §3)         loss per example, m noise draws delta_j ~ N(0, sigma^2 I)
=============================  ==========================================================
1. Gaussian augmentation (8)   -log F(x + delta)_y, one draw (m = 1)
2. smoothed objective (9)      -log (1/m) sum_j F(x + delta_j)_y (plug-in, Salman et al.)
3. adversarial training        the same at x + delta*, ||delta*|| <= eps by PGD (SmoothAdv)
=============================  ==========================================================
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon
from statsmodels.stats.contingency_tables import mcnemar
from torch import nn

from lib.data import GaussianMixture
from lib.models.adversarial import draw_noise, pgd_attack_smoothed, smoothed_nll, train_smoothed
from lib.smoothing import Gaussian, Smooth
from lib.utils import check_count, check_sigma

from .common import ToyMLP, _one_thread, _seeded_init

__all__ = ["TOY_EPS", "TOY_PGD_STEPS", "TOY_EVAL_PGD_STEPS", "OBJECTIVES", "smoothing_toy", "train_smoothing_classifier", "smoothing_objectives",
           "smoothing_comparison", "paired_tests", "LECTURE_CLAIMS", "training_verdict"]

#: the toy's attack radius, PGD steps in training and in evaluation (SmoothAdv uses more steps to evaluate)
TOY_EPS, TOY_PGD_STEPS, TOY_EVAL_PGD_STEPS = 0.5, 4, 10

#: objective -> (noise draws per example: "k" or 1, adversarial)
OBJECTIVES = {"augment": (False, False), "smoothed": (True, False), "adversarial": (True, True)}


def smoothing_toy(dim: int = 10, classes: int = 5, sigma0: float = 0.5, spread: float = 2.0,
                  seed: int = 5) -> GaussianMixture:
    """The toy of §3: ``classes`` isotropic Gaussians N(m_k, sigma0^2 I) in R^dim with random means
    of norm ``spread`` (fixed by ``seed``). At sigma = 1 the noise is twice the class spread and
    the classes overlap under noise, so the training objective matters."""
    g = torch.Generator().manual_seed(int(seed))
    mu = torch.randn(check_count("classes", classes, minimum=2), check_count("dim", dim), generator=g,
                     dtype=torch.float64)
    return GaussianMixture(spread * mu / mu.norm(dim=1, keepdim=True), sigma0)


def train_smoothing_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, sigma: float,
                               objective: str, k: int = 8, steps: int = 500, batch_size: int = 256,
                               lr: float = 3e-3, hidden: int = 64, seed: int = 0, eps: float = TOY_EPS,
                               pgd_steps: int = TOY_PGD_STEPS) -> tuple[nn.Module, dict]:
    """Train a small MLP base classifier F_theta on (x [N, d], y [N]) for Gaussian smoothing with one
    of the three methods of Lecture 14 §3 (table above): ``objective`` = "augment" (eq. 8; one draw
    per example, batches of ``k * batch_size`` so that every method sees the same number of noisy
    inputs per step), "smoothed" (eq. 9, plug-in with ``k`` draws) or "adversarial" (SmoothAdv:
    eq. 9 at the PGD point of radius ``eps``, ``pgd_steps`` steps, the k draws fixed during the
    attack). ``steps`` Adam updates at ``lr``. Returns (model in eval mode, {"loss": [...]}).
    """
    sigma = check_sigma(sigma)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    k, steps = check_count("k", k), check_count("steps", steps)
    draws, adversarial = OBJECTIVES[objective]
    model = _seeded_init(seed, lambda: ToyMLP(x.shape[1], num_classes, hidden))
    with _one_thread():
        hist = train_smoothed(model, x.float(), y.long(), sigma, eps=eps if adversarial else 0.0,
                              steps=pgd_steps if adversarial else 0, m=k if draws else 1,
                              batch_size=batch_size if draws else batch_size * k, iters=steps, lr=lr,
                              seed=seed, progress=False)
    return model.eval(), {"loss": hist["loss"]}


@torch.no_grad()
def smoothing_objectives(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float,
                         num_samples: int, ks: Sequence[int] = (1, 4, 16),
                         generator: torch.Generator | None = None) -> dict:
    """Evaluate the two training objectives of Lecture 14 §3 for a soft classifier F = softmax(model).

    With num_samples draws delta_j per example (num_samples divisible by every k in ks):
    ``augment`` = mean_j -log F(x + delta_j)_y (eq. 8), ``smoothed`` = -log mean_j F(x + delta_j)_y
    (eq. 9, the best estimate), ``plugin_k`` = mean over groups of k draws of -log(group mean)
    (the plug-in estimator's expected value). By Jensen, on the same draws,
    smoothed <= plugin_k (decreasing in k) <= plugin_1 = augment. Averages over examples.
    """
    sigma = check_sigma(sigma)
    num_samples = check_count("num_samples", num_samples)
    if any(num_samples % int(kk) for kk in ks):
        raise ValueError("num_samples must be divisible by every k in ks")
    x, y = x.float(), y.long()
    n, d = x.shape
    noisy = x[:, None, :] + sigma * torch.randn(n, num_samples, d, generator=generator)
    p = torch.softmax(model(noisy.reshape(-1, d)), 1).reshape(n, num_samples, -1)
    p_y = p.gather(2, y[:, None, None].expand(-1, num_samples, 1))[..., 0].double().clamp_min(1e-300)
    out = {"augment": float(-p_y.log().mean()), "smoothed": float(-p_y.mean(1).log().mean())}
    for kk in ks:
        out[f"plugin_{int(kk)}"] = float(-p_y.reshape(n, num_samples // kk, kk).mean(2).log().mean())
    return out


def smoothing_comparison(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, sigma: float,
                         eps: float, num_samples: int, pgd_steps: int, n0: int, n: int, alpha: float,
                         generator: torch.Generator | None = None) -> pd.DataFrame:
    """Per test point and model, with common random numbers across models (paired):

    ``loss`` -log G(x)_y estimated with ``num_samples`` draws (eq. 9 on held-out data);
    ``attacked_loss`` the same at the PGD point of radius ``eps`` (:func:`pgd_attack_smoothed`,
    ``pgd_steps`` steps, the attack under its own draws, evaluated on fresh ones);
    ``attack_gain`` the loss increase of the attack under the draws it was run with (>= 0);
    ``correct`` and ``radius``: CERTIFY (``Smooth.certify_batch``, n0, n, alpha) returned the label,
    and its radius (0 when wrong or abstaining). x [N, d], y [N] -> DataFrame (method, idx, ...).
    """
    num_samples = check_count("num_samples", num_samples)
    x, y = x.float(), y.long()
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    frames = []
    for name, model in models.items():
        g = torch.Generator().manual_seed(seed)  # the same draws for every model
        eval_noise = draw_noise(x, sigma, num_samples, g)
        attack_noise = draw_noise(x, sigma, num_samples, g)
        x_adv = pgd_attack_smoothed(model, x, y, sigma, eps, pgd_steps, noise=attack_noise)
        with torch.no_grad():
            loss = smoothed_nll(model, x, y, eval_noise)
            attacked = smoothed_nll(model, x_adv, y, eval_noise)
            gain = smoothed_nll(model, x_adv, y, attack_noise) - smoothed_nll(model, x, y, attack_noise)
        num_classes = int(model(x[:1]).shape[1])
        preds, radii = Smooth(model, num_classes, Gaussian(sigma)).certify_batch(x, n0, n, alpha, generator=g)
        correct = (preds == y).numpy()
        frames.append(pd.DataFrame({"method": name, "idx": np.arange(len(y)), "loss": loss.double().numpy(),
                                    "attacked_loss": attacked.double().numpy(), "attack_gain": gain.double().numpy(),
                                    "correct": correct, "radius": np.where(correct, radii.numpy(), 0.0)}))
    return pd.concat(frames, ignore_index=True)


def paired_tests(df: pd.DataFrame, pairs: Sequence[tuple[str, str]], radii: Sequence[float] = (0.0, 0.5)
                 ) -> pd.DataFrame:
    """Paired tests between methods (a, b) on the same test points of :func:`smoothing_comparison`:
    one-sided Wilcoxon signed-rank tests (scipy) that a has the lower ``loss``, the lower
    ``attacked_loss`` and the larger certified ``radius`` (0 when not certified); two-sided exact
    McNemar tests (statsmodels) of certified accuracy at each radius in ``radii``.
    Columns: a, b, quantity, mean_a, mean_b, p_value."""
    wide = {c: df.pivot(index="idx", columns="method", values=c) for c in ("loss", "attacked_loss", "radius")}
    rows = []
    for a, b in pairs:
        for q, alt in (("loss", "less"), ("attacked_loss", "less"), ("radius", "greater")):
            da, db = wide[q][a].to_numpy(), wide[q][b].to_numpy()
            p = float(wilcoxon(da, db, alternative=alt).pvalue) if np.any(da != db) else 1.0
            rows.append((a, b, f"{q} ({'a < b' if alt == 'less' else 'a > b'}, Wilcoxon)", da.mean(), db.mean(), p))
        for r in radii:
            ca, cb = wide["radius"][a].to_numpy() >= max(r, 1e-12), wide["radius"][b].to_numpy() >= max(r, 1e-12)
            table = [[int(np.sum(ca & cb)), int(np.sum(ca & ~cb))], [int(np.sum(~ca & cb)), int(np.sum(~ca & ~cb))]]
            rows.append((a, b, f"certified accuracy at r = {r:g} (McNemar, two-sided)", ca.mean(), cb.mean(),
                         float(mcnemar(table, exact=True).pvalue)))
    return pd.DataFrame(rows, columns=["a", "b", "quantity", "mean_a", "mean_b", "p_value"])


#: the lecture's claims about §3, as (a, b): "training a improves the smoothed classifier's certified accuracy over b"
LECTURE_CLAIMS = {("smoothed", "augment"): "(9) should make the smoothed classifier better than (8)",
                  ("adversarial", "augment"): "adversarial training should boost certified accuracy over (8)",
                  ("adversarial", "smoothed"): "adversarial training should improve on (9)"}


def training_verdict(tests: pd.DataFrame, names: Mapping[str, str], level: float = 0.05) -> list[str]:
    """One sentence per method pair and radius from the McNemar rows of :func:`paired_tests`: the two
    certified accuracies, the p-value, and whether the lecture's claim (:data:`LECTURE_CLAIMS`, a higher
    certified accuracy for a) is supported (a higher, p <= level), contradicted (a lower, p <= level),
    or not decided at this size (p > level)."""
    out = []
    for row in tests[tests.quantity.str.startswith("certified accuracy")].itertuples():
        r = row.quantity.split("r = ")[1].split(" ")[0]
        diff = row.mean_a - row.mean_b
        if row.p_value <= level:
            outcome = ("supported" if diff > 0 else "contradicted") + f" (p <= {level:.3g})"
        else:
            outcome = f"not decided at this size (p > {level:.3g})"
        claim = LECTURE_CLAIMS.get((row.a, row.b), f"{row.a} should beat {row.b}")
        out.append(f"r = {r}: certified accuracy {names.get(row.a, row.a)} {row.mean_a:.3f} vs {names.get(row.b, row.b)} "
                   f"{row.mean_b:.3f} ({diff:+.3f}, McNemar p = {row.p_value:.3g}); lecture: {claim} -> {outcome}.")
    return out
