"""Denoisers against closed forms.

Prior X ~ N(0, s0^2 I) (``lib.data.GaussianData``), whose smoothed score is exact:
``grad log p_t(x) = -x / (s0^2 + t^2)``. Per coordinate:

* Gaussian noise N(0, sigma^2): posterior mean = MAP = beta y, beta = s0^2 / (s0^2 + sigma^2).
  Annealed MAP at final level sigma_L has the fixed point y (s0^2 + sigma_L^2) / (s0^2 + sigma_L^2 + sigma^2).
* Laplace noise with scale lam (= sigma / sqrt 2): the MAP minimises x^2 / (2 s0^2) + |y - x| / lam.
  Stationarity: x / s0^2 = sign(y - x) / lam if x != y, so x = +-c with c = s0^2 / lam, valid only
  when |y| > c; otherwise the minimiser is the kink x = y. Hence MAP = clip(y, -c, c).
  (Not the soft threshold y - clip(y, -c, c): that is the MAP of a Laplace *prior* with
  Gaussian noise.) With the prior smoothed at sigma_L: c_L = (s0^2 + sigma_L^2) / lam.
* Uniform noise on [-a, a] (a = sqrt 3 sigma): the MAP minimises x^2 / (2 s0^2) subject to
  |y - x| <= a, i.e. the projection of 0 onto [y - a, y + a]: clip(0, y - a, y + a) =
  sign(y) max(|y| - a, 0), the soft threshold of y at a (independent of s0).
"""
from __future__ import annotations

import math

import pytest
import torch

from lib.data import datasets as data
from lib.denoising import denoise
from lib.denoising import nets
from lib import smoothing as noise
from lib.denoising import score
from lib.smoothing import Smooth

S0 = 0.5


@pytest.fixture
def prior():
    return data.GaussianData(200, S0)


def _y(lo=-2.0, hi=2.0, n=200, rows=2):
    return torch.linspace(lo, hi, n).repeat(rows, 1)


def test_tweedie_with_exact_gaussian_score_is_beta_y(prior):
    y = torch.randn(4, 200)
    for sig in (0.12, 0.5, 1.0):
        beta = S0 ** 2 / (S0 ** 2 + sig ** 2)
        torch.testing.assert_close(denoise.tweedie(prior, sig)(y), beta * y)


def test_annealed_map_gaussian_noise_converges_to_beta_y(prior):
    sig = 0.5
    levels = score.geometric_sigmas(1.0, 0.01, 32)
    out = denoise.annealed_map(prior, noise.Gaussian(sig), levels, step_size=2e-5, steps_per_level=300)(_y())
    sl = levels[-1]
    fixed = (S0 ** 2 + sl ** 2) / (S0 ** 2 + sl ** 2 + sig ** 2)
    torch.testing.assert_close(out, fixed * _y(), rtol=0, atol=3e-3)
    beta = S0 ** 2 / (S0 ** 2 + sig ** 2)
    torch.testing.assert_close(out, beta * _y(), rtol=0, atol=4e-3)


def test_annealed_map_laplace_noise_is_a_clip(prior):
    sig = 1.0
    lam = sig / math.sqrt(2)
    levels = score.geometric_sigmas(1.0, 0.01, 32)
    y = _y()
    out = denoise.annealed_map(prior, noise.Laplace(sig), levels, step_size=3e-5, steps_per_level=400)(y)
    c = S0 ** 2 / lam
    expected = y.clamp(-c, c)
    torch.testing.assert_close(out, expected, rtol=0, atol=5e-3)
    # and it is *not* the soft threshold y - clip(y, -c, c)
    assert float((out - (y - y.clamp(-c, c))).abs().max()) > 0.1


def test_annealed_map_uniform_noise_is_a_soft_threshold_inside_the_box(prior):
    sig = 0.5
    a = math.sqrt(3) * sig
    levels = score.geometric_sigmas(1.0, 0.01, 32)
    y = _y()
    out = denoise.annealed_map(prior, noise.Uniform(sig), levels, step_size=2e-5, steps_per_level=300)(y)
    expected = y.sign() * (y.abs() - a).clamp_min(0)
    torch.testing.assert_close(out, expected, rtol=0, atol=3e-3)
    # Lee's settings (T = 1): not converged, but every iterate stays inside the box
    quick = denoise.annealed_map(prior, noise.Uniform(sig), levels)(y)
    assert float((quick - y).abs().max()) <= a + 1e-6


def test_annealed_map_step_size_convention(prior):
    d = denoise.annealed_map(prior, noise.Gaussian(0.5), "geometric")
    assert d.step_size == 2e-5 and d.steps_per_level == 1 and len(d.sigmas) == 32
    assert d.alphas[0] == pytest.approx(0.2)        # alpha * sigma_1^2 / sigma_L^2 = 2e-5 * 1 / 1e-4
    assert d.alphas[-1] == pytest.approx(2e-5)
    assert denoise.annealed_map(prior, noise.Laplace(0.5), "geometric").step_size == 3e-5


def test_annealed_map_one_step_by_hand():
    """One level, one step: x1 = y + alpha (s(y) + grad_x log q(y - x)|_{x=y}) for Laplace."""
    gd = data.GaussianData(6, 1.0)
    y = torch.tensor([[0.3, -0.2, 1.0, -1.5, 0.0, 2.0]])
    lap = noise.Laplace(0.4)
    out = denoise.annealed_map(gd, lap, [0.5], step_size=0.1, steps_per_level=1)(y)
    # at x = y, y - x = 0 and sign(0) = 0: only the prior term moves x
    torch.testing.assert_close(out, y + 0.1 * (-y / (1 + 0.25)))
    x0 = torch.zeros_like(y)
    # from x = 0: grad_x log q(y - x) = sign(y - x) / lam
    two = denoise.AnnealedMAP(gd, lap, [0.5], 0.1, 2)
    x1 = y + 0.1 * (-y / 1.25)
    x2 = x1 + 0.1 * (-x1 / 1.25 + torch.sign(y - x1) / lap.scale)
    torch.testing.assert_close(two(y), x2)
    del x0


def test_walk_jump_gaussian_statistics():
    """Data N(0, s0^2): the walk samples p_sigma' = N(0, s0^2 + sigma'^2) (ULA: variance inflated by
    ~1 + delta / (2 v)), the final jump multiplies by beta' = s0^2 / (s0^2 + sigma'^2)."""
    s0, sp, delta = 0.3, 0.1, 0.005
    gd = data.GaussianData(4000, s0)
    g = torch.Generator().manual_seed(0)
    x = gd.sample(4, g)
    y = x + 0.5 * torch.randn(x.shape, generator=g)
    out = denoise.walk_jump(gd, 0.5, sp, delta, 200, seed=1)(y)
    v = s0 ** 2 + sp ** 2
    v_ula = v / (1 - delta / (2 * v))
    beta_p = s0 ** 2 / v
    assert float(out.var()) == pytest.approx(beta_p ** 2 * v_ula, rel=0.05)
    assert abs(float(out.mean())) < 0.01
    # the walk forgets the start: correlation with the first jump is small after tau >> v / delta
    jump = 0.3 ** 2 / (0.3 ** 2 + 0.25) * y
    corr = float(torch.corrcoef(torch.stack([out.flatten(), jump.flatten()]))[0, 1])
    assert abs(corr) < 0.05
    # reproducible with a seed
    torch.testing.assert_close(denoise.walk_jump(gd, 0.5, sp, delta, 200, seed=1)(y), out)


def test_walk_jump_without_walk_is_two_jumps(prior):
    y = torch.randn(2, 200)
    out = denoise.walk_jump(prior, 0.5, 0.1, 1e-3, tau=0)(y)
    b1 = S0 ** 2 / (S0 ** 2 + 0.25)
    b2 = S0 ** 2 / (S0 ** 2 + 0.01)
    torch.testing.assert_close(out, b2 * b1 * y)


@pytest.mark.parametrize("make", [
    lambda p: denoise.tweedie(p, 0.0),
    lambda p: denoise.tweedie(p, -1.0),
    lambda p: denoise.annealed_map(p, noise.Gaussian(0.5), []),
    lambda p: denoise.annealed_map(p, noise.Gaussian(0.5), [0.5, 0.0]),
    lambda p: denoise.annealed_map(p, noise.Gaussian(0.5), "geometric", step_size=0.0),
    lambda p: denoise.annealed_map(p, noise.Gaussian(0.5), "geometric", step_size=-1e-5),
    lambda p: denoise.annealed_map(p, noise.Gaussian(0.5), "geometric", steps_per_level=0),
    lambda p: denoise.walk_jump(p, 0.5, 0.0),
    lambda p: denoise.walk_jump(p, 0.5, 0.05, delta=0.0),
    lambda p: denoise.walk_jump(p, 0.5, 0.05, tau=-1),
])
def test_bad_arguments_raise_value_error(prior, make):
    with pytest.raises(ValueError):
        make(prior)


def test_bad_types_raise_type_error(prior):
    with pytest.raises(TypeError):
        denoise.annealed_map(prior, "gaussian", "geometric")
    with pytest.raises(TypeError):
        denoise.tweedie(prior, 0.5)(torch.zeros(2, 200, dtype=torch.long))
    with pytest.raises(TypeError):
        denoise.tweedie(42, 0.5)
    with pytest.raises(TypeError):
        denoise.walk_jump(prior, 0.5, tau=2.5)


def test_identity_and_evaluation(prior):
    x = torch.randn(16, 200) * S0
    res = denoise.evaluate_denoiser(denoise.identity(), x, noise.Gaussian(0.5), seed=3)
    assert res["mse"] == pytest.approx(res["mse_noisy"])
    res = denoise.evaluate_denoiser(denoise.tweedie(prior, 0.5), x, noise.Gaussian(0.5), seed=3)
    # Bayes risk per coordinate: s0^2 sigma^2 / (s0^2 + sigma^2)
    assert res["mse"] == pytest.approx(0.25 * 0.25 / 0.5, rel=0.1)
    df = denoise.evaluate_denoisers({"none": denoise.identity(), "tweedie": denoise.tweedie(prior, 0.5)},
                                    x, noise.Gaussian(0.5))
    assert list(df.index) == ["none", "tweedie"] and df.loc["tweedie", "mse"] < df.loc["none", "mse"]


def test_energy_denoisers_flag_autograd_and_work_inside_smooth():
    torch.manual_seed(0)
    model = score.EnergyScore(nets.ScoreMLP((1, 4, 4), hidden=8, depth=1, emb_dim=4, scalar=True), 0.3, 0.3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    nc = score.NoiseConditionalScore(nets.ScoreMLP((1, 4, 4), hidden=8, depth=1, emb_dim=4), 0.3, 0.3).eval()
    assert denoise.tweedie(model, 0.5).requires_grad
    assert not denoise.tweedie(nc, 0.5).requires_grad
    assert denoise.annealed_map(model, noise.Laplace(0.5), score.geometric_sigmas(1, 0.01, 4)).requires_grad
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    xs = torch.rand(2, 1, 4, 4)
    for den in (denoise.tweedie(model, 0.5), denoise.walk_jump(model, 0.5, tau=2, seed=0),
                denoise.annealed_map(nc, noise.Gaussian(0.5), score.geometric_sigmas(1, 0.01, 4))):
        smooth = Smooth(classifier, 3, noise.Gaussian(0.5), denoiser=den)
        preds, radii = smooth.certify_batch(xs, 10, 50, 0.01, batch_size=32, generator=torch.Generator().manual_seed(0))
        assert preds.shape == (2,) and radii.shape == (2,)


def test_mse_training_lowers_the_error():
    x, _ = data.load("mnist", "train", limit=512)
    net = nets.DnCNN(1, depth=3, features=8)
    nz = noise.Gaussian(0.5)
    den = denoise.NetworkDenoiser(net)
    before = denoise.evaluate_denoiser(den, x[:128], nz)["mse"]
    hist = denoise.train_mse(net, x, nz, iters=60, batch_size=32, lr=3e-3, ema=0.9, progress=False)
    after = denoise.evaluate_denoiser(den, x[:128], nz)
    assert after["mse"] < 0.5 * after["mse_noisy"] and after["mse"] < before
    assert len(hist["loss"]) > 0 and hist["iters"] == 60
    with pytest.raises(TypeError):
        denoise.train_mse(net, x, "gaussian", iters=1)


def test_tune_step_size_returns_a_table(prior):
    x = torch.randn(8, 200) * S0
    df = denoise.tune_step_size(prior, noise.Gaussian(0.5), score.geometric_sigmas(1, 0.01, 8), x, [2e-5, 1e-6])
    assert list(df.index) == [2e-5, 1e-6] and set(df.columns) == {"mse", "psnr"}
    with pytest.raises(ValueError):
        denoise.tune_step_size(prior, noise.Gaussian(0.5), "geometric", x, [])


def test_denoisers_count_their_score_evaluations():
    """Work is counted, not timed: rows through the score network per denoiser."""
    from lib.data import GaussianData
    from lib.denoising import denoise as dn
    from lib.smoothing.noise import make_noise

    exact = GaussianData(4, 0.5)
    y = torch.randn(6, 4)
    one = dn.tweedie(exact, 0.5)
    one(y)
    assert one.score_evals == 6
    for levels, steps in ((4, 1), (8, 3)):
        den = dn.annealed_map(exact, make_noise("gaussian", 0.5), [1.0 / (i + 1) for i in range(levels)],
                              step_size=1e-3, steps_per_level=steps)
        den(y)
        den(y[:2])
        assert den.score_evals == 8 * levels * steps
    wj = dn.walk_jump(exact, 0.5, tau=7, seed=0)
    wj(y)
    assert wj.score_evals == 6 * (7 + 2)
