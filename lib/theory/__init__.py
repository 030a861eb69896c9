"""Closed forms and numerical checks of the theory notebooks.

Modules: ``common`` (checks, helpers, toy models), ``transforms`` (Gaussian smoothing, Stein's lemma,
functions with a known transform), ``lecture`` (Lecture 14 §1-2: radii, Lipschitz lemmas, rescaling), ``certification`` (CERTIFY's outcome distribution and soundness),
``smoothing_training`` (Lecture 14 §3), ``widgets`` (sliders for the closed forms), ``empirical_bayes`` (Saremi & Srivastava §2, Lee's
Theorem A.2; notebook 01), ``plots`` (the figures).
"""
from .common import (  # noqa: F401
    report_check, binomial_tolerance, stable_probit, gaussian_norm_moments, IntervalClassifier, ToyClassifier2D,
    LinearBinaryClassifier, ToyMLP, hard_votes, grid_values, near_boundary_points,
)
from .transforms import (  # noqa: F401
    stein_gradient, gauss_hermite_smoothing, weierstrass_grid, halfspace_h, halfspace_smoothed, probit_h,
    probit_smoothed, ball_h, ball_smoothed, random_mlp_h,
)
from .lecture import (  # noqa: F401
    cohen_radius, lemma24_constant, lipschitz_radius, max_certifiable_radius, lipschitz_experiment,
    stein_convergence, rescaling_identities,
    gaussian_tail_identities, lipschitz_lemmas_experiment, theorem11_on_a_line, lemma26_extremal,
)
from .certification import (  # noqa: F401
    certify_statistics, certificate_reference, abstention_simulation, sample_noise_norms, PROTOCOL_KEYS,
    LECTURE_TABLE_METHODS, lecture_table_logs, same_protocol_table, plugin_vs_certify, plugin_verdict,
    abstain_thresholds,
)
from .smoothing_training import (  # noqa: F401
    TOY_EPS, TOY_PGD_STEPS, TOY_EVAL_PGD_STEPS, OBJECTIVES, smoothing_toy, train_smoothing_classifier, smoothing_objectives, smoothing_comparison, paired_tests,
    LECTURE_CLAIMS, training_verdict,
)
from .empirical_bayes import (  # noqa: F401
    bayes_shrinkage, linear_eb_pa, linear_eb_radius, mog_bayes_estimator, train_dsm_mlp, train_mse_denoiser_mlp,
    lee_recovery_bound, approx_map_gd, gaussian_map_error, linear_eb_experiment, estimator_errors, lee_experiment,
    mixture_mode, strong_convexity, lee_mixture_experiment, lee_counterexample, lee_counterexample_summary,
    lee_counterexample_verdict, StronglyLogConcave, lee_corrected_check, mixture_eb_boundary, mixture_eb_experiment,
)
from . import widgets  # noqa: F401
from .plots import (  # noqa: F401
    CLASS_COLORS, set_style, plot_regions, plot_certified, plot_certify_toy, plot_weierstrass_1d,
    plot_weierstrass_2d, plot_stein_convergence, plot_lipschitz, plot_radii, plot_certify_tradeoff, plot_concentration,
    plot_training, plot_contraction, plot_prop23, plot_mog_estimator, plot_collapse, plot_lee_bound, plot_prop23_offset,
    plot_lemma26_extremal,
)
