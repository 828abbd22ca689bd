"""Applying the augmentation of augmented passes: the call, and its seeding.

``extract_features(seed=)`` seeds every random layer of the augmentation the
way a layer is seeded anywhere in the library: the library's own layers
through their public `RandomImageLayer.reseed`, Keras' own random layers
(``RandomFlip``, ``RandomRotation``, ``Dropout``...) through the public
``state`` of the `keras.random.SeedGenerator`s they hold in public
attributes. The ``i``-th random layer gets ``sub_seed(seed, i)``.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_smalldata._arguments import sub_seed
from keras_smalldata._models import public_attributes, walk_layers
from keras_smalldata.augment import _tf_data_random
from keras_smalldata.augment._image_layer import RandomImageLayer, reseed_generator


def augment(augmentation, images):
    """Applies a Keras layer (in training mode) or a function to a batch of images."""
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation(images, training=True)
    return augmentation(images)


def seed_generators(layer) -> list:
    """The `keras.random.SeedGenerator`s a layer holds in its own public attributes."""
    return [
        value
        for _, value in public_attributes(layer)
        if isinstance(value, keras.random.SeedGenerator)
    ]


def random_layers(augmentation) -> list:
    """The layers of a Keras augmentation that draw random numbers (none for a function).

    The augmentation itself and every layer nested in it that is one of the
    library's random layers or holds a `keras.random.SeedGenerator`, in the
    order of `walk_layers` (layers held in public attributes included).
    """
    if not isinstance(augmentation, keras.layers.Layer):
        return []
    layers = [augmentation] + [layer for _, layer in walk_layers(augmentation, into="attributes")]
    return [
        layer
        for layer in layers
        if isinstance(layer, RandomImageLayer) or seed_generators(layer)
    ]


def reseed(layer, seed: int) -> None:
    """Restarts a random layer's draws from ``seed`` (see `RandomImageLayer.reseed`)."""
    if isinstance(layer, RandomImageLayer):
        layer.reseed(seed)
        return
    for generator in seed_generators(layer):
        reseed_generator(generator, seed)


class seeded:  # noqa: N801 - used as a context manager, like a function
    """Within the ``with``, the random layers of an augmentation draw from ``seed``.

    Layer ``i`` of `random_layers` is reseeded with ``sub_seed(seed, i)``;
    afterwards every layer's random state is put back as it was. A
    function's randomness is not reached. With ``seed=None`` nothing is
    changed.
    """

    def __init__(self, augmentation, seed: int | None):
        self.layers = [] if seed is None else random_layers(augmentation)
        self.seed = seed
        self.saved: list[tuple] = []

    def __enter__(self):
        if self.seed is None:  # no layers to reseed
            return self
        for index, layer in enumerate(self.layers):
            states = [generator.state for generator in seed_generators(layer)]
            values = [np.array(keras.ops.convert_to_numpy(state.value)) for state in states]
            self.saved.append((layer, states, values, _tf_data_random.save(layer)))
            reseed(layer, sub_seed(self.seed, index))
        return self

    def __exit__(self, *exc):
        for layer, states, values, tf_data in self.saved:
            for state, value in zip(states, values):
                state.assign(value)
            _tf_data_random.restore(layer, tf_data)
        self.saved = []
        return False
