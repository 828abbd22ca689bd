"""Shared fixtures of the pretrained tests: small bases built once per module."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def vgg16():
    """VGG16 conv base at 32x32, random weights (built once per test module)."""
    import keras

    from keras_smalldata.pretrained import PretrainedBase

    # Seeded: with some random weights every ReLU of block5 is shut at 32 px
    # and a fine-tuning test would see no gradient (it failed now and then).
    keras.utils.set_random_seed(0)
    return PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)


@pytest.fixture(scope="module")
def pictures():
    """Eight 32x32 RGB pictures with pixel values in [0, 255] (float32)."""
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(8, 32, 32, 3)).astype("float32")

