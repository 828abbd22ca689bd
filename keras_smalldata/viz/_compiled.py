"""Compiled forward (and backward) passes of a model, for `viz`.

Eager execution of a conv net's forward and backward passes is several times
slower than the same ops compiled (on TensorFlow, measured on CPU: 57 ms vs
5 ms for one 64 px picture through two convolutions), so the repeated passes
of `viz` run compiled (`keras_smalldata._backend.compile_function`: a
`tf.function`, a `jax.jit` that is given the model's current weights at every
call, or eager PyTorch), with the model's batch normalisation fused on
TensorFlow. Tracing costs about as much as many steps, so a loop of calls on
the same model and layer (e.g. one `filter_pattern` per filter) reuses the
traced function from the library's `FunctionCache`, which follows the model
(`keras_smalldata._function_cache`).
"""

from __future__ import annotations

import weakref

import keras

from keras_smalldata import _backend
from keras_smalldata._models import nested_layers
from keras_smalldata.viz._recording import ReplacedCalls


def compile_for(model, fn, reduce_retracing: bool = False):
    """Compiles ``fn``, a pass through ``model``; every call sees the model's current weights.

    While ``fn`` is traced, the model's batch normalisation layers in
    inference mode compute with the backend's fused op where it has one
    (`fused_batch_normalization`): the same values, to float rounding, and
    on TensorFlow about 15% less CPU time for MobileNetV2.
    """
    model_ref = weakref.ref(model)

    def traced(*args):
        with fused_batch_normalization(model_ref()):
            return fn(*args)

    return _backend.compile_function(traced, model.variables, reduce_retracing)


class fused_batch_normalization(ReplacedCalls):  # noqa: N801 - used as a context manager, like a function
    """Within the ``with``, ``model``'s BatchNormalization layers in inference mode run fused.

    Only where the backend has a fused op (TensorFlow) and only for layers
    that are exactly `keras.layers.BatchNormalization` normalising the last
    axis of a 4-D feature map; a layer in training mode (``training=True``
    and trainable) and any other case run the layer's own ``call``. The
    layers' ``call`` is replaced on the instances for the duration of the
    ``with`` (as `CallRecorder` does) and always restored.
    """

    def __init__(self, model):
        super().__init__()
        self._layers = []
        if model is not None and _backend.is_tensorflow():
            self._layers = [
                layer
                for layer in nested_layers(model)
                if type(layer) is keras.layers.BatchNormalization
            ]

    def install(self) -> None:
        for layer in self._layers:
            self.replace(layer, _fused_call(layer, layer.call))


def _fused_call(layer, original):
    """``layer.call`` computing inference batch normalisation with the fused op."""

    def call(inputs, training=None, mask=None):
        ops = keras.ops
        if (
            (training and layer.trainable)
            or mask is not None
            or len(inputs.shape) != 4
            or layer.axis not in (-1, 3)
            or keras.backend.standardize_dtype(inputs.dtype) == "float64"
        ):
            return original(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        channels = int(x.shape[-1])
        scale = ops.cast(layer.gamma, "float32") if layer.scale else ops.ones((channels,))
        offset = ops.cast(layer.beta, "float32") if layer.center else ops.zeros((channels,))
        y = _backend.fused_batch_normalization(
            x,
            ops.cast(layer.moving_mean, "float32"),
            ops.cast(layer.moving_variance, "float32"),
            offset,
            scale,
            layer.epsilon,
        )
        if y is None:
            return original(inputs, training=training, mask=mask)
        return ops.cast(y, layer.compute_dtype)

    return call
