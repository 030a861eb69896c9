"""XHAT_ε / SmoothAdv training (lib.models.adversarial): the attack, the loss, the gradients."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.denoising.energy import EnergyMLP, deen_loss
from lib.models.adversarial import (augmentation_nll, draw_noise, pgd_attack_smoothed, robust_loss,
                                    smoothed_log_probs, smoothed_nll, train_smoothed, xhat_config)

SIGMA = 0.5


def _toy(n=64, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.randn(3, d, generator=g) * 1.5
    return centres[y] + 0.3 * torch.randn(n, d, generator=g), y


def _model(d=6, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, k))


_ENERGY = {}


def _energy(d=6, seed=1):
    """A small DEEN fitted for 150 steps on the toy data (an untrained φ maps every y to about
    the same x̂, and nothing could be attacked through it)."""
    if (d, seed) not in _ENERGY:
        torch.manual_seed(seed)
        energy = EnergyMLP(d, SIGMA, hidden=(32,))
        opt = torch.optim.Adam(energy.parameters(), lr=1e-2)
        x, _ = _toy(n=512, d=d, seed=seed)
        g = torch.Generator().manual_seed(seed)
        for _ in range(150):
            loss = deen_loss(energy, x, SIGMA * torch.randn(x.shape, generator=g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        energy.zero_grad(set_to_none=True)
        _ENERGY[(d, seed)] = energy.eval()
    return _ENERGY[(d, seed)]


@pytest.mark.parametrize("with_denoiser", [False, True])
def test_pgd_stays_in_the_ball_and_increases_the_loss(with_denoiser):
    x, y = _toy()
    model, den = _model(), (_energy() if with_denoiser else None)
    noise = draw_noise(x, SIGMA, 4, torch.Generator().manual_seed(2))
    eps = 0.7
    x_adv = pgd_attack_smoothed(model, x, y, SIGMA, eps, steps=8, m=4, denoiser=den, noise=noise)
    assert (x_adv - x).flatten(1).norm(dim=1).max() <= eps * (1 + 1e-5)
    before = smoothed_nll(model, x, y, noise, den)
    after = smoothed_nll(model, x_adv, y, noise, den)
    assert torch.all(after >= before - 1e-6)  # the best iterate is kept
    assert after.mean() > before.mean() + 0.05  # and the attack does work
    # a box constraint keeps the result in the box and in the ball
    x_box = pgd_attack_smoothed(model, x.clamp(0, 1), y, SIGMA, eps, 8, 4, den, noise=noise, clip=(0, 1))
    assert x_box.min() >= 0 and x_box.max() <= 1
    assert (x_box - x.clamp(0, 1)).flatten(1).norm(dim=1).max() <= eps * (1 + 1e-5)


def test_eps_zero_is_the_empirical_bayes_cross_entropy():
    x, y = _toy()
    model, den = _model(), _energy()
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    loss = robust_loss(model, x, y, SIGMA, eps=0.0, steps=16, m=1, denoiser=den, generator=gen_a)
    eps = draw_noise(x, SIGMA, 1, gen_b)[:, 0]
    plain = F.cross_entropy(model(den.denoise(x + eps)), y)  # CE of H(x̂(x + ε)), one draw (m = 1)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5, abs=1e-6)
    # and the m-sample soft classifier is the mean of the softmaxes (eq. 14)
    noise = draw_noise(x, SIGMA, 3, torch.Generator().manual_seed(7))
    probs = torch.stack([F.softmax(model(den.denoise(x + noise[:, j])), 1) for j in range(3)]).mean(0)
    assert torch.allclose(smoothed_log_probs(model, x, noise, den).exp(), probs, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_gradients_flow_to_theta_not_to_phi(eps):
    x, y = _toy()
    model, den = _model(), _energy()
    loss = robust_loss(model, x, y, SIGMA, eps, steps=3, m=2, denoiser=den, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(p.grad is None for p in den.parameters())
    assert all(p.requires_grad for p in den.parameters())  # unfrozen again afterwards


def test_attack_uses_the_gradient_of_phi():
    """x̂ is differentiated through: the attack on Π with x̂ differs from the one without."""
    x, y = _toy()
    model, den = _model(), _energy()
    noise = draw_noise(x, SIGMA, 2, torch.Generator().manual_seed(3))
    a = pgd_attack_smoothed(model, x, y, SIGMA, 0.5, 4, 2, den, noise=noise)
    b = pgd_attack_smoothed(model, x, y, SIGMA, 0.5, 4, 2, None, noise=noise)
    assert not torch.allclose(a, b)


def test_trainer_learns_a_robust_toy_classifier_reproducibly():
    x, y = _toy(n=256)
    runs = []
    for _ in range(2):
        model = _model()
        hist = train_smoothed(model, x, y, SIGMA, eps=0.5, steps=3, m=2, iters=80, batch_size=32, lr=1e-2,
                              seed=3, progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert hist["iters"] == 80 and hist["pgd_steps"] == 3 and hist["m"] == 2
    assert hist["loss"][-1] < hist["loss"][0]
    assert torch.equal(runs[0], runs[1])
    noise = draw_noise(x, SIGMA, 8, torch.Generator().manual_seed(9))
    x_adv = pgd_attack_smoothed(model, x, y, SIGMA, 0.5, 8, 8, noise=noise)
    assert (smoothed_log_probs(model, x_adv, noise).argmax(1) == y).float().mean() > 0.8


def test_bad_input_is_rejected():
    x, y = _toy()
    model = _model()
    with pytest.raises(ValueError, match="sigma"):
        pgd_attack_smoothed(model, x, y, 0.0, 0.5, 4)
    with pytest.raises(ValueError, match="eps"):
        pgd_attack_smoothed(model, x, y, SIGMA, -1.0, 4)
    with pytest.raises(ValueError, match="y must"):
        pgd_attack_smoothed(model, x, y[:3], SIGMA, 0.5, 4)
    with pytest.raises(ValueError, match="sigma=0.5"):
        train_smoothed(model, x, y, 0.3, 0.5, 2, denoiser=_energy(), iters=1, progress=False)
    with pytest.raises(ValueError, match="method"):
        xhat_config("mnist", 0.5, "nope", "smoke")


def test_config_xhat0_is_xhat_with_eps_zero():
    a = xhat_config("mnist", 0.3, "xhat", "smoke", eps=0.0)
    b = xhat_config("mnist", 0.3, "xhat", "smoke", eps=1.0)
    c = xhat_config("mnist", 0.3, "smoothadv", "smoke", eps=1.0)
    assert {k for k in a if a[k] != b[k]} == {"eps"}
    assert c["deen"] is None and a["deen"]["sigma"] == 0.3
    assert math.isclose(b["eps"], c["eps"]) and b["pgd_steps"] == c["pgd_steps"] and b["lr"] == c["lr"]


def test_walk_jump_score_dispatches_by_sigma_and_previous_rows_need_logs(tmp_path, monkeypatch):
    from lib import paths
    from lib.experiments.learned_empirical_bayes import previous_rows
    from lib.methods import TwoLevelEnergyScore

    hi, lo = EnergyMLP(6, 0.5, hidden=(8,)), EnergyMLP(6, 0.05, hidden=(8,))
    score = TwoLevelEnergyScore({0.5: hi, 0.05: lo})
    y = torch.randn(4, 6)
    assert torch.allclose(score(y, 0.05), lo.score(y)) and torch.allclose(score(y, 0.5), hi.score(y))
    with pytest.raises(ValueError, match="no energy model for sigma=0.3"):
        score(y, 0.3)
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    assert previous_rows(profile="quick") == {}  # notebook 04 has not run here
    (tmp_path / "tables").mkdir()
    spec = {"rows": {"g[h], best over σ": ["logs/04/a.tsv"]}, "settings": {"profile": "quick"}}
    (tmp_path / "tables" / "04_table1.json").write_text(__import__("json").dumps(spec))
    assert previous_rows(profile="quick") == {}  # its log is missing
    (tmp_path / "logs" / "04").mkdir(parents=True)
    (tmp_path / "logs" / "04" / "a.tsv").write_text("")
    assert previous_rows(profile="quick") == {"g[h] (notebook 04, linear h)": [str(tmp_path / "logs/04/a.tsv")]}
    assert previous_rows(profile="smoke") == {}  # another profile's rows are not mixed in


# ---------------------------------------------------------------------- Lecture 14 §3: the three objectives
def test_augmentation_is_eq8_and_equals_the_smoothed_objective_only_at_m1():
    x, y = _toy()
    model = _model()
    noise = draw_noise(x, SIGMA, 3, torch.Generator().manual_seed(4))
    per_draw = torch.stack([F.cross_entropy(model(x + noise[:, j]), y, reduction="none") for j in range(3)], 1)
    aug = augmentation_nll(model, x, y, noise)
    assert torch.allclose(aug, per_draw.mean(1), atol=1e-6)  # eq. 8: the mean of the logs
    smooth = smoothed_nll(model, x, y, noise)  # eq. 9, plug-in: the log of the mean
    assert torch.all(aug >= smooth - 1e-6) and (aug - smooth).mean() > 1e-3  # Jensen, strict here
    one = noise[:, :1]
    assert torch.allclose(augmentation_nll(model, x, y, one), smoothed_nll(model, x, y, one), atol=1e-6)
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    assert robust_loss(model, x, y, SIGMA, 0.0, 4, 3, generator=g1, objective="augment").item() == pytest.approx(
        augmentation_nll(model, x, y, draw_noise(x, SIGMA, 3, g2)).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="no inner maximum"):
        robust_loss(model, x, y, SIGMA, 0.5, 4, objective="augment")
    with pytest.raises(ValueError, match="objective"):
        train_smoothed(model, x, y, SIGMA, 0.0, 2, objective="nope", iters=1, progress=False)


def test_augmentation_trainer_is_the_smoothed_trainer_at_m1_and_differs_at_m2():
    x, y = _toy(n=128)
    weights = {}
    for objective, m in [("augment", 1), ("smoothed", 1), ("augment", 2), ("smoothed", 2)]:
        model = _model()
        hist = train_smoothed(model, x, y, SIGMA, 0.0, 3, m=m, iters=20, batch_size=32, lr=1e-2, seed=1,
                              progress=False, objective=objective)
        assert hist["objective"] == objective and hist["iters"] == 20
        weights[(objective, m)] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(weights[("augment", 1)], weights[("smoothed", 1)])  # same loss, same draws
    assert not torch.allclose(weights[("augment", 2)], weights[("smoothed", 2)])


def test_lecture_configs_differ_only_in_method_and_eps():
    aug = xhat_config("mnist", 0.3, "augment", "smoke", m=2)
    obj = xhat_config("mnist", 0.3, "smoothadv", "smoke", eps=0.0, m=2)
    adv = xhat_config("mnist", 0.3, "smoothadv", "smoke", m=2)
    assert aug["eps"] == 0.0 and aug["deen"] is None and "lecture_m" not in aug
    assert {k for k in aug if aug[k] != obj[k]} == {"method"}
    assert {k for k in obj if obj[k] != adv[k]} == {"eps"}
    with pytest.raises(ValueError, match="no inner maximum"):
        xhat_config("mnist", 0.3, "augment", "smoke", eps=1.0)


# ---------------------------------------------------------------------- walk-jump: resumed == uninterrupted
def _walk_jump_smooth(seed=0):
    from lib.denoising.denoise import WalkJump
    from lib.smoothing import Gaussian, Smooth

    torch.manual_seed(0)
    clf = nn.Linear(4, 3)
    score = lambda y, s: -y / (1.0 + float(s) ** 2)  # noqa: E731  exact score of N(0, I) smoothed at s
    wj = WalkJump(score, 0.5, sigma_prime=0.3, delta=0.2, tau=3, seed=seed)
    return Smooth(clf, 3, Gaussian(0.5), denoiser=wj), wj


@pytest.mark.parametrize("block_seeded", [True, False])
def test_walk_jump_log_resumes_identically_only_with_the_block_generator(tmp_path, block_seeded):
    """With ``walk_jump_procedure`` the walk draws from each block's generator, so a log cut after
    its first block and resumed by a fresh process (new WalkJump) equals the uninterrupted log;
    with the walk's own generator (the old behaviour) it does not: the check can fail."""
    import pandas as pd

    from lib.experiments.learned_empirical_bayes import walk_jump_procedure
    from lib.smoothing import certify_dataset

    xs = 2.0 * torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    cols = ["idx", "label", "predict", "radius", "correct"]

    def run(path):
        smooth, wj = _walk_jump_smooth()
        proc = walk_jump_procedure(smooth) if block_seeded else None
        out = certify_dataset(smooth, xs, labels, 8, 64, 0.05, path, chunk=2, seed=3, progress=False, certify=proc)
        return out[cols], wj

    full, wj = run(tmp_path / "full.tsv")
    assert wj.score_evals > 0 and wj._shared is None  # the walk ran; the block generator is released
    cut = tmp_path / "cut.tsv"
    cut.write_text("".join((tmp_path / "full.tsv").read_text().splitlines(keepends=True)[:3]))  # header + block 0
    cut.with_name("cut.tsv.json").write_text((tmp_path / "full.tsv.json").read_text())
    resumed, _ = run(cut)
    assert len(resumed) == len(full) == 8 and full["predict"].ge(0).any()
    same = resumed.reset_index(drop=True).equals(full.reset_index(drop=True))
    assert same == block_seeded, pd.concat({"full": full, "resumed": resumed}, axis=1)
