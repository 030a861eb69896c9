"""Experiments: the method registry, certification runs over grids, summaries of their logs.

* ``methods``    ``Setup`` (which trained models), ``Method`` / ``METHODS`` / ``register_method``,
                 ``build_smooth``
* ``runs``       fixed test subsets, ``certify_method`` (one log), ``certify_grid``
* ``summaries``  per-log numbers, timing / cost tables, rows by method, paired tables, metrics

The figures, registered tables, published numbers and ``RESULTS.md`` live in ``lib.reporting``;
their names are re-exported here for the notebooks (``ex.table_finding``, ``ex.write_results``).
"""
from .methods import (  # noqa: F401
    Setup, Pipeline, Method, annealing_kwargs, METHODS, register_method, method_label, build_pipeline,
    build_smooth, smooth_of, model_summary,
)
from .runs import (  # noqa: F401
    TestSubset, test_subset, log_path, certify_method, certify_grid, measure_throughput, make_smooth, smooth_factory,
    estimate_certification,
)
from .summaries import (  # noqa: F401
    average_certified_radius, log_summary, table_settings, timing_table, rows_by_method, paired_table,
    grid_metrics, cost_table,
)
from lib.smoothing.logs import log_seconds, log_cpu_seconds, find_log  # noqa: F401
from lib.reporting import (  # noqa: F401
    paired_difference, plot_cost, plot_certified_curves, certified_curves_figure, PUBLISHED, published_rows,
    EXPECTED_TABLES, table_numbers, table_finding, settings_line, rebuild_table, results_markdown, write_results,
)
from .xhat import (  # noqa: F401  (registers XHAT_ε, XHAT_0, SmoothAdv_ε; notebook 09)
    XHAT_KEYS, PUBLISHED_TABLE2, register_walk_jump, empirical_robust_accuracy, robust_summary, previous_rows,
    model_table, budget_notes, xhat0_identity, walk_jump_procedure, LECTURE_KEYS, LECTURE_RADII, LECTURE_REFERENCE,
    lecture_table, lecture_metrics,
)
from .rejection import (  # noqa: F401  (registers mse_stab, mse_stab_query, stab and the rejector methods; notebook 08)
    RejectionPipeline, REJECTOR_BASES, build_rejection_smooth, certify_rejection, certify_rejection_grid,
    theorem_3_1_radii, training_histories, training_time_table, rejector_gains, claim_check, count_histograms,
    rejector_variants, rejector_budget, curve_styles,
)
from . import ablations  # noqa: F401,E402  (notebook 07's sections; imports the names above)
