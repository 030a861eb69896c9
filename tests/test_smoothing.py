"""lib.smoothing: soundness simulations on analytic models, PREDICT, bad input, logs."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from lib.smoothing import certify_dataset
from lib.smoothing import Gaussian, Laplace, Uniform
from lib.reporting.tables import certified_accuracy, read_log
from lib.smoothing import ABSTAIN, Smooth
from lib.smoothing import lower_confidence_bound


class HalfSpace(torch.nn.Module):
    """Two-class linear classifier: class 1 iff <w, x> + b > 0 (logits [-(z), z])."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([-z, z], 1)


def _true_p(noise, margins):
    """P(top class) for a half-space at distance `margin` (l2 for Gaussian via the
    normalised normal, l1 for an axis-aligned boundary under Laplace/uniform)."""
    s = noise.sigma
    ref = {Gaussian: st.norm(scale=s), Laplace: st.laplace(scale=s / math.sqrt(2)),
           Uniform: st.uniform(loc=-math.sqrt(3) * s, scale=2 * math.sqrt(3) * s)}[type(noise)]
    return ref.cdf(margins)


def _analytic_problem(noise, num, d, rng):
    """Points at known margins from a half-space whose true radius (in noise.norm) is the margin."""
    if noise.norm == "l2":
        w = torch.tensor(rng.normal(size=d), dtype=torch.float32)
    else:  # axis-aligned: the l1 distance to the boundary is |x_1 - t|
        w = torch.zeros(d)
        w[0] = 1.0
    unit = w / w.norm()
    top = 2.5 * noise.sigma if noise.norm == "l2" else (0.9 * math.sqrt(3) * noise.sigma if isinstance(noise, Uniform) else 2.0 * noise.sigma)
    margins = rng.uniform(0.02 * noise.sigma, top, size=num)
    labels = rng.integers(0, 2, size=num)
    base = torch.tensor(rng.normal(size=(num, d)), dtype=torch.float32)
    base -= (base @ unit)[:, None] * unit[None, :]  # on the boundary (b = 0)
    signed = torch.tensor(np.where(labels == 1, margins, -margins), dtype=torch.float32)
    xs = base + signed[:, None] * unit[None, :]
    return HalfSpace(w, 0.0), xs, labels, margins


@pytest.mark.parametrize("cls", [Gaussian, Laplace, Uniform])
def test_certificates_are_sound_and_tight(cls):
    """Thousands of certifications: P(wrong certificate) <= alpha, and radii near the truth."""
    rng = np.random.default_rng(1)
    noise = cls(0.5)
    num, n, alpha = 3000, 200, 0.1
    model, xs, labels, margins = _analytic_problem(noise, num, d=8, rng=rng)
    smooth = Smooth(model, 2, noise)
    preds, radii = smooth.certify_batch(xs, n0=20, n=n, alpha=alpha, generator=torch.Generator().manual_seed(2))
    preds, radii = preds.numpy(), radii.numpy()
    certified = preds != ABSTAIN
    wrong = certified & ((preds != labels) | (radii > margins + 1e-9))
    # the guarantee is per point; over num independent points the count is stochastically
    # below Binomial(num, alpha): a one-sided binomial test must not reject
    assert st.binomtest(int(wrong.sum()), num, alpha, alternative="greater").pvalue > 1e-3
    assert certified.mean() > 0.5
    # not needlessly loose: the mean radius equals its exact expectation under Binomial(n, p)
    p = _true_p(noise, margins)
    k = np.arange(n + 1)
    radius_of_k = noise.radius(lower_confidence_bound(k, n, alpha))
    pmf = st.binom.pmf(k[None, :], n, p[:, None])
    expected = (pmf * radius_of_k[None, :]).sum(1)
    var = (pmf * radius_of_k[None, :] ** 2).sum(1) - expected**2
    # the n0 selection step can only lose a little (wrong candidate -> radius 0)
    diff = radii.sum() - expected.sum()
    assert abs(diff) < 4 * math.sqrt(var.sum()) + 0.01 * expected.sum()


def test_large_n_radius_approaches_margin():
    rng = np.random.default_rng(0)
    noise = Gaussian(0.25)
    model, xs, labels, margins = _analytic_problem(noise, 200, d=20, rng=rng)
    preds, radii = Smooth(model, 2, noise).certify_batch(xs, 100, 20000, 0.001,
                                                          generator=torch.Generator().manual_seed(0))
    ok = margins > 0.3 * noise.sigma
    ratio = radii.numpy()[ok] / margins[ok]
    # each radius exceeds the margin with probability <= alpha = 0.001 (0.2 expected here)
    assert (ratio > 1.0 + 1e-6).sum() <= 3 and np.median(ratio) > 0.85


def test_predict_abstains_on_a_tie_and_answers_far_from_boundary():
    model = HalfSpace(torch.tensor([1.0, 0.0]), 0.0)
    smooth = Smooth(model, 2, Gaussian(1.0))
    g = torch.Generator().manual_seed(0)
    assert smooth.predict(torch.tensor([3.0, 0.0]), 1000, 0.001, generator=g) == 1
    assert smooth.predict(torch.tensor([-3.0, 0.0]), 1000, 0.001, generator=g) == 0
    abstain = [smooth.predict(torch.tensor([0.0, 0.0]), 200, 0.05, generator=g) for _ in range(100)]
    assert sum(a == ABSTAIN for a in abstain) >= 80  # PREDICT errs w.p. <= alpha at a tie


def test_certify_matches_certify_batch_and_is_reproducible():
    model = HalfSpace(torch.tensor([1.0, -1.0, 0.5]), 0.1)
    smooth = Smooth(model, 2, Laplace(0.3))
    xs = torch.randn(5, 3)
    a = smooth.certify_batch(xs, 10, 500, 0.01, batch_size=7, generator=torch.Generator().manual_seed(4))
    b = smooth.certify_batch(xs, 10, 500, 0.01, batch_size=7, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c, r = smooth.certify(xs[0], 10, 500, 0.01, generator=torch.Generator().manual_seed(4))
    assert isinstance(c, int) and isinstance(r, float)


def test_counts_do_not_depend_on_chunking():
    """Votes are attributed to the right input whatever the chunk size (chunks span inputs)."""
    model = HalfSpace(torch.tensor([1.0]), 0.0)
    smooth = Smooth(model, 2, Gaussian(1e-3))
    xs = torch.tensor([[1.0], [-1.0], [2.0]])
    for bs in (1, 2, 5, 7, 1000):
        counts = smooth.sample_counts(xs, 50, batch_size=bs)
        assert counts.tolist() == [[0, 50], [50, 0], [0, 50]]


def test_denoiser_is_applied_before_classifier():
    model = HalfSpace(torch.tensor([1.0]), 0.0)
    flip = lambda batch: -batch  # a "denoiser" that flips the sign
    smooth = Smooth(model, 2, Gaussian(1e-3), denoiser=flip)
    assert smooth.sample_counts(torch.tensor([[1.0]]), 10).tolist() == [[10, 0]]


# ------------------------------------------------------------------ bad input
@pytest.fixture
def smooth():
    return Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, Gaussian(0.5),
                  input_shape=(1, 2, 2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n0=0), "n0"), (dict(n=0), "n"), (dict(alpha=0.0), "alpha"), (dict(alpha=1.0), "alpha"),
    (dict(alpha=float("nan")), "alpha"), (dict(batch_size=0), "batch_size")])
def test_bad_certify_arguments(smooth, kwargs, match):
    args = dict(n0=10, n=100, alpha=0.01) | kwargs
    with pytest.raises(ValueError, match=match):
        smooth.certify_batch(torch.rand(2, 1, 2, 2), **args)


def test_bad_inputs(smooth):
    x = torch.rand(2, 1, 2, 2)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        smooth.certify_batch(x, 10, 100, 0.01)
    with pytest.raises(ValueError, match="input shape"):
        smooth.certify_batch(torch.rand(2, 1, 3, 3), 10, 100, 0.01)
    with pytest.raises(ValueError, match="shape"):
        smooth.certify_batch(torch.rand(4), 10, 100, 0.01)
    with pytest.raises(TypeError, match="xs"):
        smooth.certify_batch([[1.0]], 10, 100, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        smooth.predict(torch.rand(1, 2, 2), 100, 2.0)


def test_wrong_classifier_width():
    bad = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5)), 3, Gaussian(0.5))
    with pytest.raises(ValueError, match="num_classes"):
        bad.certify_batch(torch.rand(2, 1, 2, 2), 10, 100, 0.01)


def test_bad_construction():
    with pytest.raises(TypeError, match="noise"):
        Smooth(torch.nn.Identity(), 2, 0.5)
    with pytest.raises(ValueError, match="num_classes"):
        Smooth(torch.nn.Identity(), 1, Gaussian(0.5))


# ------------------------------------------------------------------ logs
def _toy(tmp_path):
    model = HalfSpace(torch.tensor([1.0, 0.0]), 0.0)
    xs = torch.randn(11, 2, generator=torch.Generator().manual_seed(0)) * 2
    labels = (xs[:, 0] > 0).long()
    return Smooth(model, 2, Gaussian(0.5)), xs, labels


def test_log_format_and_resume_after_interruption(tmp_path):
    smooth, xs, labels = _toy(tmp_path)
    full = certify_dataset(smooth, xs, labels, 10, 300, 0.01, tmp_path / "full.tsv", chunk=4, progress=False)
    assert list(full.columns) == ["idx", "label", "predict", "radius", "correct", "time"]
    assert len(full) == 11 and full["idx"].tolist() == list(range(11))
    # simulate a crash: 6 complete rows and a torn 7th line
    lines = (tmp_path / "full.tsv").read_text().splitlines(keepends=True)
    (tmp_path / "part.tsv").write_text("".join(lines[:7]) + lines[7][:5])
    (tmp_path / "part.tsv.json").write_text((tmp_path / "full.tsv.json").read_text())
    resumed = certify_dataset(smooth, xs, labels, 10, 300, 0.01, tmp_path / "part.tsv", chunk=4, progress=False)
    cols = ["idx", "label", "predict", "radius", "correct"]
    assert resumed[cols].equals(full[cols])


def test_log_refuses_other_settings(tmp_path):
    smooth, xs, labels = _toy(tmp_path)
    certify_dataset(smooth, xs[:3], labels[:3], 10, 100, 0.01, tmp_path / "a.tsv", progress=False)
    with pytest.raises(ValueError, match="other settings"):
        certify_dataset(smooth, xs[:3], labels[:3], 10, 200, 0.01, tmp_path / "a.tsv", progress=False)


def test_log_rejects_mismatched_labels(tmp_path):
    smooth, xs, labels = _toy(tmp_path)
    with pytest.raises(ValueError, match="labels"):
        certify_dataset(smooth, xs, labels[:3], 10, 100, 0.01, tmp_path / "b.tsv", progress=False)


def test_certified_accuracy_definition():
    import pandas as pd
    df = pd.DataFrame({"idx": range(4), "label": [0, 1, 1, 0], "predict": [0, 1, -1, 1],
                       "radius": [0.5, 1.5, 0.0, 2.0], "correct": [1, 1, 0, 0], "time": ["0"] * 4})
    np.testing.assert_allclose(certified_accuracy(df, [0.0, 0.5, 1.0, 2.0]), [0.5, 0.5, 0.25, 0.0])
