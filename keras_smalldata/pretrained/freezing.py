"""Freezing helpers that work on any Keras model: summaries, names, recompiling."""

from __future__ import annotations

import dataclasses
import inspect
import re
import weakref
from collections.abc import Sequence
from typing import TypeAlias

import keras

from keras_smalldata import _backend
from keras_smalldata._models import check_model, contains_layer, nested_layers

# The models a freezing call compiles again: one, or a list of them.
Models: TypeAlias = "keras.Model | Sequence[keras.Model]"
# An optimizer, or the name of one (``"rmsprop"``).
Optimizer: TypeAlias = "str | keras.optimizers.Optimizer"


class StaleCompileWarning(UserWarning):
    """A trainable change that a model compiled before it does not see yet.

    Keras fixes the weights a model trains when it first trains after
    ``compile()`` (its train step). After a freezing change, a model that has
    trained since it was last compiled keeps training the old set until it is
    compiled again (on TensorFlow the layers you froze keep training and those
    you unfroze stay frozen; on JAX the next ``fit()`` fails). Pass
    ``recompile=model`` to the freezing call, or call ``model.compile(...)``
    before the next ``fit()``.
    """


def _snake_case(name: str) -> str:
    # Keras' own rule for default layer names (keras.src.utils.naming).
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def is_auto_named(layer) -> bool:
    """Returns True when a layer carries a name Keras made up (``conv2d_94``).

    Keras names an unnamed layer after its class plus a per-session counter,
    so the same layer is ``conv2d_94`` in one model and ``conv2d_188`` in the
    next one you build or load. Such names cannot be used to refer to a layer
    across model instances.
    """
    base = _snake_case(type(layer).__name__)
    return re.fullmatch(re.escape(base) + r"(_\d+)?", layer.name) is not None


def set_trainable(layer, value: bool) -> None:
    """Sets ``layer.trainable`` and, always, that of all its sublayers.

    ``layer.trainable = True`` is skipped by Keras' TensorFlow backend when the
    layer already says True (its attribute tracking short-circuits
    ``self.x = value`` when ``self.x is value``), so the sublayers keep
    whatever flags they had. This calls the property setter itself.
    """
    keras.layers.Layer.trainable.fset(layer, bool(value))


def weight_layers(model) -> list:
    """The layers of ``model`` that hold weights themselves (nested models descended into)."""
    if not isinstance(model, keras.Model):
        return [model]
    return [layer for layer in nested_layers(model) if not isinstance(layer, keras.Model)]


def _count(weights) -> int:
    total = 0
    for w in weights:
        size = 1
        for dim in w.shape:
            size *= int(dim)
        total += size
    return total


# ------------------------------------------------------- compiled train steps
#
# Keras fixes the variables a model trains in its train step, made by the
# first ``fit()`` after ``compile()`` (traced on TensorFlow and JAX; on
# PyTorch the optimizer is built for them). A base cannot ask Keras which
# models contain it, but it runs inside their train step: there the models
# are the ``self`` of the calling frames (``fit``, ``train_step``, the
# Functional ``call``). What each train step was made for is recorded then,
# by model, until the model gets a new train step (``compile()`` resets
# ``model.train_function``, a public attribute of every Keras 3 model).


@dataclasses.dataclass
class _TrainStep:
    """The trainable variables (ids) a model's train step was made for."""

    model: weakref.ref
    function: object  # weakref.ref to the train function, or its id
    variables: frozenset

    def is_current(self, model) -> bool:
        function = getattr(model, "train_function", None)
        if function is None or not getattr(model, "compiled", False):
            return False
        if isinstance(self.function, weakref.ref):
            return self.function() is function
        return self.function == id(function)


_TRAIN_STEPS: dict[int, _TrainStep] = {}


def _function_reference(function):
    try:
        return weakref.ref(function)
    except TypeError:
        return id(function)


def note_train_steps(layer) -> int:
    """Records the train step of every compiled model that is running ``layer`` now.

    Called by a layer (`PretrainedBase`) when it runs on real tensors. The
    first time a model's train step runs is when Keras fixes its trainable
    variables, so they are recorded then; a later call on the same train
    step (more steps, ``predict``) changes nothing.

    Returns:
        The number of compiled models with a train step found running it.
    """
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the caller's
    seen = set()
    found = 0
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":
            model = frame.f_locals.get("self")
            if (
                isinstance(model, keras.Model)
                and model is not layer
                and id(model) not in seen
            ):
                seen.add(id(model))
                found += _note_train_step(model)
        frame = frame.f_back
    return found


def _note_train_step(model) -> bool:
    if getattr(model, "train_function", None) is None or not getattr(model, "compiled", False):
        return False
    record = _TRAIN_STEPS.get(id(model))
    if record is not None and record.model() is model and record.is_current(model):
        return True
    for key in [k for k, r in _TRAIN_STEPS.items() if r.model() is None]:
        del _TRAIN_STEPS[key]
    _TRAIN_STEPS[id(model)] = _TrainStep(
        weakref.ref(model),
        _function_reference(model.train_function),
        frozenset(id(v) for v in model.trainable_variables),
    )
    return True


def current_train_steps(layer) -> list:
    """``[(model, variable ids)]``: the recorded train steps still in use that run ``layer``.

    ``layer`` is a model itself or one of its (nested) layers.
    """
    found = []
    for record in list(_TRAIN_STEPS.values()):
        model = record.model()
        if model is not None and record.is_current(model) and contains_layer(model, layer):
            found.append((model, record.variables))
    return found


def stale_models(layer) -> list:
    """The compiled models that run ``layer`` and whose train step trains another set of weights."""
    return [
        model
        for model, variables in current_train_steps(layer)
        if frozenset(id(v) for v in model.trainable_variables) != variables
    ]


@dataclasses.dataclass(frozen=True)
class TrainableSummary:
    """Trainable vs frozen layers, weight tensors and parameters of a model.

    Attributes:
        model_name: The model's name.
        trainable_layers: Layers with at least one trainable weight.
        frozen_layers: Layers that have weights, none of them trainable.
        frozen_batchnorm_layers: Frozen `BatchNormalization` layers (they run
            in inference mode).
        trainable_weights: Number of trainable weight tensors
            (``len(model.trainable_weights)``: the seeds' printout).
        non_trainable_weights: Number of non-trainable weight tensors.
        trainable_params: Number of trainable parameters.
        non_trainable_params: Number of non-trainable parameters (frozen
            weights plus BatchNormalization moving statistics).
        first_trainable_layer: Name of the first layer with trainable weights,
            or None.
        stale_models: Names of the compiled models (containing this one, or
            this one) whose train step was made before the last freezing
            change: they train another set of weights than the flags say
            until they are compiled again. Empty when none is known.
        not_trained_layers: Layers marked trainable whose weights are not in
            the train step of a model of ``stale_models``: they do not
            train (on JAX and PyTorch ``fit()`` fails instead).
        still_trained_layers: Layers marked frozen whose weights are in such
            a train step (on TensorFlow they keep training).
    """

    model_name: str
    trainable_layers: int
    frozen_layers: int
    frozen_batchnorm_layers: int
    trainable_weights: int
    non_trainable_weights: int
    trainable_params: int
    non_trainable_params: int
    first_trainable_layer: str | None
    stale_models: tuple[str, ...] = ()
    not_trained_layers: tuple[str, ...] = ()
    still_trained_layers: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """True when a compiled model trains another set of weights than the flags say."""
        return bool(self.stale_models)

    def __str__(self) -> str:
        lines = [
            f"Trainable summary of {self.model_name!r}",
            f"  layers with weights: {self.trainable_layers} trainable, "
            f"{self.frozen_layers} frozen"
            + (
                f" ({self.frozen_batchnorm_layers} BatchNormalization, in inference mode)"
                if self.frozen_batchnorm_layers
                else ""
            ),
            f"  weight tensors:      {self.trainable_weights} trainable, "
            f"{self.non_trainable_weights} non-trainable",
            f"  parameters:          {self.trainable_params:,} trainable, "
            f"{self.non_trainable_params:,} non-trainable",
            f"  first trainable layer: {self.first_trainable_layer}",
        ]
        if self.stale:
            models = ", ".join(repr(name) for name in self.stale_models)
            lines.append(
                f"  STALE COMPILE: {models} trained before the last freezing change and "
                "was not compiled since; until model.compile(...) (or recompile(model)):"
            )
            if self.not_trained_layers:
                lines.append(
                    f"    trainable, not in its train step ({len(self.not_trained_layers)}): "
                    + _names(self.not_trained_layers)
                )
            if self.still_trained_layers:
                lines.append(
                    f"    frozen, still in its train step ({len(self.still_trained_layers)}): "
                    + _names(self.still_trained_layers)
                )
        return "\n".join(lines)


def _names(names, limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def trainable_summary(model: keras.Model | keras.layers.Layer) -> TrainableSummary:
    """Counts what a model will train and what stays frozen, and whether a compile is stale.

    Use it after every freezing step: it is the seeds' "number of trainable
    weights before/after freezing" check (30 weight tensors for VGG16 + a
    two-layer head, 4 once the base is frozen), with parameter counts.

    The counts follow the ``trainable`` flags. A compiled model keeps
    training the set of weights its train step was made for (by the first
    ``fit()`` after ``compile()``) until it is compiled again; when a model
    containing a `PretrainedBase` has trained since its last compile and the
    flags changed after that, the summary says so (``stale_models``) and
    names the layers whose flags the next ``fit()`` would not follow.

    Args:
        model: Any Keras model or layer; nested models are descended into.

    Returns:
        A `TrainableSummary` (``print()`` it for a readable table).

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)
    print(trainable_summary(base.freeze()))
    ```
    """
    layers = weight_layers(model)
    trainable_layers = frozen_layers = frozen_bn = 0
    first = None
    for layer in layers:
        if not layer.weights:
            continue
        if layer.trainable_weights:
            trainable_layers += 1
            if first is None:
                first = layer.name
        else:
            frozen_layers += 1
            if isinstance(layer, keras.layers.BatchNormalization):
                frozen_bn += 1
    stale, not_trained, still_trained = [], [], []
    for compiled, variables in current_train_steps(model):
        if frozenset(id(v) for v in compiled.trainable_variables) == variables:
            continue
        stale.append(compiled.name)
        for layer in layers:
            trainable = {id(v) for v in layer.trainable_weights}
            if trainable - variables and layer.name not in not_trained:
                not_trained.append(layer.name)
            frozen = {id(v) for v in layer.weights} - trainable
            if frozen & variables and layer.name not in still_trained:
                still_trained.append(layer.name)
    return TrainableSummary(
        model_name=model.name,
        trainable_layers=trainable_layers,
        frozen_layers=frozen_layers,
        frozen_batchnorm_layers=frozen_bn,
        trainable_weights=len(model.trainable_weights),
        non_trainable_weights=len(model.non_trainable_weights),
        trainable_params=_count(model.trainable_weights),
        non_trainable_params=_count(model.non_trainable_weights),
        first_trainable_layer=first,
        stale_models=tuple(stale),
        not_trained_layers=tuple(not_trained),
        still_trained_layers=tuple(still_trained),
    )


def recompile(model: keras.Model, optimizer: Optimizer | None = None) -> None:
    """Compiles a model again with its own loss and metrics, after a freezing change.

    Keras fixes the list of variables to train when a model is compiled:
    changing ``trainable`` afterwards has no effect on ``fit`` until the model
    is compiled again. This keeps the loss, metrics and other compile options
    and uses either ``optimizer`` or a fresh optimizer with the same settings
    (a new optimizer state: the right thing when the set of trained variables
    changes). It compiles inside the model's own distribution scope (its
    `tf.distribute` strategy on TensorFlow), so a model built under
    ``MirroredStrategy`` can be recompiled from anywhere; an ``optimizer``
    created outside that scope is created again inside it, from its config.

    Args:
        model: A compiled Keras model.
        optimizer: Optional optimizer (instance or name) to use instead, e.g.
            ``keras.optimizers.RMSprop(1e-5)`` for the fine-tuning phase.

    Example:

    ```python
    base.freeze_until("block5_conv1")
    recompile(model, keras.optimizers.RMSprop(1e-5))
    ```
    """
    check_model(model)
    if not model.compiled:
        raise ValueError(
            f"Model {model.name!r} is not compiled yet, so there is nothing to "
            "recompile: call model.compile(...) after freezing, as usual."
        )
    with _backend.model_scope(model):
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
        if isinstance(optimizer, keras.optimizers.Optimizer) and not _backend.in_model_scope(
            model, optimizer.iterations
        ):
            # Made outside the model's tf.distribute scope: the same optimizer,
            # made again inside it (its state is new either way).
            optimizer = type(optimizer).from_config(optimizer.get_config())
        if optimizer is not None:
            config["optimizer"] = optimizer
        model.compile(**config)
