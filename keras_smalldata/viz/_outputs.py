"""What a classifier outputs: probabilities or scores, and the scores before its final squashing.

Grad-CAM explains a class score taken *before* the final softmax or sigmoid
(a saturated softmax has no gradient), and every figure reports the model's
probabilities. Both need to know how the model ends, which its layers do not
always say: the output may come from a ``Dense(activation="softmax")``, a
``Softmax`` or ``Activation`` layer, an op (``keras.ops.softmax(x)`` in a
Functional model or in a subclassed model's ``call``), a ``Lambda`` after the
softmax, or nothing at all (a model that outputs logits). One eager forward
pass, recorded layer by layer (`inspect_model`), tells:

1. the layer that produced the output, when it declares how it ends: a
   softmax or sigmoid activation (the scores are what that activation
   received), or a linear Dense/convolution (the outputs are logits);
2. otherwise, a recorded tensor of which the output is, to float tolerance,
   the softmax (over either axis), the sigmoid, or a copy;
3. otherwise, outputs whose rows (or columns) are probability distributions
   are taken as probabilities, anything else as logits.

The probabilities reported are then always the model's own outputs, except
for a model that outputs logits, whose probabilities are their softmax (their
sigmoid for one unit).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import keras
import numpy as np

from keras_smalldata._arguments import is_integer, received
from keras_smalldata._function_cache import FunctionCache, model_signature
from keras_smalldata.viz._compiled import compile_for
from keras_smalldata.viz._layers import model_layers
from keras_smalldata.viz._recording import (
    ACTIVATION_LAYERS,
    CallRecorder,
    activation_name,
    has_own_activation,
)

_SQUASHING = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class OutputHead:
    """How a model's output ends.

    Attributes:
        kind: "softmax" or "sigmoid" (the outputs are probabilities, and the
            scores before the squashing were found), "probabilities" (the
            outputs are probabilities; the scores are their logarithms) or
            "logits" (the outputs are the scores).
        path: For "softmax" and "sigmoid", the layer whose call holds the
            scores.
        role: "output" (the layer's output) or "before_activation" (what its
            activation function received, see
            `RecordedCall.before_activation`).
    """

    kind: str
    path: str | None = None
    role: str | None = None

    @property
    def recorded_layers(self) -> tuple[str, ...]:
        """The layer paths a forward pass must record to compute `scores`."""
        return (self.path,) if self.path is not None else ()

    @property
    def needs_pre_activation(self) -> bool:
        return self.role == "before_activation"

    def probabilities(self, outputs):
        """The class probabilities, shape (batch, units), from the model's outputs."""
        if self.kind != "logits":
            return outputs
        if int(outputs.shape[-1]) == 1:
            return keras.ops.sigmoid(outputs)
        return keras.ops.softmax(outputs, axis=-1)

    def scores(self, recorder: CallRecorder, outputs, model):
        """The scores before the final squashing, shape (batch, units)."""
        if self.kind == "logits":
            return outputs
        if self.kind == "probabilities":
            tiny = keras.config.epsilon()
            log_p = keras.ops.log(keras.ops.clip(outputs, tiny, 1.0))
            if int(outputs.shape[-1]) == 1:  # log-odds, the sigmoid's logit
                return log_p - keras.ops.log(keras.ops.clip(1.0 - outputs, tiny, 1.0))
            return log_p
        assert self.path is not None  # "softmax" and "sigmoid" heads name their layer
        call = recorder.single_call(self.path, model)
        return call.output if self.role == "output" else call.before_activation()


def _declared_head(call) -> OutputHead | None:
    """How a layer says its output ends, or None when it does not say."""
    layer = call.layer
    if isinstance(layer, keras.layers.Softmax):
        return OutputHead("softmax", call.path, "before_activation")
    name = activation_name(getattr(layer, "activation", None))
    if name in _SQUASHING and (
        isinstance(layer, ACTIVATION_LAYERS) or call.pre_activation is not None
    ):
        return OutputHead(name, call.path, "before_activation")
    if (
        name == "linear"
        and not isinstance(layer, ACTIVATION_LAYERS)
        and hasattr(layer, "kernel")
    ):
        return OutputHead("logits")
    return None


def _float64(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float64")


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-6))


def _is_distribution(values: np.ndarray, axis: int) -> bool:
    return bool(
        values.min() >= -1e-6
        and values.max() <= 1.0 + 1e-6
        and np.allclose(values.sum(axis=axis), 1.0, atol=1e-3)
    )


def find_output_head(calls, outputs) -> OutputHead:
    """How ``outputs`` ends, from an eager recording of every layer (see the module docstring)."""
    calls = [c for c in calls if not isinstance(c.layer, keras.Model)]
    producer = next((c for c in reversed(calls) if c.output is outputs), None)
    if producer is not None:
        head = _declared_head(producer)
        if head is not None:
            return head
    values = _float64(outputs)
    for call in reversed(calls):
        candidates = [("output", call.output)]
        if call.pre_activation is not None:
            candidates.append(("before_activation", call.pre_activation))
        for role, tensor in candidates:
            if (
                tensor is outputs
                or not keras.ops.is_tensor(tensor)
                or tuple(tensor.shape) != tuple(outputs.shape)
            ):
                continue
            x = _float64(tensor)
            if role == "output" and _close(values, x):  # a copy (Lambda, Identity...)
                head = _declared_head(call)
                if head is not None:
                    return head
            elif _close(values, _softmax(x, -1)) or (
                len(x) > 1 and _close(values, _softmax(x, 0))
            ):
                return OutputHead("softmax", call.path, role)
            elif _close(values, 1.0 / (1.0 + np.exp(-x))):
                return OutputHead("sigmoid", call.path, role)
    units = values.shape[-1]
    if units > 1 and (_is_distribution(values, -1) or _is_distribution(values, 0)):
        return OutputHead("probabilities")
    if units == 1 and values.min() >= 0.0 and values.max() <= 1.0:
        warnings.warn(
            "The model's single output unit ends in an operation keras_smalldata "
            "cannot see, and its values lie in [0, 1]: it is taken as a "
            "probability (as from a sigmoid), not as a logit. End the model with a "
            "sigmoid layer (e.g. Dense(1, activation='sigmoid')) or with a linear "
            "Dense (logits) to remove the doubt.",
            UserWarning,
            stacklevel=4,
        )
        return OutputHead("probabilities")
    return OutputHead("logits")


# ---------------------------------------------------------------------------
# One eager, recorded forward pass per model and picture shape.


@dataclasses.dataclass(frozen=True)
class LayerRun:
    """One layer call of a recorded pass: which layer, and the shape it output."""

    path: str
    layer: keras.layers.Layer
    shape: tuple | None
    dtype: str | None


@dataclasses.dataclass(frozen=True)
class ModelInspection:
    """What one eager pass of a model showed: the layer calls in order, how its output ends.

    Attributes:
        runs: Every layer call, in the order the layers ran (nested models
            included, after their own layers).
        head: How the output ends, or None when the model's output is not
            one (batch, classes) tensor (``head_problem`` says why).
        units: The number of output units (1 for one sigmoid unit).
    """

    runs: tuple
    head: OutputHead | None
    head_problem: str | None
    units: int | None = None

    def require_head(self) -> OutputHead:
        if self.head is None:
            raise ValueError(self.head_problem)
        return self.head

    def require_units(self) -> int:
        """`units`; None only when the output is not one (batch, classes) tensor."""
        if self.units is None:
            raise ValueError(self.head_problem)
        return self.units


def _inspect(model, images) -> ModelInspection:
    layers = model_layers(model)
    spied = [path for path, layer in layers if has_own_activation(layer)]
    with CallRecorder(layers, pre_activation=spied) as recorder:
        outputs = recorder.run(model, images)
        calls = list(recorder.calls)
    runs = tuple(
        LayerRun(
            c.path,
            c.layer,
            tuple(c.output.shape) if keras.ops.is_tensor(c.output) else None,
            keras.backend.standardize_dtype(c.output.dtype)
            if keras.ops.is_tensor(c.output)
            else None,
        )
        for c in calls
    )
    if not keras.ops.is_tensor(outputs):
        problem = (
            f"model {model.name!r} has several outputs ({type(outputs).__name__}); "
            "class activation maps and class probabilities need a model with one "
            "output of shape (batch, classes)."
        )
        return ModelInspection(runs, None, problem)
    if len(outputs.shape) != 2:
        problem = (
            f"model {model.name!r} outputs shape {tuple(outputs.shape)}; class "
            "activation maps and class probabilities need one output of shape "
            "(batch, classes)."
        )
        return ModelInspection(runs, None, problem)
    head = find_output_head(calls, outputs)
    return ModelInspection(runs, head, None, int(outputs.shape[-1]))


_INSPECTIONS = FunctionCache(size=8)


def inspect_model(model, images, signature=None) -> ModelInspection:
    """Runs ``model`` eagerly on (up to 4 of) ``images``, once per model state and picture shape.

    Args:
        model: The model.
        images: A batch of pictures (a tensor with a batch axis).
        signature: ``model_signature(model)`` when the caller has it: the
            inspection is made again whenever the model changed (a layer's
            activation replaced, a layer added...).
    """
    key = (tuple(images.shape[1:]), keras.backend.standardize_dtype(images.dtype))
    return _INSPECTIONS.get(
        model, key, lambda: _inspect(model, images[:4]), signature=signature
    )


# ---------------------------------------------------------------------------
# Classes: the table of per-class probabilities and the classes to explain.


def class_table(probabilities):
    """Per-class probabilities; one sigmoid unit p becomes two columns (1 - p, p).

    Works on NumPy arrays and on tensors of the backend.
    """
    if int(probabilities.shape[-1]) != 1:
        return probabilities
    if isinstance(probabilities, np.ndarray):
        return np.concatenate([1.0 - probabilities, probabilities], axis=1)
    return keras.ops.concatenate([1.0 - probabilities, probabilities], axis=1)


def class_scores(scores, classes):
    """Per-picture score of its class; for one unit, class 0 is explained by -score."""
    if int(scores.shape[-1]) == 1:
        sign = 2.0 * keras.ops.cast(classes, scores.dtype) - 1.0
        return scores[:, 0] * sign
    one_hot = keras.ops.one_hot(classes, int(scores.shape[-1]), dtype=scores.dtype)
    return keras.ops.sum(scores * one_hot, axis=-1)


def requested_classes(class_index, total: int) -> np.ndarray:
    """The class asked for each picture, int32 (total,), -1 meaning "its predicted class"."""
    expected = (
        "None (each picture's predicted class), an int (one class for all) or a "
        "sequence of ints (one per picture)"
    )
    if class_index is None:
        return np.full(total, -1, dtype="int32")
    if is_integer(class_index):
        classes = np.full(total, int(class_index), dtype="int64")
    elif isinstance(class_index, (bool, np.bool_, str, float)):
        raise TypeError(
            f"`class_index` must be {expected}. {received('class_index', class_index)}"
        )
    else:
        classes = np.asarray(class_index)
        if classes.ndim != 1 or not (
            np.issubdtype(classes.dtype, np.integer) or classes.size == 0
        ):
            raise TypeError(
                f"`class_index` must be {expected}. "
                f"{received('class_index', class_index)}"
            )
        if len(classes) != total:
            raise ValueError(
                f"`class_index` has {len(classes)} entries for {total} pictures: pass "
                "one class per picture, one int for all, or None for the predicted "
                f"classes. {received('class_index', class_index)}"
            )
    if np.any(classes < 0):
        raise ValueError(
            f"`class_index` {int(classes[classes < 0][0])} is negative; classes are "
            f"numbered from 0. {received('class_index', class_index)}"
        )
    return classes.astype("int32")


def check_class_range(classes: np.ndarray, units: int) -> None:
    """Raises a ValueError when a requested class is beyond the model's classes."""
    n_classes = max(units, 2)
    bad = classes[classes >= n_classes]
    if bad.size:
        kind = "one sigmoid unit: 0 or 1" if units == 1 else f"0 to {n_classes - 1}"
        raise ValueError(
            f"`class_index` {int(bad[0])} is out of range for this model's output "
            f"({kind}). Received: class_index={int(bad[0])}."
        )


def check_class_names(class_names) -> list[str] | None:
    """Returns the class names as a list of strings (None stays None)."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise TypeError(
            "`class_names` must be a list of strings, e.g. train_ds.class_names. "
            f"{received('class_names', class_names)}"
        )
    return [str(name) for name in class_names]


def class_name(index: int, class_names) -> str:
    """The name of class ``index``, or "class <index>" without names."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return f"class {index}"


_PREDICTS = FunctionCache(size=4)


class ClassPredictor:
    """Per-class probabilities for batches of pictures.

    The first call inspects the model (eagerly, on a few pictures) to learn
    how its output ends; every batch then runs as a compiled
    ``model(x, training=False)``. One sigmoid unit gives two columns (1 - p, p).

    A predictor serves one call of a public function: the model's state
    (`model_signature`) is read when it is made or at its first call, and
    the compiled function and the inspection are those of that state.
    """

    def __init__(self, model, run_eagerly: bool = False, signature=None):
        self._model = model
        self._run_eagerly = run_eagerly
        self._signature = signature

    @property
    def signature(self):
        """The `model_signature` of the model this predictor runs."""
        if self._signature is None:
            self._signature = model_signature(self._model)
        return self._signature

    def __call__(self, images):
        """Returns ``(predicted, table)``: int64 (batch,) and float64 (batch, classes)."""
        model = self._model
        signature = self.signature
        head = inspect_model(model, images, signature=signature).require_head()
        if self._run_eagerly:
            outputs = model(images, training=False)
        else:
            predict = _PREDICTS.get(
                model,
                (),
                lambda: compile_for(model, _forward(model), True),
                signature=signature,
            )
            outputs = predict(images)
        probabilities = keras.ops.convert_to_numpy(head.probabilities(outputs))
        table = class_table(np.asarray(probabilities, dtype="float64"))
        return np.argmax(table, axis=1).astype("int64"), table


def _forward(model):
    """``images -> model(images, training=False)``, holding the model weakly."""
    model_ref = weakref.ref(model)

    def forward(images):
        referent = model_ref()
        if referent is None:
            raise RuntimeError("The model of this prediction no longer exists.")
        return referent(images, training=False)

    return forward
