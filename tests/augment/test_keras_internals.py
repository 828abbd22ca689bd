"""Fails loudly when Keras moves the non-public base class our layers build on."""

import inspect

import keras

from keras_smalldata.augment import RandomAffine
from keras_smalldata.augment._keras_internals import (
    REQUIRED_BASE_API,
    TESTED_KERAS_VERSIONS,
    BaseImagePreprocessingLayer,
)


def test_base_class_still_offers_what_we_use():
    for name in REQUIRED_BASE_API:
        assert hasattr(BaseImagePreprocessingLayer, name), name
    signature = inspect.signature(BaseImagePreprocessingLayer.call)
    assert list(signature.parameters)[:3] == ["self", "data", "training"]
    signature = inspect.signature(BaseImagePreprocessingLayer.get_random_transformation)
    assert list(signature.parameters) == ["self", "data", "training", "seed"]
    signature = inspect.signature(BaseImagePreprocessingLayer.transform_images)
    assert list(signature.parameters) == [
        "self",
        "images",
        "transformation",
        "training",
    ]
    # The Keras layers we mirror derive from it too.
    assert issubclass(keras.layers.RandomRotation, BaseImagePreprocessingLayer)


def test_keras_version_is_the_tested_one():
    """Update TESTED_KERAS_VERSIONS (after running this suite) when Keras moves on."""
    major_minor = ".".join(keras.__version__.split(".")[:2])
    assert major_minor == TESTED_KERAS_VERSIONS, (
        f"keras_smalldata.augment was tested with Keras {TESTED_KERAS_VERSIONS}, "
        f"this is Keras {keras.__version__}: check _keras_internals.py"
    )


def test_base_class_behaviour_we_rely_on():
    layer = RandomAffine(rotation_range=30, seed=0)
    # training=False skips the draw; the seed generator is the layer's own.
    assert layer.get_random_transformation(None, training=False) is None
    assert layer._get_seed_generator(keras.backend.backend()) is layer.generator
