"""Reporting: tables and figures derived from per-example logs, metrics, registered tables."""
from .tables import (  # noqa: F401
    LOG_COLUMNS, read_log, certified_accuracy, accuracy_curve, certified_accuracy_table, best_over,
    prefixed, markdown_table, save_table, save_figure, record_metrics, read_metrics,
    log_settings_of, best_over_logs, table_from_logs, register_table, render_table, table_caption,
    load_table_spec, load_table_specs,
)
