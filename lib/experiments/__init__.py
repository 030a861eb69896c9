"""Experiments: the method registry, certification runs over grids, summaries and RESULTS.md."""
from .core import (  # noqa: F401
    Setup, Pipeline, Method, annealing_kwargs, METHODS, register_method,
    method_label, build_pipeline, build_smooth, TestSubset, test_subset, log_path,
    certify_method, log_cpu_seconds, certify_grid, log_seconds, average_certified_radius, log_summary,
    table_settings, timing_table, rows_by_method, paired_difference, paired_table, grid_metrics,
    model_summary, cost_table, plot_cost, measure_throughput, plot_certified_curves, PUBLISHED,
    published_rows, EXPECTED_TABLES, table_numbers, table_finding, settings_line, rebuild_table,
    results_markdown, write_results,
)
