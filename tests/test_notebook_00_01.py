"""Notebooks 00 (randomized smoothing lecture) and 01 (empirical Bayes theory) under the smoke profile.

Every numerical check a notebook prints is recorded as ``check_<name>_error`` / ``check_<name>_tol``;
here we assert each error is within its tolerance, and that the checks we rely on exist (a
notebook that silently dropped a check would otherwise pass).
"""
import pytest

EXPECTED_00 = [
    "weierstrass_grid_1d_sigma_0_1", "ball_gradient_analytic_vs_finite_differences",
    "stein_mc_rms_error_at_largest_n", "lemma24_lipschitz_constant", "lemma26_gradient_below_envelope",
    "lemma26_pair_ratio_below_one", "halfspace_attains_lemma26", "cohen_radius_dominates_lipschitz",
    "cohen_radius_equals_margin_of_halfspace_z", "certify_soundness_vs_reference",
    "abstention_exact_vs_simulated_z", "rmax_vs_beta_quantile_relative", "rmax_vs_certify_constant_classifier",
    "noise_norm_mean_z", "jensen_chain_gaussian", "jensen_chain_smoothed",
]
EXPECTED_01 = [
    "eq7_tweedie_vs_beta_y", "eq7_posterior_mean_slope_z", "E1_contraction_radius_z",
    "E2_centre_is_beta_x_chi2_z", "prop23_class_is_h_beta_x", "prop23_pA_closed_vs_mc_z",
    "prop23_certified_below_closed_form", "eq8_vs_autograd_tweedie", "dsm_net_vs_eq8_relative_sigma_0_5",
    "mse_denoiser_vs_eq8_relative_sigma_0_5", "eq8_is_mse_optimal_sigma_0_5", "remark22_first_order_collapse",
    "lee_bound_holds", "lee_measured_vs_exact_z", "lee_gradient_descent_converged",
]


def _assert_checks(metrics, expected):
    names = {k[len("check_"):-len("_error")] for k in metrics if k.startswith("check_") and k.endswith("_error")}
    missing = set(expected) - names
    assert not missing, f"checks not recorded: {sorted(missing)}"
    failed = {n: (metrics[f"check_{n}_error"], metrics[f"check_{n}_tol"]) for n in names
              if not metrics[f"check_{n}_error"] <= metrics[f"check_{n}_tol"]}
    assert not failed, f"checks outside tolerance (error, tol): {failed}"


@pytest.mark.notebook
def test_notebook_00_lecture(run_notebook):
    metrics = run_notebook("00_randomized_smoothing_lecture")
    _assert_checks(metrics, EXPECTED_00)
    # a few closed-form numbers the lecture quotes
    assert metrics["check_rmax_vs_beta_quantile_relative_error"] < 1e-6
    assert metrics["check_halfspace_attains_lemma26_error"] < 1e-8


@pytest.mark.notebook
def test_notebook_01_empirical_bayes(run_notebook):
    metrics = run_notebook("01_empirical_bayes_theory")
    _assert_checks(metrics, EXPECTED_01)
    assert metrics["check_eq8_vs_autograd_tweedie_error"] < 1e-10
