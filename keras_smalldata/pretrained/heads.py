"""Classifier heads: the small dense part that sits on a conv base or on features."""

from __future__ import annotations

from typing import Any

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._types import Shape, Tensor

_FLATTEN_MODES = ("flatten", "avg", "max", "none")


def add_classifier_head(
    x: Tensor,
    num_classes: int = 2,
    *,
    hidden_units: int | None = 256,
    dropout: float = 0.5,
    reduce: str = "flatten",
    logits: bool = False,
    name: str = "head",
) -> Tensor:
    """Adds the seeds' classifier on top of a tensor: reduce -> Dense -> Dropout -> Dense.

    With the defaults this is the seeds' head
    ``Flatten -> Dense(256, relu) -> Dropout(0.5) -> Dense(1, sigmoid)``.

    Args:
        x: A symbolic Keras tensor (a conv feature map or a vector).
        num_classes: 2 gives ONE sigmoid unit (binary, labels 0/1, use
            ``binary_crossentropy``); 3 or more give a softmax over
            ``num_classes`` units (use ``sparse_categorical_crossentropy``).
        hidden_units: Units of the hidden ReLU layer, or None for none.
        dropout: Dropout rate before the output layer, in [0, 1).
        reduce: How a feature map becomes a vector: ``"flatten"``,
            ``"avg"`` (global average pooling), ``"max"`` or ``"none"``
            (``x`` is already a vector).
        logits: If True the output layer has no activation (use a loss with
            ``from_logits=True``).
        name: Prefix of the layers' names.

    Returns:
        The output tensor.

    Raises:
        ValueError: For a bad number, or ``reduce="none"`` on a feature map.
        TypeError: For a non-int ``num_classes`` or ``hidden_units``, or a
            non-bool ``logits``.

    Example:

    ```python
    inputs = keras.Input((4, 4, 512))
    outputs = add_classifier_head(inputs)
    model = keras.Model(inputs, outputs)
    ```
    """
    args.check_int("num_classes", num_classes, minimum=2)
    args.check_int("hidden_units", hidden_units, minimum=1, allow_none=True)
    args.check_number("dropout", dropout, 0.0, 1.0, include_maximum=False)
    args.check_choice("reduce", reduce, _FLATTEN_MODES)
    args.check_bool("logits", logits)
    rank = len(x.shape)
    if reduce == "none" and rank != 2:
        raise ValueError(
            f"reduce='none' needs a vector input (batch, units), got shape {tuple(x.shape)}; "
            "use reduce='flatten', 'avg' or 'max'."
        )
    if reduce != "none" and rank == 2:
        reduce = "none"
    if reduce == "flatten":
        x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    elif reduce == "avg":
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(x)
    elif reduce == "max":
        x = keras.layers.GlobalMaxPooling2D(name=f"{name}_max_pool")(x)
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="relu", name=f"{name}_dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    units = 1 if num_classes == 2 else num_classes
    activation = None if logits else ("sigmoid" if units == 1 else "softmax")
    return keras.layers.Dense(units, activation=activation, name=f"{name}_output")(x)


def classifier_model(
    input_shape: Shape, *, name: str = "classifier", **head_kwargs: Any
) -> keras.Model:
    """Builds a model that is only a classifier head, e.g. to train on extracted features.

    Args:
        input_shape: Shape of one sample of features, without the batch axis,
            e.g. ``(4, 4, 512)`` for VGG16 at 150x150, or ``(512,)`` when pooled.
        name: The model's name.
        **head_kwargs: Passed to `add_classifier_head` (``num_classes``,
            ``hidden_units``, ``dropout``, ``reduce``, ``logits``).

    Returns:
        An uncompiled `keras.Model`.

    Example:

    ```python
    model = classifier_model((4, 4, 512))
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    ```
    """
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    return keras.Model(inputs, add_classifier_head(inputs, **head_kwargs), name=name)
