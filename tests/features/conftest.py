"""Fixtures for the feature-extraction tests: tiny models and picture folders."""

import numpy as np
import pytest
from PIL import Image


def constant_picture(path, value, size=12):
    """Writes a picture whose every pixel is (value, 255 - value, 7)."""
    pixels = np.empty((size, size, 3), dtype=np.uint8)
    pixels[...] = (value, 255 - value, 7)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def pattern_picture(path, k, size=16):
    """Writes picture ``k``: a pattern with no flip or rotation symmetry, unique to ``k``."""
    i, j, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    pixels = ((7 * k + 3 * i + 11 * j * j + 5 * c) % 256).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def mean_model(size=12, name=None):
    """A model whose features are the mean of each channel: they name the picture."""
    import keras

    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, outputs, name=name)


def conv_model(size=16, seed=0, scale=None):
    """A small conv model with seeded weights, optionally with a Rescaling inside."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    if scale is not None:
        x = keras.layers.Rescaling(scale)(x)
    x = keras.layers.Conv2D(
        4, 3, strides=2, kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def numbered_folder(tmp_path_factory):
    """40 pictures in 2 class folders; picture k has pixel value 3k + 5 (class a: k < 20)."""
    root = tmp_path_factory.mktemp("numbered")
    for k in range(40):
        label = "a" if k < 20 else "b"
        constant_picture(root / label / f"img_{k:03d}.png", 3 * k + 5)
    return root

