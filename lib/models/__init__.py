"""Classifiers, their training, and the model cache (trained models keyed by a hash of their config)."""
from .classifiers import (  # noqa: F401
    dataset_info, LinearClassifier, MLPClassifier, SmallCNN, ResNet, ARCHS,
    build_classifier, accuracy, linear_margin, train_classifier, ARCH_DEFAULTS, PROFILE_DEFAULTS,
    classifier_config, get_classifier,
)
from .cache import (  # noqa: F401
    CorruptCheckpointError, checkpoint_path, load_checkpoint, load_or_train,
)
