"""Lecture 14 ("Certified defenses III: randomized smoothing", lecture notes, 2019) §1–2, for notebook 00:
the Weierstrass transform, Stein's lemma, the Lipschitz lemmas and the two certified radii.

Every formula has a docstring naming its statement and a unit test in ``tests/test_theory.py``
against an independent computation (autograd, quadrature, a scipy distribution, a simulation).
Radii are l2 radii; closed-form radii accept floats or numpy arrays and return the same kind.

Corrections to the lecture text, used throughout (see notebook 00):

* Lemma 2.6 reads "Phi^-1(H(x)) is sigma-Lipschitz"; its proof (and Theorem 1.1) give
  |Phi^-1(H(x)) - Phi^-1(H(x'))| <= ||x - x'|| / sigma, i.e. it is (1/sigma)-Lipschitz.
* Corollary 2.5 reads "radius sqrt(1/(2 sigma^2)) (p_a - p_b)"; Lemma 2.1 with the constant
  L = sqrt(2/(pi sigma^2)) of Lemma 2.4 gives (p_a - p_b) / (2L) = sigma sqrt(pi/8) (p_a - p_b).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from lib.smoothing import Gaussian
from lib.utils import check_count, check_sigma

from .common import _as_batch, _like, _probabilities, stable_probit
from .transforms import (ball_smoothed, gauss_hermite_smoothing, halfspace_smoothed, probit_smoothed, random_mlp_h,
                         stein_gradient)

__all__ = ["cohen_radius", "lipschitz_radius", "max_certifiable_radius", "lemma24_constant", "stein_convergence",
           "lipschitz_experiment", "rescaling_identities", "gaussian_tail_identities",
           "lipschitz_lemmas_experiment", "theorem11_on_a_line", "lemma26_extremal"]


# =============================================================================== radii (Lecture 14)
def cohen_radius(p_a, p_b, sigma: float):
    """Theorem 1.1 (Cohen et al.): R = sigma/2 * (Phi^-1(p_a) - Phi^-1(p_b)).

    p_a, p_b: floats or arrays (broadcast) in [0, 1] with p_a + p_b <= 1, the probabilities
    of the two most likely classes of G at x. Returns R >= 0 (0 where p_a <= p_b; inf at
    p_a = 1), a float for scalar inputs. With two classes (p_b = 1 - p_a), R = sigma Phi^-1(p_a).
    """
    sigma = check_sigma(sigma)
    pa, pb = _probabilities("p_a", p_a), _probabilities("p_b", p_b)
    if np.any(pa + pb > 1 + 1e-9):
        raise ValueError("p_a + p_b must be <= 1")
    with np.errstate(invalid="ignore"):
        r = 0.5 * sigma * (norm.ppf(pa) - norm.ppf(pb))
    r = np.where(pa > pb, r, 0.0)
    return _like(r, p_a, p_b)


def lemma24_constant(sigma: float) -> float:
    """Lemma 2.4: H = h * N(0, sigma^2 I) is sqrt(2 / (pi sigma^2))-Lipschitz for h: R^d -> [0, 1].

    (The proof bounds |h| by 1; for [0, 1]-valued h the supremum of ||grad H|| is half of this,
    1 / (sigma sqrt(2 pi)), attained by a half-space through x; see notebook 00.)"""
    return math.sqrt(2.0 / (math.pi * check_sigma(sigma) ** 2))


def lipschitz_radius(p_a, p_b, sigma: float):
    """Corollary 2.5 (the warm-up certificate): Lemma 2.1 with L = sqrt(2/(pi sigma^2)) (Lemma 2.4),

        R = (p_a - p_b) / (2 L) = sigma * sqrt(pi / 8) * (p_a - p_b).

    (The lecture prints the constant as sqrt(1/(2 sigma^2)); this is the value its proof
    gives.) Same shapes and conventions as :func:`cohen_radius`; R stays finite at p_a = 1.
    """
    sigma = check_sigma(sigma)
    pa, pb = _probabilities("p_a", p_a), _probabilities("p_b", p_b)
    if np.any(pa + pb > 1 + 1e-9):
        raise ValueError("p_a + p_b must be <= 1")
    r = np.maximum(pa - pb, 0.0) / (2.0 * lemma24_constant(sigma))
    return _like(r, p_a, p_b)


def max_certifiable_radius(n, alpha, sigma: float):
    """r_max(n, alpha) = sigma * Phi^-1(alpha^(1/n)) (Saremi & Srivastava §4.1; Cohen et al.).

    The largest radius CERTIFY can return with n samples at failure probability alpha: with all
    n votes for the top class, the one-sided Clopper-Pearson lower bound is alpha^(1/n).
    (The paper prints Phi^-1(alpha^(-n)), a typo.) n: number(s) >= 1 (floats such as 1e10 are
    accepted), alpha in (0, 1); broadcast; computed as sigma * Phi^-1(1 - q) with
    q = -expm1(log(alpha)/n) to keep precision for n up to 1e15 (:meth:`lib.noise.Gaussian.max_radius`).
    0 where alpha^(1/n) <= 1/2 (n <= log2(1/alpha): CERTIFY always abstains).
    """
    noise = Gaussian(sigma)
    n_arr = np.asarray(n, dtype=float)
    a_arr = np.asarray(alpha, dtype=float)
    if np.any(~np.isfinite(n_arr)) or np.any(n_arr < 1):
        raise ValueError("n must be >= 1")
    if np.any(~((a_arr > 0) & (a_arr < 1))):
        raise ValueError("alpha must lie in (0, 1)")
    return _like(noise.max_radius(n_arr, a_arr), n, alpha)


def lipschitz_experiment(num_functions: int, num_points: int, sigma: float, generator: torch.Generator,
                         dims: Sequence[int] = (2, 10, 100), nodes: int = 48,
                         h_range: tuple[float, float] = (1e-6, 1 - 1e-6)) -> pd.DataFrame:
    """Lemmas 2.4 and 2.6 on many random h: one row per (h, point pair).

    Families (per dimension in ``dims``; ``num_functions`` random members each):
    ``half-space`` 1[<v,z> > c] and ``probit`` Phi(<a,z> + c) (closed forms, any d), ``ball``
    1[||z - m|| <= R] and its complement (noncentral chi-square, any d), and ``random MLP``
    (sigmoid network, d = 2 only, by Gauss-Hermite quadrature with ``nodes`` per axis).
    For each h, ``num_points`` points x and partners x' = x + delta (a direction between a random
    one and the gradient's, where the bound is tightest; ||delta|| log-uniform in [0.01, 3] sigma).

    Columns: family, dim, H (at x), grad_norm (sigma ||grad H(x)||, the Lemma 2.4 quantity in
    units of 1/sigma), envelope (phi(Phi^-1(H(x))): Lemma 2.6 says grad_norm <= envelope),
    ratio (sigma |Phi^-1(H(x)) - Phi^-1(H(x'))| / ||x - x'||: Lemma 2.6 says <= 1).
    quad_err (0 for the closed forms): the estimated quadrature error of grad_norm and ratio
    (difference to 1.5x as many nodes). Rows with H(x) or H(x') outside ``h_range`` are dropped.
    """
    sigma = check_sigma(sigma)
    num_functions = check_count("num_functions", num_functions)
    num_points = check_count("num_points", num_points)
    g = generator
    rows = []

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def partners(x, grad):
        # directions between a random one and the gradient's, where the bound is tightest
        u = randn(*x.shape)
        u = u / u.norm(dim=1, keepdim=True)
        gdir = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-300)
        u = u + gdir * 4 * rand(x.shape[0], 1) ** 2
        u = u / u.norm(dim=1, keepdim=True)
        length = sigma * torch.exp(math.log(0.01) + rand(x.shape[0], 1) * (math.log(3.0) - math.log(0.01)))
        return x + u * length, length[:, 0]

    def add(family, dim, dist, H, grad, z, z2, err=0.0):
        H = H.numpy()
        z, z2 = np.asarray(z), np.asarray(z2)
        z_max = norm.isf(1 - h_range[1])  # |Phi^-1(H')| beyond this means H' outside h_range
        keep = (H > h_range[0]) & (H < h_range[1]) & np.isfinite(z) & np.isfinite(z2) & (np.abs(z2) < z_max)
        gn = sigma * grad.norm(dim=1).numpy()
        env = norm.pdf(z)
        ratio = sigma * np.abs(z - z2) / dist.numpy()
        err = np.broadcast_to(np.asarray(err, dtype=float), H.shape)
        for i in np.flatnonzero(keep):
            rows.append((family, dim, H[i], gn[i], env[i], ratio[i], err[i]))

    for dim in dims:
        for _ in range(num_functions):
            # ---- half-space and probit ridge: points spread across the boundary
            v = randn(dim)
            c = float(randn(()) * 2)
            t = randn(num_points) * 2.0 * sigma
            base = randn(num_points, dim)
            base = base - (base @ v / v.dot(v))[:, None] * v[None]
            x = base + ((c + t * v.norm()) / v.dot(v))[:, None] * v[None]
            H, grad = halfspace_smoothed(v, c, x, sigma)
            x2, dist = partners(x, grad)
            add("half-space", dim, dist, H, grad,
                ((x @ v - c) / (sigma * v.norm())).numpy(), ((x2 @ v - c) / (sigma * v.norm())).numpy())
            a = v / v.norm() * math.exp(float(rand(()) * math.log(100.0))) * 0.3 / sigma
            H, grad = probit_smoothed(a, -c * a.norm() / v.norm(), x, sigma)
            x2, dist = partners(x, grad)
            H2, _ = probit_smoothed(a, -c * a.norm() / v.norm(), x2, sigma)
            add("probit", dim, dist, H, grad, stable_probit(H.numpy(), 1 - H.numpy()),
                stable_probit(H2.numpy(), 1 - H2.numpy()))
            # ---- ball and its complement: points near the sphere
            radius = float(sigma * (0.5 + 3 * rand(())) * math.sqrt(dim))
            u = randn(num_points, dim)
            u = u / u.norm(dim=1, keepdim=True)
            x = u * (radius + randn(num_points, 1) * 1.5 * sigma).abs()
            H, grad, sf = ball_smoothed(radius, x, sigma, return_sf=True)
            x2, dist = partners(x, grad)
            H2, _, sf2 = ball_smoothed(radius, x2, sigma, return_sf=True)
            z, z2 = stable_probit(H.numpy(), sf.numpy()), stable_probit(H2.numpy(), sf2.numpy())
            add("ball", dim, dist, H, grad, z, z2)
            add("ball complement", dim, dist, sf, -grad, -z, -z2)
            # ---- random smooth network (quadrature), d = 2 only
            if dim == 2:
                h = random_mlp_h(2, g)
                x = (rand(num_points, 2) * 2 - 1) * 2.5
                H, grad = gauss_hermite_smoothing(h, x, sigma, nodes)
                x2, dist = partners(x, grad)
                H2, _ = gauss_hermite_smoothing(h, x2, sigma, nodes)
                # quadrature error, estimated against 1.5x as many nodes per axis
                Hc, Gc = gauss_hermite_smoothing(h, x, sigma, nodes + nodes // 2)
                H2c, _ = gauss_hermite_smoothing(h, x2, sigma, nodes + nodes // 2)
                z, z2 = stable_probit(H.numpy()), stable_probit(H2.numpy())
                dz = (np.abs(stable_probit(Hc.numpy()) - z) + np.abs(stable_probit(H2c.numpy()) - z2))
                err = np.maximum(sigma * (Gc - grad).norm(dim=1).numpy() + np.abs((Hc - H).numpy()),
                                 sigma * dz / dist.numpy())
                add("random MLP", dim, dist, H, grad, z, z2, err)
    return pd.DataFrame(rows, columns=["family", "dim", "H", "grad_norm", "envelope", "ratio",
                                       "quad_err"])


def stein_convergence(h: Callable, x: torch.Tensor, grad_true: torch.Tensor, sigma: float,
                      ns: Sequence[int], reps: int, generator: torch.Generator | None = None) -> pd.DataFrame:
    """Stein's lemma check: ``reps`` independent estimates of grad H(x) for every n in ``ns``.
    x, grad_true: [d]. Columns: n, rep, error (||estimate - grad_true||), predicted (the
    estimated RMS error sqrt(sum_j stderr_j^2))."""
    rows = []
    for n in ns:
        for r in range(check_count("reps", reps)):
            est, se = stein_gradient(h, x, sigma, int(n), generator, return_stderr=True)
            rows.append((int(n), r, float((est - grad_true).norm()), float(se.norm())))
    return pd.DataFrame(rows, columns=["n", "rep", "error", "predicted"])


# =============================================================================== §2.2: rescaling, Lemmas 2.1-2.2
def rescaling_identities(h: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sigma: float,
                         nodes: int = 48) -> dict:
    """The rescaling step at the end of Lemma 2.6's proof, by Gauss-Hermite quadrature (d <= 3).

    With H = h * N(0, sigma^2 I) at x [B, d], returns ``H`` and three transforms of a unit-scale
    smoothing (each [B]):
    ``corrected``  H~(x / sigma) with h~(z) = h(sigma z), H~ = h~ * N(0, I)  (equals H);
    ``lecture``    H~(sigma x)  with h~(z) = h(z / sigma)  (the lecture's claim "= H(x)");
    ``inverse``    (h * N(0, sigma^-2 I))(x), which is what the lecture's H~(sigma x) really is.
    """
    sigma = check_sigma(sigma)
    xs, _ = _as_batch(x)
    H, _ = gauss_hermite_smoothing(h, xs, sigma, nodes)
    corrected, _ = gauss_hermite_smoothing(lambda z: h(sigma * z), xs / sigma, 1.0, nodes)
    lecture, _ = gauss_hermite_smoothing(lambda z: h(z / sigma), xs * sigma, 1.0, nodes)
    inverse, _ = gauss_hermite_smoothing(h, xs, 1.0 / sigma, nodes)
    return {"H": H, "corrected": corrected, "lecture": lecture, "inverse": inverse}


def gaussian_tail_identities(p: Sequence[float]) -> pd.DataFrame:
    """The two Gaussian integrals of §2 by adaptive quadrature (scipy) against their closed forms:
    eq. (6) E|Z| = sqrt(2/pi) (behind Lemma 2.4's constant, hence Corollary 2.5 = Lemma 2.1 + 2.4), and
    the tail integral closing Lemma 2.6, int_{-t}^inf z phi(z) dz = phi(t) with t = Phi^-1(p)
    (the lecture writes exp(-t^2/2), dropping phi's 1/sqrt(2 pi)). Columns: identity, p, quadrature,
    closed_form, lecture_text."""
    from scipy import integrate

    rows = [("E|Z| (eq. 6)", np.nan, integrate.quad(lambda z: abs(z) * norm.pdf(z), -np.inf, np.inf)[0],
             math.sqrt(2 / math.pi), math.sqrt(2 / math.pi))]
    for q in p:
        t = float(norm.ppf(q))
        val = integrate.quad(lambda z: z * norm.pdf(z), -t, np.inf)[0]
        rows.append(("tail integral (Lemma 2.6)", float(q), val, float(norm.pdf(t)), math.exp(-t * t / 2)))
    return pd.DataFrame(rows, columns=["identity", "p", "quadrature", "closed_form", "lecture_text"])


def _flip_search(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, radius: torch.Tensor,
                 directions: int, pgd_steps: int, generator) -> torch.Tensor:
    """max over points on the sphere ||x' - x|| = radius of score(x') [B] (> 0 means the top class
    changed): random directions, then projected gradient ascent on the sphere from the best."""
    b, d = x.shape
    u = torch.randn(b, directions, d, generator=generator, dtype=x.dtype)
    u = u / u.norm(dim=2, keepdim=True)
    cand = x[:, None] + radius[:, None, None] * u
    vals = score(cand.reshape(-1, d)).reshape(b, directions)
    best = vals.max(1)
    z = cand[torch.arange(b), best.indices].clone()
    out = best.values
    for _ in range(pgd_steps):
        z.requires_grad_(True)
        (g,) = torch.autograd.grad(score(z).sum(), z)
        with torch.no_grad():
            z = z + 0.1 * radius[:, None] * g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
            z = x + (z - x) * (radius / (z - x).norm(dim=1))[:, None]
            out = torch.maximum(out, score(z))
    return out.detach()


def lipschitz_lemmas_experiment(num: int, dim: int, classes: int, generator: torch.Generator,
                                directions: int = 256, pgd_steps: int = 30) -> pd.DataFrame:
    """Lemmas 2.1 and 2.2 on random soft classifiers (``num`` of each kind, in R^dim).

    * Lemma 2.1 (F_y L-Lipschitz): F = softmax(W x + c) with K = ``classes``. grad F_y =
      F_y sum_k F_k (w_y - w_k), so ||grad F_y|| <= D / 4 with D = max_jk ||w_j - w_k||: L = D / 4 and
      R = (p_a - p_b) / (2L). Also Lemma 2.2 with m = log on the same F (||grad log F_y|| <= D).
    * Lemma 2.2 (m(F_y) L-Lipschitz), tight case: two classes F = (Phi(-z), Phi(z)), z = <w, x> + c,
      m = Phi^-1, L = ||w||: R = (m(p_a) - m(p_b)) / (2L) = |z| / ||w||, the distance to the boundary.
    On the sphere of radius R around x, random directions plus projected gradient ascent search for
    a point where another class wins: ``worst_gap`` = max over the search of max_{y != a} F_y - F_a
    (< 0: no flip, as the lemma says); ``flip_beyond`` (tight case only) = the gap at 1.001 R along
    -sign(z) w (> 0: the radius cannot be enlarged). Columns: lemma, radius, worst_gap, flip_beyond.
    """
    num, dim, classes = check_count("num", num), check_count("dim", dim), check_count("classes", classes, minimum=2)
    g = generator
    rows = []
    for _ in range(num):
        W = torch.randn(classes, dim, generator=g, dtype=torch.float64)
        c = torch.randn(classes, generator=g, dtype=torch.float64)
        x = torch.randn(1, dim, generator=g, dtype=torch.float64) * 0.5
        probs = torch.softmax(x @ W.T + c, 1)[0]
        top2 = probs.topk(2)
        a = int(top2.indices[0])
        D = float(torch.cdist(W, W).max())

        def gap(z, a=a, W=W, c=c):
            p = torch.softmax(z @ W.T + c, 1)
            others = torch.cat([p[:, :a], p[:, a + 1:]], 1)
            return others.max(1).values - p[:, a]

        pa, pb = float(top2.values[0]), float(top2.values[1])
        for lemma, radius in (("2.1 softmax, L = D/4", (pa - pb) / (2 * D / 4)),
                              ("2.2 softmax, m = log, L = D", (math.log(pa) - math.log(pb)) / (2 * D))):
            worst = _flip_search(gap, x, torch.tensor([radius], dtype=torch.float64), directions, pgd_steps, g)
            rows.append((lemma, radius, float(worst[0]), np.nan))
        w = torch.randn(dim, generator=g, dtype=torch.float64)
        c2 = float(torch.randn((), generator=g, dtype=torch.float64))
        zx = float(x[0] @ w + c2)
        radius = (abs(zx) - (-abs(zx))) / (2 * float(w.norm()))  # (m(p_a) - m(p_b)) / (2L), m(p) = Phi^-1(p)

        def gap2(z, w=w, c2=c2, s=math.copysign(1.0, zx)):
            return -s * (z @ w + c2)  # Phi(-s z) - Phi(s z) > 0  <=>  -s z > 0

        worst = _flip_search(gap2, x, torch.tensor([radius], dtype=torch.float64), directions, pgd_steps, g)
        beyond = x[0] - math.copysign(1.0, zx) * 1.001 * radius * w / w.norm()
        rows.append(("2.2 probit, m = Phi^-1 (tight)", radius, float(worst[0]), float(gap2(beyond[None])[0])))
    return pd.DataFrame(rows, columns=["lemma", "radius", "worst_gap", "flip_beyond"])


def theorem11_on_a_line(G: Callable[[torch.Tensor], torch.Tensor], xs: np.ndarray, sigma: float) -> pd.DataFrame:
    """Theorem 1.1 (:func:`cohen_radius`) checked directly on an exactly smoothed 1-D classifier G ([N, 1] -> [N, K], e.g.
    ``IntervalClassifier.smoothed``): on the grid ``xs`` (uniform), R(x) = sigma/2 (Phi^-1(p_a) -
    Phi^-1(p_b)) from the top two entries of G(x), against ``distance``, the distance from x to the
    nearest grid point where argmax G differs (inf if none). The theorem says R <= distance, up to
    the grid spacing h (a change of class is located only within h). Columns: x, p_a, p_b, radius,
    distance."""
    xs = np.asarray(xs, dtype=float)
    probs = np.asarray(G(torch.tensor(xs, dtype=torch.float64)[:, None]), dtype=float)
    order = np.sort(probs, axis=1)[:, ::-1]
    rest = order[:, 1:].sum(1)  # 1 - p_a without cancellation when p_a rounds to 1
    top2 = order[:, :2]
    with np.errstate(divide="ignore"):
        radius = 0.5 * sigma * (norm.isf(rest) - norm.ppf(top2[:, 1]))
    label = probs.argmax(1)
    distance = np.full(xs.shape, np.inf)
    for i in range(len(xs)):
        other = xs[label != label[i]]
        if other.size:
            distance[i] = np.abs(other - xs[i]).min()
    return pd.DataFrame({"x": xs, "p_a": top2[:, 0], "p_b": top2[:, 1], "radius": radius, "distance": distance})


def lemma26_extremal(p_grid: Sequence[float], num: int, bins: int, generator: np.random.Generator) -> pd.DataFrame:
    """The key step of Lemma 2.6: among h: R -> [0, 1] with E h(Z) = p (Z ~ N(0, 1), the direction of the
    gradient), E[Z h(Z)] is largest for the half-space h = 1[z > Phi^-1(1 - p)], where it equals phi(Phi^-1(p)).

    Candidates, all with E h(Z) = p exactly and E[Z h(Z)] in closed form: ``num`` random piecewise-constant h
    on ``bins`` equal-probability bins of N(0, 1) (values u_i in [0, 1] with mean p, between pure noise and an increasing ramp; E[Z h] = sum_i u_i
    (phi(q_i) - phi(q_{i+1})) over the bin edges q), probit ramps h = Phi((z - c)/s) (E[Z h] = phi(c') / sqrt(1 + s^2),
    c' = c / sqrt(1 + s^2) = -Phi^-1(p)), two-tailed sets (-inf, a] U [c, inf), and the half-space.
    Columns: family, p, value (E[Z h(Z)]), bound (phi(Phi^-1(p)))."""
    num, bins = check_count("num", num), check_count("bins", bins)
    q = norm.ppf(np.linspace(0, 1, bins + 1))
    dphi = norm.pdf(q[:-1]) - norm.pdf(q[1:])  # E[Z; Z in bin i]
    rows = []
    for p in _probabilities("p_grid", p_grid):
        bound = float(norm.pdf(norm.ppf(p)))
        for _ in range(num):
            lam, gamma = generator.random(), generator.choice([1.0, 3.0, 10.0])
            r = (lam * np.sort(generator.random(bins)) + (1 - lam) * generator.random(bins)) ** gamma  # from noise to a ramp
            u = r * p / r.mean()
            if u.max() > 1:
                u = 1 - (1 - r) * (1 - p) / (1 - r).mean()
            rows.append(("random piecewise h", p, float(u @ dphi), bound))
        for s in (0.25, 0.5, 1.0, 2.0):
            rows.append(("probit ramp", p, float(norm.pdf(norm.ppf(p)) / math.sqrt(1 + s**2)), bound))
        for frac in (0.1, 0.3, 0.5):  # mass frac * p in the lower tail, the rest in the upper tail
            a, c = norm.ppf(frac * p), norm.isf((1 - frac) * p)
            rows.append(("two tails", p, float(norm.pdf(c) - norm.pdf(a)), bound))
        rows.append(("half-space", p, float(norm.pdf(norm.isf(p))), bound))
    return pd.DataFrame(rows, columns=["family", "p", "value", "bound"])
