"""Logit-space sampling of a linear classifier has the law of input-space sampling,
and the test that says so can fail: the same test rejects a sampler with the wrong covariance.

tests/test_sampler.py (H8) checks the covariance of ``LogitGaussian`` and one chi-square test on a
random W, whose W W^T is close to a multiple of I -- a sampler that ignored the correlations could
pass it. Here W W^T is far from diagonal (rows share a common direction), the votes are spread
over 4 classes, and the negative controls (identity and diagonal-only covariances) must fail.
"""
import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from lib.experiments.fidelity import logit_procedure
from lib.smoothing import Smooth
from lib.smoothing.noise import Gaussian, LogitGaussian

K, D, SIGMA, N = 4, 30, 0.8, 30_000


def _correlated_linear(seed=0):
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(1, D, generator=g)
    lin = torch.nn.Linear(D, K)
    with torch.no_grad():
        w = 0.3 * torch.randn(K, D, generator=g) + torch.tensor([[1.0], [0.8], [-0.6], [0.2]]) * common
        lin.weight.copy_(w / math.sqrt(D))
        lin.bias.zero_()
    return lin


class _WrongCovariance(LogitGaussian):
    """A deliberately wrong logit sampler: sigma z R with a wrong square root R."""

    def __init__(self, sigma, weight, kind):
        super().__init__(sigma, weight)
        cov = (weight.detach().double() @ weight.detach().double().T)
        self._root = (torch.eye(K, dtype=torch.float64) * cov.diag().mean().sqrt() if kind == "identity"
                      else torch.diag(cov.diag().sqrt()))


def _votes(smooth, x, seed):
    return smooth.sample_counts(x, N, generator=torch.Generator().manual_seed(seed))[0].numpy()


def _pvalue(lin, logit_noise, seed):
    """Chi-square homogeneity p-value of input-space vs logit-space votes at the clean point 0."""
    x = torch.zeros(1, D)
    a = _votes(Smooth(lin, K, Gaussian(SIGMA)), x, seed)
    b = _votes(Smooth(torch.nn.Identity(), K, logit_noise), lin(x).detach(), seed + 100)
    table = np.stack([a, b])
    table = table[:, table.sum(0) > 0]
    assert table.shape[1] == K, table  # every class gets votes: a real multi-class test
    return st.chi2_contingency(table).pvalue


@pytest.mark.parametrize("seed", [0, 1])
def test_logit_votes_have_the_input_space_law(seed):
    lin = _correlated_linear(seed)
    assert _pvalue(lin, LogitGaussian(SIGMA, lin.weight), seed) > 1e-4


@pytest.mark.parametrize("kind", ["identity", "diagonal"])
def test_a_wrong_covariance_is_rejected(kind):
    """Negative control: the same test, same sizes, rejects a sampler that gets W W^T wrong."""
    lin = _correlated_linear(0)
    assert _pvalue(lin, _WrongCovariance(SIGMA, lin.weight, kind), 0) < 1e-6


def test_logit_procedure_certifies_like_the_input_space_sampler():
    """The notebook's procedure: same predictions and, up to Monte-Carlo error, the same radii."""
    lin = _correlated_linear(0)

    class Linear(torch.nn.Module):  # the project's LinearClassifier shape: `.linear`
        def __init__(self):
            super().__init__()
            self.linear = lin

        def forward(self, x):
            return self.linear(x.flatten(1))

    xs = 0.5 * torch.randn(8, D, generator=torch.Generator().manual_seed(3))
    smooth = Smooth(Linear(), K, Gaussian(SIGMA))
    pa, ra = logit_procedure(smooth)(xs, 100, 20_000, 0.001, generator=torch.Generator().manual_seed(4))
    pb, rb = smooth.certify_batch(xs, 100, 20_000, 0.001, generator=torch.Generator().manual_seed(5))
    assert torch.equal(pa, pb)
    assert (ra - rb).abs().max() < 0.1


def test_logit_procedure_refuses_what_it_cannot_do():
    lin = _correlated_linear(0)
    with pytest.raises(ValueError, match="denoiser"):
        logit_procedure(Smooth(lin, K, Gaussian(SIGMA), denoiser=torch.nn.Identity()))
    with pytest.raises(TypeError, match="linear"):
        logit_procedure(Smooth(torch.nn.Sequential(lin, torch.nn.ReLU()), K, Gaussian(SIGMA)))
