"""Compiled forward (and backward) passes of a model, cached per model and per model state.

Eager execution of a conv net's forward and backward passes is several times
slower than the same ops compiled (on TensorFlow, measured on CPU: 57 ms vs
5 ms for one 64 px picture through two convolutions), so the repeated passes
of `viz` run compiled (`keras_smalldata._backend.compile_function`: a
`tf.function`, a `jax.jit` that is given the model's current weights at every
call, or eager PyTorch). Tracing costs about as much as many steps, so a loop
of calls on the same model and layer (e.g. one `filter_pattern` per filter)
reuses the traced function from a small cache.

A compiled function follows the model it was made for. Its weights' values
are read at every call; everything else it was traced with (the layers, what
they compute, which weights exist, what is trainable) is in the model's
`model_signature`, and a cached value is only used while the model's
signature is the one it was made with: a layer whose activation was replaced,
a layer added to a Sequential model, a weight added, a layer frozen all give
a new function, never the old result.
"""

from __future__ import annotations

import collections
import weakref

import keras

from keras_smalldata import _backend
from keras_smalldata._models import nested_layers
from keras_smalldata.viz._recording import replace_call, restore_calls

# Values kept as they are in a signature (their identity says nothing).
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


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


class fused_batch_normalization:  # noqa: N801 - used as a context manager, like a function
    """Within the ``with``, ``model``'s BatchNormalization layers in inference mode run fused.

    Only where the backend has a fused op (TensorFlow) and only for layers
    that are exactly `keras.layers.BatchNormalization` normalising the last
    axis of a 4-D feature map; a layer in training mode (``training=True``
    and trainable) and any other case run the layer's own ``call``. The
    layers' ``call`` is replaced on the instances for the duration of the
    ``with`` (as `CallRecorder` does) and always restored.
    """

    def __init__(self, model):
        self._layers = []
        if model is not None and _backend.is_tensorflow():
            self._layers = [
                layer
                for layer in nested_layers(model)
                if type(layer) is keras.layers.BatchNormalization
            ]
        self._saved = []

    def __enter__(self):
        try:
            for layer in self._layers:
                replace_call(layer, _fused_call(layer, layer.call), self._saved)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info):
        self._restore()
        return False

    def _restore(self):
        restore_calls(self._saved)


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


def _plain_value(value):
    """A value as it goes into a signature: itself when plain, else its type and identity."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value):
        return value
    return (type(value).__qualname__, id(value))


# Public attributes that Keras itself keeps on every layer and model (training
# state: compiled functions, optimizer, history, flags); they say nothing of
# what the model computes and change with compile(), fit() and predict().
_KERAS_ATTRIBUTES = frozenset(
    (
        "activity_regularizer", "autocast", "build", "built",
        "call_signature_parameters", "compiled", "dtype_policy", "history",
        "input_spec", "jit_compile", "loss", "name", "optimizer",
        "predict_function", "quantize", "run_eagerly", "steps_per_execution",
        "stop_evaluating", "stop_predicting", "stop_training", "supports_jit",
        "supports_masking", "test_function", "train_function", "training",
        "unrolled_steps_per_execution",
    )
)


def _attributes(layer) -> tuple:
    """A layer's own public attributes: plain values as they are, others by identity.

    For layers without a working ``get_config`` and for subclassed models,
    whose ``call`` may read any attribute (``self.scale = 2.0``).
    """
    return tuple(
        (name, _plain_value(value))
        for name, value in vars(layer).items()
        if not name.startswith("_") and name not in _KERAS_ATTRIBUTES
    )


def _is_graph_model(layer) -> bool:
    """Functional and Sequential models: what they compute is their layers'."""
    return isinstance(layer, keras.Sequential) or getattr(layer, "outputs", None) is not None


def _layer_signature(layer) -> tuple:
    if isinstance(layer, keras.Model):
        # A graph model's own config is its layers' (already in the signature)
        # and costly to build; the list of its layers is what can change.
        own = tuple(id(sub) for sub in getattr(layer, "layers", None) or ())
        if not _is_graph_model(layer):
            own += _attributes(layer)
        return (type(layer), id(layer), layer.trainable, own)
    try:
        config = repr(layer.get_config())
    except Exception:  # a custom layer without get_config
        config = _attributes(layer)
    return (type(layer), id(layer), layer.trainable, config)


def model_signature(model) -> tuple:
    """What a compiled pass through ``model`` was traced with, apart from weight values.

    Every layer (nested models included): its class, identity, ``trainable``
    flag and ``get_config()`` (for a subclassed model or a layer without a
    config, its public attributes); and every weight: its identity, shape,
    dtype and ``trainable`` flag. Two equal signatures mean a function traced
    for the first state computes what the model computes in the second (the
    weights' values are read at every call). It costs about 0.1 ms per layer
    (25 ms for MobileNetV2's 156 layers on a CPU, measured): it is computed
    once per public call.
    """
    layers = tuple(_layer_signature(layer) for layer in nested_layers(model))
    weights = tuple(
        (id(v), tuple(v.shape), v.dtype, v.trainable) for v in model.weights
    )
    return (_layer_signature(model), layers, weights)


class FunctionCache:
    """A small least-recently-used cache of values built for a model (compiled functions, facts).

    Entries hold a weak reference to their model (a model that is gone, and
    whose id was reused, never matches) and the model's `model_signature`
    when they were built: an entry is only used while the model's signature
    is the same, otherwise it is built again and replaces the old one.
    """

    def __init__(self, size: int = 8):
        self._size = size
        self._entries = collections.OrderedDict()

    def get(self, model, key, build, signature=None):
        """The value cached for ``(model, *key)``, built with ``build()`` when missing or stale.

        Args:
            model: The model the value was built for.
            key: A tuple of hashable values (layer path, picture shape...).
            build: Called without arguments to build the value.
            signature: ``model_signature(model)``, when the caller has it
                (computed here otherwise).
        """
        if signature is None:
            signature = model_signature(model)
        full_key = (id(model),) + tuple(key)
        entry = self._entries.get(full_key)
        if entry is not None and entry[0]() is model and entry[1] == signature:
            self._entries.move_to_end(full_key)
            return entry[2]
        value = build()
        self._entries[full_key] = (weakref.ref(model), signature, value)
        self._entries.move_to_end(full_key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value

    def clear(self):
        self._entries.clear()
