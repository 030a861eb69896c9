"""A base classifier that reads float32 rounding, and the false certificate it earns.

Randomized smoothing's certificate assumes exact noise and exact addition. In float32,
``x + u`` is rounded to nearest, ties to even, and a base classifier sees the rounded sum. At
the point x' = x + 2^-25 (every coordinate) every coordinate with 1/2 <= |x_i + u_i| < 1 is a
tie (2^-25 is half the spacing of float32 there), so it rounds to an even last mantissa bit;
at x = 0 the same last bits are those of the float32 noise, fair coins. :class:`RoundingReader`
votes on that pattern, so the smoothed classifier is certified for one class at x and for the
other at x', a distance of 2^-25 sqrt(d) away (Voráček & Hein, "Sound randomized smoothing in
floating-point arithmetic", ICLR 2023, arXiv 2207.07209, build counterexamples of this
kind; this one is our own construction). With ``Smooth(..., grid=q)`` the classifier sees
grid values only, and both points get the same class.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from lib.smoothing.noise import Gaussian
from lib.smoothing.smooth import Smooth

__all__ = ["RoundingReader", "rounding_counterexample", "counterexample_table", "counterexample_verdict", "TIE_OFFSET"]

#: the shift x' - x per coordinate: half the float32 spacing on [1/2, 1)
TIE_OFFSET = 2.0 ** -25


class RoundingReader(nn.Module):
    """Base classifier [B, *shape] -> logits [B, 2]: class 1 when at least ``threshold`` of the
    coordinates with 1/2 <= |z_i| < 1 have an even last mantissa bit (float32), else class 0."""

    def __init__(self, threshold: float = 0.9):
        super().__init__()
        if not 0.5 < threshold <= 1:
            raise ValueError(f"threshold must be in (1/2, 1], got {threshold}")
        self.threshold = threshold

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float().flatten(1)
        chosen = (z.abs() >= 0.5) & (z.abs() < 1)
        even = ((z.view(torch.int32) & 1) == 0) & chosen
        share = even.sum(1).float() / chosen.sum(1).clamp_min(1).float()
        vote = (share >= self.threshold).float()
        return torch.stack([1 - vote, vote], 1)


def rounding_counterexample(dim: int = 784, sigma: float = 1.0, n0: int = 100, n: int = 1000,
                            alpha: float = 0.001, grid: int | None = None, seed: int = 0) -> dict:
    """CERTIFY the smoothed :class:`RoundingReader` (Gaussian noise ``sigma``) at x = 0 and at
    x' = x + 2^-25 in R^dim, with the usual float32 sampler (``grid=None``) or the sound one.

    Returns a dict: ``x``, ``x_adv`` ([dim] float32), ``class``, ``radius`` (at x), ``class_adv``,
    ``radius_adv`` (at x', by the same smoothed classifier), ``distance`` (l2, ||x' - x||) and
    ``refuted`` (both certified, classes differ and distance < radius: a false certificate).
    Each CERTIFY holds with probability >= 1 - alpha in exact arithmetic.
    """
    smooth = Smooth(RoundingReader(), 2, Gaussian(sigma), device="cpu", grid=grid)
    x = torch.zeros(dim)
    x_adv = x + TIE_OFFSET
    g = torch.Generator().manual_seed(seed)
    c, r = smooth.certify(x, n0, n, alpha, generator=g)
    c_adv, r_adv = smooth.certify(x_adv, n0, n, alpha, generator=g)
    distance = float(torch.linalg.vector_norm(x_adv.double() - x.double()))
    refuted = c >= 0 and c_adv >= 0 and c != c_adv and distance < min(r, r_adv)
    return {"x": x, "x_adv": x_adv, "class": c, "radius": r, "class_adv": c_adv, "radius_adv": r_adv,
            "distance": distance, "refuted": bool(refuted)}


def counterexample_verdict(out: dict) -> str:
    """One sentence from a :func:`rounding_counterexample` result: refuted or not, with the numbers."""
    if out["refuted"]:
        return (f"false certificate: class {out['class']} certified with radius {out['radius']:.3f} at x, while x' at "
                f"distance {out['distance']:.2e} is certified for class {out['class_adv']} (radius {out['radius_adv']:.3f})")
    return (f"no contradiction: x gives class {out['class']} (radius {out['radius']:.3f}) and x' at distance "
            f"{out['distance']:.2e} gives class {out['class_adv']} (radius {out['radius_adv']:.3f})")


def counterexample_table(results: dict) -> pd.DataFrame:
    """One row per named :func:`rounding_counterexample` result: classes, radii, distance, refuted, verdict."""
    rows = {name: {"class at x": r["class"], "radius at x": round(r["radius"], 3), "class at x'": r["class_adv"],
                   "radius at x'": round(r["radius_adv"], 3), "||x' - x||": r["distance"], "refuted": r["refuted"],
                   "verdict": counterexample_verdict(r)} for name, r in results.items()}
    return pd.DataFrame(rows).T.rename_axis("sampler")
