"""Reporting: everything derived from the per-example logs.

* ``tables``    certified accuracy, tables from logs (best over sigma, Clopper-Pearson intervals),
                paired comparisons (paired t interval, McNemar), CSV/Markdown/LaTeX, metrics
* ``figures``   the one certified-accuracy figure style, cost plots, ``save_figure``
* ``budget``    gaps between two methods against the training budget (verdicts, paired tests)
* ``published`` the papers' published numbers and quotations, each with its place and setting
* ``findings``  registered tables, findings and ``RESULTS.md``
"""
from .tables import (  # noqa: F401
    LOG_COLUMNS, read_log, certified_accuracy, accuracy_curve, certified_accuracy_table, best_over,
    prefixed, markdown_table, save_table, record_metrics, read_metrics, log_settings_of, best_over_logs,
    table_from_logs, paired_outcomes, paired_difference,
)
from .figures import (  # noqa: F401
    STYLE, figure_style, save_figure, plot_certified_curves, certified_curves_figure, plot_cost, denoising_figure,
)
from .budget import BUDGET_VERDICTS, CLAIMS, budget_verdict, budget_comparison, budget_finding  # noqa: F401
from .published import PAPERS, PUBLISHED, QUOTES, quote, published_rows  # noqa: F401
from .findings import (  # noqa: F401
    EXPECTED_TABLES, register_table, render_table, table_caption, load_table_spec,
    load_table_specs, table_numbers, table_finding, radius_caps, caps_line, settings_line, rebuild_table, results_markdown, write_results,
)
