"""Colour augmentation with ImageDataGenerator's semantics: channel shift, brightness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._types import Tensor
from keras_smalldata.augment import _arguments as augment_args
from keras_smalldata.augment._image_layer import RandomImageLayer

# Beyond this a float32 computation on pixel values can overflow to inf or NaN.
LARGEST_FACTOR = 1e18


def _per_picture(xnp, values, images):
    """Reshapes one value per picture to broadcast over ``(batch, ...)`` pictures."""
    return xnp.reshape(values, (-1,) + (1,) * (len(images.shape) - 1))


@keras.saving.register_keras_serializable(package="keras_smalldata")
class RandomChannelShift(RandomImageLayer):
    """Adds one random offset per picture to all its channels (ImageDataGenerator's channel shift).

    For each picture a delta is drawn from U(-intensity_range,
    intensity_range) and added to every pixel of every channel; the result is
    then clipped to that picture's OWN minimum and maximum (over all its
    pixels and channels), exactly as ImageDataGenerator's
    ``channel_shift_range`` did. So the shift moves the picture's values
    toward one end of its own range; it never leaves that range.

    During training every picture gets its own delta; at inference
    (``training=False``) the layer returns its input unchanged (cast to
    float). Inputs of any value range and of integer or float dtype are
    accepted; ``intensity_range`` is in the units of the input (e.g. ``20``
    for 0-255 pictures, ``0.08`` for 0-1 pictures). Output dtype: the
    layer's compute dtype (float32 by default). Safe in `tf.data`.

    Input shape:
        3D (unbatched) or 4D (batched) picture tensor, any data format.

    Output shape:
        Same as the input.

    Args:
        intensity_range: Non-negative number, in pixel-value units, e.g. ``20.0``.
        seed: Int seed for reproducible draws.
        **kwargs: Base layer arguments (``name``, ``dtype``...).

    Example:

    ```python
    layer = RandomChannelShift(20.0, seed=0)
    images = np.random.randint(0, 256, (4, 32, 32, 3)).astype("float32")
    layer(images, training=True).shape
    # TensorShape([4, 32, 32, 3])
    ```
    """

    def __init__(
        self, intensity_range: float, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.intensity_range = augment_args.check_non_negative(
            "intensity_range", intensity_range, "pixel-value units", "20.0",
            upper=LARGEST_FACTOR,
        )  # fmt: skip

    def _is_identity(self) -> bool:
        return self.intensity_range == 0

    def get_random_transformation(
        self, data: Tensor | dict[str, Tensor], training: bool = True, seed: int | Tensor | None = None
    ) -> dict[str, Tensor] | None:
        """Returns ``{"intensity": (batch,) tensor}`` or None when not training."""
        return super().get_random_transformation(data, training=training, seed=seed)

    def _draws_to_parameters(self, ops, draws, height, width, *settings):
        r = self.intensity_range
        return {"intensity": (2.0 * draws[:, 0] - 1.0) * r}

    def _transform(self, ops, images, parameters):
        xnp, cast = ops, ops.cast
        if images.shape[0] == 0:
            # No picture, no shift (Keras' min refuses an empty tensor). A
            # batch size known only when the graph runs reduces to an empty
            # result there, without an error.
            return images
        axes = tuple(range(1, len(images.shape)))
        low = xnp.min(images, axis=axes, keepdims=True)
        high = xnp.max(images, axis=axes, keepdims=True)
        delta = _per_picture(xnp, cast(parameters["intensity"], self.compute_dtype), images)
        return xnp.minimum(xnp.maximum(images + delta, low), high)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"intensity_range": self.intensity_range, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="keras_smalldata")
class RandomBrightnessMultiplier(RandomImageLayer):
    """Multiplies each picture's brightness by a random factor, in float.

    ImageDataGenerator's ``brightness_range=(low, high)``: one factor per
    picture drawn from U(low, high); ``1`` keeps the picture, ``0.5`` halves
    its values, ``1.5`` brightens by half. The legacy version went through a
    PIL 8-bit picture, which rounded the values to whole numbers and
    destroyed 0-1 input (values became 0 or 1). This layer stays in float:
    ``value_range=(lo, hi)`` tells it the input's range; the picture is
    scaled toward ``lo`` (black), ``lo + (x - lo) * factor``, then clipped to
    ``[lo, hi]``. With the default ``(0, 255)`` it matches the legacy result
    on 0-255 pictures up to that rounding.

    During training every picture gets its own factor; at inference
    (``training=False``) the layer returns its input unchanged (cast to
    float). Output dtype: the layer's compute dtype (float32 by default).
    Safe in `tf.data`.

    Input shape:
        3D (unbatched) or 4D (batched) picture tensor, any data format.

    Output shape:
        Same as the input.

    Args:
        brightness_range: Pair ``(low, high)`` of non-negative factors, e.g.
            ``(0.8, 1.2)``.
        value_range: Pair ``(lo, hi)``: the input's value range, e.g.
            ``(0, 255)`` (default) or ``(0, 1)`` or ``(-1, 1)``.
        seed: Int seed for reproducible draws.
        **kwargs: Base layer arguments (``name``, ``dtype``...).

    Example:

    ```python
    layer = RandomBrightnessMultiplier((0.5, 1.5), value_range=(0, 1), seed=0)
    images = np.random.rand(4, 32, 32, 3).astype("float32")
    out = layer(images, training=True)
    float(keras.ops.max(out)) <= 1.0
    # True
    ```
    """

    def __init__(
        self,
        brightness_range: Sequence[float] = (0.8, 1.2),
        value_range: Sequence[float] = (0, 255),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        if (
            not isinstance(brightness_range, (tuple, list))
            or len(brightness_range) != 2
            or not all(args.is_number(v) for v in brightness_range)
        ):
            raise ValueError(
                "brightness_range must be a pair of factors (low, high), e.g. "
                f"brightness_range=(0.8, 1.2); got {brightness_range!r}."
            )
        low, high = (
            args.check_number("brightness_range", v, 0.0, LARGEST_FACTOR)
            for v in brightness_range
        )
        if high < low:
            raise ValueError(
                f"brightness_range={brightness_range!r} must satisfy 0 <= low <= high "
                "(1 = unchanged), e.g. (0.8, 1.2)."
            )
        self.brightness_range = [low, high]
        self.value_range = list(args.check_value_range("value_range", value_range))

    def get_random_transformation(
        self, data: Tensor | dict[str, Tensor], training: bool = True, seed: int | Tensor | None = None
    ) -> dict[str, Tensor] | None:
        """Returns ``{"factor": (batch,) tensor}`` or None when not training."""
        return super().get_random_transformation(data, training=training, seed=seed)

    def _draws_to_parameters(self, ops, draws, height, width, *settings):
        low, high = self.brightness_range
        return {"factor": low + (high - low) * draws[:, 0]}

    def _transform(self, ops, images, parameters):
        xnp, cast = ops, ops.cast
        lo, hi = self.value_range
        factor = _per_picture(xnp, cast(parameters["factor"], self.compute_dtype), images)
        return xnp.clip(lo + (images - lo) * factor, lo, hi)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "brightness_range": self.brightness_range,
                "value_range": self.value_range,
                "seed": self.seed,
            }
        )
        return config
