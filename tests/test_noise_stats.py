"""lib.noise and lib.stats against closed forms and independent computations."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import Gaussian, Laplace, Uniform, make_noise
from lib.smoothing import binomial_pvalue, lower_confidence_bound, proportion_interval

FAMILIES = [Gaussian, Laplace, Uniform]


@pytest.mark.parametrize("cls", FAMILIES)
def test_sample_moments_and_std(cls):
    g = torch.Generator().manual_seed(0)
    u = cls(0.7).sample((200_000,), generator=g)
    assert abs(u.mean()) < 0.01
    assert abs(u.std() - 0.7) < 0.01  # sigma is the per-coordinate standard deviation
    # distribution shape: compare with scipy's cdf by a Kolmogorov-Smirnov test
    ref = {Gaussian: st.norm(scale=0.7), Laplace: st.laplace(scale=0.7 / math.sqrt(2)),
           Uniform: st.uniform(loc=-math.sqrt(3) * 0.7, scale=2 * math.sqrt(3) * 0.7)}[cls]
    assert st.kstest(u[:20000].numpy(), ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("cls", FAMILIES)
def test_sample_reproducible_and_shaped(cls):
    a = cls(0.3).sample((4, 1, 5, 5), generator=torch.Generator().manual_seed(3))
    b = cls(0.3).sample((4, 1, 5, 5), generator=torch.Generator().manual_seed(3))
    assert a.shape == (4, 1, 5, 5) and a.dtype == torch.float32 and torch.equal(a, b)


def test_radius_closed_forms():
    p = np.array([0.3, 0.5, 0.6, 0.9, 0.999])
    s = 0.5
    np.testing.assert_allclose(Gaussian(s).radius(p), np.where(p > 0.5, s * st.norm.ppf(p), 0.0))
    lam = s / math.sqrt(2)
    np.testing.assert_allclose(Laplace(s).radius(p), np.where(p > 0.5, -lam * np.log(2 * (1 - p)), 0.0))
    np.testing.assert_allclose(Uniform(s).radius(p), np.where(p > 0.5, 2 * math.sqrt(3) * s * (p - 0.5), 0.0))
    assert isinstance(Gaussian(s).radius(0.9), float)
    t = Gaussian(s).radius(torch.tensor([0.9, 0.4]))
    assert isinstance(t, torch.Tensor) and t[1] == 0


@pytest.mark.parametrize("cls", FAMILIES)
def test_radius_is_tight_for_axis_aligned_halfspace(cls):
    """For h(x) = 1[x_1 < m], P(h(u) = 1) = F(m) and the radius at that p equals the margin m."""
    noise = cls(0.4)
    ref = {Gaussian: st.norm(scale=0.4), Laplace: st.laplace(scale=0.4 / math.sqrt(2)),
           Uniform: st.uniform(loc=-math.sqrt(3) * 0.4, scale=2 * math.sqrt(3) * 0.4)}[cls]
    margins = np.array([0.05, 0.2, 0.5])
    if cls is Uniform:
        margins = margins[margins < math.sqrt(3) * 0.4]
    np.testing.assert_allclose(noise.radius(ref.cdf(margins)), margins, rtol=1e-9)


@pytest.mark.parametrize("cls", [Gaussian, Laplace])
def test_grad_log_density_matches_autograd(cls):
    noise = cls(0.8)
    u = (torch.rand(5, 7, dtype=torch.float64) - 0.5) * 2.0  # inside the uniform box
    u.requires_grad_(True)
    (grad,) = torch.autograd.grad(noise.log_density(u).sum(), u)
    torch.testing.assert_close(noise.grad_log_density(u.detach()), grad)


def test_uniform_grad_log_density_is_zero_inside_the_box():
    u = (torch.rand(5, 7) - 0.5) * 2.0
    assert torch.count_nonzero(Uniform(0.8).grad_log_density(u)) == 0
    assert torch.isinf(Uniform(0.1).log_density(torch.ones(1, 3))).all()


def test_log_density_normalised_1d():
    from scipy.integrate import quad
    for cls in FAMILIES:
        noise = cls(0.6)
        f = lambda t: math.exp(float(noise.log_density(torch.tensor([[t]], dtype=torch.float64))))
        lim = math.sqrt(3) * 0.6 if cls is Uniform else 12.0
        assert abs(quad(f, -lim, lim, points=[0.0])[0] - 1) < 1e-6


def test_uniform_projection():
    y = torch.zeros(3)
    x = torch.tensor([-5.0, 0.1, 5.0])
    a = math.sqrt(3) * 0.5
    torch.testing.assert_close(Uniform(0.5).project(x, y), torch.tensor([-a, 0.1, a]))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_sigma(bad):
    for cls in FAMILIES:
        with pytest.raises(ValueError, match="sigma"):
            cls(bad)


def test_make_noise():
    assert make_noise("Laplace", 0.25) == Laplace(0.25)
    with pytest.raises(ValueError, match="noise"):
        make_noise("cauchy", 1.0)


def test_lcb_is_beta_quantile():
    n, alpha = 1000, 0.001
    k = np.array([0, 1, 500, 999, 1000])
    expected = np.where(k > 0, st.beta.ppf(alpha, k, n - k + 1), 0.0)
    np.testing.assert_allclose(lower_confidence_bound(k, n, alpha), expected, rtol=1e-10, atol=1e-12)
    assert isinstance(lower_confidence_bound(10, 20, 0.05), float)
    np.testing.assert_allclose(lower_confidence_bound(torch.tensor([10, 20]), 20, 0.05),
                               lower_confidence_bound(np.array([10, 20]), 20, 0.05))


def test_lcb_coverage_by_simulation():
    """P(LCB > p) <= alpha, checked by simulation at several p."""
    rng = np.random.default_rng(0)
    alpha, n = 0.1, 50
    for p in (0.3, 0.7, 0.95):
        k = rng.binomial(n, p, size=20000)
        rate = np.mean(lower_confidence_bound(k, n, alpha) > p)
        assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 20000)


def test_two_sided_interval_and_pvalue():
    lo, hi = proportion_interval(30, 100, 0.05)
    assert lo == pytest.approx(st.beta.ppf(0.025, 30, 71)) and hi == pytest.approx(st.beta.ppf(0.975, 31, 70))
    assert binomial_pvalue(50, 100) == pytest.approx(1.0)
    assert binomial_pvalue(90, 100) < 1e-10


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        lower_confidence_bound(3, 10, alpha)


def test_bad_counts():
    with pytest.raises(ValueError, match="k"):
        lower_confidence_bound(11, 10, 0.1)
    with pytest.raises(ValueError, match="n"):
        lower_confidence_bound(0, 0, 0.1)
