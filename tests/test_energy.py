"""lib.energy: DEEN's estimator x̂(y) = y - σ²∇φ(y) against autograd, finite differences and
the closed-form Bayes estimator of Gaussian data (x̂ = βy, β = σ0²/(σ0² + σ²))."""
from __future__ import annotations

import math

import pytest
import torch

import lib.paths
from lib import Gaussian, Smooth
from lib.denoising import energy
from lib.data.datasets import GaussianData
from lib.models import LinearClassifier


def _model(d=6, sigma=0.5, hidden=(16, 16), seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return energy.EnergyMLP(d, sigma, hidden).to(dtype)


def test_energy_shape_and_gradient_match_finite_differences():
    m = _model()
    y = torch.randn(3, 6, dtype=torch.float64)
    assert m(y).shape == (3,)
    g = m.grad(y)
    eps = 1e-6
    fd = torch.stack([(m(y + eps * e) - m(y - eps * e)) / (2 * eps) for e in torch.eye(6, dtype=torch.float64)], 1)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m.score(y, sigma=0.5), -g)


def test_denoise_is_eq1_and_equals_grad_psi():
    m = _model(sigma=0.7)
    y = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(m.denoise(y), y - 0.49 * m.grad(y))
    # the parametrisation φ = (|y|²/2 - ψ)/σ² makes x̂ the gradient of ψ
    yy = y.clone().requires_grad_(True)
    (grad_psi,) = torch.autograd.grad(m.net(yy).sum(), yy)
    torch.testing.assert_close(m.denoise(y), grad_psi)


def test_image_shaped_inputs_and_bad_inputs():
    m = energy.EnergyMLP(784, 0.3, (8,))
    x = torch.rand(2, 1, 28, 28)
    assert m.denoise(x).shape == x.shape
    with pytest.raises(ValueError, match="784 features"):
        m(torch.rand(2, 10))
    with pytest.raises(ValueError, match="trained for sigma=0.3"):
        m.score(x, sigma=0.6)
    with pytest.raises(ValueError, match="activation"):
        energy.EnergyMLP(784, 0.3, activation="relu")
    with pytest.raises(ValueError, match="sigma"):
        energy.EnergyMLP(784, -1.0)
    with pytest.raises(TypeError, match="EnergyMLP"):
        energy.EmpiricalBayesDenoiser(torch.nn.Linear(2, 2))


def test_denoiser_flags_autograd_and_runs_inside_smooth():
    e = energy.EnergyMLP(784, 0.5, (16,))
    den = e.denoiser()
    assert den.requires_grad is True and den.sigma == 0.5
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        out = den(x)
    assert out.shape == x.shape and not out.requires_grad
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        den(x)
    smooth = Smooth(LinearClassifier((1, 28, 28), 10), 10, Gaussian(0.5), denoiser=den)
    counts = smooth.sample_counts(x, 50, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert counts.shape == (3, 10) and counts.sum(1).tolist() == [50, 50, 50]


def test_deen_learns_the_gaussian_bayes_estimator():
    """X ~ N(0, σ0² I): the Bayes estimator is x̂(y) = βy with β = σ0²/(σ0² + σ²), and its
    per-coordinate MSE is βσ². The trained DEEN must get close to both."""
    dim, sigma0, sigma = 4, 1.0, 0.5
    beta = sigma0 ** 2 / (sigma0 ** 2 + sigma ** 2)
    src = GaussianData(dim, sigma0)
    gen = torch.Generator().manual_seed(0)
    x_train = src.sample(4000, generator=gen).float()
    x_test = src.sample(4000, generator=gen).float()
    cfg = {"sigma": sigma, "in_features": dim, "hidden": [32, 32], "epochs": 8, "batch_size": 128, "lr": 3e-3, "seed": 0}
    model = energy.build_energy(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: a thread pool only adds overhead (10x on a busy CPU)
    try:
        hist = energy.train_deen(model, cfg, data=x_train, test_data=x_test, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["test_mse"] == pytest.approx(beta * sigma ** 2, rel=0.1)
    assert hist["noisy_mse"] == pytest.approx(sigma ** 2, rel=0.1)
    y = sigma0 * math.sqrt(1 + sigma ** 2) * torch.randn(2000, dim, generator=gen)  # typical noisy points
    err = (model.denoise(y) - beta * y).pow(2).mean() / (beta * y).pow(2).mean()
    assert err < 0.02


def test_deen_denoises_mnist_after_brief_training():
    from lib.data import datasets as data
    x = data.load("mnist", "train", limit=1000)[0]
    xt = data.load("mnist", "test", limit=300)[0]
    cfg = energy.energy_config("mnist", 0.5, "smoke", hidden=[128], epochs=4)
    model = energy.build_energy(cfg)
    hist = energy.train_deen(model, cfg, data=x, test_data=xt, progress=False)
    assert hist["noisy_mse"] == pytest.approx(0.25, rel=0.05)
    assert hist["test_mse"] < 0.3 * hist["noisy_mse"]


def test_train_deen_checks_sigma():
    model = energy.EnergyMLP(4, 0.5, (8,))
    with pytest.raises(ValueError, match="sigma"):
        energy.train_deen(model, {"sigma": 0.6, "epochs": 1}, data=torch.randn(10, 4), progress=False)


def test_get_energy_model_caches_by_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lib.paths, "MODELS", tmp_path)
    kw = dict(hidden=[16], epochs=1, train_limit=200, test_limit=50)
    first, hist1 = energy.get_energy_model("mnist", 0.3, "smoke", **kw)
    assert (tmp_path / f"deen-{first.config_hash}.pt").exists()
    second, hist2 = energy.get_energy_model("mnist", 0.3, "smoke", **kw)
    assert "[cache] loaded" in capsys.readouterr().out
    assert hist1 == hist2 and second.sigma == 0.3
    y = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(first.denoise(y), second.denoise(y))
    other, _ = energy.get_energy_model("mnist", 0.6, "smoke", **kw)
    assert other.config_hash != first.config_hash
