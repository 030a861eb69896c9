"""Score models: schedules, the score interface, the energy parameterisation, DSM training
against a closed-form score, Langevin sampling, and the cache round trip."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib.models import cache
from lib.data import datasets as data
from lib.denoising import nets
from lib.denoising import score


# ---------------------------------------------------------------------- schedules
def test_geometric_and_uniform_schedules():
    g = score.geometric_sigmas(1.0, 0.01, 32)
    assert len(g) == 32 and g[0] == pytest.approx(1.0) and g[-1] == pytest.approx(0.01)
    ratios = np.array(g[1:]) / np.array(g[:-1])
    assert np.allclose(ratios, ratios[0])  # geometric
    u = score.uniform_sigmas(1.0, 0.05, 20)
    assert len(u) == 20 and u[-1] == pytest.approx(0.05)
    assert np.allclose(np.diff(u), np.diff(u)[0])  # uniform
    assert score.make_schedule("geometric") == g
    assert score.make_schedule("uniform") == u
    assert score.make_schedule("single", 0.25) == [0.25]


@pytest.mark.parametrize("args", [(1.0, 0.01, 0), (0.01, 1.0, 5), (1.0, -0.1, 5), (1.0, 1.0, 3), (math.nan, 0.1, 3)])
def test_bad_schedules_raise(args):
    with pytest.raises((ValueError, TypeError)):
        score.geometric_sigmas(*args)


def test_make_schedule_errors():
    with pytest.raises(ValueError):
        score.make_schedule("single")
    with pytest.raises(ValueError):
        score.make_schedule("cosine")
    with pytest.raises(ValueError):
        score.make_schedule("single", 0.0)


@pytest.mark.parametrize("bad", [0.0, -0.5, math.inf, torch.tensor([0.1, -0.1]), torch.tensor([0.1, 0.2, 0.3])])
def test_bad_sigma_raises(bad):
    model = score.NoiseConditionalScore(nets.ScoreMLP((4,), hidden=8, depth=1, emb_dim=4), 0.0, 1.0)
    with pytest.raises(ValueError):
        model.score(torch.zeros(2, 4), bad)


def test_sigma_type_error():
    model = score.NoiseConditionalScore(nets.ScoreMLP((4,), hidden=8, depth=1, emb_dim=4), 0.0, 1.0)
    with pytest.raises(TypeError):
        model.score(torch.zeros(2, 4), "0.5")


# ---------------------------------------------------------------------- parameterisations
def _perturb(model, scale=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("arch,kw", [("mlp", dict(hidden=16, depth=1, emb_dim=8)),
                                     ("unet", dict(base=4, mults=(1, 2), emb_dim=8, groups=2))])
@pytest.mark.parametrize("energy", [False, True])
def test_untrained_model_is_the_gaussian_base(arch, kw, energy):
    """Zero-initialised output layers: the score is the Gaussian base -(y - m)/(sigma^2 + s^2)."""
    net = nets.build_net(arch, (1, 8, 8), scalar=energy, **kw)
    model = (score.EnergyScore if energy else score.NoiseConditionalScore)(net, 0.2, 0.3).eval()
    y = torch.rand(3, 1, 8, 8)
    sig = torch.tensor([0.1, 0.5, 1.0])
    expected = -(y - 0.2) / (sig.view(-1, 1, 1, 1) ** 2 + 0.09)
    torch.testing.assert_close(model.score(y, sig), expected, rtol=1e-5, atol=1e-5)


def test_per_example_sigma_matches_scalar_sigma():
    model = _perturb(score.NoiseConditionalScore(nets.ScoreMLP((6,), hidden=16, depth=2, emb_dim=8), 0.1, 0.5)).eval()
    y = torch.randn(3, 6)
    sig = torch.tensor([0.05, 0.3, 2.0])
    batched = model.score(y, sig)
    for i in range(3):
        torch.testing.assert_close(batched[i:i + 1], model.score(y[i:i + 1], float(sig[i])), rtol=1e-5, atol=1e-5)


def test_energy_score_is_minus_gradient_of_energy():
    """Autograd score = -grad phi, checked against central finite differences of phi."""
    torch.manual_seed(0)
    model = _perturb(score.EnergyScore(nets.ScoreMLP((5,), hidden=16, depth=2, emb_dim=8, scalar=True), 0.1, 0.4),
                     scale=0.2).double().eval()
    y = torch.randn(2, 5, dtype=torch.float64)
    s = model.score(y, 0.3)
    h = 1e-6
    fd = torch.zeros_like(y)
    for j in range(5):
        e = torch.zeros_like(y)
        e[:, j] = h
        with torch.no_grad():
            fd[:, j] = (model.energy(y + e, 0.3) - model.energy(y - e, 0.3)) / (2 * h)
    torch.testing.assert_close(s, -fd, rtol=1e-5, atol=1e-6)


def test_energy_score_under_no_grad_and_inference_mode():
    model = _perturb(score.EnergyScore(nets.ScoreMLP((4,), hidden=8, depth=1, emb_dim=4, scalar=True), 0.0, 1.0)).eval()
    assert model.requires_grad
    y = torch.randn(3, 4)
    ref = model.score(y, 0.5)
    with torch.no_grad():
        a = model.score(y, 0.5)
    with torch.inference_mode():
        yi = torch.randn(3, 4).copy_(y)
        b = model.score(yi, torch.full((3,), 0.5))
    torch.testing.assert_close(a, ref)
    torch.testing.assert_close(b, ref)
    assert not a.requires_grad


def test_energy_model_trains_through_the_gradient():
    model = score.EnergyScore(nets.ScoreMLP((4,), hidden=8, depth=1, emb_dim=4, scalar=True), 0.0, 1.0)
    _perturb(model)
    model.train()
    x = torch.randn(16, 4)
    z = torch.randn(16, 4)
    loss = score.dsm_per_example(model, x, torch.full((16,), 0.5), z).mean()
    loss.backward()
    grads = [p.grad for p in model.net.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_closed_form_score_wraps_lib_data():
    gd = data.GaussianData(12, 0.7)
    cf = score.ClosedFormScore(gd)
    y = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(cf.score(y, 0.5), -y / (0.49 + 0.25))
    assert score.as_score(gd)(y, 0.5).shape == y.shape
    with pytest.raises(TypeError):
        score.ClosedFormScore(42)


def test_dsm_loss_equals_relative_tweedie_mse():
    """||sigma s + z||^2 / d == ||tweedie(y) - x||^2 / (d sigma^2) (the identity we report)."""
    gd = data.GaussianData(10, 1.0)
    cf = score.ClosedFormScore(gd)
    g = torch.Generator().manual_seed(0)
    x = gd.sample(50, g)
    z = torch.randn(50, 10, generator=g)
    sig = 0.5
    per = score.dsm_per_example(cf, x, torch.full((50,), sig), z)
    y = x + sig * z
    tw = y + sig ** 2 * cf.score(y, sig)
    torch.testing.assert_close(per, (tw - x).square().mean(1) / sig ** 2)


# ---------------------------------------------------------------------- training
def _mixture():
    return data.GaussianMixture(torch.tensor([1.5, 0.5]), 0.3)


def _train_toy(energy=False, iters=800, sigmas=(0.25, 0.5, 1.0)):
    mix = _mixture()
    model, hist = score.fit_toy_score(mix, list(sigmas), iters=iters, hidden=64, depth=2,
                                      param="energy" if energy else "score", seed=1)
    return mix, model, hist


def _relative_score_error(mix, model, sig, n=4000):
    return score.relative_score_error(model, mix, sig, n=n, seed=7)


def test_dsm_recovers_the_closed_form_mixture_score():
    mix, model, hist = _train_toy()
    assert hist["loss"][-1] < hist["loss"][0]
    for sig in (0.25, 0.5, 1.0):
        assert _relative_score_error(mix, model, sig) < 0.01, sig
    # a level between the training levels is served too (conditioning on log sigma)
    assert _relative_score_error(mix, model, 0.7) < 0.03
    # ... and the untrained Gaussian base alone is far off (the test can fail)
    base = score.NoiseConditionalScore(nets.ScoreMLP((2,), hidden=8, depth=1), 0.0, model.data_std)
    assert _relative_score_error(mix, base, 0.5) > 0.1


def test_energy_dsm_recovers_the_closed_form_mixture_score():
    mix, model, _ = _train_toy(energy=True, iters=500)
    for sig in (0.25, 0.5, 0.7, 1.0):
        assert _relative_score_error(mix, model, sig) < 0.02, sig


def test_train_dsm_bad_inputs():
    model = score.NoiseConditionalScore(nets.ScoreMLP((2,), hidden=8, depth=1, emb_dim=4), 0.0, 1.0)
    x = torch.randn(10, 2)
    with pytest.raises(ValueError):
        score.train_dsm(model, x, [], iters=1)
    with pytest.raises(ValueError):
        score.train_dsm(model, x, [0.5, 0.0], iters=1)
    with pytest.raises(ValueError):
        score.train_dsm(model, x, [0.5], iters=0)
    with pytest.raises(TypeError):
        score.train_dsm(lambda y, s: y, x, [0.5], iters=1)


def test_score_config_errors_and_contents():
    cfg = score.score_config("mnist", "geometric", "smoke")
    assert cfg["sigmas"] == score.geometric_sigmas(1.0, 0.01, 32)
    assert score.score_config("mnist", "single", "smoke", sigma=0.25)["sigmas"] == [0.25]
    with pytest.raises(ValueError):
        score.score_config("mnist", "geometric", "smoke", param="flow")
    with pytest.raises(ValueError):
        score.score_config("mnist", "geometric", "smoke", arch="transformer")
    with pytest.raises(ValueError):
        score.score_config("svhn", "geometric", "smoke")


def test_annealed_langevin_samples_a_gaussian():
    """With the exact score of N(0, s0^2 I), the samples have variance ~ s0^2."""
    gd = data.GaussianData(500, 0.5)
    x = score.annealed_langevin(gd, (500,), score.geometric_sigmas(1.0, 0.05, 10), eps=2e-3,
                                steps_per_level=30, n=8, seed=0, denoise_last=False)
    assert x.shape == (8, 500)
    var = float(x.double().var())
    assert abs(var - (0.25 + 0.05 ** 2)) < 0.03


# ---------------------------------------------------------------------- cache
def test_cache_round_trip_gives_identical_scores(tmp_path):
    config = score.score_config("mnist", "single", "smoke", sigma=0.5, param="energy")

    def train(model, cfg):
        return score.train_dsm(model, torch.rand(64, 1, 28, 28), cfg["sigmas"], iters=5, batch_size=8,
                               progress=False)

    m1, h1 = cache.load_or_train("score-test", config, score.build_score_model, train, device="cpu",
                                 root=tmp_path, verbose=False)
    path = cache.checkpoint_path("score-test", config, tmp_path)
    assert path.exists()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # loads without pickled code
    assert ckpt["config"]["param"] == "energy"
    m2, h2 = cache.load_or_train("score-test", config, score.build_score_model,
                                 lambda *a: pytest.fail("retrained a cached model"), device="cpu",
                                 root=tmp_path, verbose=False)
    y = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(m1.score(y, 0.3), m2.score(y, 0.3), rtol=0, atol=0)
    assert h2["loss"] == h1["loss"]


def test_as_score_adapts_objects_with_a_score_method():
    """A fixed-sigma energy network with ``.score(y, sigma)`` (like lib.denoising.energy.EnergyMLP, an
    nn.Module whose forward is the energy) is wrapped, not called; it is flagged for autograd."""

    class FixedSigmaEnergy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, y):  # the energy, not the score
            return 0.5 * self.w * y.flatten(1).square().sum(1)

        def score(self, y, sigma=None):
            if sigma is not None and float(sigma) != 0.5:
                raise ValueError("trained for sigma = 0.5")
            with torch.enable_grad():
                yy = y.detach().clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self(yy).sum(), yy)
            return -g

    wrapped = score.as_score(FixedSigmaEnergy())
    assert isinstance(wrapped, score.ClosedFormScore) and wrapped.requires_grad
    y = torch.randn(3, 1, 2, 2)
    torch.testing.assert_close(wrapped(y, 0.5), -2.0 * y)
    with pytest.raises(TypeError):
        score.as_score(torch.nn.Linear(2, 2))  # a module without .score is not a score


def test_count_macs_counts_linear_and_conv_layers():
    """The cost of a score evaluation is counted (the same on every machine), not timed."""
    from lib.experiments import denoisers as study

    class Tiny(score.ScoreModel):
        def __init__(self):
            super().__init__()
            self.lin, self.conv = torch.nn.Linear(4, 3), torch.nn.Conv2d(1, 2, 3, padding=1)

        def score(self, y, sigma):
            self.conv(y.view(-1, 1, 2, 2))
            return self.lin(y.flatten(1))

    # Linear: 3 outputs x 4 inputs; Conv: 2 x 2 x 2 outputs x (1 channel x 3 x 3)
    assert study.count_macs(Tiny(), torch.rand(5, 4)) == 12 + 72


def test_choose_architecture_follows_the_stated_rule():
    import pandas as pd

    from lib.experiments import denoisers as study

    table = pd.DataFrame({"mean ratio": [0.30, 0.31, 0.50], "MMAC per image": [6.0, 4.0, 0.3]},
                         index=["U-Net", "MLP + conv", "MLP"])
    assert study.choose_architecture(table, tolerance=0.05) == "MLP + conv"  # within 5 %, fewer MACs
    assert study.choose_architecture(table, tolerance=0.01) == "U-Net"       # only the best is within 1 %
    assert study.choose_architecture(table, tolerance=1.0) == "MLP"
    with pytest.raises(ValueError, match="tolerance"):
        study.choose_architecture(table, tolerance=-0.1)
