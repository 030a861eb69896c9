"""Every check that notebooks 00 and 01 keep can fail: each test computes a check's error as the
notebook does, once with the right formula (within tolerance) and once with a deliberately wrong
one (a swapped constant, a dropped factor, or the source's misprint), which must exceed the tolerance."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist, norm

import lib.theory as T
from lib.data import GaussianData, GaussianMixture
from lib.smoothing import Gaussian, Smooth


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(7)


def test_weierstrass_grid_check_fails_at_the_wrong_scale():
    clf = T.IntervalClassifier(breaks=[-1.5, 0.0, 0.3, 1.8], labels=[0, 1, 2, 1, 0])
    xs = np.linspace(-4, 4, 801)
    h, s = xs[1] - xs[0], 0.5
    tol = len(clf.breaks) * h / (s * math.sqrt(2 * math.pi))
    exact = clf.smoothed(torch.tensor(xs)[:, None], s).numpy()

    def err(scale):
        return np.abs(T.weierstrass_grid(clf.one_hot, [xs], scale) - exact).max()

    assert err(s) <= tol
    assert err(1.3 * s) > tol  # a grid convolution at the wrong sigma


def test_theorem11_check_fails_without_the_factor_one_half():
    clf = T.IntervalClassifier(breaks=[-1.5, 0.0, 0.3, 1.8], labels=[0, 1, 2, 1, 0])
    xs = np.linspace(-4, 4, 801)
    h = xs[1] - xs[0]
    for s in (0.1, 0.5):
        t = T.theorem11_on_a_line(lambda z, s=s: clf.smoothed(z, s), xs, s)
        t = t[np.isfinite(t.radius)]
        assert max(0.0, (t.radius - t.distance).max()) <= h
        assert max(0.0, (2 * t.radius - t.distance).max()) > h  # sigma (Phi^-1(p_a) - Phi^-1(p_b)): no 1/2


def test_lemma21_check_fails_with_half_the_lipschitz_constant(gen):
    df = T.lipschitz_lemmas_experiment(3, 10, 4, gen)
    tight = df[df.lemma == "2.2 probit, m = Phi^-1 (tight)"]
    assert tight.worst_gap.max() <= 1e-12
    # the tight case flips just beyond its radius: a radius twice as large (L halved) contains a flip
    assert (tight.flip_beyond > 0).all() and (tight.flip_beyond < 1.01).all()


def test_stein_check_fails_with_one_power_of_sigma_dropped(gen):
    d, R, sigma = 5, 1.2, 0.5
    x0 = torch.full((1, d), 0.4, dtype=torch.float64)
    _, grad0 = T.ball_smoothed(R, x0, sigma)
    df = T.stein_convergence(T.ball_h(R), x0[0], grad0[0], sigma, [20000], 4, gen)
    assert np.sqrt((df.error ** 2).mean()) <= 2 * df.predicted.mean()
    wrong = T.stein_convergence(T.ball_h(R), x0[0], grad0[0] * sigma, sigma, [20000], 4, gen)  # 1/sigma, not 1/sigma^2
    assert np.sqrt((wrong.error ** 2).mean()) > 2 * wrong.predicted.mean()


def test_ball_gradient_check_fails_with_a_dropped_factor():
    d, R, sigma = 5, 1.2, 0.5
    x0 = torch.full((1, d), 0.4, dtype=torch.float64)
    _, grad0 = T.ball_smoothed(R, x0, sigma)
    eye = 1e-5 * torch.eye(d, dtype=torch.float64)
    fd = (T.ball_smoothed(R, x0 + eye, sigma)[0] - T.ball_smoothed(R, x0 - eye, sigma)[0]) / 2e-5
    assert (fd - grad0[0]).abs().max() <= 1e-6
    assert (fd - grad0[0] * sigma).abs().max() > 1e-6  # x / sigma instead of x / sigma^2


def test_lipschitz_checks_fail_with_the_lectures_constants(gen):
    df = T.lipschitz_experiment(3, 30, 0.5, gen, [2, 10], 40)
    slack = 3 * df.quad_err
    tight = 1 / math.sqrt(2 * math.pi)
    assert max(0.0, (df.grad_norm - slack).max() - tight) <= 1e-9
    assert max(0.0, (df.grad_norm - slack).max() - tight / 2) > 1e-9  # half the tight constant
    assert max(0.0, (df.ratio - 1 - slack).max()) <= 1e-9
    sigma = 0.5  # the lecture's "sigma-Lipschitz": |Delta Phi^-1 H| <= sigma ||Delta x||, i.e. ratio <= sigma^2
    assert max(0.0, (df.ratio - sigma**2 - slack).max()) > 1e-9
    assert max(0.0, (df.grad_norm - df.envelope - slack).max()) <= 1e-9
    assert max(0.0, (df.grad_norm - df.envelope / 2 - slack).max()) > 1e-9  # envelope without a factor 2


def test_gaussian_integral_check_fails_with_the_lectures_display():
    tails = T.gaussian_tail_identities([0.55, 0.7, 0.9, 0.99, 0.999])
    assert (tails.quadrature - tails.closed_form).abs().max() <= 1e-8
    assert (tails.quadrature - tails.lecture_text).abs().max() > 1e-8


def test_cohen_dominates_lipschitz_fails_with_the_lectures_constant():
    p, sigma = np.linspace(0.5, 0.99999, 500), 0.5
    cohen = T.cohen_radius(p, 1 - p, sigma)
    assert max(0.0, (T.lipschitz_radius(p, 1 - p, sigma) - cohen).max()) <= 1e-12
    lecture = (2 * p - 1) * math.sqrt(1 / (2 * sigma**2))  # the printed constant sqrt(1/(2 sigma^2))
    assert max(0.0, (lecture - cohen).max()) > 1e-12


def test_halfspace_margin_check_fails_without_the_factor_one_half(gen):
    sigma, n_mc = 0.5, 100_000
    lin = T.LinearBinaryClassifier([1.0, 0.0], 0.0)
    margins = torch.linspace(0.1, 2.0, 8, dtype=torch.float64) * sigma
    pts = torch.stack([margins, torch.zeros_like(margins)], 1)
    p_hat = Smooth(lin, 2, Gaussian(sigma)).sample_counts(pts, n_mc, generator=gen)[:, 1].double().numpy() / n_mc
    p_true = norm.cdf(margins.numpy() / sigma)
    se_r = sigma * np.sqrt(p_true * (1 - p_true) / n_mc) / norm.pdf(norm.ppf(p_true))
    r_hat = T.cohen_radius(p_hat, 1 - p_hat, sigma)
    assert (np.abs(r_hat - margins.numpy()) / se_r).max() <= 4
    assert (np.abs(2 * r_hat - margins.numpy()) / se_r).max() > 4


def test_certify_failure_check_fails_for_the_plugin(gen):
    df = T.plugin_vs_certify([0.6, 0.9], 0.5, 64, 1000, 0.001, 300, gen)
    assert (df.certify_fail <= df.certify_tolerance).all()
    assert (df.plugin_fail > df.certify_tolerance).all()  # the lecture's plug-in in CERTIFY's place
    assert "within" in T.plugin_verdict(df, 0.001) and "above alpha at every p_A" in T.plugin_verdict(df, 0.001)


def test_certificate_reference_fails_for_the_plugin(gen):
    toy = T.ToyClassifier2D()
    smooth = Smooth(toy, 3, Gaussian(0.5))
    pts = (torch.rand(24, 2, generator=gen, dtype=torch.float64) * 2 - 1) * 2.6
    counts = smooth.sample_counts(pts, 200, generator=gen).numpy()
    top = counts.max(1)
    with np.errstate(divide="ignore"):
        plug = torch.tensor(np.nan_to_num(0.5 * 0.5 * (norm.ppf(top / 200) - norm.ppf(np.sort(counts, 1)[:, -2] / 200)),
                                          posinf=10.0))
    ref = T.certificate_reference(smooth, pts, torch.tensor(counts.argmax(1)), plug * 1.5, 20000, gen)
    assert ref.violation.mean() > T.binomial_tolerance(len(ref), 0.001 + 1e-4)  # the notebook's tolerance: alpha + the reference's level


def test_abstention_check_fails_when_n0_is_ignored(gen):
    sim = T.abstention_simulation([0.6, 0.75], 0.5, 10, 100, 0.001, 400, gen)
    assert ((sim.simulated - sim.exact).abs() / sim.se).max() <= 4
    wrong = T.certify_statistics([0.6, 0.75], 100, 0.001, 0.5, n0=None).abstain.to_numpy()  # selection step dropped
    assert ((sim.simulated - wrong).abs() / sim.se).max() > 4


def test_rmax_check_fails_with_the_papers_misprint():
    ns, alphas = np.array([1e2, 1e4, 1e6]), np.array([0.1, 0.001])
    grid_n, grid_a = np.meshgrid(ns, alphas)
    indep = norm.ppf(beta_dist.ppf(grid_a, grid_n, 1.0))
    assert np.abs(T.max_certifiable_radius(grid_n, grid_a, 1.0) / indep - 1).max() <= 1e-6
    with np.errstate(invalid="ignore", over="ignore"):
        misprint = norm.ppf(grid_a ** (-grid_n))  # Phi^-1(alpha^-n), as printed in S&S §4.1
    assert not np.abs(misprint / indep - 1).max() <= 1e-6


def test_noise_norm_check_fails_with_sigma_sqrt_d(gen):
    dims, num = np.array([2, 10, 100]), 2000
    mean, sd = T.gaussian_norm_moments(dims, 1.0)
    mc = np.array([T.sample_noise_norms(int(d), num, 1.0, gen).mean() for d in dims])
    assert (np.abs(mc - mean) / (sd / np.sqrt(num))).max() <= 4
    assert (np.abs(mc - np.sqrt(dims)) / (sd / np.sqrt(num))).max() > 4


# ---------------------------------------------------------------------------------------- notebook 01
def test_eq7_checks_fail_with_the_shrinkage_inverted(gen):
    d, sigma, sigma0, n = 50, 0.5, 1.0, 5000
    data = GaussianData(d, sigma0)
    x = data.sample(n, gen, dtype=torch.float64)
    y = x + sigma * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    tweedie = y + sigma**2 * data.score(y, sigma)
    beta, wrong = T.bayes_shrinkage(sigma, sigma0), 1 / (1 + (sigma0 / sigma) ** 2)
    assert (tweedie - beta * y).abs().max() <= 1e-12 and (tweedie - wrong * y).abs().max() > 1e-12
    slope = float((x * y).sum() / (y * y).sum())
    se = math.sqrt(beta * sigma**2 / float((y * y).sum()))
    assert abs(slope - beta) / se <= 4 and abs(slope - wrong) / se > 4


def test_prop23_pa_check_fails_with_the_vanilla_probability(gen):
    eb = T.linear_eb_experiment(50, 0.5, 1.0, 8, 64, 4000, 0.001, gen)
    assert eb.z.abs().max() <= 4
    beta = T.bayes_shrinkage(0.5, 1.0)
    vanilla = norm.cdf(eb.r_closed * beta / 0.5)  # p_A without the 1/beta of the radius: Phi(r beta / sigma)
    se = np.sqrt(vanilla * (1 - vanilla) / 4000)
    assert (np.abs(eb.p_mc - vanilla) / se).max() > 4


def test_eq8_checks_fail_without_the_tanh_term(gen):
    mog = GaussianMixture(torch.tensor([1.5, 0.5], dtype=torch.float64), 0.5)
    sg = 0.5
    y = (mog.sample(2000, gen, dtype=torch.float64) + sg * torch.randn(2000, 2, generator=gen, dtype=torch.float64))
    y.requires_grad_()
    (score,) = torch.autograd.grad(mog.smoothed_log_density(y, sg).sum(), y)
    y = y.detach()
    ref = T.mog_bayes_estimator(y, mog.means[0], 0.5, sg)
    assert (y + sg**2 * score - ref).abs().max() <= 1e-10
    assert (y + sg**2 * score - T.bayes_shrinkage(sg, 0.5) * y).abs().max() > 1e-10
    # orthogonality z: with beta y as the "Bayes estimator", the cross term is not mean zero
    x = mog.sample(20000, gen, dtype=torch.float64)
    yy = x + sg * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    est = {"identity": yy}
    good = T.estimator_errors(est, T.mog_bayes_estimator(yy, mog.means[0], 0.5, sg), x, yy)
    bad = T.estimator_errors(est, T.bayes_shrinkage(sg, 0.5) * yy, x, yy)
    assert good.pythagoras_z.abs().max() <= 4 and bad.pythagoras_z.abs().max() > 4


def test_lee_exact_value_check_fails_without_sigma_tilde(gen):
    lee = T.lee_experiment([0.5, 1.0], [0.0, 0.4], 1.0, 100, 500, 40, gen)
    assert ((lee.measured - lee.exact).abs() / lee.se).max() <= 4
    wrong = np.array([T.gaussian_map_error(float(s), 0.0, 1.0, 100) for s in lee.sigma])  # c without sigma~
    assert ((lee.measured - wrong).abs() / lee.se).max() > 4


def test_lee_corrected_check_fails_with_a_wrong_constant(gen):
    slc = T.StronglyLogConcave(torch.randn(10, generator=gen, dtype=torch.float64), 1.0, 2.0)
    ok = T.lee_corrected_check(slc, [0.25, 0.5, 1.0], 500, 200, gen)
    assert max(0.0, ok.max_excess.max()) <= 1e-9 and ok.gd_residual.max() <= 1e-8
    assert T.lee_corrected_check(slc, [0.5, 1.0], 500, 200, gen, mu=2 * slc.mu).max_excess.max() > 1e-9


def test_remark22_check_fails_without_the_mu_term():
    mu1, s0 = torch.tensor([1.58], dtype=torch.float64), 0.5
    ys = torch.linspace(-4, 4, 401, dtype=torch.float64)[:, None]
    big = 1e3 * s0
    b = T.bayes_shrinkage(big, s0)
    s_proj = (ys @ mu1) / s0**2
    tol = 2 * b * float(s_proj.abs().max() * mu1.norm())
    xh = T.mog_bayes_estimator(ys, mu1, s0, big) / b
    assert (xh - (ys + s_proj[:, None] * mu1)).abs().max() <= tol
    assert (xh - ys).abs().max() > tol


def test_mixture_certification_check_fails_with_the_boundary_of_h(gen):
    mu = torch.tensor([1.5, 0.5], dtype=torch.float64)
    df = T.mixture_eb_experiment(mu, 0.5, 0.5, 0.6, 10, 64, 4000, 0.001, gen)
    assert df.z.abs().max() <= 4
    t = df.t0 + np.where(df.g_closed == 1, 1, -1) * df.r_closed  # <w, x>
    p_vanilla = norm.cdf(np.abs(t + 0.6) / 0.5)  # the boundary of h (-b) instead of t0: denoiser ignored
    right = np.where((t + 0.6 > 0) == (df.g_closed == 1), p_vanilla, 1 - p_vanilla)
    se = np.sqrt(right * (1 - right) / 4000)
    assert (np.abs(df.p_mc - right) / se).max() > 4


def test_e1_e2_checks_fail_without_the_shrinkage(gen):
    d, sigma, sigma0, m = 100, 0.5, 1.0, 4000
    data = GaussianData(d, sigma0)
    beta = T.bayes_shrinkage(sigma, sigma0)
    x = data.sample(1, gen, dtype=torch.float64)
    y = x + sigma * torch.randn(m, d, generator=gen, dtype=torch.float64)
    xh = y + sigma**2 * data.score(y, sigma)
    mean_eps, sd_eps = T.gaussian_norm_moments(d, sigma)
    e1 = (xh - beta * x).norm(dim=1).numpy()
    assert abs(e1.mean() - beta * mean_eps) / (beta * sd_eps / np.sqrt(m)) <= 4
    assert abs(e1.mean() - mean_eps) / (beta * sd_eps / np.sqrt(m)) > 4  # radius without the factor beta
    stat = float(m * (xh.mean(0) - beta * x[0]).pow(2).sum() / (beta * sigma) ** 2)
    wrong = float(m * (xh.mean(0) - x[0]).pow(2).sum() / (beta * sigma) ** 2)  # centre x instead of beta x
    assert abs(stat - d) / np.sqrt(2 * d) <= 4 and abs(wrong - d) / np.sqrt(2 * d) > 4


def test_gradient_descent_convergence_checks_fail_when_stopped_early(gen):
    mix = GaussianMixture(torch.tensor([1.5, 0.5]), 0.5)
    good = T.lee_mixture_experiment(mix, [1.0], [0.0], 200, 40, gen)
    early = T.lee_mixture_experiment(mix, [1.0], [0.0], 200, 2, gen)
    assert (good.gd_residual * good.sigma**2).max() <= good.se.min()
    assert (early.gd_residual * early.sigma**2).max() > early.se.min()


def test_lemma26_extremal_check_fails_with_a_smaller_envelope():
    df = T.lemma26_extremal(np.linspace(0.05, 0.95, 7), 20, 40, np.random.default_rng(0))
    assert max(0.0, (df.value - df.bound).max()) <= 1e-12
    assert max(0.0, (df.value - df.bound * 0.9).max()) > 1e-12  # a bound 10% too small is beaten by the half-space
    ramp = df[df.family == "probit ramp"].groupby("p").value.max()  # the ramp claimed extremal: others beat it
    best = df.groupby("p").value.max()
    assert (best - ramp.reindex(best.index)).max() > 1e-12


def test_prop23_class_and_radius_checks_fail_with_vanilla_smoothing(gen):
    """Prop. 2.3: g[pi](x) = h(beta x) with radius |<w, beta x> + b| / (beta ||w||). Vanilla smoothing's
    answers (the class h(x), the radius = the margin of h at x) must fail both checks of notebook 01."""
    eb = T.linear_eb_experiment(50, 0.5, 1.0, 40, 64, 4000, 0.001, gen)
    cert = eb[eb.g_mc >= 0]
    tol = T.binomial_tolerance(len(cert), 0.001)
    assert (cert.g_mc != cert.g_closed).mean() <= tol
    assert (cert.g_mc != cert.h_x).mean() > tol  # the class of h at x, not at beta x (effect E2 ignored)
    assert (cert.r_certified > cert.r_closed + 1e-12).mean() <= tol
    assert (cert.r_certified > cert.margin + 1e-12).mean() > tol  # the margin of h: the 1/beta gain dropped


def test_eq8_mse_optimality_check_fails_against_the_gaussian_shrinkage(gen):
    """Notebook 01's check max(0, -excess_mse) <= 3 excess_se against eq. 8: an estimator that knows the
    mixture (eq. 8 itself) must beat a wrong reference (beta y, the single-Gaussian shrinkage) by more."""
    mog = GaussianMixture(torch.tensor([1.5, 0.5], dtype=torch.float64), 0.5)
    sg = 0.5
    x = mog.sample(20000, gen, dtype=torch.float64)
    y = x + sg * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    eq8 = T.mog_bayes_estimator(y, mog.means[0], 0.5, sg)
    est = {"identity": y, "shrinkage": T.bayes_shrinkage(sg, 0.5) * y, "eq8": eq8}

    def error(reference):
        t = T.estimator_errors(est, reference, x, y)
        return max(0.0, -t.excess_mse.min()), 3 * t.excess_se.max()

    err, tol = error(eq8)
    assert err <= tol
    err, tol = error(T.bayes_shrinkage(sg, 0.5) * y)  # eq. 8 without its tanh term as the reference
    assert err > tol


def test_adversarial_wilcoxon_check_fails_when_the_methods_are_swapped():
    """Notebook 00 checks p <= 1e-3 for 'adversarial training lowers the attacked loss against Gaussian
    augmentation' (one-sided Wilcoxon). On paired losses where a is lower, the same test with the methods
    swapped (the claim read the wrong way round) must fail the check."""
    import pandas as pd

    rng = np.random.default_rng(0)
    m = 200
    base = rng.exponential(1.0, m)
    frames = [pd.DataFrame({"method": name, "idx": np.arange(m), "loss": base + shift, "attacked_loss": base + shift,
                            "radius": np.zeros(m)})
              for name, shift in (("adversarial", rng.normal(-0.2, 0.3, m)), ("augment", np.zeros(m)))]
    df = pd.concat(frames, ignore_index=True)
    key = "attacked_loss (a < b, Wilcoxon)"
    right = T.paired_tests(df, [("adversarial", "augment")]).set_index("quantity").p_value[key]
    swapped = T.paired_tests(df, [("augment", "adversarial")]).set_index("quantity").p_value[key]
    assert right <= 1e-3 < swapped
