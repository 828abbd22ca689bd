"""Running a model once while recording what chosen layers compute.

The approach: for the duration of one forward pass, each chosen layer's
``call`` is wrapped (on the layer instance, restored afterwards in a
``finally``) so that its inputs and output are recorded as they flow through
the model. The model runs exactly as the user wrote it, ``model(x,
training=False)``, whatever its type (Functional, Sequential, subclassed) and
however deeply the chosen layer is nested, so:

- there is no "Graph disconnected" error: no sub-model is built from symbolic
  tensors of a nested base;
- the recorded activation is the very tensor the rest of the model consumes,
  so a gradient recorder started before the pass gives the gradient of the
  final score with respect to it, from ONE forward pass;
- the model is not changed: no layer, weight, node or activation of the user's
  model is modified (calling a layer eagerly adds no graph node).

A forward pass can also be stopped as soon as every chosen layer has run
(filter patterns need nothing after their layer).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

_MISSING = object()


class _StopForward(BaseException):
    """Raised inside a recorded call to end a forward pass early.

    A BaseException so that no ``except Exception`` on the way (Keras adds
    argument information to exceptions raised in a layer call) rewrites it.
    """


@dataclasses.dataclass
class RecordedCall:
    """One call of a layer during a recorded forward pass."""

    path: str
    layer: keras.layers.Layer
    args: tuple
    kwargs: dict
    output: Any


class CallRecorder:
    """Context manager recording the calls of chosen layers during forward passes.

    Args:
        layers: ``(path, layer)`` pairs to record.
        on_output: Optional function applied to each recorded output tensor
            (e.g. a gradient recorder's ``watch``) before it flows on.
        stop_after: Paths whose first call ends the forward pass as soon as
            all of them have run (see `run`).
    """

    def __init__(self, layers, on_output=None, stop_after=()):
        self._layers = []
        seen = set()
        for path, layer in layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                self._layers.append((path, layer))
        self._on_output = on_output
        self._stop_after = set(stop_after)
        self._saved = []
        self.calls: list[RecordedCall] = []

    def __enter__(self):
        try:
            for path, layer in self._layers:
                self._install(path, layer)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info):
        self._restore()
        return False

    def _install(self, path, layer):
        saved = layer.__dict__.get("call", _MISSING)
        original = layer.call

        def recorded_call(*args, **kwargs):
            output = original(*args, **kwargs)
            if self._on_output is not None and keras.ops.is_tensor(output):
                output = self._on_output(output)
            self.calls.append(RecordedCall(path, layer, args, kwargs, output))
            if self._stop_after and self._stop_after <= {c.path for c in self.calls}:
                raise _StopForward()
            return output

        # object.__setattr__: the hook is not a tracked attribute of the layer.
        object.__setattr__(layer, "call", recorded_call)
        self._saved.append((layer, saved))

    def _restore(self):
        while self._saved:
            layer, saved = self._saved.pop()
            if saved is _MISSING:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", saved)

    def run(self, model, inputs):
        """Runs ``model(inputs, training=False)``; returns its output, or None when stopped early."""
        self.calls.clear()
        try:
            return model(inputs, training=False)
        except _StopForward:
            return None

    def calls_of(self, path: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.path == path]

    def single_call(self, path: str, model) -> RecordedCall:
        """The one call of the layer at ``path``; raises if it ran zero or several times."""
        calls = self.calls_of(path)
        if not calls:
            raise ValueError(
                f"Layer {path!r} did not run when model {model.name!r} was called: "
                "it is not on the path from the model's input to its output."
            )
        if len(calls) > 1:
            raise ValueError(
                f"Layer {path!r} ran {len(calls)} times in one forward pass of model "
                f"{model.name!r} (a shared layer), so its activation is ambiguous. "
                "Choose a layer that runs once."
            )
        return calls[0]


def as_batch(images, name: str = "images"):
    """Converts pictures to a float tensor with a batch axis.

    Returns:
        ``(tensor, single)`` where ``single`` says a lone picture was given.
    """
    if keras.ops.is_tensor(images):
        array = images
    else:
        try:
            array = np.asarray(images)
        except Exception as error:  # ragged lists etc.
            raise TypeError(
                f"{name} must be an array of pictures (batch, height, width, channels), "
                f"got {type(images).__name__}."
            ) from error
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise TypeError(
                f"{name} must hold numbers, got an array of dtype {array.dtype}."
            )
    ndim = len(array.shape)
    if ndim not in (3, 4):
        raise ValueError(
            f"{name} must be one picture (height, width, channels) or a batch "
            f"(batch, height, width, channels), got shape {tuple(array.shape)}."
        )
    tensor = keras.ops.convert_to_tensor(array)
    if not keras.backend.is_float_dtype(tensor.dtype):
        tensor = keras.ops.cast(tensor, "float32")
    if ndim == 3:
        return keras.ops.expand_dims(tensor, 0), True
    return tensor, False


def to_numpy(value):
    return keras.tree.map_structure(lambda t: keras.ops.convert_to_numpy(t), value)


# ---------------------------------------------------------------------------
# The model's output: which activation ends it, and the score before it.

_SQUASHING = ("softmax", "sigmoid")


def _activation_name(fn) -> str | None:
    if fn is None:
        return None
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.lower()


@dataclasses.dataclass
class OutputScores:
    """The model's output for a batch, and the scores to explain.

    Attributes:
        outputs: The model's output, shape (batch, units).
        logits: The scores before the final softmax/sigmoid when one was
            found, else the outputs themselves, shape (batch, units).
        kind: "softmax", "sigmoid" (outputs are probabilities; logits are
            the pre-activation scores) or "scores" (no final softmax/sigmoid
            found: outputs are taken as logits).
    """

    outputs: Any
    logits: Any
    kind: str

    @property
    def units(self) -> int:
        return int(self.outputs.shape[-1])

    def probabilities(self):
        """Class probabilities (batch, units); one sigmoid unit stays one column."""
        if self.kind in _SQUASHING:
            return self.outputs
        if self.units == 1:
            return keras.ops.sigmoid(self.logits)
        return keras.ops.softmax(self.logits, axis=-1)


def output_layer_call(recorder: CallRecorder, outputs) -> RecordedCall | None:
    """The innermost recorded layer call whose output is the model's output tensor."""
    for call in recorder.calls:
        if call.output is outputs and not isinstance(call.layer, keras.Model):
            return call
    return None


def output_scores(recorder: CallRecorder, outputs, model) -> OutputScores:
    """Finds the pre-activation scores of the model's output without changing the model.

    When the layer producing the output is a `Dense` with a softmax or
    sigmoid activation, the scores are recomputed from the inputs it
    received: ``inputs @ kernel + bias``. When it is an `Activation` or
    `Softmax` layer, the scores are its input.
    """
    if not keras.ops.is_tensor(outputs):
        raise ValueError(
            f"model {model.name!r} has several outputs ({type(outputs).__name__}); "
            "class activation maps need a model with one output of shape "
            "(batch, classes)."
        )
    if len(outputs.shape) != 2:
        raise ValueError(
            f"model {model.name!r} outputs shape {tuple(outputs.shape)}; class "
            "activation maps need one output of shape (batch, classes)."
        )
    call = output_layer_call(recorder, outputs)
    if call is not None and call.args:
        layer, inputs = call.layer, call.args[0]
        if isinstance(layer, keras.layers.Dense) and not getattr(
            layer, "quantization_mode", None
        ):
            kind = _activation_name(layer.activation)
            if kind in _SQUASHING and keras.ops.is_tensor(inputs):
                logits = keras.ops.matmul(
                    inputs, keras.ops.cast(layer.kernel, inputs.dtype)
                )
                if layer.use_bias:
                    logits = logits + keras.ops.cast(layer.bias, inputs.dtype)
                return OutputScores(outputs, logits, kind)
        if isinstance(layer, keras.layers.Softmax) and keras.ops.is_tensor(inputs):
            return OutputScores(outputs, inputs, "softmax")
        if isinstance(layer, keras.layers.Activation) and keras.ops.is_tensor(inputs):
            kind = _activation_name(layer.activation)
            if kind in _SQUASHING:
                return OutputScores(outputs, inputs, kind)
    return OutputScores(outputs, outputs, "scores")


def all_layers_recorder(model, on_output=None) -> CallRecorder:
    """A recorder on every layer of ``model`` (nested ones included)."""
    from keras_smalldata.viz._layers import walk_layers

    return CallRecorder(list(walk_layers(model)), on_output=on_output)


def predict_scores(model, images) -> OutputScores:
    """Runs ``model`` on a batch and returns its outputs with their pre-activation scores."""
    with all_layers_recorder(model) as recorder:
        outputs = recorder.run(model, images)
        return output_scores(recorder, outputs, model)
