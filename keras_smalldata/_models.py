"""Facts about Keras models that several sub-packages need: checks, layer walks, conv types."""

from __future__ import annotations

from collections.abc import Iterator

import keras

# The convolution layers of Keras whose output is a spatial feature map.
CONVOLUTION_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)


def check_model(model, name: str = "model") -> keras.Model:
    """Returns ``model`` if it is a `keras.Model`; raises a TypeError naming it otherwise."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a keras.Model (Functional, Sequential or subclassed). "
            f"Received: {name}={model!r} of type {type(model).__name__}."
        )
    return model


def nested_layers(layer) -> Iterator[keras.layers.Layer]:
    """Yields ``layer``'s sub-layers depth first, descending into nested models.

    Each layer is yielded once, even when it is shared; ``layer`` itself is not
    yielded. Models nested inside are yielded, then their own layers.
    """
    seen = {id(layer)}
    stack = list(reversed(list(getattr(layer, "layers", None) or [])))
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(list(getattr(current, "layers", None) or [])))


def unique_variables(variables) -> list:
    """``variables`` in order, each once (by identity: a shared weight counts once)."""
    seen: set[int] = set()
    unique = []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def contains_layer(model, target) -> bool:
    """True when ``target`` is ``model`` or one of its (nested) layers."""
    return model is target or any(layer is target for layer in nested_layers(model))
