"""`ImageDataGeneratorAugmentation`: Keras 2's ImageDataGenerator options as one layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._types import Shape, Tensor
from keras_smalldata.augment import _arguments as augment_args
from keras_smalldata.augment._image_layer import ImageLayer
from keras_smalldata.augment.affine import RandomAffine
from keras_smalldata.augment.color import RandomBrightnessMultiplier, RandomChannelShift

# ImageDataGenerator arguments this layer does not take: their do-nothing
# values (accepted silently, so copied argument lists keep working) and what
# to do instead.
UNSUPPORTED_ARGUMENTS: dict[str, tuple[tuple[object, ...] | None, str]] = {
    "featurewise_center": (
        (False,),
        "It needs statistics of the whole training set, not augmentation. Add "
        "`norm = keras.layers.Normalization(axis=-1); norm.adapt(train_images)` "
        "to the model after this layer (per-channel mean and variance).",
    ),
    "featurewise_std_normalization": (
        (False,),
        "It needs statistics of the whole training set. Use "
        "`keras.layers.Normalization(axis=-1)` adapted on the training pictures "
        "(it centres AND divides by the standard deviation).",
    ),
    "samplewise_center": (
        (False,),
        "Standardise each picture in the model after this layer, e.g. with a "
        "small layer computing `x - keras.ops.mean(x, axis=(1, 2, 3), "
        "keepdims=True)`, or `tf.image.per_image_standardization` in "
        "`dataset.map`.",
    ),
    "samplewise_std_normalization": (
        (False,),
        "Standardise each picture after this layer, e.g. "
        "`tf.image.per_image_standardization` in `dataset.map`, or a small "
        "layer dividing by `keras.ops.std(x, axis=(1, 2, 3), keepdims=True)`.",
    ),
    "zca_whitening": (
        (False,),
        "Keras 3 has no ZCA layer. Whiten the arrays yourself before training "
        "(principal components of the centred, flattened training set with "
        "`numpy.linalg.svd`), or drop it: it rarely helps a convnet.",
    ),
    "zca_epsilon": (
        None,  # meaningless without zca_whitening: any value is accepted
        "",
    ),
    "preprocessing_function": (
        (None,),
        "Apply it after this layer yourself: in the model (e.g. "
        "`keras.applications.vgg16.preprocess_input` on the layer's output) or "
        "in `dataset.map(lambda x, y: (fn(x), y))`. ImageDataGenerator also "
        "ran it after the augmentation.",
    ),
    "validation_split": (
        (0, 0.0),
        "Split the data, not the augmentation: "
        "`keras.utils.image_dataset_from_directory(..., validation_split=0.2, "
        "subset='training', seed=1337)` (and subset='validation'), or "
        "`keras_smalldata.make_subsets` to write split folders.",
    ),
}

_SUPPORTED_ARGUMENTS = (
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "brightness_range",
    "shear_range",
    "zoom_range",
    "channel_shift_range",
    "fill_mode",
    "cval",
    "horizontal_flip",
    "vertical_flip",
    "rescale",
    "interpolation_order",
    "value_range",
    "seed",
    "data_format",
    "name",
    "dtype",
)

# Keras layer arguments, as a saved config holds them.
_LAYER_ARGUMENTS = ("trainable", "autocast")


def _refuse_unsupported(kwargs: dict) -> None:
    """Raises a ValueError/TypeError for an argument this layer does not take."""
    for key, value in kwargs.items():
        if key in _LAYER_ARGUMENTS:
            continue
        if key in UNSUPPORTED_ARGUMENTS:
            accepted, advice = UNSUPPORTED_ARGUMENTS[key]
            if accepted is None:  # zca_epsilon: any value is accepted
                continue
            if any(
                value is a or (type(value) is type(a) and value == a) for a in accepted
            ):
                continue
            raise ValueError(
                f"ImageDataGeneratorAugmentation does not take {key}={value!r}. {advice}"
            )
        hint = args.did_you_mean(key, _SUPPORTED_ARGUMENTS + tuple(UNSUPPORTED_ARGUMENTS))
        raise TypeError(
            f"ImageDataGeneratorAugmentation got an unknown argument {key}={value!r}.{hint} "
            f"Accepted: {', '.join(_SUPPORTED_ARGUMENTS)}."
        )


@keras.saving.register_keras_serializable(package="keras_smalldata")
class ImageDataGeneratorAugmentation(ImageLayer):
    """Keras 2's ImageDataGenerator augmentation, as one Keras 3 layer.

    Takes the augmentation arguments of
    `keras.preprocessing.image.ImageDataGenerator` with their exact meaning
    and builds the equivalent pipeline of layers (`self.layers`):

    1. `RandomAffine`: rotation, shifts, shear, zoom and flips as ONE affine
       matrix and ONE interpolation pass, per picture;
    2. `RandomChannelShift` (if ``channel_shift_range``): one offset per
       picture, clipped to that picture's own min/max;
    3. `RandomBrightnessMultiplier` (if ``brightness_range``): one factor per
       picture, computed in float and clipped to ``value_range``;
    4. `keras.layers.Rescaling` (if ``rescale``), applied last as before.

    Differences from ImageDataGenerator, on purpose: the width shift moves
    columns and the height shift rows, as documented (Keras >= 2.9 and
    tf_keras swap them and use a swapped centre on non-square pictures);
    brightness stays in float instead of going through an 8-bit PIL picture
    (which rounded values and destroyed 0-1 input); ``fill_mode="wrap"``
    tiles the picture as documented (SciPy's legacy "wrap" overlapped the
    first and last rows).

    Arguments ImageDataGenerator took for other jobs (``featurewise_center``,
    ``samplewise_center``, ``featurewise_std_normalization``,
    ``samplewise_std_normalization``, ``zca_whitening``,
    ``preprocessing_function``, ``validation_split``) are accepted at their
    do-nothing default values; any other value raises an error saying what to
    use instead. ``data_format`` and ``dtype`` keep their meaning: they are
    the layer's own.

    Random draws happen during training only; at inference
    (``training=False``) only ``rescale`` is applied. Inputs: uint8 or float
    pictures, batched or not; the output has the layer's compute dtype
    (float32 unless ``dtype`` says otherwise). Safe in `tf.data`
    (``dataset.map(layer)``) under every backend.

    Args:
        rotation_range: Degrees, U(-r, r). E.g. ``40``.
        width_shift_range: Float < 1 (fraction of the width), float >= 1
            (pixels), int n (``range(n)`` with a random sign) or a list (one
            element with a random sign). E.g. ``0.2``.
        height_shift_range: Same forms, for the height. E.g. ``0.2``.
        brightness_range: ``None`` or a pair of factors, e.g. ``(0.8, 1.2)``.
        shear_range: DEGREES, U(-s, s). ``0.2`` means 0.2 degrees.
        zoom_range: Float z for [1 - z, 1 + z], or ``(low, high)``; x and y
            zooms are drawn independently; > 1 zooms out.
        channel_shift_range: Pixel-value units, e.g. ``20.0`` for 0-255 pictures.
        fill_mode: ``"nearest"`` (default), ``"constant"``, ``"reflect"`` or
            ``"wrap"``.
        cval: Fill value for ``fill_mode="constant"``.
        horizontal_flip: Mirror left-right with probability 0.5.
        vertical_flip: Mirror up-down with probability 0.5.
        rescale: ``None``/``0`` or a factor multiplied in last, e.g. ``1 / 255``.
        interpolation_order: ``1`` (bilinear, default) or ``0`` (nearest).
        value_range: The input's value range, used to clip the brightness
            multiplier. Default ``(0, 255)``.
        seed: Int seed for reproducible draws.
        data_format: ``"channels_last"`` or ``"channels_first"``; ``None``
            follows `keras.config.image_data_format()`.
        name: Layer name.
        dtype: The layer's dtype policy, e.g. ``"float32"`` (the default) or
            ``"float16"``: the output has its compute dtype.
        **legacy_kwargs: ImageDataGenerator's other arguments, at their
            defaults only (see above).

    Example:

    ```python
    augment = ImageDataGeneratorAugmentation(
        rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
        shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
        fill_mode="nearest", seed=0)
    inputs = keras.Input((64, 64, 3))
    x = augment(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    ```
    """

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: float | Sequence[float] = 0.0,
        height_shift_range: float | Sequence[float] = 0.0,
        brightness_range: Sequence[float] | None = None,
        shear_range: float = 0.0,
        zoom_range: float | Sequence[float] = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        rescale: float | None = None,
        interpolation_order: int = 1,
        value_range: Sequence[float] = (0, 255),
        seed: int | None = None,
        data_format: str | None = None,
        name: str | None = None,
        dtype: str | keras.DTypePolicy | None = None,
        **legacy_kwargs: Any,
    ) -> None:
        _refuse_unsupported(legacy_kwargs)
        layer_kwargs = {k: legacy_kwargs[k] for k in _LAYER_ARGUMENTS if k in legacy_kwargs}
        super().__init__(data_format=data_format, name=name, dtype=dtype, **layer_kwargs)
        if not args.is_integer(interpolation_order) or interpolation_order not in (
            0,
            1,
        ):
            raise ValueError(
                f"interpolation_order={interpolation_order!r} is not supported: use 1 "
                "(bilinear, the default) or 0 (nearest); keras.ops.image.affine_transform "
                "has no higher-order spline interpolation."
            )
        if rescale is not None and not args.is_number(rescale):
            raise TypeError(
                f"rescale must be None or a number (e.g. 1 / 255), got {rescale!r}."
            )
        seed = args.check_seed(seed)
        value_range = list(args.check_value_range("value_range", value_range))
        channel_shift_range = augment_args.check_non_negative(
            "channel_shift_range", channel_shift_range, "pixel-value units", "20.0"
        )
        rescale = None if not rescale else float(rescale)

        prefix = self.name
        common = {"dtype": self.dtype_policy}
        affine = RandomAffine(
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            fill_mode=fill_mode,
            fill_value=cval,
            interpolation="nearest" if interpolation_order == 0 else "bilinear",
            seed=args.sub_seed(seed, 0),
            data_format=self.data_format,
            name=f"{prefix}_affine",
            **common,
        )
        layers = [affine]
        if channel_shift_range:
            layers.append(
                RandomChannelShift(
                    channel_shift_range,
                    seed=args.sub_seed(seed, 1),
                    name=f"{prefix}_channel_shift",
                    **common,
                )
            )
        if brightness_range is not None:
            brightness = RandomBrightnessMultiplier(
                brightness_range,
                value_range=value_range,
                seed=args.sub_seed(seed, 2),
                name=f"{prefix}_brightness",
                **common,
            )
            brightness_range = brightness.brightness_range
            layers.append(brightness)
        if rescale:
            layers.append(
                keras.layers.Rescaling(rescale, name=f"{prefix}_rescale", **common)
            )
        self._augmentation_layers = layers
        self.seed = seed
        self.interpolation_order = int(interpolation_order)
        self.value_range = value_range
        self.channel_shift_range = channel_shift_range
        self.brightness_range = brightness_range
        self.rescale = rescale

    @property
    def layers(self) -> list:
        """The layers applied in order (`RandomAffine` first)."""
        return list(self._augmentation_layers)

    @property
    def affine(self) -> RandomAffine:
        """The `RandomAffine` layer doing the geometric part."""
        return self._augmentation_layers[0]

    def build(self, input_shape: Shape | None = None) -> None:
        for layer in self._augmentation_layers:
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def call(
        self, data: Tensor | dict[str, Tensor], training: bool = True
    ) -> Tensor | dict[str, Tensor]:
        for layer in self._augmentation_layers:
            data = layer(data, training=training)
        return data

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        affine = self.affine
        config.update(
            {
                "rotation_range": affine.rotation_range,
                "width_shift_range": affine.width_shift_range,
                "height_shift_range": affine.height_shift_range,
                "brightness_range": self.brightness_range,
                "shear_range": affine.shear_range,
                "zoom_range": affine.zoom_range,
                "channel_shift_range": self.channel_shift_range,
                "fill_mode": affine.fill_mode,
                "cval": affine.fill_value,
                "horizontal_flip": affine.horizontal_flip,
                "vertical_flip": affine.vertical_flip,
                "rescale": self.rescale,
                "interpolation_order": self.interpolation_order,
                "value_range": self.value_range,
                "seed": self.seed,
            }
        )
        return config


def from_image_data_generator(
    generator: Any = None, /, **kwargs: Any
) -> ImageDataGeneratorAugmentation:
    """Builds the layer equivalent of an ImageDataGenerator, from its arguments or itself.

    Pass the keyword arguments you gave ``ImageDataGenerator(...)`` (all
    augmentation ones are understood, with their exact meaning; see
    `ImageDataGeneratorAugmentation`), or an existing
    `tf_keras.preprocessing.image.ImageDataGenerator` object, whose settings
    are read. ``seed``, ``value_range`` and ``name`` may be added in both
    cases.

    Args:
        generator: Optional ImageDataGenerator instance to convert.
        **kwargs: ImageDataGenerator keyword arguments (without
            ``generator``), or only ``seed``/``value_range``/``name`` with a
            ``generator``.

    Returns:
        An `ImageDataGeneratorAugmentation` layer.

    Example:

    ```python
    augment = from_image_data_generator(
        rescale=1 / 255, rotation_range=40, width_shift_range=0.2,
        height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
        horizontal_flip=True, fill_mode="nearest")
    [layer.__class__.__name__ for layer in augment.layers]
    # ['RandomAffine', 'Rescaling']
    ```
    """
    if generator is None:
        return ImageDataGeneratorAugmentation(**kwargs)
    extra = set(kwargs) - {"seed", "value_range", "name"}
    if extra:
        raise TypeError(
            f"Pass either an ImageDataGenerator or its keyword arguments, not both: got "
            f"{sorted(extra)} with a generator (only seed, value_range and name can be added)."
        )
    if not hasattr(generator, "get_random_transform") or not hasattr(
        generator, "rotation_range"
    ):
        raise TypeError(
            "generator must be a keras/tf_keras ImageDataGenerator object (or pass its "
            f"keyword arguments instead), got {type(generator).__name__}."
        )
    names = (
        "rotation_range", "width_shift_range", "height_shift_range", "brightness_range",
        "shear_range", "zoom_range", "channel_shift_range", "fill_mode", "cval",
        "horizontal_flip", "vertical_flip", "rescale", "interpolation_order",
        "featurewise_center", "samplewise_center", "featurewise_std_normalization",
        "samplewise_std_normalization", "zca_whitening", "preprocessing_function",
        "data_format",
    )  # fmt: skip
    settings = {
        name: getattr(generator, name) for name in names if hasattr(generator, name)
    }
    settings["validation_split"] = _validation_split(generator)
    for name in ("horizontal_flip", "vertical_flip", "featurewise_center", "samplewise_center",
                 "featurewise_std_normalization", "samplewise_std_normalization", "zca_whitening"):  # fmt: skip
        if name in settings:
            settings[name] = bool(settings[name])
    return ImageDataGeneratorAugmentation(**settings, **kwargs)


def _validation_split(generator) -> float:
    """The ``validation_split`` an ImageDataGenerator was made with.

    The generator keeps it in a private attribute; its public ``flow`` tells
    it: the validation subset of ``n`` samples has ``int(n * split)`` of
    them. With ``n`` = 10**12 (one zero picture repeated by a NumPy view, no
    memory) that gives the split to 12 digits.
    """
    flow = getattr(generator, "flow", None)
    if flow is None:
        return 0.0
    total = 10**12
    samples = np.broadcast_to(np.zeros((1, 1, 1, 1), "float32"), (total, 1, 1, 1))
    subset = flow(samples, batch_size=1, shuffle=False, subset="validation")
    return len(subset) / total
