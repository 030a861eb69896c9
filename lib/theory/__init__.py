"""Closed forms and numerical checks of the theory notebooks (00 lecture, 01 empirical Bayes)."""
from .core import (  # noqa: F401
    report_check, binomial_tolerance, stable_probit, cohen_radius, lemma24_constant, lipschitz_radius,
    max_certifiable_radius, stein_gradient, gauss_hermite_smoothing, weierstrass_grid, halfspace_h, halfspace_smoothed,
    probit_h, probit_smoothed, ball_h, ball_smoothed, random_mlp_h, lipschitz_experiment,
    IntervalClassifier, ToyClassifier2D, hard_votes, grid_values, LinearBinaryClassifier, ToyMLP,
    certify_statistics, gaussian_norm_moments, train_smoothing_classifier, smoothing_objectives, bayes_shrinkage, linear_eb_pa,
    linear_eb_radius, mog_bayes_estimator, train_dsm_mlp, train_mse_denoiser_mlp, lee_recovery_bound, approx_map_gd,
    gaussian_map_error, stein_convergence, certificate_reference, abstention_simulation, sample_noise_norms, linear_eb_experiment,
    estimator_errors, lee_experiment,
)
from .plots import (  # noqa: F401
    CLASS_COLORS, set_style, plot_regions, plot_certified, plot_certify_toy, plot_weierstrass_1d,
    plot_weierstrass_2d, plot_stein_convergence, plot_lipschitz, plot_radii, plot_certify_tradeoff, plot_concentration,
    plot_training, plot_contraction, plot_prop23, plot_mog_estimator, plot_collapse, plot_lee_bound,
)
