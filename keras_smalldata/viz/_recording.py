"""Running a model once while recording what chosen layers compute.

The approach: for the duration of one forward pass, each chosen layer's
``call`` is wrapped (on the layer instance, restored afterwards in a
``finally``) so that its inputs and output are recorded as they flow through
the model. The model runs exactly as the user wrote it, ``model(x,
training=False)``, whatever its type (Functional, Sequential, subclassed) and
however deeply the chosen layer is nested, so:

- there is no "Graph disconnected" error: no sub-model is built from symbolic
  tensors of a nested base;
- the recorded activation is the very tensor the rest of the model consumes.
  A recorded output can be replaced on its way (``transform``): adding a zero
  "probe" there gives the gradient of the final score with respect to the
  activation, from ONE forward pass, on every backend;
- the value a layer computes *before* its activation function (a Dense or
  Conv2D with ``activation="relu"``, ``"softmax"``...) can be recorded too: the
  layer's ``activation`` is wrapped for the call so that it sees its input
  pass by, and it still computes the same output;
- the model is not changed: no layer, weight, node or activation of the user's
  model is modified (calling a layer eagerly adds no graph node).

A forward pass can also be stopped as soon as every chosen layer has run
(filter patterns need nothing after their layer).
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any

import keras
import numpy as np

from keras_smalldata import _backend

_MISSING = object()


class ReplacedCalls:
    """Context manager base: some layers' ``call`` replaced while open, always put back.

    A subclass replaces calls in `install` with `replace`; an error during
    `install` puts back what was already replaced, and leaving the ``with``
    puts back everything, the last replacement first.
    """

    def __init__(self):
        self._saved: list = []

    def install(self) -> None:
        raise NotImplementedError

    def replace(self, layer, call) -> None:
        """Sets ``layer.call`` to ``call`` on the instance.

        ``object.__setattr__``: the replacement is not a tracked attribute of
        the layer. What the instance had before (usually nothing: ``call``
        comes from the class) is kept to be put back.
        """
        previous = layer.__dict__.get("call", _MISSING)
        object.__setattr__(layer, "call", call)
        self._saved.append((layer, previous))

    def restore(self) -> None:
        """Puts back every replaced ``call``, the last one first."""
        while self._saved:
            layer, previous = self._saved.pop()
            if previous is _MISSING:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous)

    def __enter__(self):
        try:
            self.install()
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(self, *exc_info):
        self.restore()
        return False


class _StopForward(BaseException):
    """Raised inside a recorded call to end a forward pass early.

    A BaseException so that no ``except Exception`` on the way (Keras adds
    argument information to exceptions raised in a layer call) rewrites it.
    """


def activation_name(fn) -> str | None:
    """The lower-case name of an activation function ("relu", "softmax"...), or None."""
    if fn is None:
        return None
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.lower()


# Layers whose whole job is an activation function: the value before it is their input.
ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Softmax,
)


def has_own_activation(layer) -> bool:
    """True for a layer with a non-linear ``activation`` it applies to its own output (Dense, Conv2D...).

    Activation layers (``Activation``, ``ReLU``...) are not counted: what they
    receive is their input.
    """
    if isinstance(layer, ACTIVATION_LAYERS):
        return False
    return activation_name(getattr(layer, "activation", None)) not in (None, "linear")


@dataclasses.dataclass
class RecordedCall:
    """One call of a layer during a recorded forward pass.

    ``pre_activation`` is what the layer's own activation function received
    (recorded only when asked for, for layers that have one), else None.
    """

    path: str
    layer: keras.layers.Layer
    args: tuple
    kwargs: dict
    output: Any
    pre_activation: Any = None

    def before_activation(self):
        """The value before the layer's activation: its activation's input,
        an activation layer's input, or else its output."""
        if self.pre_activation is not None:
            return self.pre_activation
        if isinstance(self.layer, ACTIVATION_LAYERS) and self.args:
            return self.args[0]
        return self.output


class CallRecorder(ReplacedCalls):
    """Context manager recording the calls of chosen layers during forward passes.

    Args:
        layers: ``(path, layer)`` pairs to record.
        transform: Optional ``{path: function}``; the function is applied to
            that layer's output tensor (e.g. adding a probe) before it flows on.
        pre_activation: Paths whose value before the layer's own activation
            function is recorded as well (see `RecordedCall.pre_activation`).
        stop_after: Paths whose first call ends the forward pass as soon as
            all of them have run (see `run`).
    """

    def __init__(self, layers, transform=None, pre_activation=(), stop_after=()):
        super().__init__()
        self._layers = []
        seen = set()
        for path, layer in layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                self._layers.append((path, layer))
        self._transform = dict(transform or {})
        self._pre_activation = set(pre_activation)
        self._stop_after = set(stop_after)
        self.calls: list[RecordedCall] = []

    def install(self) -> None:
        for path, layer in self._layers:
            self._install(path, layer)

    def _install(self, path, layer):
        original = layer.call
        transform = self._transform.get(path)
        spy = path in self._pre_activation and has_own_activation(layer)

        def recorded_call(*args, **kwargs):
            seen = []
            if spy:
                activation = layer.activation

                def watched_activation(x, *a, **k):
                    seen.append(x)
                    return activation(x, *a, **k)

                # Swapped for this call only, on this instance; same output.
                object.__setattr__(layer, "activation", watched_activation)
                try:
                    output = original(*args, **kwargs)
                finally:
                    object.__setattr__(layer, "activation", activation)
            else:
                output = original(*args, **kwargs)
            if transform is not None and keras.ops.is_tensor(output):
                output = transform(output)
            call = RecordedCall(path, layer, args, kwargs, output)
            call.pre_activation = seen[-1] if seen else None
            self.calls.append(call)
            if self._stop_after and self._stop_after <= {c.path for c in self.calls}:
                raise _StopForward()
            return output

        self.replace(layer, recorded_call)

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
        return single_run(path, self.calls, model)


def single_run(path: str, runs, model):
    """The one element of ``runs`` (calls with a ``path``) for ``path``.

    Raises:
        ValueError: When the layer did not run, or ran several times (a
            shared layer, whose activation is ambiguous).
    """
    matches = [run for run in runs if run.path == path]
    if not matches:
        raise ValueError(
            f"Layer {path!r} did not run when model {model.name!r} was called: "
            "it is not on the path from the model's input to its output."
        )
    if len(matches) > 1:
        raise ValueError(
            f"Layer {path!r} ran {len(matches)} times in one forward pass of model "
            f"{model.name!r} (a shared layer), so its activation is ambiguous. "
            "Choose a layer that runs once."
        )
    return matches[0]


def _is_batch_source(images) -> bool:
    """True for what yields pictures instead of holding them: datasets, generators, iterators."""
    if _backend.is_tf_dataset(images) or isinstance(images, keras.utils.PyDataset):
        return True
    if isinstance(images, (list, tuple, np.ndarray)) or keras.ops.is_tensor(images):
        return False
    if isinstance(images, collections.abc.Iterator):
        return True
    return type(images).__name__ == "DataLoader"  # torch.utils.data, not imported


def _not_arrays(name: str, images) -> TypeError:
    return TypeError(
        f"`{name}` must hold the pictures themselves: pass arrays, not a dataset. "
        f"Received: {name} of type {type(images).__name__}. Take a batch first, "
        "e.g. images, labels = next(iter(dataset)), then pass images (or "
        "images[:4]); an array or tensor of shape (batch, height, width, "
        "channels), or one picture (height, width, channels)."
    )


def as_batch(images, name: str = "images"):
    """Converts pictures to a float tensor with a batch axis.

    Raises:
        TypeError: For a dataset, a generator or an iterator (pass arrays),
            and for pictures that are not numbers or not all of one size.
        ValueError: For a wrong number of axes, or no picture at all.

    Returns:
        ``(tensor, single)`` where ``single`` says a lone picture was given.
    """
    if keras.ops.is_tensor(images):
        array = images
    else:
        if _is_batch_source(images):
            raise _not_arrays(name, images)
        try:
            array = np.asarray(images)
        except Exception as error:  # ragged lists etc.
            if isinstance(images, (list, tuple)):
                raise _different_sizes(name, images) from error
            raise TypeError(
                f"{name} must be an array of pictures (batch, height, width, channels), "
                f"got {type(images).__name__}."
            ) from error
        if array.dtype == object:
            if isinstance(images, (list, tuple)) and len(images) and all(
                np.ndim(picture) == 3 for picture in images
            ):
                raise _different_sizes(name, images)
            if array.ndim == 0:  # something numpy cannot see into: a dataset of some kind
                raise _not_arrays(name, images)
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
    if ndim == 4 and array.shape[0] == 0:
        raise ValueError(
            f"`{name}` holds no pictures: shape {tuple(array.shape)}. Pass at least "
            "one picture: a batch (batch, height, width, channels) with batch >= 1, "
            "or one picture (height, width, channels)."
        )
    tensor = keras.ops.convert_to_tensor(array)
    if not keras.backend.is_float_dtype(tensor.dtype):
        tensor = keras.ops.cast(tensor, "float32")
    if ndim == 3:
        return keras.ops.expand_dims(tensor, 0), True
    return tensor, False


def _different_sizes(name: str, images) -> TypeError:
    sizes = sorted({tuple(np.shape(picture)) for picture in images})
    return TypeError(
        f"`{name}` holds pictures of different sizes {sizes[:4]}: a batch needs one "
        "size. Resize them first (e.g. keras.ops.image.resize(picture, (height, "
        "width)) for each, or image_dataset_from_directory(image_size=...))."
    )


def to_numpy(value):
    return keras.tree.map_structure(lambda t: keras.ops.convert_to_numpy(t), value)
