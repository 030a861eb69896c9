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
    # the n0 = 20 selection votes pick the true class w.p. P(K > 10) + P(K = 10) [label 0] (argmax
    # takes the first index on a tie); a wrong candidate certifies radius 0 (true class) or nothing
    select = st.binom.sf(10, 20, p) + st.binom.pmf(10, 20, p) * (labels == 0)
    mean1 = select * (pmf * radius_of_k[None, :]).sum(1)
    var = select * (pmf * radius_of_k[None, :] ** 2).sum(1) - mean1**2
    diff = radii[preds == labels].sum() - mean1.sum()
    assert abs(diff) < 4 * math.sqrt(var.sum())


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


# ------------------------------------------------------------------ numbers that are not numbers
def _linear(nan=False):
    lin = torch.nn.Linear(2, 3)
    if nan:
        with torch.no_grad():
            lin.weight[0, 0] = float("nan")
    return lin


def test_nan_logits_are_an_error_not_a_certificate():
    """A NaN row used to vote for class 0 and certify it with radius ~1.5."""
    with pytest.raises(ValueError, match="classifier returned non-finite"):
        Smooth(_linear(nan=True), 3, Gaussian(0.5)).certify_batch(torch.zeros(2, 2), 10, 100, 0.01)
    # NaN only on some noisy samples (the clean probe passes): caught in the sampling loop
    def flaky(x):
        z = torch.stack([x[:, 0], -x[:, 0]], 1)
        return torch.where(x[:, :1] > 1.0, torch.nan, z)
    with pytest.raises(ValueError, match="classifier returned non-finite"):
        Smooth(flaky, 2, Gaussian(1.0)).certify_batch(torch.zeros(2, 2), 10, 1000, 0.01)


def test_nan_denoiser_output_names_the_denoiser():
    smooth = Smooth(_linear(), 3, Gaussian(0.5), denoiser=lambda y: y * float("nan"))
    with pytest.raises(ValueError, match="denoiser returned non-finite"):
        smooth.certify_batch(torch.zeros(2, 2), 10, 100, 0.01)
    bad_shape = Smooth(_linear(), 3, Gaussian(0.5), denoiser=lambda y: y[:, :1])
    with pytest.raises(ValueError, match="denoiser"):
        bad_shape.certify_batch(torch.zeros(2, 2), 10, 100, 0.01)


def test_sigma_that_overflows_the_dtype_is_refused():
    with pytest.raises(ValueError, match="sigma .* overflows torch.float32"):
        Smooth(_linear(), 3, Gaussian(1e37)).certify_batch(torch.zeros(2, 2), 10, 100, 0.01)
    half = Smooth(lambda x: torch.stack([x[:, 0], -x[:, 0]], 1), 2, Gaussian(5000.0))
    with pytest.raises(ValueError, match="overflows torch.float16"):
        half.certify_batch(torch.zeros(2, 2, dtype=torch.float16), 10, 100, 0.01)


@pytest.mark.parametrize("gen", [0, np.random.default_rng(0), "seed"])
def test_generator_must_be_a_torch_generator(gen):
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        Smooth(_linear(), 3, Gaussian(0.5)).certify_batch(torch.zeros(2, 2), 10, 100, 0.01, generator=gen)


def test_input_dtype_must_match_the_model():
    with pytest.raises(TypeError, match="dtype torch.float64 but the classifier's parameters are torch.float32"):
        Smooth(_linear(), 3, Gaussian(0.5)).certify_batch(torch.zeros(2, 2, dtype=torch.float64), 10, 100, 0.01)


def test_devices_are_checked():
    """Decision: inputs are copied to the smoother's device; a module on another device than
    ``device`` is refused at construction, and an input that cannot be copied is a clear error."""
    with pytest.raises(ValueError, match="parameters are on cpu but device=meta"):
        Smooth(_linear(), 3, Gaussian(0.5), device="meta")
    with pytest.raises(ValueError, match="xs is on meta"):
        Smooth(_linear(), 3, Gaussian(0.5)).certify_batch(torch.zeros(2, 2, device="meta"), 10, 100, 0.01)


def test_five_d_input_without_input_shape():
    """Decision: without input_shape any [B, *shape] the pipeline accepts is fine (a Flatten+Linear
    model takes [B, 1, 1, 2, 2]); a shape the classifier cannot take fails on one clean input
    before any sampling, naming the classifier and the shape, and suggesting input_shape=."""
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    smooth = Smooth(conv, 3, Gaussian(0.5))
    assert smooth.certify_batch(torch.rand(2, 1, 2, 3), 10, 50, 0.01)[0].shape == (2,)
    with pytest.raises(ValueError, match=r"classifier failed on a clean input of shape \(1, 1, 1, 2, 3\).*input_shape="):
        smooth.certify_batch(torch.rand(2, 1, 1, 2, 3), 10, 50, 0.01)
    flat = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, Gaussian(0.5))
    assert flat.certify_batch(torch.rand(2, 1, 1, 2, 2), 10, 50, 0.01)[0].shape == (2,)
    strict = Smooth(conv, 3, Gaussian(0.5), input_shape=(1, 2, 3))
    with pytest.raises(ValueError, match="certify takes one input"):
        strict.certify(torch.rand(1, 1, 2, 3), 10, 50, 0.01)


@pytest.mark.parametrize("k", ["5", True, np.bool_(False), np.array([True, False]), np.array(["1"])])
def test_lower_confidence_bound_refuses_str_and_bool(k):
    with pytest.raises(TypeError, match="k must"):
        lower_confidence_bound(k, 10, 0.1)


def test_huge_n_is_refused_up_front_unless_allowed(monkeypatch):
    from lib.smoothing import smooth as smooth_module
    smooth = Smooth(_linear(), 3, Gaussian(0.5))
    calls = []
    monkeypatch.setattr(smooth_module.Smooth, "sample_counts", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="MAX_SAMPLES"):
        smooth.certify_batch(torch.zeros(2, 2), 100, 10**12, 0.01)
    with pytest.raises(ValueError, match="MAX_SAMPLES"):
        smooth.predict(torch.zeros(2), 10**12, 0.01)
    assert calls == []  # refused before any work
    monkeypatch.undo()
    monkeypatch.setattr(smooth_module, "MAX_SAMPLES", 1000)
    with pytest.raises(ValueError, match="allow_large=True"):
        smooth.certify_batch(torch.zeros(2, 2), 100, 1000, 0.01)
    preds, _ = smooth.certify_batch(torch.zeros(2, 2), 100, 1000, 0.01, allow_large=True)
    assert preds.shape == (2,)


def test_long_calls_show_progress(monkeypatch):
    from lib.smoothing import smooth as smooth_module
    made = []

    class Bar:
        def __init__(self, total, disable, **kw):
            self.total, self.disable, self.n = total, disable, 0
            made.append(self)

        def update(self, k):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(smooth_module, "progress_bar", Bar)
    monkeypatch.setattr(smooth_module, "PROGRESS_SAMPLES", 5000)
    smooth = Smooth(_linear(), 3, Gaussian(0.5))
    smooth.certify_batch(torch.zeros(3, 2), 10, 2000, 0.01, batch_size=256)
    assert [(b.total, b.disable, b.n) for b in made] == [(30, False, 30), (6000, False, 6000)]
    made.clear()
    smooth.certify_batch(torch.zeros(3, 2), 10, 100, 0.01)
    assert all(b.disable for b in made)


def test_float64_buffers_do_not_trip_the_dtype_check():
    """Only parameters define the model's dtype: a float64 constant buffer converted inside
    forward (lib.theory's LinearBinaryClassifier) takes float32 inputs."""
    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.tensor([1.0, 0.0], dtype=torch.float64))

        def forward(self, x):
            z = x @ self.w.to(x.dtype)
            return torch.stack([-z, z], 1)

    preds, _ = Smooth(Lin(), 2, Gaussian(0.5)).certify_batch(torch.tensor([[2.0, 0.0]]), 10, 100, 0.01)
    assert preds.tolist() == [1]


def test_finite_check_has_no_false_alarm_on_huge_finite_logits():
    """Logits whose sum overflows float32 are still finite: no error (the fast path falls back)."""
    big = lambda x: torch.stack([x[:, 0] * 0 + 3e38, x[:, 0] * 0 + 3e38 - 1e33 * (x[:, 0] > 0)], 1)
    preds, _ = Smooth(big, 2, Gaussian(0.1)).certify_batch(torch.tensor([[1.0]]), 10, 100, 0.01)
    assert preds.tolist() == [0]
