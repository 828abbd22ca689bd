"""The one place where `keras_smalldata.augment` touches non-public Keras code.

Our random layers derive from Keras' own `BaseImagePreprocessingLayer`
(``keras.src``, not public API). It gives them, for free and exactly like
Keras' built-in `RandomRotation` & co.:

- identity at inference (``training=False``),
- per-image draws from a `keras.random.SeedGenerator` (``seed=`` reproducible),
- the switch to TensorFlow ops when the layer runs inside `tf.data` under
  the JAX or torch backends (``self.backend``),
- dict inputs (``{"images": ..., "labels": ..., "segmentation_masks": ...}``).

Tested with Keras 3.15. The exact surface we rely on is listed in
`REQUIRED_BASE_API`; ``tests/augment/test_keras_internals.py`` checks it and
fails loudly when a Keras release moves it.
"""

from __future__ import annotations

import keras

TESTED_KERAS_VERSIONS = "3.15"

# Attributes of BaseImagePreprocessingLayer this package uses.
REQUIRED_BASE_API = (
    "call",
    "get_random_transformation",
    "transform_images",
    "transform_labels",
    "transform_segmentation_masks",
    "transform_single_image",
    "_get_seed_generator",
    "_USE_BASE_FACTOR",
)

try:
    from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
        BaseImagePreprocessingLayer,
    )
except ImportError as error:  # pragma: no cover - depends on the Keras release
    raise ImportError(
        "keras_smalldata.augment builds on Keras' BaseImagePreprocessingLayer, "
        f"which this Keras release ({keras.__version__}) does not provide at "
        "keras.src.layers.preprocessing.image_preprocessing."
        "base_image_preprocessing_layer. keras_smalldata.augment is tested "
        f"with Keras {TESTED_KERAS_VERSIONS}: install a Keras version in that "
        "range or report the issue."
    ) from error

_missing = [
    name for name in REQUIRED_BASE_API if not hasattr(BaseImagePreprocessingLayer, name)
]
if _missing:  # pragma: no cover - depends on the Keras release
    raise ImportError(
        f"Keras {keras.__version__}'s BaseImagePreprocessingLayer lacks {_missing}, "
        f"which keras_smalldata.augment needs (tested with Keras {TESTED_KERAS_VERSIONS})."
    )

__all__ = ["BaseImagePreprocessingLayer", "REQUIRED_BASE_API", "TESTED_KERAS_VERSIONS"]
