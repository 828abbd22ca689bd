"""Freezing helpers that work on any Keras model: summaries, names, recompiling."""

from __future__ import annotations

import dataclasses
import re

import keras

from keras_smalldata import _backend
from keras_smalldata._models import check_model, nested_layers


class StaleCompileWarning(UserWarning):
    """A trainable change that a model compiled before it does not see yet.

    Keras fixes the weights a model trains when the model is compiled. After a
    base that has already been trained is frozen or unfrozen, every model
    compiled before the change keeps training the old set until it is compiled
    again (on TensorFlow the layers you froze keep training; on JAX the next
    ``fit()`` fails). Pass ``recompile=model`` to the freezing call, or call
    ``model.compile(...)`` before the next ``fit()``.
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
        return "\n".join(lines)


def trainable_summary(model) -> TrainableSummary:
    """Counts what a model will train and what stays frozen.

    Use it after every freezing step: it is the seeds' "number of trainable
    weights before/after freezing" check (30 weight tensors for VGG16 + a
    two-layer head, 4 once the base is frozen), with parameter counts.

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
    )


def recompile(model, optimizer=None) -> None:
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
