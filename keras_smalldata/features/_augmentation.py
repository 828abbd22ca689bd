"""Applying the augmentation of augmented passes: the call, and its seeding."""

from __future__ import annotations

import keras
import numpy as np


def augment(augmentation, images):
    """Applies a Keras layer (in training mode) or a function to a batch of images."""
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation(images, training=True)
    return augmentation(images)


def seed_states(augmentation) -> list:
    """The random generators' states of a Keras augmentation (none for a function).

    They are the layers' `keras.random.SeedGenerator` states: the
    non-weight variables named for a seed, of shape (2,).
    """
    if not isinstance(augmentation, keras.layers.Layer):
        return []
    weights = {id(w) for w in augmentation.weights}
    return [
        v
        for v in augmentation.variables
        if id(v) not in weights and tuple(v.shape) == (2,) and "seed" in v.name
    ]


class seeded:
    """Sets the random generators of a Keras augmentation from ``seed``, then restores them.

    The generators are those of `seed_states`: a function's randomness is
    not reached. With ``seed=None`` nothing is changed.
    """

    def __init__(self, augmentation, seed: int | None):
        self.states = [] if seed is None else seed_states(augmentation)
        self.seed = seed
        self.saved = []

    def __enter__(self):
        for i, state in enumerate(self.states):
            value = np.asarray(keras.ops.convert_to_numpy(state.value))
            self.saved.append(value)
            first = (int(self.seed) + 1_000_003 * i) % (2**31 - 1)
            state.assign(np.array([first, 0], dtype=value.dtype))
        return self

    def __exit__(self, *exc):
        for state, value in zip(self.states, self.saved):
            state.assign(value)
        self.saved = []
        return False
