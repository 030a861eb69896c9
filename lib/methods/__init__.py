"""Methods of (denoised) randomized smoothing and their certification runs.

* ``setup``      ``Setup`` (data, profile, device; ``ModelConfig``: what to train; ``ModelCache``: what is
                 loaded)
* ``registry``   ``Pipeline`` (classifier, denoiser, rejector), ``Method`` / ``METHODS`` (every built-in
                 method, listed in one place), ``build_smooth``
* ``runs``       fixed test subsets, ``certify_method`` (one log, fixed-n or decision mode), ``certify_grid``,
                 ``certify_tables``
* ``summaries``  per-log numbers, timing / cost tables, rows by method, paired tables, metrics
"""
from .setup import Setup, ModelConfig, ModelCache  # noqa: F401
from .registry import (  # noqa: F401
    Pipeline, Method, METHODS, REJECTOR_BASES, register_method, method_label,
    build_pipeline, build_smooth, annealing_kwargs, model_summary, stability_model, rejector_model, rejector_pipeline,
    TwoLevelEnergyScore, walk_jump_key, register_walk_jump,
)
from .runs import (  # noqa: F401
    TestSubset, test_subset, log_path, certify_method, certify_grid, measure_throughput, smooth_factory,
    estimate_certification, CERTIFY_MODES, certification_mode, certify_tables,
)
from .summaries import (  # noqa: F401
    average_certified_radius, log_summary, table_settings, timing_table, rows_by_method, rows_by_noise, rows_by_sigma, panels_by_sigma, paired_table,
    grid_metrics, best_difference, cost_table,
)
