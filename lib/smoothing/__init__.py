"""The smoothing family: noise distributions, Clopper-Pearson statistics, the smoothed classifier
(PREDICT / CERTIFY) and certification runs over a data set."""
from .noise import (  # noqa: F401
    NoiseDistribution, Gaussian, Laplace, Uniform, NOISES, make_noise,
)
from .stats import (  # noqa: F401
    lower_confidence_bound, binomial_pvalue, proportion_interval,
)
from .smooth import (  # noqa: F401
    ABSTAIN, default_batch_size, Smooth,
)
from .certify import (  # noqa: F401
    log_settings, certify_dataset,
)
