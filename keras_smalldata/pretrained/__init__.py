"""Pretrained conv bases: architecture registry, PretrainedBase, classifier heads."""

from keras_smalldata.pretrained.base import PretrainedBase
from keras_smalldata.pretrained.fallback import (
    RandomWeightsFallbackWarning,
    pretrained_base_or_random,
)
from keras_smalldata.pretrained.freezing import (
    StaleCompileWarning,
    TrainableSummary,
    is_auto_named,
    recompile,
    trainable_summary,
)
from keras_smalldata.pretrained.heads import add_classifier_head, classifier_model
from keras_smalldata.pretrained.learning_rates import (
    DiscriminativeOptimizer,
    block_groups,
)
from keras_smalldata.pretrained.preprocessing import ImageNetPreprocessing
from keras_smalldata.pretrained.registry import (
    Architecture,
    available_architectures,
    get_architecture,
)
from keras_smalldata.pretrained.weights import keras_cache_dir

__all__ = [
    "Architecture",
    "DiscriminativeOptimizer",
    "ImageNetPreprocessing",
    "PretrainedBase",
    "RandomWeightsFallbackWarning",
    "StaleCompileWarning",
    "TrainableSummary",
    "add_classifier_head",
    "available_architectures",
    "block_groups",
    "classifier_model",
    "get_architecture",
    "is_auto_named",
    "keras_cache_dir",
    "pretrained_base_or_random",
    "recompile",
    "trainable_summary",
]
