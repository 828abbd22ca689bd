"""extract_features(seed=) seeds the augmentation's random layers through their public state."""

import keras
import numpy as np

from keras_smalldata.augment import RandomChannelShift
from keras_smalldata.features import extract_features
from keras_smalldata.features._augmentation import random_layers, reseed

SIZE = 8


def _pictures(count=6):
    return np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")


def _flatten_model():
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten()])


def _augmentation():
    """A Keras random layer and one of the library's, seeded."""
    return keras.Sequential(
        [keras.layers.RandomRotation(0.2, seed=1), RandomChannelShift(30.0, seed=2)]
    )


def _augmented(augmentation, seed):
    return extract_features(
        _flatten_model(), _pictures(), augmentation=augmentation, augment_rounds=1,
        include_original=False, seed=seed, verbose=0,
    ).features


def test_layer_i_draws_from_the_sub_seed_of_the_seed():
    augmentation = _augmentation()
    layers = random_layers(augmentation)
    assert [type(layer).__name__ for layer in layers] == ["RandomRotation", "RandomChannelShift"]
    features = _augmented(augmentation, seed=5)
    by_hand = _augmentation()
    for index, layer in enumerate(random_layers(by_hand)):
        reseed(layer, 5 + index)
    expected = keras.ops.convert_to_numpy(by_hand(_pictures(), training=True))
    np.testing.assert_allclose(features, expected.reshape(len(expected), -1), rtol=1e-5, atol=1e-3)


def test_the_same_seed_gives_the_same_features_and_the_layers_state_is_put_back():
    augmentation, twin = _augmentation(), _augmentation()
    first = _augmented(augmentation, seed=5)
    np.testing.assert_allclose(_augmented(augmentation, seed=5), first, rtol=1e-6)
    assert not np.allclose(_augmented(augmentation, seed=6), first)
    # The augmentation draws on as if extract_features had not run.
    pictures = _pictures()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(augmentation(pictures, training=True)),
        keras.ops.convert_to_numpy(twin(pictures, training=True)),
        rtol=1e-6,
    )


def test_a_function_or_a_deterministic_layer_has_no_random_layers():
    assert random_layers(lambda x: x) == []
    assert random_layers(keras.Sequential([keras.layers.Rescaling(0.5)])) == []
