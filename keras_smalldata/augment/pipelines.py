"""Augmentation pipelines: presets and composition of any Keras layers into one block."""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata.augment.image_data_generator import ImageDataGeneratorAugmentation

PRESETS = ("flip_rotate_zoom", "image_data_generator", "rand_augment")

# The seeds' ImageDataGenerator arguments (the "image_data_generator" preset).
SEEDS_IMAGE_DATA_GENERATOR: dict[str, Any] = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
    "fill_mode": "nearest",
}


def augmentation_preset(
    preset: str,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> keras.layers.Layer:
    """Returns a ready-made augmentation block, as one layer.

    - ``"flip_rotate_zoom"``: Keras 3's classic block,
      ``RandomFlip("horizontal")``, ``RandomRotation(0.1)`` and
      ``RandomZoom(0.2)`` (three interpolation passes, as in the book).
    - ``"image_data_generator"``: the 1st edition's ImageDataGenerator
      settings (``rotation_range=40``, shifts, shear and zoom of ``0.2``,
      ``horizontal_flip=True``, ``fill_mode="nearest"``), as one
      `ImageDataGeneratorAugmentation` (one fused pass).
    - ``"rand_augment"``: `keras.layers.RandAugment` with its defaults, for
      pictures in 0-255. Needs Keras >= 3.11 to draw its operations anew
      for each batch in ``tf.data`` or a compiled model; under PyTorch use
      it in ``dataset.map`` (a warning says so in both cases).

    The blocks augment only during training and work in a Functional model
    and in ``dataset.map``. The augmentation guide says more about each.

    Args:
        preset: One of ``PRESETS``.
        seed: Int seed for reproducible draws.
        name: Name of the returned layer (default: Keras' automatic name).

    Returns:
        A `keras.layers.Pipeline` (an `ImageDataGeneratorAugmentation` for
        ``"image_data_generator"``).

    Raises:
        ValueError: For an unknown preset (with the closest names).

    Example:

    ```python
    augment = augmentation_preset("flip_rotate_zoom", seed=0, name="augmentation")
    inputs = keras.Input((64, 64, 3))
    x = augment(inputs)
    ```
    """
    seed = args.check_seed(seed)
    if not isinstance(preset, str) or preset not in PRESETS:
        hint = args.did_you_mean(preset, PRESETS, n=2, cutoff=0.4)
        raise ValueError(
            f"Unknown augmentation preset.{hint} Available: {list(PRESETS)}. "
            f"{args.received('preset', preset)}"
        )

    if preset == "flip_rotate_zoom":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomFlip("horizontal", seed=args.sub_seed(seed, 0)),
                keras.layers.RandomRotation(0.1, seed=args.sub_seed(seed, 1)),
                keras.layers.RandomZoom(0.2, seed=args.sub_seed(seed, 2)),
            ],
            name=name,
        )
    if preset == "rand_augment":
        return keras.layers.Pipeline([_rand_augment(seed)], name=name)
    return ImageDataGeneratorAugmentation(**SEEDS_IMAGE_DATA_GENERATOR, seed=seed, name=name)


def _keras_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", keras.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _rand_augment(seed):
    """`keras.layers.RandAugment` for 0-255 pictures, with a warning on Keras < 3.11."""
    if not hasattr(keras.layers, "RandAugment"):
        raise ImportError(
            'augmentation_preset("rand_augment") needs keras.layers.RandAugment, '
            f"which this Keras ({keras.__version__}) does not have: "
            'pip install -U "keras>=3.11".'
        )
    if _keras_version() < (3, 11):
        warnings.warn(
            f"Keras {keras.__version__}'s RandAugment chooses its operations with "
            "Python's random module: inside tf.data or a compiled model they are "
            "chosen once, when the function is traced, and every batch then gets "
            "the same two operations (Keras issue 21169, fixed in Keras 3.11). "
            'Upgrade with pip install -U "keras>=3.11".',
            UserWarning,
            stacklevel=3,
        )
    if _brightness_adds_in_place():
        warnings.warn(
            "Under PyTorch, Keras' RandomBrightness (one of RandAugment's "
            "operations) adds to its input tensor in place, so RandAugment run by "
            "PyTorch, in a model or called directly, returns wrong pictures (values "
            "beyond 255, brightness added where it was not drawn). Inside tf.data "
            "(dataset.map) it runs with TensorFlow and is right: use it there.",
            UserWarning,
            stacklevel=3,
        )
    # Not named: RandAugment gives its name to each of its inner layers.
    return keras.layers.RandAugment(value_range=(0, 255), seed=seed)


@functools.lru_cache(maxsize=1)
def _brightness_adds_in_place() -> bool:
    """True where `keras.layers.RandomBrightness` changes the tensor it is given.

    Its ``transform_images`` does ``images += delta``: in place on PyTorch
    tensors (Keras 3.10 to 3.15 at least). Checked by running it, so that a
    fixed Keras stops the warning.
    """
    if keras.backend.backend() != "torch":
        return False
    layer = keras.layers.RandomBrightness(factor=(0.5, 0.5), value_range=(0, 255))
    pictures = keras.ops.zeros((1, 1, 1, 1))
    drawn = layer.get_random_transformation(pictures, training=True)
    layer.transform_images(pictures, drawn)
    return bool(np.any(keras.ops.convert_to_numpy(pictures)))


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def augmentation_pipeline(
    *layers: keras.layers.Layer | str | Sequence[Any], name: str | None = None
) -> keras.layers.Pipeline:
    """Composes augmentation layers into one block that is a layer.

    Accepts any Keras layers (Keras' own `RandomContrast`, `RandAugment`...,
    and this package's layers), preset names (see `augmentation_preset`) and
    lists of those, and returns a `keras.layers.Pipeline` applying them in
    order. A `Pipeline`, unlike a `keras.Sequential` model, stays usable
    inside ``dataset.map`` with every backend, and it passes ``training`` on
    to each layer (augmentation only during training).

    Args:
        *layers: Layers, preset names or (nested) lists of them, in order.
        name: Name of the returned layer (default: Keras' automatic name).

    Returns:
        A `keras.layers.Pipeline`.

    Example:

    ```python
    augment = augmentation_pipeline(
        "image_data_generator",
        keras.layers.RandomContrast(0.2),
    )
    dataset = dataset.map(lambda x, y: (augment(x, training=True), y))
    ```
    """
    built = []
    for item in _flatten(layers):
        if isinstance(item, str):
            built.append(augmentation_preset(item))
        elif isinstance(item, keras.layers.Layer):
            built.append(item)
        else:
            raise TypeError(
                f"augmentation_pipeline takes Keras layers or preset names {list(PRESETS)}; got "
                f"{item!r} of type {type(item).__name__}. Wrap a plain function in a "
                "keras.layers.Layer subclass (a Lambda layer cannot be reloaded from a .keras file "
                "in safe mode)."
            )
    if not built:
        raise ValueError(
            "augmentation_pipeline needs at least one layer or preset name."
        )
    return keras.layers.Pipeline(built, name=name)

