"""The studies of the notebooks, one module per topic, built on the library (never used by it).

* ``denoisers``                score networks compared, every denoiser on every noise (02, 03)
* ``fidelity``                 the empirical-Bayes classifier g[π] against Saremi & Srivastava (04)
* ``ablations``                Lee's ablations, the cost of certification, sequential CERTIFY (07)
* ``budget``                   gaps between methods against the training budget (07, 08)
* ``rejection``                sample rejection against stability denoisers (08)
* ``learned_empirical_bayes``  XHAT_ε, SmoothAdv, walk-jump, the lecture's Tables 1-2 on MNIST (09)

The notebooks reach everything through this one namespace (``import lib.experiments as ex``):
the names of the studies below, and, listed explicitly, the run and reporting names they call
(from :mod:`lib.methods`, :mod:`lib.reporting`, :mod:`lib.smoothing.logs`).
"""
from lib.methods import (  # noqa: F401  (the runs the notebooks call)
    METHODS, REJECTOR_BASES, Method, Pipeline, Setup, TestSubset, annealing_kwargs, build_pipeline, build_smooth, certify_grid,
    certify_method, certify_tables, certification_mode, cost_table, grid_metrics, log_path, log_summary, measure_throughput, method_label, model_summary,
    paired_table, register_method, register_walk_jump, rows_by_method, smooth_factory, table_settings, test_subset,
    timing_table,
)
from lib.reporting import (  # noqa: F401  (the tables and findings the notebooks call)
    EXPECTED_TABLES, PUBLISHED, QUOTES, quote, paired_difference, plot_certified_curves, published_rows, rebuild_table,
    settings_line, table_finding, table_numbers, write_results,
)
from lib.smoothing.logs import find_log, log_cpu_seconds, log_seconds  # noqa: F401

from . import ablations, budget, denoisers, fidelity  # noqa: F401
from .learned_empirical_bayes import (  # noqa: F401
    XHAT_KEYS, PUBLISHED_TABLE2, empirical_robust_accuracy, robust_summary, previous_rows, model_table, budget_notes,
    xhat0_identity, walk_jump_procedure, LECTURE_KEYS, LECTURE_RADII, LECTURE_REFERENCE, lecture_table,
    lecture_metrics,
)
from .rejection import (  # noqa: F401
    certify_rejection, certify_rejection_grid, theorem_3_1_radii, training_histories, training_time_table,
    rejector_gains, claim_check, count_histograms, rejector_variants, rejector_budget, curve_styles,
)
