"""The CPU noise sampler of lib.smoothing.noise: exact marginals, independent parts, reproducibility.

A large CPU draw is cut into parts of ``PART`` floats, each from its own twister stream seeded
from the caller's generator (see the module docstring). These tests check that every family's
draws still have the law of the table (moments and a Kolmogorov-Smirnov test against scipy's
cdf, on the whole draw and on single parts), that parts are not copies of or correlated with
one another, and that the noise is a function of the generator's state alone: the same for
1 and 2 threads, for a fresh generator seeded alike (a resumed block), and for torch's global
RNG after ``torch.manual_seed``.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import Gaussian, Laplace, Uniform
from lib.smoothing._sampler import PART, _Streams

FAMILIES = [Gaussian, Laplace, Uniform]
SIGMA = 0.7
PARTS = 5


def _ref(cls, sigma=SIGMA):
    return {Gaussian: st.norm(scale=sigma), Laplace: st.laplace(scale=sigma / math.sqrt(2)),
            Uniform: st.uniform(loc=-math.sqrt(3) * sigma, scale=2 * math.sqrt(3) * sigma)}[cls]


def _draw(cls, seed=0, shape=(PARTS, PART), dtype=torch.float32):
    return cls(SIGMA).sample(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_streams_layout_is_recognised():
    # if torch changes its generator state layout the sampler falls back to one stream;
    # this test says so instead of silently losing the speed
    assert _Streams.available()


@pytest.mark.parametrize("cls", FAMILIES)
def test_moments_and_ks_over_parts(cls):
    u = _draw(cls).double()
    flat = u.flatten().numpy()
    n = flat.size
    ref = _ref(cls)
    # mean and variance within 5 standard errors of the exact values
    assert abs(flat.mean()) < 5 * SIGMA / math.sqrt(n)
    var_se = SIGMA**2 * math.sqrt((ref.moment(4) / SIGMA**4 - 1) / n)
    assert abs(flat.var() - SIGMA**2) < 5 * var_se
    assert st.kstest(flat, ref.cdf).pvalue > 1e-3
    for i in (0, PARTS - 1):  # every part on its own has the law too
        assert st.kstest(u[i].numpy(), ref.cdf).pvalue > 1e-3, i


@pytest.mark.parametrize("cls", FAMILIES)
def test_parts_are_independent(cls):
    u = _draw(cls, seed=1)
    assert len({float(u[i, :8].sum()) for i in range(PARTS)}) == PARTS  # no part repeats another
    c = np.corrcoef(u.numpy())
    off = c[~np.eye(PARTS, dtype=bool)]
    assert np.all(np.abs(off) < 5 / math.sqrt(PART)), off
    # lag-1 correlation inside the draw, across part boundaries included
    flat = u.flatten().double()
    r = float(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1])
    assert abs(r) < 5 / math.sqrt(flat.numel())


@pytest.mark.parametrize("cls", FAMILIES)
def test_same_noise_for_any_thread_count(cls):
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = _draw(cls, seed=2)
        torch.set_num_threads(2)
        b = _draw(cls, seed=2)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b)


@pytest.mark.parametrize("cls", FAMILIES)
def test_generator_state_alone_fixes_the_noise(cls):
    noise = cls(SIGMA)
    g = torch.Generator().manual_seed(3)
    first = [noise.sample((3, PART), generator=g) for _ in range(3)]
    assert not torch.equal(first[0], first[1])  # consecutive draws are fresh
    g = torch.Generator().manual_seed(3)  # a resumed block: a new generator seeded alike
    again = [noise.sample((3, PART), generator=g) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    torch.manual_seed(5)  # generator=None: torch's global RNG
    a = noise.sample((2, PART))
    torch.manual_seed(5)
    assert torch.equal(a, noise.sample((2, PART)))


@pytest.mark.parametrize("cls", FAMILIES)
def test_small_draws_use_the_generator_directly(cls):
    # below two parts nothing changes: one stream, the generator's own draws
    noise = cls(SIGMA)
    a = noise.sample((7, 100), generator=torch.Generator().manual_seed(4))
    b = torch.empty(700)
    noise._fill(b, torch.Generator().manual_seed(4))
    assert torch.equal(a.flatten(), b)


@pytest.mark.parametrize("cls", FAMILIES)
def test_float64_and_odd_sizes(cls):
    u = _draw(cls, seed=6, shape=(2 * PART + 17,), dtype=torch.float64)
    assert u.dtype == torch.float64 and u.shape == (2 * PART + 17,)
    assert st.kstest(u.numpy(), _ref(cls).cdf).pvalue > 1e-3
    assert torch.isfinite(u).all()


@pytest.mark.parametrize("cls", FAMILIES)
def test_draws_inside_inference_mode(cls):
    # Smooth.sample_counts draws under torch.inference_mode, which is thread-local: the worker
    # threads must fill the (inference) tensor in the same mode
    with torch.inference_mode():
        a = _draw(cls, seed=7)
    assert torch.equal(a, _draw(cls, seed=7))


def _linear_problem(k=4, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=g) / math.sqrt(d))
        lin.bias.copy_(0.1 * torch.randn(k, generator=g))
    x = 0.3 * torch.randn(1, d, generator=g)
    return lin, x


def test_logit_gaussian_has_the_covariance_of_w_u():
    from lib.smoothing.noise import LogitGaussian

    lin, _ = _linear_problem()
    sigma, n = 0.7, 200_000
    u = LogitGaussian(sigma, lin.weight).sample((n, 4), generator=torch.Generator().manual_seed(0)).double()
    target = sigma**2 * (lin.weight @ lin.weight.T).double().detach()
    cov = torch.cov(u.T)
    # each entry within 5 standard errors: var(u_i u_j) = S_ii S_jj + S_ij^2 for a centred Gaussian
    se = torch.sqrt((torch.outer(target.diag(), target.diag()) + target**2) / n)
    assert torch.all((cov - target).abs() < 5 * se), (cov, target)
    assert u.mean(0).abs().max() < 5 * math.sqrt(float(target.diag().max()) / n)


def test_logit_space_votes_have_the_input_space_law():
    """Votes argmax(W(x + u) + b) and argmax(Wx + b + sigma L z): one law (chi-square test of homogeneity)."""
    from lib.smoothing import Smooth
    from lib.smoothing.noise import LogitGaussian

    lin, x = _linear_problem()
    sigma, n = 1.0, 40_000
    inputs = Smooth(lin, 4, Gaussian(sigma)).sample_counts(x, n, generator=torch.Generator().manual_seed(1))[0]
    logits = lin(x).detach()
    smooth = Smooth(torch.nn.Identity(), 4, LogitGaussian(sigma, lin.weight))
    logit = smooth.sample_counts(logits, n, generator=torch.Generator().manual_seed(2))[0]
    table = np.stack([inputs.numpy(), logit.numpy()])
    table = table[:, table.sum(0) > 0]
    assert table.shape[1] >= 2  # the test point is not trivially certain
    assert st.chi2_contingency(table).pvalue > 1e-3, table
    # and the certificate is the input-space Gaussian one
    pred, radius = smooth.certify(logits[0], 100, 2000, 0.01, generator=torch.Generator().manual_seed(3))
    assert pred in (-1, 0, 1, 2, 3) and radius >= 0.0
    assert smooth.noise.radius(0.9) == Gaussian(sigma).radius(0.9)


def test_logit_gaussian_rejects_bad_input():
    from lib.smoothing.noise import LogitGaussian

    with pytest.raises(TypeError):
        LogitGaussian(0.5, torch.ones(3))
    with pytest.raises(ValueError):
        LogitGaussian(0.5, torch.ones(3, 5)).sample((10, 4))
    with pytest.raises(ValueError):
        LogitGaussian(0.5, torch.full((3, 5), float("nan")))
    with pytest.raises(ValueError):
        LogitGaussian(-1.0, torch.ones(3, 5))
