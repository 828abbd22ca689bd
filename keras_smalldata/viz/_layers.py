"""Layers by path inside models that contain other models.

A user's model often holds a whole model as one of its layers: a
`keras.applications` base (``vgg16``), a `PretrainedBase`, a Sequential head.
Keras' `Model.get_layer` only looks one level deep, so the layers inside the
base cannot be named. Here every layer has a *path*: the names of the models
that contain it, then its own name, joined with ``/``, e.g.
``"vgg16/block3_conv1"``. Any depth works and any model type whose `layers`
lists its sub-layers (Functional, Sequential, subclassed). The walk and the
look-up (`walk_layers`, `resolve_layer`) are in ``keras_smalldata._models``.
"""

from __future__ import annotations

import keras

from keras_smalldata._models import check_model, walk_layers


def is_model(layer) -> bool:
    """True when ``layer`` is itself a model (its layers get paths of their own)."""
    return isinstance(layer, keras.Model)


def model_layers(model) -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` for every layer of ``model`` that computes, nested models included.

    A nested model comes first, then its own layers. Input layers are left
    out: they compute nothing.
    """
    return list(walk_layers(model, into="models", inputs=False))


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
    return [path for path, _ in model_layers(model)]
