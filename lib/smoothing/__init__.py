"""The smoothing family: noise distributions, Clopper-Pearson statistics, the smoothed classifier
(PREDICT / CERTIFY) and certification runs over a data set into per-example logs (``logs``: their one owner)."""
from .noise import (  # noqa: F401
    NoiseDistribution, Gaussian, Laplace, Uniform, NOISES, make_noise,
)
from .stats import (  # noqa: F401
    lower_confidence_bound, upper_confidence_bound, binomial_pvalue, proportion_interval,
)
from .certificates import (  # noqa: F401
    Certificate, OneSided, TwoSided, WithRejection, make_certificate,
)
from .smooth import (  # noqa: F401
    ABSTAIN, default_batch_size, rows_for_memory, MEMORY_FRACTION, Smooth, MAX_SAMPLES, PROGRESS_SAMPLES,
)
from ._batching import fixed_draws, has_fixed_draws  # noqa: F401
from .logs import (  # noqa: F401
    LOG_COLUMNS, LogError, LogLockedError, read_log, read_settings, parse_time, log_seconds, log_lock,
    model_fingerprint, log_key, log_path, find_log, log_cpu_seconds, log_elapsed_seconds, sidecar_path,
)
from .certify import (  # noqa: F401
    log_settings, certify_dataset,
)
from .distributed import (  # noqa: F401
    SerialExecutor, ProcessExecutor, RayExecutor, local_executor,
)
