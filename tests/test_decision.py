"""Decision-mode certification: soundness by simulation on analytic models (every noise, one- and
two-sided, sample rejection), with the probabilities at and around the table's thresholds where a
wrong decision is likeliest; a negative control; savings; the API through Smooth and certify_dataset.

Count-level simulations: the decisions depend on the votes only through their counts, so the votes
of thousands of inputs are drawn as numpy multinomials from exact class probabilities; the true
radius of the certificate is its radius at the exact event probabilities.
"""
import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import ABSTAIN, Gaussian, Laplace, Smooth, Uniform, certify_dataset
from lib.smoothing.certificates import OneSided, TwoSided, WithRejection
from lib.smoothing.decision import (CERTIFIED, OUT_OF_REACH, REFUTED, certify_decisions, decide_counts, decide_votes,
                                    decision_looks, decision_procedure, decision_settings, largest_certified,
                                    threshold)

RADII = np.array([0.25, 0.5, 0.75, 1.0])
K = 4


def _model(noise, num, rng, two_classes=False):
    """Class probabilities [num, K]: p_A at a table threshold or just beside it (+-0.004, +-0.02),
    the rest split between a runner-up and the other classes at random."""
    t = threshold(noise, RADII)
    t = t[t < 0.999]
    p_a = rng.choice(t, num) + rng.choice([0.0, 0.0, -0.004, 0.004, -0.02, 0.02], num)
    p_a = np.clip(p_a, 0.51, 0.999)
    share = rng.uniform(0.3, 1.0, num) if not two_classes else np.ones(num)
    rest = (1 - p_a) * (1 - share) / (K - 2)
    probs = np.concatenate([p_a[:, None], ((1 - p_a) * share)[:, None], np.repeat(rest[:, None], K - 2, 1)], 1)
    return probs / probs.sum(1, keepdims=True)


def _run(certificate, probs, alpha, rng, n0=50, n_max=3000, **kw):
    """decide_votes on multinomial votes of ``probs`` [B, outcomes], looks 32, 48, ... , n_max."""
    def draw(idx, r):
        return rng.multinomial(r, probs[idx])

    looks = decision_looks(n_max, first=32, ratio=1.5)
    return decide_votes(draw, len(probs), K, certificate, RADII, n0, alpha, looks, **kw)


def _true_radius(certificate, probs, candidates):
    k, _ = certificate.events(probs, candidates)  # exact event probabilities in place of counts
    return certificate.radius(np.clip(k, 0.0, 1.0))


def _wrong_rows(certificate, probs, res, num_classes=K):
    """A row is wrong if one CERTIFIED or REFUTED entry is, or an early-stopped selection missed g(x)."""
    truth = _true_radius(certificate, probs, res["candidates"])
    d = res["decisions"]
    wrong = ((d == CERTIFIED) & ~((truth[:, None] > 0) & (truth[:, None] >= RADII[None, :]))) \
        | ((d == REFUTED) & ~((truth[:, None] <= 0) | (truth[:, None] < RADII[None, :])))
    top = probs[:, :num_classes].argmax(1)
    majority = probs[:, :num_classes].max(1) > 0.5
    missed = (res["select_votes"] < 50) & majority & (res["candidates"] != top)
    return wrong.any(1) | missed


def _assert_within_alpha(wrong, alpha):
    assert st.binomtest(int(wrong.sum()), wrong.size, alpha, alternative="greater").pvalue > 1e-3


@pytest.mark.parametrize("cls", [Gaussian, Laplace, Uniform])
@pytest.mark.parametrize("two_sided", [False, True])
def test_decisions_are_sound_near_the_thresholds(cls, two_sided):
    """4000 inputs per noise and certificate at alpha = 0.05: rows wrong at most alpha of the time."""
    noise, alpha, num = cls(0.5), 0.05, 4000
    rng = np.random.default_rng(hash((cls.__name__, two_sided)) % 2**32)
    certificate = TwoSided(noise) if two_sided else OneSided(noise)
    probs = _model(noise, num, rng)
    res = _run(certificate, probs, alpha, rng)
    _assert_within_alpha(_wrong_rows(certificate, probs, res), alpha)
    d = res["decisions"]
    assert (d == CERTIFIED).any() and (d == REFUTED).any()  # both kinds of decision are exercised
    assert np.all(np.diff((d == CERTIFIED).astype(int), axis=1) <= 0)  # monotone in r
    assert np.all(np.diff((d == REFUTED).astype(int), axis=1) >= 0)


def test_decisions_with_the_deterministic_cap_only_are_sound():
    noise, alpha, num = Laplace(0.5), 0.05, 4000
    rng = np.random.default_rng(5)
    probs = _model(noise, num, rng)
    res = _run(OneSided(noise), probs, alpha, rng, reach="cap")
    _assert_within_alpha(_wrong_rows(OneSided(noise), probs, res), alpha)


def test_rejection_decisions_are_sound():
    """Theorem 3.1's pair: the reject class R takes part of the mass (column K of the counts)."""
    noise, alpha, num = Gaussian(0.5), 0.05, 4000
    rng = np.random.default_rng(7)
    probs = _model(noise, num, rng)
    reject = rng.uniform(0.0, 0.6, num) * (1 - probs[:, 0])  # moved from the other classes to R
    rest = probs[:, 1:] * (1 - reject / (1 - probs[:, 0]))[:, None]
    probs_r = np.concatenate([probs[:, :1], rest, reject[:, None]], 1)
    certificate = WithRejection(noise)
    res = _run(certificate, probs_r, alpha, rng)
    _assert_within_alpha(_wrong_rows(certificate, probs_r, res), alpha)
    assert (res["decisions"] == CERTIFIED).any() and (res["decisions"] == REFUTED).any()


def test_unspent_alpha_is_caught():
    """Negative control (the test can fail): Clopper-Pearson at the full alpha at every look, with
    p_A just below a threshold, certifies wrongly far more often than alpha; the spent alpha does not."""
    from lib.smoothing.stats import lower_confidence_bound

    noise, alpha, num = Gaussian(0.5), 0.05, 4000
    rng = np.random.default_rng(3)
    p_a = threshold(noise, 0.5) - 0.003
    looks = decision_looks(3000, first=32, ratio=1.5)
    k = rng.binomial(np.diff(np.append(0, looks))[None, :].repeat(num, 0), p_a).cumsum(1)  # [num, looks]
    naive = np.stack([lower_confidence_bound(k[:, j], int(n), alpha) for j, n in enumerate(looks)], 1)
    wrong = (naive >= threshold(noise, 0.5)).any(1)
    assert st.binomtest(int(wrong.sum()), num, alpha, alternative="greater").pvalue < 1e-6
    probs = np.tile([p_a, 1 - p_a, 0.0, 0.0], (num, 1))

    def draw(idx, r):
        return rng.multinomial(r, probs[idx])

    spent = decide_counts(draw, np.zeros(num, dtype=np.int64), OneSided(noise), RADII, alpha, looks)[0]
    _assert_within_alpha((spent[:, 1:] == CERTIFIED).any(1), alpha)


def test_out_of_reach_stops_at_the_cap():
    """All votes for c_A: the radii that n_max cannot certify are out of reach, decided early."""
    noise = Gaussian(0.25)
    probs = np.tile([1.0, 0.0, 0.0, 0.0], (50, 1))
    rng = np.random.default_rng(0)
    res = _run(OneSided(noise), probs, 0.001, rng, n_max=100_000)
    reach = noise.max_radius(100_000, 0.001)
    assert np.all(res["decisions"][:, RADII > reach] == OUT_OF_REACH)
    assert np.all(res["decisions"][:, RADII <= 0.5] == CERTIFIED)
    assert res["samples"].max() < 15_000  # r = 0.75 needs ~9,000 votes at p_A = 1; n0 + n_max = 100,050


def test_decision_mode_saves_samples_at_equal_table():
    """Mixture of easy and boundary inputs: same certified accuracy at each radius as fixed n
    (McNemar on the same inputs), with fewer samples."""
    from statsmodels.stats.contingency_tables import mcnemar

    noise, alpha, num, n = Gaussian(0.5), 0.001, 600, 20_000
    rng = np.random.default_rng(11)
    p_a = np.where(rng.uniform(size=num) < 0.7, 1.0, rng.uniform(0.4, 1.0, num))
    probs = np.stack([p_a, 1 - p_a, np.zeros(num), np.zeros(num)], 1)
    res = _run(OneSided(noise), probs, alpha, rng, n0=100, n_max=n)
    fixed_counts = rng.multinomial(n, probs)
    _, fixed_r = OneSided(noise).certify(fixed_counts, np.zeros(num, dtype=np.int64), n, alpha)
    dec_r = largest_certified(res["decisions"], RADII)
    for r in RADII:
        a, b = fixed_r >= r, dec_r >= r
        table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
        assert mcnemar(table, exact=True).pvalue >= 0.01
    assert (100 + n) / res["samples"].mean() > 3


class _Linear(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float32))

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def test_certify_decisions_end_to_end(tmp_path):
    """Through Smooth and certify_dataset: the logged radius is the largest certified table radius."""
    torch.manual_seed(0)
    smooth = Smooth(_Linear([[1.0, 0.0], [-1.0, 0.0]]), 2, Gaussian(0.5))
    xs = torch.tensor([[2.0, 0.0], [0.3, 0.0], [0.0, 0.0], [-2.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    preds, radii, samples, dec = certify_decisions(smooth, xs, [0.25, 0.5, 1.0], 64, 20_000, 0.001, generator=g,
                                                   return_decisions=True)
    assert preds[0] == 0 and preds[3] == 1 and radii[0] == 1.0 and radii[3] == 1.0
    assert int(samples.max()) <= 64 + 20_000 and dec.shape == (4, 3)
    log = tmp_path / "d.tsv"
    df = certify_dataset(smooth, xs, torch.tensor([0, 0, 0, 1]), 64, 20_000, 0.001, log, progress=False,
                         certify=decision_procedure([0.25, 0.5, 1.0])(smooth), columns=["samples"],
                         settings=decision_settings([0.25, 0.5, 1.0]))
    assert set(df["radius"]) <= {0.0, 0.25, 0.5, 1.0} and df["samples"].max() <= 20_064
    assert int(df["predict"][2]) == ABSTAIN or float(df["radius"][2]) == 0.0


def test_bad_input():
    smooth = Smooth(_Linear([[1.0, 0.0], [-1.0, 0.0]]), 2, Gaussian(0.5))
    xs = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="alpha"):
        certify_decisions(smooth, xs, [0.5], 10, 100, 1.5)
    with pytest.raises(ValueError, match="radii"):
        certify_decisions(smooth, xs, [float("nan")], 10, 100, 0.01)
    with pytest.raises(ValueError, match="select_share"):
        certify_decisions(smooth, xs, [0.5], 10, 100, 0.01, select_share=0.9, refute_share=0.2)
    with pytest.raises(ValueError, match="last look"):
        certify_decisions(smooth, xs, [0.5], 10, 100, 0.01, looks=[10, 50])
    with pytest.raises(ValueError, match="radii"):
        threshold(Gaussian(0.5), -1.0)


def test_thresholds_invert_the_radius():
    for noise in (Gaussian(0.5), Laplace(0.5), Uniform(0.5)):
        p = np.array([0.6, 0.8, 0.95])
        assert np.allclose(threshold(noise, noise.radius(p)), p)
