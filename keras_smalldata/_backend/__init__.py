"""The one place that knows which Keras backend is running.

The module of the running backend is chosen once, at import, from
`keras.backend.backend()`, as Keras chooses its own backend module:
`tensorflow_backend`, `jax_backend` or `torch_backend` (`unsupported_backend`
for any other, whose functions raise where the library needs one of those
three). Each module exposes the same functions, re-exported here:

- `gradient_function(fn)`: gradients of an intermediate tensor (for viz);
- `compile_function(fn, variables, reduce_retracing)`: a compiled pass that
  reads the model's current weights;
- `xla_function(fn)`: a pure function compiled with XLA;
- `fused_batch_normalization(...)`: TensorFlow's fused op, or None;
- `accelerator_available()`: a GPU or TPU;
- `model_scope(model)` and `in_model_scope(model, variable)`: a
  `tf.distribute` strategy's scope, or nothing;
- `replica_count(model)` and `shard_batch(images)`: splitting a batch
  across devices (a `tf.distribute` strategy, a `keras.distribution`);
- `in_tf_data_graph()`: whether TensorFlow is tracing a ``tf.data`` function.

The rest of the library is written to `keras.ops`. What is the same on every
backend stays here: ``tf.data`` is the data pipeline of every backend, so
`tensorflow()` and `is_tf_dataset` are here too. The ``tf.data`` shims of
the augmentation layers live beside those layers
(`keras_smalldata.augment._tf_data`, `keras_smalldata.augment._tf_data_random`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import keras

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    from keras_smalldata._backend.tensorflow_backend import *  # noqa: F403
elif BACKEND == "jax":
    from keras_smalldata._backend.jax_backend import *  # noqa: F403
elif BACKEND == "torch":
    from keras_smalldata._backend.torch_backend import *  # noqa: F403
else:
    from keras_smalldata._backend.unsupported_backend import *  # noqa: F403

if TYPE_CHECKING:
    # A type checker cannot read the star imports (their ``__all__`` is computed);
    # every backend module has these functions, with the same signatures.
    from keras_smalldata._backend.tensorflow_backend import (  # noqa: F401
        accelerator_available,
        compile_function,
        fused_batch_normalization,
        gradient_function,
        in_model_scope,
        in_tf_data_graph,
        model_scope,
        replica_count,
        shard_batch,
        xla_function,
    )


def backend_name() -> str:
    """Returns the name of the running Keras backend ("tensorflow", "jax"...)."""
    return BACKEND


def is_tensorflow() -> bool:
    """Returns True when Keras runs on the TensorFlow backend."""
    return BACKEND == "tensorflow"


def tensorflow():
    """Imports and returns the ``tensorflow`` module (for ``tf.data``, on every backend).

    A plain ``import tensorflow``: TensorFlow's start-up log lines are dropped
    only when the user opts in with `keras_smalldata.import_keras_quietly()`.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    import tensorflow

    return tensorflow


def is_tf_dataset(obj) -> bool:
    """Returns True when ``obj`` is a ``tf.data.Dataset`` (without importing TF)."""
    module = type(obj).__module__ or ""
    if not module.startswith("tensorflow"):
        return False
    return isinstance(obj, tensorflow().data.Dataset)
