"""Rejector training (Sheikholeslami et al. eq. 7-9) and the stability objective (Salman et al.):
targets, frozen models, caching."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.denoising.stability import frozen, stability_loss, train_stability
from lib.models.cache import load_or_train
from lib.models.rejector import (Rejector, RejectorNet, reject_decisions, rejection_loss, rejection_targets,
                                 rejector_config, train_rejector)
from lib.smoothing.noise import Gaussian

SHAPE = (1, 8, 8)
K = 3


class Threshold(nn.Module):
    """A classifier whose class is the bucket of the mean pixel: [B, 1, 8, 8] -> logits [B, 3]."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([-20.0, 0.0, 20.0]))
        self.b = nn.Parameter(torch.tensor([5.0, 0.0, -15.0]))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] * self.w + self.b


class Shrink(nn.Module):
    """A trainable toy denoiser y -> a * y."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.9))

    def forward(self, y):
        return self.a * y


SETTINGS = {"net": {"width": 2, "hidden": 8, "use_classifier": True}, "draws": 3, "epochs": 3, "adam_epochs": 1,
            "adam_lr": 1e-2, "sgd_lr": 1e-2, "momentum": 0.9, "sgd_step": 1, "batch_size": 16, "n_train": None,
            "head": "clean"}


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    level = torch.tensor([0.1, 0.5, 0.9])[torch.randint(3, (n,), generator=g)]
    return level[:, None, None, None].expand(n, *SHAPE).clone()


def test_targets_follow_eq_8():
    clf, noise = Threshold(), Gaussian(0.5)
    x = _data(10)
    y, clean, noisy, b, logp = rejection_targets(clf, None, x, noise, draws=4, generator=torch.Generator().manual_seed(1))
    assert y.shape == (40, *SHAPE) and clean.shape == noisy.shape == b.shape == (40,) and logp.shape == (40, K)
    # the clean label of image i is repeated for its T draws; b = 1 exactly where f(y) != f(x_i)
    assert torch.equal(clean, clf(x).argmax(1).repeat_interleave(4))
    assert torch.equal(noisy, clf(y).argmax(1))
    assert torch.equal(b, (clf(y).argmax(1) != clean).float())
    assert 0 < b.sum() < len(b)  # sigma = 0.5 flips some draws but not all
    # with a denoiser, targets are computed on D(x + eps)
    y2, *_ = rejection_targets(clf, lambda z: 0 * z + 0.5, x, noise, 2)
    assert torch.all(y2 == 0.5)


def test_loss_uses_the_selected_head():
    net = RejectorNet(SHAPE, K, width=2, hidden=8, use_classifier=False)
    y = torch.rand(6, *SHAPE)
    clean, noisy = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 1, 0, 0, 2, 2])
    b = torch.tensor([1.0, 0, 1, 0, 1, 0])
    logits = net(y)
    for head, k in (("clean", clean), ("noisy", noisy)):
        want = nn.functional.binary_cross_entropy_with_logits(logits[torch.arange(6), k], b)
        assert rejection_loss(net, y, clean, noisy, b, None, head).item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match="head"):
        rejection_loss(net, y, clean, noisy, b, None, "other")
    assert torch.equal(reject_decisions(torch.tensor([[1.0, -1.0], [-2.0, 3.0]]), torch.tensor([0, 0])),
                       torch.tensor([True, False]))


def test_frozen_classifier_and_denoiser_get_no_gradient_and_do_not_change():
    clf, den = Threshold(), Shrink()
    before = [p.detach().clone() for p in [*clf.parameters(), *den.parameters()]]
    net = RejectorNet(SHAPE, K, width=2, hidden=8)
    w0 = [p.detach().clone() for p in net.parameters()]
    cfg = rejector_config("toy", 0.5, {"c": 1}, {"d": 1}, SETTINGS)
    hist = train_rejector(net, clf, den, _data(), Gaussian(0.5), cfg, progress=False)
    for p, b in zip([*clf.parameters(), *den.parameters()], before):
        assert p.grad is None and torch.equal(p.detach(), b)
    assert any(not torch.equal(p.detach(), w) for p, w in zip(net.parameters(), w0))  # the rejector did learn
    assert hist["epochs"] == 3 and hist["samples"] == 64 * 3  # N images x T fixed draws
    assert 0.0 < hist["reject_rate"] < 1.0
    assert [p["optimizer"] for p in hist["phases"]] == ["adam", "sgd"]
    assert [p["steps"] for p in hist["phases"]] == [12, 24]  # 64 images x 3 draws / 16 per step = 12 per epoch


def test_stability_trains_only_the_denoiser():
    clf, den = Threshold(), Shrink()
    x = _data()
    stability_loss(den, clf, x, Gaussian(0.25), torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is not None for p in clf.parameters())  # without frozen() the classifier would learn
    clf.zero_grad(set_to_none=True)
    den.zero_grad(set_to_none=True)
    with frozen(clf):
        l2 = stability_loss(den, clf, x, Gaussian(0.25), torch.Generator().manual_seed(0))
        l2.backward()
    assert den.a.grad is not None and all(p.grad is None for p in clf.parameters())
    assert all(p.requires_grad for p in clf.parameters())  # restored after the block
    den.a.grad = None
    c0 = [p.detach().clone() for p in clf.parameters()]
    hist = train_stability(den, clf, x, Gaussian(0.25), iters=20, batch_size=16, lr=1e-2, ema=0.0, progress=False)
    assert all(p.grad is None for p in clf.parameters())
    assert all(torch.equal(p.detach(), c) for p, c in zip(clf.parameters(), c0))
    assert hist["iters"] == 20 and hist["epochs"] == pytest.approx(20 * 16 / 64)


def test_rejector_wrapper_shapes_and_errors():
    clf = Threshold()
    net = RejectorNet(SHAPE, K, width=2, hidden=8)
    rej = Rejector(net, clf)
    out = rej(torch.rand(5, *SHAPE))
    assert out.shape == (5, K) and not out.requires_grad
    with pytest.raises(ValueError, match="classifier"):
        Rejector(RejectorNet(SHAPE, K, use_classifier=True))
    with pytest.raises(ValueError, match="context"):
        net(torch.rand(2, *SHAPE))
    with pytest.raises(ValueError, match="adam_epochs"):
        rejector_config("toy", 0.5, {}, None, {**SETTINGS, "adam_epochs": 5})
    with pytest.raises(ValueError, match="sigma"):
        rejector_config("toy", 0.0, {}, None, SETTINGS)
    with pytest.raises(ValueError, match="head"):
        rejector_config("toy", 0.5, {}, None, {**SETTINGS, "head": "both"})


def test_rejector_is_cached_by_config(tmp_path):
    clf, x, calls = Threshold(), _data(32), []

    def train(model, cfg):
        calls.append(cfg)
        return train_rejector(model, clf, None, x, Gaussian(cfg["sigma"]), cfg, progress=False)

    def build(cfg):
        return RejectorNet(SHAPE, K, **cfg["net"])

    cfg = rejector_config("toy", 0.5, {"c": 1}, None, SETTINGS)
    a, ha = load_or_train("rejector-toy", cfg, build, train, root=tmp_path, verbose=False)
    b, hb = load_or_train("rejector-toy", cfg, build, train, root=tmp_path, verbose=False)
    assert len(calls) == 1 and ha["samples"] == hb["samples"]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    # another frozen classifier (or T, or sigma) is another rejector
    for other in (rejector_config("toy", 0.5, {"c": 2}, None, SETTINGS),
                  rejector_config("toy", 0.5, {"c": 1}, None, {**SETTINGS, "draws": 1}),
                  rejector_config("toy", 0.25, {"c": 1}, None, SETTINGS)):
        load_or_train("rejector-toy", other, build, train, root=tmp_path, verbose=False)
    assert len(calls) == 4


def test_stability_config_errors_and_keys():
    from lib.denoising.stability import stability_config

    s = {"iters": 5, "scratch_iters": 50, "batch_size": 8, "lr": 1e-3, "ema": 0.9, "n_train": 100}
    mse = {"net": {"depth": 3, "features": 8}}
    ft = stability_config("mnist", 0.5, "mse", {"c": 1}, mse, s)
    scratch = stability_config("mnist", 0.5, "scratch", {"c": 1}, mse, s)
    assert ft["iters"] == 5 and scratch["iters"] == 50 and scratch["mse"] is None and ft["mse"] == mse
    assert stability_config("mnist", 0.5, "mse", {"c": 1}, mse, s, access="query") != ft
    with pytest.raises(ValueError, match="init"):
        stability_config("mnist", 0.5, "adversarial", {}, mse, s)
    with pytest.raises(ValueError, match="access"):
        stability_config("mnist", 0.5, "mse", {}, mse, s, access="white")
    with pytest.raises(ValueError, match="MSE denoiser"):
        stability_config("mnist", 0.5, "mse", {}, None, s)
    with pytest.raises(ValueError, match="sigma"):
        stability_config("mnist", -1.0, "mse", {}, mse, s)
