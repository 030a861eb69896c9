"""The studies of the notebooks, one module per topic, built on the library (never used by it).

* ``denoisers``                score networks compared, every denoiser on every noise (02, 03)
* ``fidelity``                 the empirical-Bayes classifier g[π] against Saremi & Srivastava (04)
* ``ablations``                Lee's ablations, the cost of certification in samples and levels (07)
* ``procedures``               fixed n, sequential and decision mode, the two-sided radius, on the same points (04-09)
* ``budget``                   gaps between methods against the training budget (07, 08)
* ``rejection``                sample rejection against stability denoisers (08)
* ``learned_empirical_bayes``  XHAT_ε, SmoothAdv, walk-jump, the lecture's Tables 1-2 on MNIST (09)

A notebook imports the studies it runs from here (``import lib.experiments as ex``) and the runs and
tables they are built on from their own families (:mod:`lib.methods`, :mod:`lib.reporting`).
"""
from . import ablations, budget, denoisers, fidelity, procedures  # noqa: F401
from .learned_empirical_bayes import (  # noqa: F401
    XHAT_KEYS, PUBLISHED_TABLE2, empirical_robust_accuracy, robust_summary, robust_tables,
    nc_sweep_figure, previous_rows, model_table, budget_notes,
    xhat0_identity, walk_jump_procedure, LECTURE_KEYS, LECTURE_RADII, LECTURE_REFERENCE, lecture_table,
    lecture_metrics,
)
from .rejection import (  # noqa: F401
    certify_rejection, certify_rejection_grid, theorem_3_1_radii, training_histories, training_time_table,
    rejector_gains, claim_check, count_histograms, rejector_variants, rejector_budget, curve_styles, two_bound_cost,
)
