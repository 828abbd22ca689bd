"""Augmentation pipelines: presets and composition of any Keras layers into one block."""

from __future__ import annotations

import functools
import importlib
import re
import warnings

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata.augment.image_data_generator import ImageDataGeneratorAugmentation

PRESETS = ("flip_rotate_zoom", "image_data_generator", "rand_augment")

# The seeds' ImageDataGenerator arguments (the "image_data_generator" preset).
SEEDS_IMAGE_DATA_GENERATOR = {
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
    seed: int | None = None,
    name: str | None = None,
    *,
    layer_name: str | None = None,
) -> keras.layers.Layer:
    """Returns a ready-made augmentation block, as one layer.

    Presets:

    - ``"flip_rotate_zoom"``: the classic Keras 3 block of Deep Learning with
      Python (2nd edition), built from Keras' own layers:
      ``RandomFlip("horizontal")``, ``RandomRotation(0.1)`` (a fraction of a
      full turn: up to +-36 degrees), ``RandomZoom(0.2)`` (same zoom on both
      axes), with their default ``fill_mode="reflect"``. Three interpolation
      passes, as in the book.
    - ``"image_data_generator"``: the 1st edition's ImageDataGenerator
      settings, ``rotation_range=40, width_shift_range=0.2,
      height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
      horizontal_flip=True, fill_mode="nearest"``, as an
      `ImageDataGeneratorAugmentation` (one fused affine pass). Note that
      ``shear_range=0.2`` is 0.2 DEGREES, as it always was.
    - ``"rand_augment"``: Keras' `keras.layers.RandAugment` (Cubuk et al.,
      2020) with its defaults, two operations of strength ``factor=0.5``
      chosen from shear, translation, rotation, brightness, colour
      degeneration, contrast, sharpness, posterization, solarization,
      auto-contrast and equalization, for pictures in 0-255
      (``value_range=(0, 255)``, this library's range; for other ranges build
      ``keras.layers.RandAugment(value_range=...)`` yourself). Which
      operations run is drawn per batch, their strengths per picture. Needs
      Keras >= 3.11 to draw the operations anew for each batch inside
      ``tf.data`` or a compiled model (Keras 3.10 draws them once, when the
      function is traced: a warning says so). Under PyTorch use it in
      ``dataset.map``, where it runs with TensorFlow: run by PyTorch, Keras'
      brightness operation changes the pictures in place and the result is
      wrong (a warning says so).

    The first two take pictures of any value range (uint8 or float), batched
    or not; all three augment only during training, and work in a Functional
    model and in ``dataset.map``.

    Args:
        preset: One of ``PRESETS``.
        seed: Int seed for reproducible draws.
        name: Name of the returned layer (default: Keras' automatic name), as
            for every layer and for `from_image_data_generator`.
        layer_name: Deprecated spelling of ``name``.

    Returns:
        A `keras.layers.Pipeline` (an `ImageDataGeneratorAugmentation` for
        ``"image_data_generator"``).

    Example:

    ```python
    augment = augmentation_preset("flip_rotate_zoom", seed=0, name="augmentation")
    inputs = keras.Input((64, 64, 3))
    x = augment(inputs)
    ```
    """
    if layer_name is not None:
        if name is not None:
            raise TypeError(
                "augmentation_preset got both name= and its deprecated spelling "
                f"layer_name=; pass only name=. Received: name={name!r}, "
                f"layer_name={layer_name!r}."
            )
        warnings.warn(
            "augmentation_preset(..., layer_name=) is deprecated: use name=, as for "
            "every layer and for from_image_data_generator.",
            DeprecationWarning,
            stacklevel=2,
        )
        name = layer_name
    seed = args.check_seed(seed)
    if not isinstance(preset, str) or preset not in PRESETS:
        hint = args.did_you_mean(preset, PRESETS, n=2, cutoff=0.4)
        raise ValueError(
            f"Unknown augmentation preset.{hint} Available: {list(PRESETS)}. "
            f"{args.received('preset', preset)}"
        )

    def sub_seed(offset):
        return None if seed is None else seed + offset

    if preset == "flip_rotate_zoom":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomFlip("horizontal", seed=sub_seed(0)),
                keras.layers.RandomRotation(0.1, seed=sub_seed(1)),
                keras.layers.RandomZoom(0.2, seed=sub_seed(2)),
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


def augmentation_pipeline(*layers, name: str | None = None) -> keras.layers.Pipeline:
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


def keras_cv_layer(class_name: str, /, **kwargs) -> keras.layers.Layer:
    """Deprecated: builds a keras-cv augmentation layer by class name.

    keras-cv is frozen upstream and its layers run only on the
    TensorFlow backend; Keras 3 itself now has its augmentation policies
    (`keras.layers.RandAugment`, `AugMix`, `RandomColorJitter`, `CutMix`,
    `MixUp`...), on every backend. Calling this function emits a
    `FutureWarning` naming the Keras layer to use instead (a FutureWarning,
    not a DeprecationWarning, because Python shows DeprecationWarnings only
    for code run as ``__main__``: a call from a user's module or a library
    would stay silent). It keeps working: keras-cv is imported only when it
    is called (``pip install "keras-smalldata[cv]"``, also deprecated).

    Args:
        class_name: Class name in ``keras_cv.layers``, e.g. ``"RandAugment"``
            (positional, so that ``name=`` can name the layer).
        **kwargs: Arguments of that class, ``name=`` included.

    Returns:
        The layer, ready for `augmentation_pipeline`.

    Example:

    ```python
    # Deprecated; the Keras core equivalent is
    # keras.layers.RandAugment(value_range=(0, 255)).
    rand_augment = keras_cv_layer("RandAugment", value_range=(0, 255))
    ```
    """
    if isinstance(class_name, str) and isinstance(
        getattr(keras.layers, class_name, None), type
    ):
        replacement = (
            f"use keras.layers.{class_name} from Keras core instead (it runs on every "
            "backend; check its arguments, which may differ from keras-cv's)"
        )
    else:
        replacement = (
            f"Keras core has no layer named {class_name!r}: find its equivalent in "
            "keras.layers (RandAugment, AugMix, RandomColorJitter, CutMix, MixUp...)"
        )
    warnings.warn(
        f"keras_cv_layer({class_name!r}) is deprecated, as keras-cv (frozen upstream, "
        f"TensorFlow only) and the keras-smalldata[cv] extra are: "
        f"{replacement}.",
        FutureWarning,
        stacklevel=2,
    )
    try:
        keras_cv = importlib.import_module("keras_cv")
    except ImportError as error:
        raise ImportError(
            f"keras_cv_layer({class_name!r}) needs keras-cv, which is not installed: "
            'pip install "keras-smalldata[cv]" (or keras-cv). Keras 3 has many such layers '
            "built in: keras.layers.RandAugment, AugMix, RandomColorJitter, CutMix, MixUp."
        ) from error
    available = sorted(n for n in dir(keras_cv.layers) if not n.startswith("_"))
    if class_name not in available:
        hint = args.did_you_mean(class_name, available, n=3, cutoff=0.5)
        raise ValueError(
            f"keras_cv.layers has no layer of that name.{hint} "
            f"{args.received('class_name', class_name)}"
        )
    layer = getattr(keras_cv.layers, class_name)(**kwargs)
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"keras_cv.layers.{class_name} did not build a Keras 3 layer ({type(layer).__name__}); "
            "keras-cv >= 0.9 with Keras 3 is required."
        )
    return layer
