"""Sequential CERTIFY (anytime-valid bounds, early stopping) and the two-sided radius: soundness
by simulation on analytic models, looseness, savings, and the API through Smooth.

Count-level simulations: the certificates depend on the votes only through their counts, so the
votes of thousands of inputs are drawn as numpy binomials/multinomials from the exact class
probabilities of an analytic model whose true radius is known; a smaller end-to-end check
runs the same procedure through Smooth.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import ABSTAIN, Gaussian, Laplace, Smooth, Uniform
from lib.smoothing.certificates import OneSided, TwoSided
from lib.smoothing.sequential import betting_bounds, look_schedule, sequential_counts

FAMILIES = [Gaussian, Laplace, Uniform]


def _cdf(noise):
    s = noise.sigma
    return {Gaussian: st.norm(scale=s), Laplace: st.laplace(scale=s / math.sqrt(2)),
            Uniform: st.uniform(loc=-math.sqrt(3) * s, scale=2 * math.sqrt(3) * s)}[type(noise)].cdf


def _margins(noise, num, rng):
    top = 2.5 * noise.sigma if isinstance(noise, Gaussian) else (
        0.95 * math.sqrt(3) * noise.sigma if isinstance(noise, Uniform) else 2.5 * noise.sigma)
    return rng.uniform(0.0, top, size=num)


def _binary_run(noise, m, n0, n_max, alpha, rng, **kw):
    """Half-space at margin m (true radius m, in noise.norm): votes for the true class ~ Bin(., F(m))."""
    p = _cdf(noise)(m)
    cand = (rng.binomial(n0, p) < n0 / 2).astype(np.int64)  # 0 = true class; a tie picks class 0 (argmax)

    def draw(idx, r):
        k = rng.binomial(r, p[idx])
        return np.stack([k, r - k], 1)

    certified, radii, used = sequential_counts(draw, cand, OneSided(noise), n_max, alpha, **kw)
    return certified, cand == 0, radii, used


def _violations(certified, right, radii, truth):
    return certified & (~right | (radii > truth + 1e-12))


def _assert_within_alpha(wrong, alpha):
    assert st.binomtest(int(wrong.sum()), wrong.size, alpha, alternative="greater").pvalue > 1e-3


@pytest.mark.parametrize("bound", ["cp", "betting"])
@pytest.mark.parametrize("cls", FAMILIES)
def test_sequential_is_sound_over_all_looks(cls, bound):
    """4000 runs per family and bound, two stopping regimes (a table's targets, and none)."""
    noise = cls(0.5)
    rng = np.random.default_rng(hash((cls.__name__, bound)) % 2**32)
    alpha, num = 0.05, 4000
    for targets in (None, [0.0, 0.1, 0.2, 0.4, 0.6]):
        m = _margins(noise, num, rng)
        certified, right, radii, used = _binary_run(noise, m, 20, 2000, alpha, rng, targets=targets, bound=bound,
                                                    first=64)
        _assert_within_alpha(_violations(certified, right, radii, m), alpha)
        assert used.max() <= 2000 and certified.mean() > 0.5


def test_spending_alpha_matters():
    """Negative control (the test can fail): Clopper-Pearson at the full alpha at every one of the
    7 looks, keeping the best radius, breaks the guarantee on the same simulation."""
    noise, rng, alpha, num = Gaussian(0.5), np.random.default_rng(0), 0.05, 4000
    m = np.full(num, 0.3)
    looks = len(look_schedule(2000, 64))
    naive = _binary_run(noise, m, 20, 2000, alpha * looks, rng, first=64, final_share=1 / looks)
    rate = _violations(naive[0], naive[1], naive[2], m).mean()
    assert st.binomtest(int(rate * num), num, alpha, alternative="greater").pvalue < 1e-6
    spent = _binary_run(noise, m, 20, 2000, alpha, rng, first=64)
    assert _violations(spent[0], spent[1], spent[2], m).mean() < alpha


def _expected_fixed_radius(noise, p, n, alpha):
    from lib.smoothing import lower_confidence_bound
    k = np.arange(n + 1)
    r_k = noise.radius(lower_confidence_bound(k, n, alpha))
    return (st.binom.pmf(k[None, :], n, p[:, None]) * r_k[None, :]).sum(1)


@pytest.mark.parametrize("cls", FAMILIES)
def test_sequential_radii_are_not_needlessly_loose(cls):
    """Run to n_max (targets=None): the mean radius is within a few percent of fixed-n CERTIFY with
    the same n_max votes at the full alpha (exact expectation), and above fixed-n at alpha/2."""
    noise, rng, alpha, num, n_max = cls(0.5), np.random.default_rng(5), 0.01, 2000, 4000
    m = _margins(noise, num, rng) * 0.8 + 0.1 * noise.sigma
    p = _cdf(noise)(m)
    certified, right, radii, used = _binary_run(noise, m, 50, n_max, alpha, rng)
    ok = right  # compare on points whose candidate was the true class
    fixed = _expected_fixed_radius(noise, p[ok], n_max, alpha)
    half = _expected_fixed_radius(noise, p[ok], n_max, alpha / 2)
    assert radii[ok].mean() > 0.97 * fixed.mean()
    assert radii[ok].mean() > half.mean() - 3 * radii[ok].std() / math.sqrt(ok.sum())
    betting = _binary_run(noise, m, 50, n_max, alpha, np.random.default_rng(6), bound="betting")
    assert betting[2][betting[1]].mean() > 0.8 * fixed.mean()


def test_sequential_saves_samples_at_equal_table():
    """With a table's radius grid as targets: >= 3x fewer votes on a mixture of easy and hard points,
    and the certified accuracy at every target within sampling error of fixed-n CERTIFY."""
    noise, rng, alpha, num, n_max = Gaussian(0.25), np.random.default_rng(7), 0.001, 3000, 100_000
    targets = np.array([0.0, 0.25, 0.5, 0.75])
    # margins like a trained classifier's: many far points, some near the boundary, some wrong
    m = np.concatenate([rng.uniform(0.8, 1.5, num // 2), rng.uniform(0.0, 0.8, num // 2)])
    certified, right, radii, used = _binary_run(noise, m, 100, n_max, alpha, rng, targets=targets)
    p = _cdf(noise)(m)
    k = rng.binomial(n_max, p)
    fixed = np.asarray(noise.radius(np.asarray([_lcb(ki, n_max, alpha) for ki in k])))
    for t in targets:
        seq_acc = np.mean(certified & right & (radii >= t))
        fix_acc = np.mean((fixed > 0) & (fixed >= t))
        se = math.sqrt(seq_acc * (1 - seq_acc) / num + fix_acc * (1 - fix_acc) / num)
        assert abs(seq_acc - fix_acc) < 4 * se + 0.01
    assert used.mean() * 3 <= n_max


def _lcb(k, n, alpha):
    from lib.smoothing import lower_confidence_bound
    return lower_confidence_bound(int(k), n, alpha)


def test_betting_bounds_are_bounds():
    """The betting sequence covers p at every look in >= 1 - alpha of 4000 runs (each side)."""
    rng = np.random.default_rng(8)
    n = look_schedule(4000, 32)
    runs, p, alpha = 4000, 0.9, 0.05
    k = np.cumsum(rng.binomial(np.diff(n, prepend=0)[:, None], p, size=(len(n), runs)), 0)
    b = betting_bounds(k, n, alpha)  # [looks, runs, 2]
    assert np.all(np.diff(b[..., 0], axis=0) >= 0) and np.all(np.diff(b[..., 1], axis=0) <= 0)
    for miss in (np.any(b[..., 0] > p, 0), np.any(b[..., 1] < p, 0)):
        _assert_within_alpha(miss, alpha)


# ------------------------------------------------------------------ through Smooth
class HalfSpace(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([-z, z], 1)


def test_certify_sequential_end_to_end():
    rng = np.random.default_rng(9)
    noise, num, n0, n_max, alpha = Gaussian(0.5), 400, 20, 2000, 0.05
    m = rng.uniform(0.0, 1.25, num)
    labels = rng.integers(0, 2, num)
    xs = torch.zeros(num, 3)
    xs[:, 0] = torch.tensor(np.where(labels == 1, m, -m), dtype=torch.float32)
    smooth = Smooth(HalfSpace(torch.tensor([1.0, 0.0, 0.0])), 2, noise)
    out = smooth.certify_sequential(xs, n0, n_max, alpha, targets=[0.0, 0.25, 0.5],
                                    generator=torch.Generator().manual_seed(1))
    preds, radii, samples = (t.numpy() for t in out)
    assert out[0].dtype == torch.long and out[1].dtype == torch.float64 and out[2].dtype == torch.long
    certified = preds != ABSTAIN
    _assert_within_alpha(certified & ((preds != labels) | (radii > m + 1e-6)), alpha)
    assert samples.max() <= n0 + n_max and samples.min() >= n0 + 128
    assert samples.mean() < (n0 + n_max) / 2  # far points stop early
    again = smooth.certify_sequential(xs, n0, n_max, alpha, targets=[0.0, 0.25, 0.5],
                                      generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(out, again))


def test_certify_sequential_bad_input():
    smooth = Smooth(HalfSpace(torch.tensor([1.0])), 2, Gaussian(0.5))
    xs = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="bound"):
        smooth.certify_sequential(xs, 10, 100, 0.01, bound="hoeffding")
    with pytest.raises(ValueError, match="targets"):
        smooth.certify_sequential(xs, 10, 100, 0.01, targets=[-1.0])
    with pytest.raises(ValueError, match="alpha"):
        smooth.certify_sequential(xs, 10, 100, 1.5)
    with pytest.raises(ValueError, match="MAX_SAMPLES"):
        smooth.certify_sequential(xs, 10, 10**12, 0.01)


# ------------------------------------------------------------------ the two-sided radius
def _slab_probs(m, t, sigma):
    """Gaussian model on (z, y): A if z > 0, B if z < -t, C1/C2 (y > 0 / y < 0) in the slab between.
    At (m, 0): [p_A, p_B, p_C1, p_C2]."""
    p_a, p_b = st.norm.cdf(m / sigma), st.norm.cdf((-t - m) / sigma)
    slab = 1 - p_a - p_b
    return np.stack([p_a, p_b, slab / 2, slab / 2], -1)


def _slab_true_radius(m, t, sigma):
    """Distance from (m, 0) to where A stops winning (bisection along 721 directions)."""
    theta = np.linspace(0, np.pi, 721)
    d = np.stack([np.cos(theta), np.sin(theta)], 1)

    def a_wins(r):
        z, y = m + r * d[:, 0], r * d[:, 1]
        p_a, p_b = st.norm.cdf(z / sigma), st.norm.cdf((-t - z) / sigma)
        p_c = (1 - p_a - p_b) * st.norm.cdf(np.abs(y) / sigma)
        return p_a > np.maximum(p_b, p_c)

    lo, hi = np.zeros(len(d)), np.full(len(d), 10.0 * sigma)
    for _ in range(60):
        mid = (lo + hi) / 2
        win = a_wins(mid)
        lo, hi = np.where(win, mid, lo), np.where(win, hi, mid)
    return lo.min()


def test_two_sided_exact_radius_on_the_slab_model():
    """With t = sigma/2, B is the runner-up for m in [0, 0.6] and Theorem 1 is tight."""
    sigma, t = 0.5, 0.25
    for m in (0.0, 0.1, 0.3, 0.6):
        p = _slab_probs(np.array([m]), t, sigma)
        cert = TwoSided(Gaussian(sigma))
        exact = cert.radius(np.stack([p[:, 0], 1 - p[:, 1], 1 - p[:, 2], 1 - p[:, 3]], 1))
        truth = _slab_true_radius(m, t, sigma)
        assert exact[0] == pytest.approx(m + t / 2, rel=1e-9)  # Cohen's Theorem 1 with exact p_A, p_B
        assert truth == pytest.approx(m + t / 2, rel=1e-3)  # ... which is the true radius here


def _certify_counts(cert, p, n0, n, alpha, rng):
    sel = np.stack([rng.multinomial(n0, q) for q in p])
    cand = sel.argmax(1)
    counts = np.stack([rng.multinomial(n, q) for q in p])
    certified, radii = cert.certify(counts, cand, n, alpha)
    return certified, cand == 0, radii


def test_two_sided_is_sound_and_helps_where_p_b_is_small():
    """5000 certifications on the slab model (true radius m + t/2): false certificates within alpha;
    the two-sided radius beats Cohen's one-sided one there, and loses only the alpha split on a
    two-class model (p_B = 1 - p_A), where it does not help."""
    sigma, t, alpha, n0, n, num = 0.5, 0.25, 0.05, 50, 1000, 5000
    rng = np.random.default_rng(10)
    m = rng.uniform(0.0, 0.6, num)
    p = _slab_probs(m, t, sigma)
    certified, right, radii = _certify_counts(TwoSided(Gaussian(sigma)), p, n0, n, alpha, rng)
    _assert_within_alpha(_violations(certified, right, radii, m + t / 2), alpha)
    one = _certify_counts(OneSided(Gaussian(sigma)), p, n0, n, alpha, np.random.default_rng(11))
    assert radii.mean() > one[2].mean() + 0.07  # measured: 0.373 vs 0.266
    two_class = np.stack([st.norm.cdf(m / sigma), st.norm.cdf(-m / sigma)], 1)
    a = _certify_counts(TwoSided(Gaussian(sigma)), two_class, n0, n, alpha, np.random.default_rng(12))
    b = _certify_counts(OneSided(Gaussian(sigma)), two_class, n0, n, alpha, np.random.default_rng(12))
    assert a[2].mean() < b[2].mean() and a[2].mean() > b[2].mean() - 0.02
    _assert_within_alpha(_violations(a[0], a[1], a[2], m), alpha)


def test_two_sided_through_smooth():
    class Slab(torch.nn.Module):
        def forward(self, x):
            z, y = x[:, 0], x[:, 1]
            cls = torch.where(z > 0, 0, torch.where(z < -0.25, 1, torch.where(y > 0, 2, 3)))
            return torch.nn.functional.one_hot(cls, 4).float()

    smooth = Smooth(Slab(), 4, Gaussian(0.5))
    xs = torch.tensor([[0.3, 0.0]] * 50)
    preds, radii = smooth.certify_batch(xs, 50, 2000, 0.01, two_sided=True, generator=torch.Generator().manual_seed(0))
    one = smooth.certify_batch(xs, 50, 2000, 0.01, generator=torch.Generator().manual_seed(0))[1]
    assert (preds == 0).all() and (radii <= 0.3 + 0.125).all() and radii.mean() > one.mean() + 0.05
    seq = smooth.certify_sequential(xs[:5], 50, 2000, 0.01, two_sided=True, generator=torch.Generator().manual_seed(0))
    assert (seq[1] <= 0.425).all() and (seq[1] > 0.25).all()
    lap = Smooth(Slab(), 4, Laplace(0.5)).certify_batch(xs, 10, 100, 0.01, two_sided=True)
    assert lap[1].dtype == torch.float64


def test_sequential_logs_through_certify_dataset(tmp_path):
    """certify_dataset logs the samples column of certify_sequential (extra column after Cohen's six)."""
    import functools

    from lib.smoothing import certify_dataset
    smooth = Smooth(HalfSpace(torch.tensor([1.0, 0.0])), 2, Gaussian(0.5))
    xs = torch.tensor([[2.0, 0.0], [0.05, 0.0], [-1.0, 0.0]])
    certify = functools.partial(smooth.certify_sequential, targets=[0.0, 0.5], return_counts=True)
    df = certify_dataset(smooth, xs, torch.tensor([1, 1, 0]), 20, 4000, 0.01, tmp_path / "seq.tsv",
                         certify=certify, columns=["samples"], progress=False)
    assert list(df.columns[:6]) == ["idx", "label", "predict", "radius", "correct", "time"]
    assert (df["samples"] <= 20 + 4000).all() and df["samples"].min() < 4020


def _slab_probs_1d(noise, m, t):
    """The slab model under a product noise with coordinate cdf F, at (m, 0): [p_A, p_B, p_C1, p_C2]."""
    cdf = _cdf(noise)
    p_a, p_b = cdf(m), cdf(-t - m)
    slab = 1 - p_a - p_b
    return np.stack([p_a, p_b, slab / 2, slab / 2], -1)


def _slab_true_radius_l1(noise, m, t):
    """l1 distance from (m, 0) to where A stops winning: scan of 4001 radii along 801 l1 directions."""
    cdf = _cdf(noise)
    c = np.linspace(-1, 1, 801)[:, None]
    r = np.linspace(0, 4 * noise.sigma, 4001)[None, :]
    z, y = m + r * c, r * (1 - np.abs(c))
    p_a, p_b = cdf(z), cdf(-t - z)
    p_c = (1 - p_a - p_b) * cdf(y)
    loses = ~(p_a > np.maximum(p_b, p_c))
    first = np.where(loses.any(1), r[0, loses.argmax(1)], np.inf)
    return first.min()


@pytest.mark.parametrize("cls", [Laplace, Uniform])
def test_two_sided_l1_noises_are_sound(cls):
    """Slab model (t = sigma/2) under l1 noises: the two-sided radius at exact probabilities never
    exceeds the true l1 radius (equals it for uniform noise); 4000 certifications within alpha."""
    noise, t, alpha, num = cls(0.5), 0.25, 0.05, 4000
    cert = TwoSided(noise)
    grid = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    p = _slab_probs_1d(noise, grid, t)
    exact = cert.radius(np.stack([p[:, 0], 1 - p[:, 1], 1 - p[:, 2], 1 - p[:, 3]], 1))
    truth = np.array([_slab_true_radius_l1(noise, m, t) for m in grid])
    assert np.all(exact <= truth + 1e-3)
    if cls is Uniform:
        np.testing.assert_allclose(exact, grid + t / 2, rtol=1e-9)
        np.testing.assert_allclose(truth, grid + t / 2, atol=2e-3)
    rng = np.random.default_rng(13)
    idx = rng.integers(0, len(grid), num)
    certified, right, radii = _certify_counts(cert, p[idx], 50, 1000, alpha, rng)
    _assert_within_alpha(_violations(certified, right, radii, truth[idx]), alpha)
    one = _certify_counts(OneSided(noise), p[idx], 50, 1000, alpha, np.random.default_rng(14))
    assert radii.mean() > one[2].mean()
