"""Sample rejection (Sheikholeslami et al.): Theorem 3.1 / Algorithm 2 certificates are sound and tight.

Analytic model: a half-space classifier f(x) = 1[<w, x> > 0] (unit w) with a reject band
|<w, x>| < delta (both heads fire inside it). Under N(0, sigma^2 I) noise, at signed margin m of
the true class, p_A = Phi((m - delta)/sigma), p_{A+R} = Phi((m + delta)/sigma), and g_R is the
half-space itself: the true radius is |m|, which Theorem 3.1 attains with exact probabilities.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import ABSTAIN, Gaussian, Laplace, Smooth, Uniform
from lib.smoothing.certificates import WithRejection


class HalfSpace(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w / w.norm(), requires_grad=False)

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([-z, z], 1)


class Band(torch.nn.Module):
    """Both heads fire (logit > 0) inside the band |<w, x>| < delta."""

    def __init__(self, w, delta):
        super().__init__()
        self.w, self.delta = w / w.norm(), delta

    def forward(self, x):
        h = self.delta - (x.flatten(1) @ self.w).abs()
        return torch.stack([h, h], 1)


def _probs(m, delta, sigma):
    """(P(f_R = true class), P(f_R = other class), P(f_R = R)) at margin m >= 0 of the true class."""
    p_a = st.norm.cdf((m - delta) / sigma)
    p_ar = st.norm.cdf((m + delta) / sigma)
    return np.stack([p_a, 1 - p_ar, p_ar - p_a], -1)


def _simulate(m, delta, sigma, n0, n, alpha, rng):
    """Algorithm 2 on simulated counts: returns (certified, correct class, radius) per point.
    Column order of the counts: [true class, other class, R]."""
    p = _probs(m, delta, sigma)
    sel = np.stack([rng.multinomial(n0, q) for q in p])
    cand = sel[:, :2].argmax(1)  # R never wins; ties go to column 0 = the true class, as argmax does
    counts = np.stack([rng.multinomial(n, q) for q in p])
    certified, radii = WithRejection(Gaussian(sigma)).certify(counts, cand, n, alpha)
    return certified, cand == 0, radii


@pytest.mark.parametrize("delta", [0.0, 0.1, 0.3, 0.6])
def test_rejection_certificates_are_sound_by_simulation(delta):
    """5000 certifications per delta: P(certified and (wrong class or radius > m)) <= alpha."""
    rng = np.random.default_rng(int(delta * 100) + 7)
    sigma, n0, n, alpha, num = 0.5, 20, 300, 0.05, 5000
    m = rng.uniform(0.0, 2.0 * sigma, size=num)
    certified, right, radii = _simulate(m, delta, sigma, n0, n, alpha, rng)
    wrong = certified & (~right | (radii > m + 1e-12))
    assert st.binomtest(int(wrong.sum()), num, alpha, alternative="greater").pvalue > 1e-3
    assert certified.mean() > 0.5


def test_the_soundness_simulation_can_fail():
    """Negative control: Theorem 3.1 on plug-in frequencies instead of confidence bounds is caught."""
    class PlugIn(WithRejection):
        def bounds(self, k, n, levels, upper=False):
            return k / n

    rng = np.random.default_rng(2)
    sigma, delta, n, num = 0.5, 0.3, 300, 2000
    m = rng.uniform(0.0, 2.0 * sigma, size=num)
    p = _probs(m, delta, sigma)
    counts = np.stack([rng.multinomial(n, q) for q in p])
    certified, radii = PlugIn(Gaussian(sigma)).certify(counts, np.zeros(num, dtype=int), n, 0.05)
    wrong = certified & (radii > m + 1e-12)
    assert st.binomtest(int(wrong.sum()), num, 0.05, alternative="greater").pvalue < 1e-6


def test_rejection_radius_is_tight():
    """Exact probabilities give the true radius m; with n = 10^5 votes the radius loses only the
    Clopper-Pearson width (no needless slack), and rejection beats Cohen's bound on the same model."""
    sigma, delta = 0.5, 0.3
    m = np.array([0.1, 0.25, 0.5, 0.8])
    p = _probs(m, delta, sigma)
    exact = WithRejection(Gaussian(sigma)).radius(np.stack([p[:, 0], p[:, 0] + p[:, 2]], 1))
    np.testing.assert_allclose(exact, m, rtol=1e-9)
    rng = np.random.default_rng(3)
    n, alpha = 100_000, 0.01
    radii = np.array([_simulate(np.full(400, mi), delta, sigma, 100, n, alpha, rng)[2] for mi in m])
    loss = m - np.median(radii, 1)
    assert np.all(loss > 0) and np.all(loss < 0.03 * sigma / 0.5 + 0.02 * m)
    # Cohen's one-sided bound on the same votes (R counted as a wrong vote) is far smaller
    cohen = sigma * st.norm.ppf(st.norm.cdf((m - delta) / sigma))
    assert np.all(np.median(radii, 1) > cohen + 0.2)


def test_end_to_end_matches_the_count_simulation():
    """Through Smooth (noise, classifier, rejector): sound on 600 points and the same mean radius as the
    count simulation within sampling error."""
    rng = np.random.default_rng(11)
    d, sigma, delta, n0, n, alpha, num = 6, 0.5, 0.3, 20, 400, 0.05, 600
    w = torch.tensor(rng.normal(size=d), dtype=torch.float32)
    unit = (w / w.norm()).numpy()
    m = rng.uniform(0.0, 2 * sigma, size=num)
    labels = rng.integers(0, 2, size=num)
    base = rng.normal(size=(num, d))
    base -= (base @ unit)[:, None] * unit[None, :]
    xs = torch.tensor(base + (np.where(labels == 1, m, -m))[:, None] * unit[None, :], dtype=torch.float32)
    smooth = Smooth(HalfSpace(w), 2, Gaussian(sigma), rejector=Band(w, delta))
    preds, radii, counts = smooth.certify_batch(xs, n0, n, alpha, generator=torch.Generator().manual_seed(5),
                                                return_counts=True)
    preds, radii = preds.numpy(), radii.numpy()
    certified = preds != ABSTAIN
    wrong = certified & ((preds != labels) | (radii > m + 1e-6))
    assert st.binomtest(int(wrong.sum()), num, alpha, alternative="greater").pvalue > 1e-3
    assert set(counts) == {"n_a", "n_r"} and counts["n_a"].shape == (num,)
    assert np.all(counts["n_a"].numpy() + counts["n_r"].numpy() <= n)
    # the radius in the log is Theorem 3.1 recomputed from the logged counts (what notebook 08 asserts)
    n_a, n_r = counts["n_a"].numpy()[certified], counts["n_r"].numpy()[certified]
    again = WithRejection(Gaussian(sigma)).certify(np.stack([n_a, n - n_a - n_r, n_r], 1),
                                                   np.zeros(len(n_a), dtype=int), n, alpha)[1]
    np.testing.assert_allclose(again, radii[certified])
    # the mean radius has the law of the count simulation
    sim = np.concatenate([_simulate(m, delta, sigma, n0, n, alpha, np.random.default_rng(s))[2] for s in range(4)])
    se = math.sqrt(radii.var() / num + sim.var() / sim.size)
    assert abs(radii.mean() - sim.mean()) < 4 * se


def test_rejected_votes_never_win_and_predict_ignores_them():
    """A point deep in the band: most votes are R, yet c_A is a real class; PREDICT's test uses
    the top two non-R counts (Algorithm 1)."""
    w = torch.tensor([1.0, 0.0])
    smooth = Smooth(HalfSpace(w), 2, Gaussian(0.1), rejector=Band(w, 10.0))
    x = torch.tensor([[0.05, 0.0]])
    counts = smooth.sample_counts(x, 1000, generator=torch.Generator().manual_seed(0))
    assert counts.shape == (1, 3) and counts[0, 2] == 1000  # every vote rejected
    preds, radii = smooth.certify_batch(x, 10, 1000, 0.01, generator=torch.Generator().manual_seed(1))
    assert preds[0] == ABSTAIN and radii[0] == 0
    assert smooth.predict(x[0], 1000, 0.01, generator=torch.Generator().manual_seed(2)) == ABSTAIN
    # a rejector that never fires changes nothing against the plain smoother
    never = Smooth(HalfSpace(w), 2, Gaussian(0.5), rejector=Band(w, -1.0))
    plain = Smooth(HalfSpace(w), 2, Gaussian(0.5))
    xs = torch.tensor([[0.3, 1.0], [-0.7, 0.2]])
    a = never.sample_counts(xs, 500, generator=torch.Generator().manual_seed(4))
    b = plain.sample_counts(xs, 500, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[:, :2], b) and a[:, 2].sum() == 0


def test_rejector_sees_the_denoised_batch():
    w = torch.tensor([1.0])
    seen = []

    def rejector(batch):
        seen.append(batch.clone())
        return torch.full((batch.shape[0], 2), -1.0)

    smooth = Smooth(HalfSpace(w), 2, Gaussian(0.1), denoiser=lambda b: b * 0 + 7.0, rejector=rejector)
    smooth.sample_counts(torch.tensor([[1.0]]), 5)
    assert all(torch.all(s == 7.0) for s in seen)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("noise", [Laplace(0.5), Uniform(0.5)])
def test_rejector_needs_gaussian_noise(noise):
    with pytest.raises(ValueError, match="Gaussian"):
        Smooth(HalfSpace(torch.ones(2)), 2, noise, rejector=Band(torch.ones(2), 0.1))


@pytest.mark.parametrize("bad, match", [
    (lambda b: torch.zeros(b.shape[0], 3), "width"),
    (lambda b: torch.zeros(b.shape[0]), "shape"),
    (lambda b: torch.zeros(b.shape[0] + 1, 2), "shape"),
    (lambda b: torch.full((b.shape[0], 2), float("nan")), "rejector returned non-finite"),
    (lambda b: torch.full((b.shape[0], 2), float("inf")), "rejector returned non-finite"),
    (lambda b: [[0.0, 0.0]] * b.shape[0], "rejector"),
])
def test_bad_rejector_output(bad, match):
    smooth = Smooth(HalfSpace(torch.ones(2)), 2, Gaussian(0.5), rejector=bad)
    with pytest.raises(ValueError, match=match):
        smooth.certify_batch(torch.zeros(3, 2), 10, 100, 0.01)


def test_bad_rejector_argument():
    with pytest.raises(TypeError, match="rejector"):
        Smooth(HalfSpace(torch.ones(2)), 2, Gaussian(0.5), rejector="band")
    smooth = Smooth(HalfSpace(torch.ones(2)), 2, Gaussian(0.5), rejector=Band(torch.ones(2), 0.1))
    with pytest.raises(ValueError, match="two_sided"):
        smooth.certify_batch(torch.zeros(3, 2), 10, 100, 0.01, two_sided=True)


def test_rejection_counts_reach_the_log(tmp_path):
    """certify_dataset writes n_a and n_r after Cohen's six columns (Figure 6 of the paper)."""
    import functools

    from lib.smoothing import certify_dataset
    w = torch.tensor([1.0, 0.0])
    smooth = Smooth(HalfSpace(w), 2, Gaussian(0.5), rejector=Band(w, 0.3))
    xs = torch.tensor([[1.0, 0.0], [0.1, 0.0], [-2.0, 0.0]])
    df = certify_dataset(smooth, xs, torch.tensor([1, 1, 0]), 20, 500, 0.01, tmp_path / "rej.tsv",
                         certify=functools.partial(smooth.certify_batch, return_counts=True),
                         columns=["n_a", "n_r"], progress=False)
    assert list(df.columns) == ["idx", "label", "predict", "radius", "correct", "time", "n_a", "n_r"]
    assert (df["n_a"] + df["n_r"] <= 500).all() and df["n_r"].sum() > 0


@pytest.mark.parametrize("bound", ["cp", "betting"])
def test_sequential_certify_with_rejection_is_sound(bound):
    """Sequential CERTIFY with Theorem 3.1 (anytime bounds on p_A and p_{A+R}): 3000 runs within alpha."""
    from lib.smoothing.sequential import sequential_counts
    rng = np.random.default_rng(21)
    sigma, delta, alpha, num = 0.5, 0.3, 0.05, 3000
    m = rng.uniform(0.0, 2 * sigma, num)
    p = _probs(m, delta, sigma)
    sel = np.stack([rng.multinomial(20, q) for q in p])
    cand = sel[:, :2].argmax(1)

    def draw(idx, r):
        return np.stack([rng.multinomial(r, q) for q in p[idx]])

    certified, radii, used = sequential_counts(draw, cand, WithRejection(Gaussian(sigma)), 2000, alpha,
                                               targets=[0.0, 0.25, 0.5], bound=bound, first=64)
    wrong = certified & ((cand != 0) | (radii > m + 1e-12))
    assert st.binomtest(int(wrong.sum()), num, alpha, alternative="greater").pvalue > 1e-3
    assert used.max() <= 2000 and used.mean() < 1500
