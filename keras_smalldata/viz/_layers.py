"""Finding layers by path inside models that contain other models.

A user's model often holds a whole model as one of its layers: a
`keras.applications` base (``vgg16``), a `PretrainedBase`, a Sequential head.
Keras' `Model.get_layer` only looks one level deep, so the layers inside the
base cannot be named. Here every layer has a *path*: the names of the models
that contain it, then its own name, joined with ``/``, e.g.
``"vgg16/block3_conv1"``. Any depth works and any model type whose `layers`
lists its sub-layers (Functional, Sequential, subclassed).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import keras

from keras_smalldata._models import check_model


def is_model(layer) -> bool:
    """True when ``layer`` is itself a model (its layers get paths of their own)."""
    return isinstance(layer, keras.Model)


def _is_input_layer(layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def walk_layers(model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """Yields ``(path, layer)`` for every layer of ``model``, nested models included.

    A nested model is yielded itself, then its own layers with its name as a
    prefix. Input layers are skipped: they compute nothing.
    """
    seen = set()
    for layer in model.layers:
        if _is_input_layer(layer) or id(layer) in seen:
            continue
        seen.add(id(layer))
        path = f"{prefix}{layer.name}"
        yield path, layer
        if is_model(layer):
            yield from walk_layers(layer, prefix=f"{path}/")


def layer_paths(model: keras.Model) -> list[str]:
    """Lists the paths of all layers of ``model``, including those of nested models.

    Args:
        model: A Keras model (Functional, Sequential or subclassed).

    Returns:
        A list of strings such as ``["vgg16", "vgg16/block1_conv1", ...,
        "dense"]``, in the order of ``model.layers``, each nested model
        followed by its own layers.

    Example:

    ```python
    base = keras.applications.VGG16(weights=None, include_top=False,
                                    input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    layer_paths(model)[:3]
    # ['vgg16', 'vgg16/block1_conv1', 'vgg16/block1_conv2']
    ```
    """
    check_model(model)
    return [path for path, _ in walk_layers(model)]


def resolve_layer(model, layer) -> tuple[str, keras.layers.Layer]:
    """Finds one layer of ``model`` from a path, a bare name or the layer object.

    Accepted forms of ``layer``:

    - a full path, ``"vgg16/block3_conv1"``;
    - a bare name or a path suffix, ``"block3_conv1"``, as long as exactly one
      layer matches it;
    - the `keras.layers.Layer` object itself.

    Returns:
        ``(path, layer_object)``.

    Raises:
        ValueError: When nothing or more than one layer matches; the message
            lists the closest real paths.
        TypeError: When ``layer`` is neither a string nor a Layer.
    """
    entries = list(walk_layers(model))
    if isinstance(layer, keras.layers.Layer):
        for path, candidate in entries:
            if candidate is layer:
                return path, candidate
        raise ValueError(
            f"layer={layer.name!r} (a {type(layer).__name__} object) is not a layer "
            f"of model {model.name!r} nor of the models nested in it."
        )
    if not isinstance(layer, str):
        raise TypeError(
            "`layer` must be a layer path such as 'vgg16/block3_conv1', a layer "
            f"name or a keras.layers.Layer. Received: layer={layer!r}."
        )
    name = layer.strip("/")
    for path, candidate in entries:
        if path == name:
            return path, candidate
    matches = [(p, c) for p, c in entries if p.endswith("/" + name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"layer={layer!r} is ambiguous in model {model.name!r}: it matches "
            f"{[p for p, _ in matches]}. Pass one of these full paths."
        )
    paths = [p for p, _ in entries]
    names = [p.rsplit("/", 1)[-1] for p in paths]
    close = difflib.get_close_matches(name, paths, n=5, cutoff=0.5)
    for bare in difflib.get_close_matches(
        name.rsplit("/", 1)[-1], names, n=5, cutoff=0.6
    ):
        close.extend(
            p for p in paths if p.rsplit("/", 1)[-1] == bare and p not in close
        )
    hint = f" Closest layer paths: {close[:5]}." if close else ""
    inputs = [lyr.name for lyr in getattr(model, "layers", []) if _is_input_layer(lyr)]
    if name in inputs:
        hint = " Input layers have no activation of their own: use the pictures themselves."
    raise ValueError(
        f"layer={layer!r} is not a layer of model {model.name!r}.{hint} "
        "Use keras_smalldata.viz.layer_paths(model) to list them all."
    )
