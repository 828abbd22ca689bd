"""The one place that knows which Keras backend is running.

Everything TensorFlow-only in the library (``tf.data``, ``tf.GradientTape``)
goes through the small helpers here, so that the rest of the code stays written
against ``keras.ops`` and other backends can be supported later.
"""

from __future__ import annotations

import importlib
import os


def backend_name() -> str:
    """Returns the name of the running Keras backend ("tensorflow", "jax"...)."""
    import keras

    return keras.backend.backend()


def is_tensorflow() -> bool:
    """Returns True when Keras runs on the TensorFlow backend."""
    return backend_name() == "tensorflow"


def tensorflow():
    """Imports and returns the ``tensorflow`` module, quietly.

    TensorFlow prints C++ start-up logs on import unless told not to. We only
    lower that level when the user has not chosen one, so their own setting
    always wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return importlib.import_module("tensorflow")


def is_tf_dataset(obj) -> bool:
    """Returns True when ``obj`` is a ``tf.data.Dataset`` (without importing TF)."""
    module = type(obj).__module__ or ""
    if not module.startswith("tensorflow"):
        return False
    return isinstance(obj, tensorflow().data.Dataset)


def runs_in_tf_data(x) -> bool:
    """True for a TensorFlow tensor given to a layer while Keras runs another backend.

    That is what a layer sees inside ``tf.data`` (``dataset.map(layer)``) under
    the JAX or PyTorch backend: `keras.ops` cannot take such tensors, so the layer
    must compute with TensorFlow there (see `numpy_ops_for`).
    """
    if is_tensorflow():
        return False
    return (type(x).__module__ or "").startswith("tensorflow")


def numpy_ops_for(x):
    """A NumPy-like op namespace that accepts ``x``.

    `keras.ops` for tensors of the running backend; `tf.experimental.numpy`
    for TensorFlow tensors inside ``tf.data`` under JAX or PyTorch.
    """
    if runs_in_tf_data(x):
        return tensorflow().experimental.numpy
    import keras

    return keras.ops
