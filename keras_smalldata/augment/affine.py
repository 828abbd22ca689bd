"""`RandomAffine`: rotation, shift, shear, zoom and flips in one interpolation pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._types import ArrayLike, Tensor
from keras_smalldata.augment import _arguments as augment_args
from keras_smalldata.augment._image_layer import RandomImageLayer
from keras_smalldata.augment._warp import warp

# Columns of the uniform draw made once per image (one random op per batch).
(
    _ROTATION,
    _SHIFT_X,
    _SIGN_X,
    _SHIFT_Y,
    _SIGN_Y,
    _SHEAR,
    _ZOOM_X,
    _ZOOM_Y,
    _FLIP_H,
    _FLIP_V,
) = range(10)
_N_DRAWS = 10


def _affine_rows(
    xnp,
    height,
    width,
    rotation,
    shift_x,
    shift_y,
    shear,
    zoom_x,
    zoom_y,
    flip_x,
    flip_y,
):
    """Builds the (batch, 8) `affine_transform` rows from 1-D parameter tensors.

    ``xnp`` is `keras.ops` or its TensorFlow twin (`_tf_data.keras_ops_for`).
    All parameters are float tensors of shape
    ``(batch,)``; ``flip_x``/``flip_y`` hold 0. or 1.

    The output-to-input map is M = C . R(theta) . T(-shift) . Sh(shear) .
    Z(zoom_x, zoom_y) . F(flips) . C^-1 in (x = column, y = row) pixel
    coordinates, with C the move to the centre ((width - 1) / 2,
    (height - 1) / 2), R = [[cos, -sin], [sin, cos]], Sh = [[1, -sin(shear)],
    [0, cos(shear)]] and F the flips of the output (applied after the warp).
    Multiplied out:

        A = [[zx cos(t) fx, -zy sin(t + s) fy],
             [zx sin(t) fx,  zy cos(t + s) fy]]
        offset = R . (-shift) + c - A . c
    """
    deg = math.pi / 180.0
    theta = rotation * deg
    theta_shear = theta + shear * deg
    cos_t, sin_t = xnp.cos(theta), xnp.sin(theta)
    fx = 1.0 - 2.0 * flip_x
    fy = 1.0 - 2.0 * flip_y
    a00 = zoom_x * cos_t * fx
    a01 = -zoom_y * xnp.sin(theta_shear) * fy
    a10 = zoom_x * sin_t * fx
    a11 = zoom_y * xnp.cos(theta_shear) * fy
    cx = (width - 1.0) / 2.0
    cy = (height - 1.0) / 2.0
    # The inverse map samples the input at p + t, so the picture moves by -t.
    tx, ty = -shift_x, -shift_y
    off_x = cos_t * tx - sin_t * ty + cx - (a00 * cx + a01 * cy)
    off_y = sin_t * tx + cos_t * ty + cy - (a10 * cx + a11 * cy)
    zeros = xnp.zeros_like(a00)
    return xnp.stack([a00, a01, off_x, a10, a11, off_y, zeros, zeros], axis=1)


# Layout of the settings vector given to `_parameters_from_draws`.
_SETTINGS = (
    "rotation_range",
    "shear_range",
    "zoom_low",
    "zoom_high",
    "horizontal_flip",
    "vertical_flip",
    "x_kind",  # 0: no shift, 1: uniform, 2: choice among candidates
    "x_half_width",
    "x_is_fraction",
    "x_count",
    "y_kind",
    "y_half_width",
    "y_is_fraction",
    "y_count",
)
_KIND_CODES = {"none": 0.0, "uniform": 1.0, "choice": 2.0}

# The largest shift (pixels) and zoom factor the float32 pass computes without
# overflow on any picture up to a million pixels wide: positions stay below
# 1e25, far from float32's 3.4e38. A shift of 1e18 pixels is already "off the
# picture" for every fill mode but "reflect" and "wrap", where it is reduced
# modulo the period.
LARGEST_SHIFT = 1e18
ZOOM_LIMITS = (1e-18, 1e18)
_FLOAT32_MAX = float(np.finfo("float32").max)


def _draw_shift(
    ops, kind, half_width, is_fraction, count, candidates, value, sign, size
):
    """One shift per picture, by ImageDataGenerator's rules, without Python branches."""
    xnp, cast = ops, ops.cast
    uniform = (2.0 * value - 1.0) * half_width
    index = cast(xnp.minimum(xnp.floor(value * count), count - 1.0), "int32")
    choice = xnp.take(candidates, index) * (1.0 - 2.0 * cast(sign < 0.5, "float32"))
    shift = xnp.where(kind == 1.0, uniform, xnp.where(kind == 2.0, choice, 0.0 * value))
    return shift * xnp.where(is_fraction > 0.5, size, 1.0)


def _parameters_from_draws(
    ops, draws, height, width, settings, candidates_x, candidates_y
):
    """Turns ``(batch, 10)`` uniform draws into the parameters and the matrices.

    A pure function of tensors (the layer's ranges come in ``settings``), so
    that it runs the same with `keras.ops` or its TensorFlow twin.
    """
    cast = ops.cast
    s = {name: settings[i] for i, name in enumerate(_SETTINGS)}
    column = [draws[:, i] for i in range(_N_DRAWS)]
    rotation = (2.0 * column[_ROTATION] - 1.0) * s["rotation_range"]
    shift_x = _draw_shift(
        ops, s["x_kind"], s["x_half_width"], s["x_is_fraction"], s["x_count"],
        candidates_x, column[_SHIFT_X], column[_SIGN_X], width,
    )  # fmt: skip
    shift_y = _draw_shift(
        ops, s["y_kind"], s["y_half_width"], s["y_is_fraction"], s["y_count"],
        candidates_y, column[_SHIFT_Y], column[_SIGN_Y], height,
    )  # fmt: skip
    shear = (2.0 * column[_SHEAR] - 1.0) * s["shear_range"]
    zoom_x = s["zoom_low"] + (s["zoom_high"] - s["zoom_low"]) * column[_ZOOM_X]
    zoom_y = s["zoom_low"] + (s["zoom_high"] - s["zoom_low"]) * column[_ZOOM_Y]
    flip_h = cast(column[_FLIP_H] < 0.5, "float32") * s["horizontal_flip"]
    flip_v = cast(column[_FLIP_V] < 0.5, "float32") * s["vertical_flip"]
    matrix = _affine_rows(
        ops, height, width, rotation, shift_x, shift_y, shear, zoom_x, zoom_y, flip_h, flip_v
    )  # fmt: skip
    return {
        "rotation": rotation,
        "shift_x": shift_x,
        "shift_y": shift_y,
        "shear": shear,
        "zoom_x": zoom_x,
        "zoom_y": zoom_y,
        "horizontal_flip": flip_h,
        "vertical_flip": flip_v,
        "matrix": matrix,
    }


def _shift_spec(value):
    """Turns a validated shift range into ``(kind, values, is_fraction)``.

    ``kind`` is "none", "uniform" (``values`` is the half-width) or "choice"
    (``values`` is the tuple of candidates), exactly as ImageDataGenerator reads
    the argument.
    """
    if isinstance(value, list):
        values = tuple(float(v) for v in value)
        return "choice", values, max(values) < 1
    if value == 0:
        return "none", 0.0, False
    if isinstance(value, int):
        # ImageDataGenerator tests np.max(n) < 1 on the int itself: never a fraction.
        return "choice", tuple(float(v) for v in range(value)), False
    return "uniform", float(value), value < 1




def affine_matrix(
    height: int,
    width: int,
    *,
    rotation: ArrayLike = 0.0,
    shift_x: ArrayLike = 0.0,
    shift_y: ArrayLike = 0.0,
    shear: ArrayLike = 0.0,
    zoom_x: ArrayLike = 1.0,
    zoom_y: ArrayLike = 1.0,
    horizontal_flip: ArrayLike = False,
    vertical_flip: ArrayLike = False,
) -> Tensor:
    """Returns the `keras.ops.image.affine_transform` rows of a centred affine warp.

    The exact geometry of ImageDataGenerator, as one matrix
    M = R(rotation) . T(shift) . Sh(shear) . Z(zoom_x, zoom_y) about the
    picture's centre, with the flips folded in. `RandomAffine` uses it for
    its draws; call it to apply a fixed warp. Each parameter is a number or
    a 1-D array (one value per picture); they are broadcast together.

    Args:
        height: Picture height in pixels.
        width: Picture width in pixels.
        rotation: Degrees; positive turns the picture counter-clockwise.
        shift_x: Pixels; positive moves the picture right.
        shift_y: Pixels; positive moves the picture down.
        shear: Degrees (not radians): rows slide sideways.
        zoom_x: Factor of the sampled width; > 1 zooms OUT.
        zoom_y: Factor of the sampled height; > 1 zooms OUT.
        horizontal_flip: Mirror the warped picture left-right (bools).
        vertical_flip: Mirror the warped picture up-down (bools).

    Returns:
        A float32 tensor ``(batch, 8)`` of rows ``[a0, a1, a2, b0, b1, b2,
        0, 0]`` mapping output pixel coordinates to input ones.

    Raises:
        ValueError: For a ``height`` or ``width`` that is not a positive int,
            or a parameter with more than one axis.

    Example:

    ```python
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    m = affine_matrix(32, 32, rotation=[10, -10], zoom_x=1.2, zoom_y=0.9)
    keras.ops.image.affine_transform(images, m, fill_mode="nearest").shape
    # TensorShape([2, 32, 32, 3])
    ```
    """
    ops = keras.ops
    for name, value in (("height", height), ("width", width)):
        if not args.is_integer(value) or value < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {value!r}.")
    values = [
        ops.cast(ops.convert_to_tensor(v), "float32")
        for v in (
            rotation,
            shift_x,
            shift_y,
            shear,
            zoom_x,
            zoom_y,
            horizontal_flip,
            vertical_flip,
        )
    ]
    for name, value in zip(
        (
            "rotation",
            "shift_x",
            "shift_y",
            "shear",
            "zoom_x",
            "zoom_y",
            "horizontal_flip",
            "vertical_flip",
        ),
        values,
    ):
        if len(value.shape) > 1:
            raise ValueError(
                f"{name} must be a number or a 1-D array, got shape {tuple(value.shape)}."
            )
    batch = max([1] + [int(v.shape[0]) for v in values if len(v.shape) == 1])
    values = [ops.broadcast_to(ops.reshape(v, (-1,)), (batch,)) for v in values]
    return _affine_rows(ops, float(height), float(width), *values)


@keras.saving.register_keras_serializable(package="keras_smalldata")
class RandomAffine(RandomImageLayer):
    """Random rotation, shift, shear, zoom and flips, fused in one pass.

    The augmentation of Keras 2's `ImageDataGenerator`, as a Keras 3 layer:
    for each picture it draws a rotation, two shifts, a shear, two zooms
    (independently) and the flips, builds ONE centred affine matrix (see
    `affine_matrix`) and resamples the picture ONCE, bilinearly. The
    arguments mean what they meant for `ImageDataGenerator`, except that
    the width shift moves columns and the height shift rows, as documented
    there (Keras >= 2.9 and tf_keras swap the two).

    During training every picture gets its own draw; at inference
    (``training=False``) the layer returns its input unchanged (cast to
    float). Inputs of any value range and of integer or float dtype are
    accepted; the output, in the layer's compute dtype, stays in the
    input's range. Safe in `tf.data` on every backend: with ``(images,
    labels)`` pairs, map the images only,
    ``dataset.map(lambda x, y: (layer(x, training=True), y))``.

    Input shape:
        3D (unbatched) or 4D (batched) tensor: ``(..., height, width,
        channels)`` (``"channels_last"``) or ``(..., channels, height,
        width)``.

    Output shape:
        Same as the input.

    Args:
        rotation_range: Degrees; the angle is drawn from U(-r, r), positive
            is counter-clockwise. E.g. ``40``.
        width_shift_range: Horizontal shift (columns), in any of
            ImageDataGenerator's forms: a float ``< 1`` is a fraction of the
            width (``0.2``: U(-0.2, 0.2) * width), a float ``>= 1`` is pixels
            (``10.0``: U(-10, 10)), an int ``n`` draws a whole number of pixels
            from ``range(n)`` with a random sign (``3``: one of -2..2), a list
            draws one element with a random sign (``[0, 4, 8]``), as a
            fraction of the width if all elements are ``< 1``. At most 1e18
            pixels (the float32 pass's limit).
        height_shift_range: Vertical shift (rows), same forms with the height.
        shear_range: Shear angle in DEGREES, drawn from U(-s, s) (so the
            classic ``shear_range=0.2`` is a 0.2-degree shear: almost
            nothing). Must be < 90.
        zoom_range: A float ``z`` draws each of zx and zy independently from
            ``[1 - z, 1 + z]`` (``0.2``: [0.8, 1.2]); a pair ``(low, high)``
            gives the interval (``(0.8, 1.2)``). Values > 1 zoom OUT.
            Factors from 1e-18 to 1e18.
        horizontal_flip: Mirror left-right with probability 0.5.
        vertical_flip: Mirror up-down with probability 0.5.
        fill_mode: How to fill the pixels that come from outside the picture:
            ``"nearest"`` (``aaaa|abcd|dddd``, the ImageDataGenerator
            default), ``"constant"`` (``kkkk|abcd|kkkk`` with k =
            ``fill_value``), ``"reflect"`` (``dcba|abcd|dcba``) or ``"wrap"``
            (``abcd|abcd|abcd``).
        fill_value: The value k for ``fill_mode="constant"`` (ImageDataGenerator's
            ``cval``).
        interpolation: ``"bilinear"`` (ImageDataGenerator's default,
            ``interpolation_order=1``) or ``"nearest"`` (order 0).
        seed: Int seed for reproducible draws: two layers with the same seed
            give the same sequence of augmentations.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        **kwargs: Base layer arguments (``name``, ``dtype``...).

    Example:

    ```python
    augment = RandomAffine(
        rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
        shear_range=0.2, zoom_range=0.2, horizontal_flip=True, seed=1)
    images = np.random.randint(0, 256, (8, 64, 64, 3), dtype="uint8")
    augment(images, training=True).shape
    # TensorShape([8, 64, 64, 3])
    ```
    """

    draws_per_picture = _N_DRAWS
    compiled = True

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: float | Sequence[float] = 0.0,
        height_shift_range: float | Sequence[float] = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | Sequence[float] = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        fill_value: float = 0.0,
        interpolation: str = "bilinear",
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.rotation_range = augment_args.check_non_negative(
            "rotation_range", rotation_range, "degrees", "40", upper=360.0 + 1e-9
        )
        self.width_shift_range = augment_args.check_shift_range(
            "width_shift_range", width_shift_range
        )
        self.height_shift_range = augment_args.check_shift_range(
            "height_shift_range", height_shift_range
        )
        self.shear_range = augment_args.check_non_negative(
            "shear_range", shear_range, "degrees", "10", upper=90.0
        )
        for name in ("width_shift_range", "height_shift_range"):
            value = getattr(self, name)
            for v in value if isinstance(value, list) else [value]:
                args.check_number(name, v, -LARGEST_SHIFT, LARGEST_SHIFT)
        self._zoom_bounds = augment_args.check_zoom_range(zoom_range)
        for bound in self._zoom_bounds:
            args.check_number("zoom_range", bound, *ZOOM_LIMITS)
        # check_zoom_range accepted it: a number, or a (low, high) pair.
        self.zoom_range = (
            float(cast(float, zoom_range))
            if args.is_number(zoom_range)
            else [float(v) for v in cast(Sequence[float], zoom_range)]
        )
        self.horizontal_flip = args.check_bool("horizontal_flip", horizontal_flip)
        self.vertical_flip = args.check_bool("vertical_flip", vertical_flip)
        self.fill_mode = args.check_choice("fill_mode", fill_mode, augment_args.FILL_MODES)
        self.fill_value = args.check_number(
            "fill_value", fill_value, -_FLOAT32_MAX, _FLOAT32_MAX
        )
        self.interpolation = args.check_choice(
            "interpolation", interpolation, augment_args.INTERPOLATIONS
        )
        width_shift = _shift_spec(self.width_shift_range)
        height_shift = _shift_spec(self.height_shift_range)
        self._candidates_x = self._candidates(width_shift)
        self._candidates_y = self._candidates(height_shift)
        self._settings = [
            self.rotation_range,
            self.shear_range,
            *self._zoom_bounds,
            float(self.horizontal_flip),
            float(self.vertical_flip),
            *self._shift_settings(width_shift),
            *self._shift_settings(height_shift),
        ]
        self._arrays = tuple(
            np.asarray(values, "float32")
            for values in (self._settings, self._candidates_x, self._candidates_y)
        )
        self._identity = (
            self.rotation_range == 0
            and width_shift[0] == "none"
            and height_shift[0] == "none"
            and self.shear_range == 0
            and self._zoom_bounds == (1.0, 1.0)
            and not self.horizontal_flip
            and not self.vertical_flip
        )

    @staticmethod
    def _candidates(spec):
        kind, values, _ = spec
        return list(values) if kind == "choice" else [0.0]

    @staticmethod
    def _shift_settings(spec):
        kind, values, is_fraction = spec
        half_width = values if kind == "uniform" else 0.0
        count = len(values) if kind == "choice" else 1
        return [_KIND_CODES[kind], half_width, float(is_fraction), float(count)]

    def _is_identity(self) -> bool:
        return self._identity

    def get_random_transformation(
        self, data: Tensor | dict[str, Tensor], training: bool = True, seed: int | Tensor | None = None
    ) -> dict[str, Tensor] | None:
        """Draws one set of parameters per picture.

        Args:
            data: A batch of pictures (or a dict with ``"images"``).
            training: With ``False``, nothing is drawn and None is returned.
            seed: Optional seed for this draw instead of the layer's generator.

        Returns:
            ``None`` when not training, else a dict of float tensors of shape
            ``(batch,)``: ``rotation`` (degrees), ``shift_x`` and ``shift_y``
            (pixels; positive moves the picture right/down), ``shear``
            (degrees), ``zoom_x``, ``zoom_y``, ``horizontal_flip`` and
            ``vertical_flip`` (0. or 1.), and ``matrix``, the ``(batch, 8)``
            rows of the warp (see `affine_matrix`).
        """
        return super().get_random_transformation(data, training=training, seed=seed)

    def _static_config(self) -> tuple:
        return (
            *super()._static_config(),
            self.fill_mode,
            self.fill_value,
            self.interpolation,
        )

    def _setting_arrays(self) -> tuple:
        return self._arrays

    def _draws_to_parameters(self, ops, draws, height, width, *settings):
        as_float = [ops.cast(values, "float32") for values in settings]
        return _parameters_from_draws(ops, draws, height, width, *as_float)

    def _transform(self, ops, images, parameters):
        return warp(
            ops,
            images,
            parameters["matrix"],
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            dtype=self.compute_dtype,
        )

    def _transform_masks(self, ops, masks, parameters):
        # Class indices are moved, never blended.
        return warp(
            ops,
            masks,
            parameters["matrix"],
            interpolation="nearest",
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            dtype=keras.backend.standardize_dtype(masks.dtype),
        )

    def _transform_bounding_boxes(self, bounding_boxes):
        raise NotImplementedError(
            "RandomAffine does not move bounding boxes: shear and independent "
            "x/y zoom do not keep boxes axis-aligned. Use it for images and "
            "segmentation masks only."
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "rotation_range": self.rotation_range,
                "width_shift_range": self.width_shift_range,
                "height_shift_range": self.height_shift_range,
                "shear_range": self.shear_range,
                "zoom_range": self.zoom_range,
                "horizontal_flip": self.horizontal_flip,
                "vertical_flip": self.vertical_flip,
                "fill_mode": self.fill_mode,
                "fill_value": self.fill_value,
                "interpolation": self.interpolation,
                "seed": self.seed,
            }
        )
        return config
