"""The inference call of feature extraction, compiled by the running backend.

``model(images, training=False)`` goes through `_backend.compile_function`:
a `tf.function` on TensorFlow (one trace serves every batch size), `jax.jit`
on JAX, eager PyTorch without autograd. Batches are never padded: a model
whose rows depend on each other (a custom layer that normalises over the
batch) still gives exact features.

A compiled call is kept per model, with the model's structure it was made
for (`fingerprint.structure_digest`: every layer's configuration, the
variables, the ``trainable`` flags), and reused by a later extraction only
while that structure is the same: an activation set in place, a layer
rebuilt or a variable added gives a new compiled call, never the old
result. A model that runs code of the user's is compiled afresh on every
call (``structure=None``): tracing runs its Python code once, and a value
it read then (a global, a file) would stay baked into the compiled call.

Scaling out uses the engines Keras already has:

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

from keras_smalldata._backend import compile_function


def check_single(outputs):
    """Returns ``outputs`` if it is one tensor; raises a ValueError for several."""
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "The model has several outputs; extract_features needs a model with one "
            "output (the features). Build one, e.g. "
            "`keras.Model(model.input, model.get_layer(NAME).output)`."
        )
    return outputs


# model -> (structure, compiled call). The call holds the model weakly, so
# this keeps no model alive, and extracting again with the same model does
# not trace again.
_COMPILED = weakref.WeakKeyDictionary()


def _compile(model):
    model_ref = weakref.ref(model)

    def call(images):
        return model_ref()(images, training=False)

    return compile_function(call, model.variables, reduce_retracing=True)


def _replica_count(model) -> int:
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow models only
    return int(getattr(strategy, "num_replicas_in_sync", 1))


def _shard(images):
    """Shards a batch along the batch axis under a `keras.distribution`, when it divides."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return images
    mesh = distribution.device_mesh
    name = getattr(distribution, "batch_dim_name", None)
    devices = mesh.shape[list(mesh.axis_names).index(name)] if name in mesh.axis_names else 1
    if devices <= 1 or len(images) % devices:
        return images
    layout = distribution.get_data_layout(images.shape)
    return keras.distribution.distribute_tensor(images, layout)


def make_forward(model, dtype: str, structure: Callable[[], str] | None):
    """Returns ``forward(images) -> np.ndarray``: the model in inference mode on a batch.

    ``structure()`` gives the model's structure (see
    `fingerprint.structure_digest`), taken once the model is built: a
    compiled call made for the same structure is reused. None compiles anew.
    """
    compiled = []

    def forward(images):
        images = np.asarray(images, dtype=dtype)
        replicas = _replica_count(model)
        # Keras' predict fails when a replica gets no rows: a batch smaller
        # than the replica count runs on one device instead.
        if replicas > 1 and len(images) >= replicas:
            outputs = model.predict(images, batch_size=len(images), verbose=0)
        else:
            if not compiled:
                if not model.built:  # e.g. a Sequential without an Input: build it first
                    model(images[:1], training=False)
                key = None if structure is None else structure()
                known = _COMPILED.get(model)
                if key is not None and known is not None and known[0] == key:
                    call = known[1]
                else:
                    call = _compile(model)
                    if key is not None:
                        _COMPILED[model] = (key, call)
                compiled.append(call)
            outputs = compiled[0](_shard(images))
        return np.asarray(keras.ops.convert_to_numpy(check_single(outputs)))

    return forward
