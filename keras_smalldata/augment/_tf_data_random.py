"""Random draws of the augmentation inside ``tf.data``, under every backend.

Under JAX and PyTorch a layer's `keras.random.SeedGenerator` keeps its state
in the running backend, which a ``tf.data`` graph cannot advance; under
TensorFlow it can, but not atomically (``map`` with ``num_parallel_calls``
runs the function concurrently, and two batches can read the same state).
Inside ``tf.data`` a layer draws instead from a ``tf.random.Generator`` kept
for it here: made once per layer, outside any graph, from the layer's seed;
each draw advances it atomically, so parallel ``map`` calls never repeat a
draw, and a new layer with the same seed repeats the sequence. `reseed`
restarts it in place (a traced ``tf.data`` pipeline holds the generator
itself, so it is never replaced).
"""

from __future__ import annotations

import weakref
from typing import Any

from keras_smalldata._backend import tensorflow

# owner -> its tf.random.Generator; owner -> the seed of a generator not made yet.
_GENERATORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_SEEDS: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def uniform(owner, shape, seed: int | None = None):
    """Float32 draws from U(0, 1) inside ``tf.data`` for ``owner`` (a layer).

    Args:
        owner: The object the generator belongs to.
        shape: The shape of the draws.
        seed: The seed of the generator when it is made at this first call
            (unless `reseed` gave another); None for a non-deterministic one.
    """
    tf = tensorflow()
    generator = _GENERATORS.get(owner)
    if generator is None:
        seed = _SEEDS.pop(owner, seed)
        with tf.init_scope():
            if seed is None:
                generator = tf.random.Generator.from_non_deterministic_state()
            else:
                generator = tf.random.Generator.from_seed(seed)
        _GENERATORS[owner] = generator
    return generator.uniform(shape, dtype=tf.float32)


def reseed(owner, seed: int) -> None:
    """Restarts ``owner``'s draws as a new generator made from ``seed`` would draw them."""
    generator = _GENERATORS.get(owner)
    if generator is None:
        _SEEDS[owner] = seed
    else:
        with tensorflow().init_scope():
            generator.reset_from_seed(seed)


def save(owner):
    """What `restore` needs to put ``owner``'s ``tf.data`` draws back where they are now."""
    generator = _GENERATORS.get(owner)
    if generator is None:
        return ("pending", _SEEDS.get(owner, _NO_SEED))
    return ("state", generator.state.numpy())


def restore(owner, saved) -> None:
    """Puts ``owner``'s ``tf.data`` draws back where `save` found them."""
    kind, value = saved
    generator = _GENERATORS.get(owner)
    if kind == "state":
        # saved from the owner's generator, which lives as long as the owner
        assert generator is not None
        generator.state.assign(value)
    elif generator is None:
        if value is _NO_SEED:
            _SEEDS.pop(owner, None)
        else:
            _SEEDS[owner] = value


_NO_SEED = object()
