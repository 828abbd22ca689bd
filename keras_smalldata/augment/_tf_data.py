"""The augmentation layers inside ``tf.data``, under every backend.

``tf.data`` is the data pipeline of every Keras backend. Inside
``dataset.map(layer)`` under JAX or PyTorch a layer gets TensorFlow tensors,
which `keras.ops` cannot take: the layer computes with TensorFlow there,
through the twins of `keras.ops` below (`keras_ops_for`, `numpy_ops_for`),
compiled by `xla_function`. Its random draws come from `_tf_data_random`.
"""

from __future__ import annotations

import keras

from keras_smalldata import _backend
from keras_smalldata._backend.tensorflow_backend import tf_function


def _is_tensorflow_tensor(x) -> bool:
    return (type(x).__module__ or "").startswith("tensorflow")


def runs_in_tf_data(x) -> bool:
    """True for a TensorFlow tensor given to a layer while Keras runs another backend.

    That is what a layer sees inside ``tf.data`` (``dataset.map(layer)``) under
    the JAX or PyTorch backend.
    """
    return not _backend.is_tensorflow() and _is_tensorflow_tensor(x)


def in_tf_data(x) -> bool:
    """True when a layer given ``x`` runs inside a ``tf.data`` function, on any backend.

    Under JAX and PyTorch, ``x`` is a TensorFlow tensor (`runs_in_tf_data`);
    under TensorFlow, TensorFlow is tracing a ``tf.data`` function
    (`_backend.in_tf_data_graph`).
    """
    return runs_in_tf_data(x) or _backend.in_tf_data_graph()


def numpy_ops_for(x):
    """A NumPy-like op namespace that accepts ``x``.

    `keras.ops` for tensors of the running backend; `tf.experimental.numpy`
    for TensorFlow tensors inside ``tf.data`` under JAX or PyTorch.
    """
    if runs_in_tf_data(x):
        return _backend.tensorflow().experimental.numpy
    return keras.ops


def keras_ops_for(x):
    """`keras.ops`, or for the TensorFlow tensors of `runs_in_tf_data` the same
    functions done by TensorFlow (`tf.experimental.numpy`, with Keras' ``cast``,
    ``shape`` and ``arange``, which also take sizes known only as tensors)."""
    if runs_in_tf_data(x):
        return _TensorFlowOps()
    return keras.ops


class _TensorFlowOps:
    def __getattr__(self, name):
        return getattr(_backend.tensorflow().experimental.numpy, name)

    @staticmethod
    def cast(x, dtype):
        return _backend.tensorflow().cast(x, dtype)

    @staticmethod
    def shape(x):
        return _backend.tensorflow().shape(x)

    @staticmethod
    def arange(stop, dtype=None):
        return _backend.tensorflow().range(stop, dtype=dtype)


def xla_function(fn, tensorflow_tensors: bool = False):
    """Compiles a pure ``fn(*tensors)`` with XLA.

    For the backend's tensors, `_backend.xla_function`; for the TensorFlow
    tensors of `runs_in_tf_data` (``tensorflow_tensors=True``),
    ``tf.function(jit_compile=True)`` whatever the backend.
    """
    if tensorflow_tensors:
        return tf_function(fn, jit_compile=True, reduce_retracing=True)
    return _backend.xla_function(fn)


def without_autograph(fn):
    """``fn`` marked for ``tf.data`` to trace as written, not through AutoGraph.

    ``dataset.map`` converts the Python code it calls with AutoGraph; code that
    only branches on Python values needs none of it (and the conversion warns
    about library functions whose source it cannot read).
    """
    return _backend.tensorflow().autograph.experimental.do_not_convert(fn)
