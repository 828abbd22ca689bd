"""The cache of compiled functions, keyed so that a function follows the model it was made for.

Tracing a pass through a model costs about as much as many calls of it, so
the library keeps its compiled functions (`viz`'s passes, `extract_features`'
inference call, the augmentation layers' transformations) in a
`FunctionCache`. A compiled function reads the weights' values when it runs;
everything else it was traced with (the layers, what they compute, which
variables exist, what is trainable) is in the model's `model_signature`, and
a cached function is only used while the model's signature is the one it was
made with: a layer whose activation was replaced, a layer added to a
Sequential model, a variable added, a layer frozen all give a new function,
never the old result.
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Any

import keras

from keras_smalldata._models import nested_layers, public_attributes

# Values kept as they are in a signature (their identity says nothing).
_PLAIN = (type(None), bool, int, float, complex, str, bytes)

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


def _plain_value(value):
    """A value as it goes into a signature: itself when plain, else its type and identity."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value):
        return value
    return (type(value).__qualname__, id(value))


def _attributes(layer) -> tuple:
    """A layer's own public attributes: plain values as they are, others by identity.

    For layers without a working ``get_config`` and for subclassed models,
    whose ``call`` may read any attribute (``self.scale = 2.0``).
    """
    return tuple(
        (name, _plain_value(value))
        for name, value in public_attributes(layer)
        if name not in _KERAS_ATTRIBUTES
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
    config: str | tuple
    try:
        config = repr(layer.get_config())
    except Exception:  # a custom layer without get_config
        config = _attributes(layer)
    return (type(layer), id(layer), layer.trainable, config)


def model_signature(model) -> tuple:
    """What a compiled pass through ``model`` was traced with, apart from variable values.

    Every layer (nested models included): its class, identity, ``trainable``
    flag and ``get_config()`` (for a subclassed model or a layer without a
    config, its public attributes); and every variable (weights and random
    generators' states): its identity, shape, dtype and ``trainable`` flag.
    Two equal signatures mean a function traced for the first state computes
    what the model computes in the second (the variables' values are read at
    every call). It costs about 0.1 ms per layer (25 ms for MobileNetV2's 156
    layers on a CPU, measured): it is computed once per public call.

    Args:
        model: A Keras layer or model.

    Returns:
        A tuple of plain values, compared with ``==``.
    """
    layers = tuple(_layer_signature(layer) for layer in nested_layers(model))
    variables = tuple(
        (id(v), tuple(v.shape), v.dtype, v.trainable) for v in model.variables
    )
    return (_layer_signature(model), layers, variables)


class FunctionCache:
    """A small least-recently-used cache of values built for a model (compiled functions, facts).

    An entry made for a model holds a weak reference to it (it keeps no model
    alive, is dropped when the model is gone, and a model whose id was
    reused never matches) and the model's `model_signature` when it was
    built: it is only used while the model's signature is the same,
    otherwise it is built again and replaces the old one. An entry made
    without a model (``model=None``) is keyed by ``key`` alone, which must
    then hold everything the value was built from.

    Args:
        size: How many entries are kept (the least recently used go first).

    Example:

    ```python
    _PASSES = FunctionCache(size=4)
    run = _PASSES.get(model, ("forward",), lambda: compile_for(model, fn))
    ```
    """

    def __init__(self, size: int = 8):
        self._size = size
        # (id(model) or None, *key) -> (weak reference to the model or None, signature, value)
        self._entries: collections.OrderedDict[tuple, tuple[weakref.ref | None, Any, Any]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        # Keys of entries whose model is gone, dropped at the next `get`
        # (a weak reference's callback may run in the middle of a `get`).
        self._gone: collections.deque[weakref.ref] = collections.deque()

    def get(self, model, key: tuple, build, signature=None):
        """The value cached for ``(model, *key)``, built with ``build()`` when missing or stale.

        Args:
            model: The model the value was built for, or None for a value
                that ``key`` describes entirely.
            key: A tuple of hashable values (layer path, picture shape...).
            build: Called without arguments to build the value.
            signature: ``model_signature(model)``, when the caller has it
                (computed here otherwise).

        Returns:
            The cached or newly built value.
        """
        if model is None:
            full_key, signature, alive = (None,) + tuple(key), None, lambda _: True
        else:
            if signature is None:
                signature = model_signature(model)
            full_key, alive = (id(model),) + tuple(key), lambda ref: ref() is model
        with self._lock:
            self._drop_gone()
            entry = self._entries.get(full_key)
            if entry is not None and alive(entry[0]) and entry[1] == signature:
                self._entries.move_to_end(full_key)
                return entry[2]
        value = build()
        ref = None if model is None else weakref.ref(model, self._gone.append)
        with self._lock:
            self._entries[full_key] = (ref, signature, value)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def _drop_gone(self):
        while self._gone:
            ref = self._gone.popleft()
            for full_key, entry in list(self._entries.items()):
                if entry[0] is ref:
                    del self._entries[full_key]

    def clear(self):
        """Forgets every entry."""
        with self._lock:
            self._entries.clear()
