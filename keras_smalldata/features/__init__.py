"""Feature extraction: run a frozen base once, cache the features, train a small head.

To train on the features, build the head with
`keras_smalldata.pretrained.classifier_model(features.feature_shape)`.
"""

from keras_smalldata.features.cache import (
    CacheNotUsedWarning,
    CorruptedCacheWarning,
    StaleCacheWarning,
)
from keras_smalldata.features.extraction import extract_features
from keras_smalldata.features.feature_set import FeatureSet

__all__ = [
    "CacheNotUsedWarning",
    "CorruptedCacheWarning",
    "FeatureSet",
    "StaleCacheWarning",
    "extract_features",
]
