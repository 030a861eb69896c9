"""Classifiers, the one training loop, and the model cache (trained models keyed by a hash of their config)."""
from .training import EMA, StepLoss, EpochSampler, train_loop, checkpointing, CHECKPOINT_EVERY  # noqa: F401
from .classifiers import (  # noqa: F401
    dataset_info, LinearClassifier, MLPClassifier, SmallCNN, ResNet, MaxPool2x2, ARCHS,
    build_classifier, accuracy, linear_margin, train_classifier, classifier_loss,
    classifier_config, get_classifier,
)
from .cache import (  # noqa: F401
    CorruptCheckpointError, checkpoint_path, load_checkpoint, load_or_train, save_checkpoint, verify_manifest,
)
from .rejector import (  # noqa: F401  (Sheikholeslami et al.'s rejectors)
    RejectorNet, Rejector, reject_decisions, rejection_targets, rejection_loss, rejector_config, train_rejector,
    get_rejector,
)
