"""Floating-point soundness: the usual float32 sampler can be fooled by a base classifier that reads
rounding; the sound grid sampler (Smooth(grid=q)) cannot, and it draws the exact cell law."""
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats

from lib.smoothing import Gaussian, Laplace, Smooth, Uniform
from lib.smoothing import _sound
from lib.smoothing.certify import log_settings
from lib.smoothing.floating_point import TIE_OFFSET, RoundingReader, rounding_counterexample
from lib.smoothing.noise import LogitGaussian


def test_usual_sampler_certifies_a_point_refuted_inside_its_radius():
    out = rounding_counterexample(grid=None)
    assert out["class"] >= 0 and out["class_adv"] >= 0 and out["class"] != out["class_adv"]
    assert out["distance"] < 1e-5 < 1.0 < out["radius"]
    assert out["refuted"]


def test_sound_sampler_is_not_fooled_by_the_rounding_reader():
    out = rounding_counterexample(grid=255)
    assert out["class"] == out["class_adv"] >= 0
    assert not out["refuted"]


def test_rounding_reader_reads_ties():
    z = torch.randn(64, 784, generator=torch.Generator().manual_seed(1))
    assert RoundingReader()(z).argmax(1).eq(0).all()
    assert RoundingReader()(z + TIE_OFFSET).argmax(1).eq(1).all()


def _cell_probs(family, sigma, q, offset, ks):
    """P(k) = F((k + 1/2 - o)/q) - F((k - 1/2 - o)/q) in double precision (scipy)."""
    if family is Gaussian:
        dist = stats.norm(scale=sigma)
    elif family is Laplace:
        dist = stats.laplace(scale=sigma / math.sqrt(2))
    else:
        a = math.sqrt(3) * sigma
        dist = stats.uniform(loc=-a, scale=2 * a)
    return dist.cdf((ks + 0.5 - offset) / q) - dist.cdf((ks - 0.5 - offset) / q)


@pytest.mark.parametrize("family,sigma,offset", [(Gaussian, 0.01, 0.0), (Laplace, 0.008, 0.0),
                                                 (Uniform, 0.01, 0.0), (Gaussian, 0.01, 0.3)])
def test_cells_follow_the_exact_law(family, sigma, offset):
    q, n = 255, 200_000
    x = torch.full((1, 1, 1), offset / q, dtype=torch.float64)
    j, o = _sound.grid_index(x, q)
    z = _sound.sound_noisy(family(sigma), q, x, n, torch.Generator().manual_seed(3))
    k = (z.double() * q).round().long().view(-1) - int(j)
    ks = np.arange(int(k.min()) - 1, int(k.max()) + 2)
    observed = np.array([(k == v).sum().item() for v in ks])
    expected = n * _cell_probs(family, sigma, q, float(o), ks)
    keep = expected > 20
    pooled_obs = np.append(observed[keep], observed[~keep].sum())
    pooled_exp = np.append(expected[keep], n - expected[keep].sum())
    assert stats.chisquare(pooled_obs, pooled_exp).pvalue > 1e-4


def test_a_word_equal_to_a_table_entry_is_decided_by_further_bits():
    noise, q = Gaussian(0.02), 255
    m0, table = _sound.cell_table(noise, q)
    i = int(table.numel() // 2) + 1
    with mpmath.workprec(256):
        share = float(mpmath.frac(_sound._boundary(noise, q, 0.0, m0 + i) * mpmath.mpf(2) ** _sound.WORD))
    g = torch.Generator().manual_seed(0)
    ks = [_sound._resolve(noise, q, 0.0, int(table[i]), g) for _ in range(400)]
    assert set(ks) <= {m0 + i, m0 + i + 1}
    below = sum(k == m0 + i for k in ks)  # V < F_m exactly when the further bits are < frac(2^31 F_m)
    assert stats.binomtest(below, 400, share).pvalue > 1e-4


def test_sound_votes_agree_with_the_usual_ones_on_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x = (torch.randint(0, 256, (1, 1, 28, 28)).float() / 255)
    n = 20_000
    usual = Smooth(model, 10, Gaussian(0.5)).sample_counts(x, n, generator=torch.Generator().manual_seed(1))[0]
    sound = Smooth(model, 10, Gaussian(0.5), grid=255).sample_counts(x, n, generator=torch.Generator().manual_seed(2))[0]
    table = np.stack([usual.numpy(), sound.numpy()])
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-4


def test_same_generator_same_votes():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x = torch.zeros(2, 1, 28, 28)
    smooth = Smooth(model, 10, Laplace(0.25), grid=255)
    a = smooth.sample_counts(x, 3000, generator=torch.Generator().manual_seed(5))
    b = smooth.sample_counts(x, 3000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bad_grid_and_families_are_refused():
    model = torch.nn.Linear(4, 2)
    for bad in (0, -255, 2.5, True, 1 << 20):
        with pytest.raises(ValueError, match="grid"):
            Smooth(model, 2, Gaussian(0.5), grid=bad)
    with pytest.raises(ValueError, match="LogitGaussian"):
        Smooth(torch.nn.Identity(), 2, LogitGaussian(0.5, torch.randn(2, 4)), grid=255)
    off_grid = torch.linspace(0.0011, 0.9, 40).view(1, 40)  # 40 distinct offsets from Z / 255
    with pytest.raises(ValueError, match="distinct offsets"):
        Smooth(torch.nn.Linear(40, 2), 2, Gaussian(0.5), grid=255).sample_counts(off_grid, 10)


def test_logs_record_the_grid():
    model = torch.nn.Linear(4, 2)
    assert log_settings(Smooth(model, 2, Gaussian(0.5), grid=255), 10, 100, 0.001)["grid"] == 255
    assert "grid" not in log_settings(Smooth(model, 2, Gaussian(0.5)), 10, 100, 0.001)


def test_fast_search_agrees_with_a_binary_search_and_sends_ties_to_further_bits():
    noise, q = Gaussian(0.5), 255
    m0, table = _sound.cell_table(noise, q)
    g = torch.Generator().manual_seed(4)
    words = torch.cat([torch.empty(50_000, dtype=torch.int32).random_(generator=g),
                       table[1:-1] - 1, table[1:-1] + 1,  # every bucket, crowded tails included
                       torch.tensor([0, (1 << 31) - 2], dtype=torch.int32)])
    words = words[~torch.isin(words, table)]  # a word equal to an entry is a tie, tested below
    reference = torch.searchsorted(table, words, right=True) + m0
    assert torch.equal(_sound._cells(noise, q, 0.0, words, g), reference)
    ties = table[1:-1:97].contiguous()
    k = _sound._cells(noise, q, 0.0, ties, g)
    # entries below the word are <= V, entries above it > V; entries equal to it need further bits
    low = torch.searchsorted(table, ties, right=False) + m0
    high = torch.searchsorted(table, ties, right=True) + m0
    assert bool(((k >= low) & (k <= high)).all())


def test_sound_vs_usual_pairs_the_two_procedures_on_the_same_points():
    from lib.experiments.float_soundness import sound_twin, sound_vs_usual
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    denoiser = torch.nn.Identity()
    smooth = Smooth(model, 10, Gaussian(0.25), denoiser=denoiser)
    twin = sound_twin(smooth)
    assert twin.grid == 255 and twin.denoiser is denoiser and twin.noise == smooth.noise and smooth.grid is None
    xs = torch.randint(0, 256, (12, 1, 28, 28)).float() / 255
    ys = model(xs).argmax(1)  # the base classifier's own labels: most points certified at small radii
    df = sound_vs_usual(smooth, xs, ys, 20, 400, 0.01, [0.0, 0.1, 10.0])
    assert list(df["radius"]) == [0.0, 0.1, 10.0]
    assert (df["usual %"].iloc[-1], df["sound %"].iloc[-1]) == (0.0, 0.0)  # beyond the largest certifiable radius
    for k in ("usual", "sound"):
        assert (df[f"{k} %"].diff().dropna() <= 0).all()
    assert ((df["McNemar p"] >= 0) & (df["McNemar p"] <= 1)).all()


def test_counterexample_table_states_the_outcome_from_the_numbers():
    from lib.smoothing.floating_point import counterexample_table
    fake = {"r": {"class": 0, "radius": 2.0, "class_adv": 1, "radius_adv": 2.0, "distance": 1e-6, "refuted": True},
            "s": {"class": 0, "radius": 2.0, "class_adv": 0, "radius_adv": 2.0, "distance": 1e-6, "refuted": False}}
    table = counterexample_table(fake)
    assert table.loc["r", "verdict"].startswith("false certificate") and "1.00e-06" in table.loc["r", "verdict"]
    assert table.loc["s", "verdict"].startswith("no contradiction")


class _GridHalfSpace(torch.nn.Module):
    """h(z) = 1[round(q z_1) >= t] on inputs [B, 1]: smoothed over the grid cells it is the
    half-space at b = (t - 1/2) / q, whose exact radius at x > b is x - b."""

    def __init__(self, q, t):
        super().__init__()
        self.q, self.t = q, t

    def forward(self, z):
        v = (torch.round(z[:, 0].double() * self.q) >= self.t).float()
        return torch.stack([1 - v, v], 1)


@pytest.mark.parametrize("family", [Gaussian, Laplace, Uniform])
def test_sound_certify_is_wrong_at_most_alpha_of_the_time(family):
    q, j, t, sigma, alpha, copies = 255, 200, 37, 0.5, 0.1, 3000
    noise = family(sigma)
    b = (t - 0.5) / q
    x = j / q
    true_p = 1 - _cell_probs(family, sigma, q, 0.0, np.arange(-10_000, t - j)).sum()  # P(j + k >= t)
    true_radius = x - b  # the distance to the boundary: every family's radius at true_p equals it
    assert true_p > 0.8 and abs(float(noise.radius(true_p)) - true_radius) < 1e-9
    smooth = Smooth(_GridHalfSpace(q, t), 2, noise, grid=q)
    xs = torch.full((copies, 1), x, dtype=torch.float32)
    preds, radii = smooth.certify_batch(xs, 10, 100, alpha, generator=torch.Generator().manual_seed(11))
    wrong = ((preds == 0) | ((preds == 1) & (radii > true_radius + 1e-9))).double().mean().item()
    assert wrong <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / copies)
    assert (preds == 1).double().mean().item() > 0.5  # it does certify: the check above is not empty


def test_bench_certify_times_the_sound_sampler_beside_the_usual_one():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_certify.py"
    spec = importlib.util.spec_from_file_location("bench_certify", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    linear = bench.LinearClassifier(bench.SHAPE, 10).eval()
    xs = torch.randint(0, 256, (2,) + bench.SHAPE).float() / 255
    row = bench.bench_model("linear", linear, None, xs, 400, torch.device("cpu"), 1, sound=True)
    assert row["sound_samples_per_s"] > 0 and row["sound_over_usual_wall"] > 0
    logit = bench.bench_model("linear-logit", linear, None, xs, 400, torch.device("cpu"), 1, sound=True)
    assert logit["sound_samples_per_s"] is None  # logit-space votes have no sound form
