"""Score models, energy (DEEN) models, their networks, and the denoisers built on them."""
from .nets import (  # noqa: F401
    SigmaEmbedding, ScoreMLP, ScoreUNet, DnCNN, ARCHITECTURES, build_net,
)
from .score import (  # noqa: F401
    DATA_STATS, SCHEDULES, geometric_sigmas, uniform_sigmas, make_schedule, as_sigma,
    ScoreModel, NoiseConditionalScore, EnergyScore, ClosedFormScore, as_score, dsm_per_example,
    train_dsm, dsm_loss, dsm_loss_per_sigma, annealed_langevin, score_config, build_score_model, get_score_model,
    fit_toy_score, relative_score_error,
)
from .energy import (  # noqa: F401
    EnergyMLP, EmpiricalBayesDenoiser, build_energy, deen_loss, denoising_mse, train_deen,
    deen_step_loss, energy_config, get_energy_model,
)
from .denoise import (  # noqa: F401
    LEE_STEP_SIZE, Denoiser, Tweedie, AnnealedMAP, WalkJump, NetworkDenoiser,
    Identity, tweedie, annealed_map, walk_jump, identity, train_mse, mse_loss,
    mse_config, mse_denoiser, evaluate_denoiser, evaluate_denoisers, tune_step_size,
)
from .stability import (  # noqa: F401  (Salman et al.'s stability objective: MSE+Stab, Stab)
    frozen, stability_loss, stability_config, train_stability, stability_denoiser,
)
