"""The inference call of feature extraction, compiled by the running backend.

``model(images, training=False)`` goes through `_backend.compile_function`:
a `tf.function` on TensorFlow (one trace serves every batch size), `jax.jit`
on JAX, eager PyTorch without autograd. Batches are never padded: a model
whose rows depend on each other (a custom layer that normalises over the
batch) still gives exact features.

A compiled call is kept in the library's `FunctionCache` and follows the
model (`model_signature`: every layer's configuration, the variables, the
``trainable`` flags): an activation set in place, a layer rebuilt or a
variable added gives a new compiled call, never the old result. A model that
runs code of the user's is compiled afresh on every call (``cached=False``):
tracing runs its Python code once, and a value it read then (a global, a
file) would stay baked into the compiled call.

Scaling out uses the engines Keras already has (`_backend.replica_count`,
`_backend.shard_batch`):

- TensorFlow: a model built under a `tf.distribute` strategy with several
  replicas runs through ``model.predict``, which splits each batch across
  the replicas and gathers the rows in order (a last batch with fewer rows
  than replicas runs on one device);
- JAX: under a `keras.distribution` distribution (e.g. ``DataParallel``)
  each batch is sharded along the batch axis when its size divides among
  the devices (the last, shorter batch may run replicated instead).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._function_cache import FunctionCache


def check_single(outputs):
    """Returns ``outputs`` if it is one tensor; raises a ValueError for several."""
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "The model has several outputs; extract_features needs a model with one "
            "output (the features). Build one, e.g. "
            "`keras.Model(model.input, model.get_layer(NAME).output)`."
        )
    return outputs


# The compiled calls hold their model weakly: the cache keeps no model alive,
# and extracting again with the same model does not trace again.
_CALLS = FunctionCache(size=4)


def _compile(model):
    model_ref = weakref.ref(model)

    def call(images):
        referent = model_ref()
        if referent is None:
            raise RuntimeError("The model of this feature extraction no longer exists.")
        return referent(images, training=False)

    return _backend.compile_function(call, model.variables, reduce_retracing=True)


def make_forward(model, dtype: str, cached: bool = True):
    """Returns ``forward(images) -> np.ndarray``: the model in inference mode on a batch.

    With ``cached=True`` the compiled call comes from the cache while the
    model's signature is the same (taken once the model is built, at the
    first batch); ``cached=False`` compiles anew.
    """
    compiled: list[Callable] = []

    def forward(images):
        images = np.asarray(images, dtype=dtype)
        replicas = _backend.replica_count(model)
        # Keras' predict fails when a replica gets no rows: a batch smaller
        # than the replica count runs on one device instead.
        if replicas > 1 and len(images) >= replicas:
            outputs = model.predict(images, batch_size=len(images), verbose=0)
        else:
            if not compiled:
                if not model.built:  # e.g. a Sequential without an Input: build it first
                    model(images[:1], training=False)
                if cached:
                    compiled.append(_CALLS.get(model, ("inference",), lambda: _compile(model)))
                else:
                    compiled.append(_compile(model))
            outputs = compiled[0](_backend.shard_batch(images))
        return np.asarray(keras.ops.convert_to_numpy(check_single(outputs)))

    return forward
