"""Fingerprints: what makes two models or augmentations the same for the cache."""

import functools
import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.features import extract_features
from keras_smalldata.features.fingerprint import (
    augmentation_fingerprint,
    layer_config_digest,
    model_fingerprint,
)


def _vgg16():
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def test_rebuilt_vgg16_has_the_same_architecture_digest():
    first, second = _vgg16(), _vgg16()
    # Keras numbers the input layer per session: the names differ...
    assert first.layers[0].name != second.layers[0].name
    # ...but not what the model computes.
    assert layer_config_digest(first) == layer_config_digest(second)
    second.set_weights(first.get_weights())
    assert model_fingerprint(first) == model_fingerprint(second)
    cut = keras.Model(first.input, first.get_layer("block4_pool").output)
    assert layer_config_digest(cut) != layer_config_digest(first)
    wider = keras.applications.VGG16(weights=None, include_top=False, input_shape=(48, 48, 3))
    assert layer_config_digest(wider) != layer_config_digest(first)


def test_dtype_policy_and_activation_count():
    def build(activation, dtype=None):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(3, activation=activation, dtype=dtype)(inputs))

    assert layer_config_digest(build("relu")) == layer_config_digest(build("relu"))
    assert layer_config_digest(build("relu")) != layer_config_digest(build("tanh"))
    assert layer_config_digest(build("relu")) != layer_config_digest(build("relu", "float16"))


def test_trainable_flag_does_not_count():
    model = _vgg16()
    before = layer_config_digest(model)
    model.trainable = False
    assert layer_config_digest(model) == before


def _scale(images, factor):
    return images * factor


def test_function_fingerprints():
    def make(factor):
        return lambda images: images * factor

    assert augmentation_fingerprint(make(2)) == augmentation_fingerprint(make(2))
    assert augmentation_fingerprint(make(2)) != augmentation_fingerprint(make(3))
    half = functools.partial(_scale, factor=0.5)
    double = functools.partial(_scale, factor=2.0)
    assert augmentation_fingerprint(half) != augmentation_fingerprint(double)
    assert augmentation_fingerprint(np.flip) is not None
    assert augmentation_fingerprint(abs) is None  # built in: no source to read


def test_unreadable_augmentation_skips_the_cache(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4, 4, 3)).astype("float32")
    with pytest.warns(UserWarning, match="cache is not used"):
        result = extract_features(model, x, augmentation=abs, augment_rounds=1, cache_dir=tmp_path, verbose=0)
    assert result.cache_path is None and len(result) == 6
    np.testing.assert_allclose(result.features[3:], np.abs(x).reshape(3, -1))
    assert list(tmp_path.iterdir()) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract_features(model, x, cache_dir=tmp_path, verbose=0)  # plain: cached, no warning
