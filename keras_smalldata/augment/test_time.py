"""Test-time augmentation: a model's predictions averaged over fixed views of each picture."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata import _backend
from keras_smalldata._types import Data, Tensor

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
TTA_FILL_MODES = ("reflect", "nearest")


def _check_flips(flips) -> tuple[str, ...]:
    if isinstance(flips, str):
        flips = (flips,)
    if not isinstance(flips, (tuple, list)) or not flips:
        raise TypeError(
            f"`flips` must be a non-empty tuple of flip names from {list(FLIPS)}, "
            f"e.g. flips=('none', 'horizontal'). {args.received('flips', flips)}"
        )
    for flip in flips:
        if not isinstance(flip, str) or flip not in FLIPS:
            hint = args.did_you_mean(flip, FLIPS, n=2, cutoff=0.5)
            raise ValueError(
                f"Unknown flip {flip!r} in `flips`.{hint} Accepted: {list(FLIPS)} "
                f"('none' is the picture as it is). {args.received('flips', flips)}"
            )
    if len(set(flips)) != len(flips):
        raise ValueError(
            "`flips` names a flip twice (it would count twice in the average). "
            f"{args.received('flips', flips)}"
        )
    return tuple(flips)


def _check_shift(value, shifts):
    """One shift: an int number of pixels, or a float fraction of the size in (-1, 1)."""
    if args.is_integer(value):
        return int(value)
    if args.is_number(value):
        number = float(value)
        if not np.isfinite(number) or abs(number) >= 1:
            raise ValueError(
                "A float shift is a fraction of the picture's size and must be in "
                "(-1, 1), e.g. 0.1; for a number of pixels pass an int, e.g. 4. "
                f"{args.received('shifts', shifts)}"
            )
        return number
    raise TypeError(
        "A shift must be an int (pixels) or a float in (-1, 1) (a fraction of the "
        f"size). {args.received('shifts', shifts)}"
    )


def _check_shifts(shifts) -> tuple[tuple[int | float, int | float], ...]:
    """The (height_shift, width_shift) pairs of ``shifts`` (see `predict_with_tta`)."""
    example = "shifts=4 (pixels), shifts=0.1 (a tenth of the size) or shifts=[(0, 0), (0, 4)]"
    if args.is_number(shifts):
        shift = _check_shift(shifts, shifts)
        if shift < 0:
            raise ValueError(
                "`shifts` as one number is a distance (the picture is moved by it up, "
                f"down, left and right) and must be >= 0; use e.g. {example}. "
                f"{args.received('shifts', shifts)}"
            )
        if shift == 0:
            return ((0, 0),)
        return ((0, 0), (-shift, 0), (shift, 0), (0, -shift), (0, shift))
    if not isinstance(shifts, (tuple, list)) or not shifts:
        raise TypeError(
            f"`shifts` must be a number or a non-empty list of (height_shift, "
            f"width_shift) pairs; use e.g. {example}. {args.received('shifts', shifts)}"
        )
    pairs = []
    for pair in shifts:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                "Each element of `shifts` must be a (height_shift, width_shift) pair; "
                f"use e.g. {example}. {args.received('shifts', shifts)}"
            )
        pairs.append(tuple(_check_shift(value, shifts) for value in pair))
    if len(set(pairs)) != len(pairs):
        raise ValueError(
            "`shifts` lists a shift twice (it would count twice in the average). "
            f"{args.received('shifts', shifts)}"
        )
    return tuple(pairs)


def _pixels(shift, size):
    """A shift in whole pixels: ints as given, fractions of ``size`` rounded half away from 0."""
    if isinstance(shift, int):
        return shift
    if isinstance(size, int):
        return int(np.sign(shift) * np.floor(abs(shift) * size + 0.5))
    ops = keras.ops
    magnitude = ops.floor(abs(shift) * ops.cast(size, "float32") + 0.5)
    return ops.cast(magnitude if shift > 0 else -magnitude, "int32")


def source_indices(size, shift, flip: bool, fill_mode: str):
    """Where each output row (or column) of a view reads the picture.

    The view flips the picture (if ``flip``), then moves it by ``shift`` pixels
    (positive: down or right): output ``i`` shows flipped position ``i - shift``,
    extended beyond the edges by ``fill_mode`` ("reflect": ``d c b a | a b c d |
    d c b a``, the edge pixel repeated as in Keras' layers; "nearest": the edge
    pixel).

    Args:
        size: The picture's height or width (an int, or a tensor when unknown
            until run time).
        shift: Pixels (int) or a fraction of ``size`` (float).
        flip: Whether this axis is flipped.
        fill_mode: "reflect" or "nearest".

    Returns:
        int32 indices of shape ``(size,)`` (a NumPy array for an int ``size``).
    """
    xp = np if isinstance(size, int) else keras.ops
    positions = xp.arange(size, dtype="int32") - _pixels(shift, size)
    if fill_mode == "nearest":
        positions = xp.clip(positions, 0, size - 1)
    else:
        positions = xp.mod(positions, 2 * size)
        positions = xp.where(positions >= size, 2 * size - 1 - positions, positions)
    if flip:
        positions = size - 1 - positions
    return positions


def _static_size(pictures, axis):
    size = pictures.shape[axis]
    return None if size is None else int(size)


def view(pictures, flip: str, shift, fill_mode: str = "reflect", data_format=None):
    """One deterministic view of a batch of pictures: a flip, then a shift.

    Args:
        pictures: A batch ``(batch, height, width, channels)`` (channels-first
            with ``data_format="channels_first"``), a tensor of the running
            backend or a NumPy array.
        flip: One of ``FLIPS``.
        shift: A ``(height_shift, width_shift)`` pair: ints are pixels, floats
            fractions of the size; positive moves the picture down / right.
        fill_mode: "reflect" or "nearest" (what fills the uncovered border).
        data_format: "channels_last" or "channels_first" (default: Keras'
            `image_data_format()`).

    Returns:
        The view, a tensor of the same shape and dtype.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    height_axis, width_axis = (1, 2) if data_format == "channels_last" else (2, 3)
    flip_rows = flip in ("vertical", "horizontal_and_vertical")
    flip_columns = flip in ("horizontal", "horizontal_and_vertical")
    for axis, amount, flipped in (
        (height_axis, shift[0], flip_rows),
        (width_axis, shift[1], flip_columns),
    ):
        if amount == 0 and not flipped:
            continue
        size = _static_size(pictures, axis)
        if size is None:
            size = keras.ops.shape(pictures)[axis]
        indices = source_indices(size, amount, flipped, fill_mode)
        pictures = keras.ops.take(pictures, indices, axis=axis)
    return pictures


class _AveragedViews(keras.Model):
    """``model``'s outputs averaged over the views of each batch (the TTA forward pass)."""

    def __init__(
        self,
        model: keras.Model,
        views: Sequence[tuple[str, tuple[float, float]]],
        fill_mode: str,
        data_format: str,
    ) -> None:
        super().__init__(name=f"{model.name}_with_tta")
        self.wrapped = model
        self.views = views
        self.fill_mode = fill_mode
        self.picture_format = data_format

    def call(self, pictures: Tensor, training: bool = False) -> Tensor:
        outputs = [
            self.wrapped(
                view(pictures, flip, shift, self.fill_mode, self.picture_format),
                training=False,
            )
            for flip, shift in self.views
        ]
        count = float(len(outputs))

        def average(*values):
            total = values[0]
            for value in values[1:]:
                total = total + value
            return total / keras.ops.cast(count, total.dtype)

        return keras.tree.map_structure(average, *outputs)


class _DropRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _first_trace_is_not_retracing():
    """Silences TensorFlow's retracing warning while a new averaging model predicts.

    Each call builds a new model, whose predict function TensorFlow traces
    once; after a few calls TensorFlow counts those first traces as
    "retracing" and blames the user's code. Only during that call.
    """
    if not _backend.is_tensorflow():
        yield
        return
    logger = _backend.tensorflow().get_logger()
    quiet = _DropRetracingWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _pictures_spec(pictures):
    """The (shape, source) of the pictures of an array or a dataset, after checks."""
    if _backend.is_tf_dataset(pictures):
        tf = _backend.tensorflow()
        if pictures.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "The dataset is infinite (e.g. .repeat() without a count): "
                "prediction would never end. Pass a finite dataset, such as the "
                "test split, or take a part of it with dataset.take(n)."
            )
        spec = pictures.element_spec
        if isinstance(spec, tuple):
            spec = spec[0] if spec else None
        if not isinstance(spec, tf.TensorSpec):
            raise TypeError(
                "predict_with_tta takes a dataset of picture batches, or of (pictures, "
                "labels) batches (the labels are ignored); its elements are "
                f"{pictures.element_spec}."
            )
        return tuple(spec.shape), "dataset"
    if isinstance(pictures, (list, tuple, dict, str, bytes)) or not hasattr(
        pictures, "shape"
    ):
        raise TypeError(
            "predict_with_tta takes pictures as one array (batch, height, width, "
            "channels) or a tf.data.Dataset of batches; received "
            f"{type(pictures).__name__}. Stack a list of pictures with np.stack."
        )
    return tuple(pictures.shape), "array"


def predict_with_tta(
    model: keras.Model,
    images: Data,
    *,
    flips: Sequence[str] = ("none", "horizontal"),
    shifts: float | Sequence[tuple[float, float]] = 0,
    fill_mode: str = "reflect",
    batch_size: int = 32,
    verbose: int = 0,
) -> Any:
    """Predicts with test-time augmentation: the average over fixed views of each picture.

    Each picture is shown to the model in every flip of ``flips`` combined
    with every shift of ``shifts`` (flip first, then shift), and the
    model's outputs are averaged (probabilities for a softmax or sigmoid
    head, logits for a model that outputs logits). Each batch is read once
    and shown in every view. With only the identity view the result is
    exactly ``model.predict``. Runs on every Keras backend.

    Args:
        model: A Keras model with one input, a batch of pictures.
        images: An array or tensor ``(batch, height, width, channels)``, or
            a finite `tf.data.Dataset` of such batches or of ``(images,
            labels)`` batches (the labels are ignored).
        flips: Names from ``FLIPS``: ``"none"`` (the picture as it is),
            ``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"``.
        shifts: One number ``s``: the unshifted picture and the four shifts
            by ``s`` (up, down, left, right); ``0``: no shift. Or a list of
            ``(height_shift, width_shift)`` pairs, exactly those (include
            ``(0, 0)`` to keep the unshifted picture). An int is pixels, a
            float in (-1, 1) a fraction of the size. Positive moves down /
            right.
        fill_mode: What fills the uncovered border: ``"reflect"`` or
            ``"nearest"``.
        batch_size: Batch size for arrays (a dataset keeps its own batches).
        verbose: 0 (silent), 1 (progress bar) or 2 (one line), as for
            `model.predict`.

    Returns:
        What `model.predict` returns for the same input (same shapes and
        structure), averaged over the ``len(flips) * number of shifts`` views.

    Raises:
        ValueError: For unknown or repeated flips or shifts, a shift as
            large as the picture, an infinite dataset, a model with several
            inputs or pictures without a batch axis.
        TypeError: For a ``model`` that is not a `keras.Model` or
            ``images`` of an unsupported type.

    Example:

    ```python
    probabilities = predict_with_tta(model, images, shifts=4)
    # 2 flips x 5 shifts = 10 views per picture
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"predict_with_tta needs a keras.Model; received {type(model).__name__}."
        )
    flips = _check_flips(flips)
    shift_pairs = _check_shifts(shifts)
    fill_mode = args.check_choice("fill_mode", fill_mode, TTA_FILL_MODES)
    batch_size = args.check_positive_int("batch_size", batch_size)
    args.check_choice("verbose", verbose, (0, 1, 2))
    try:
        model_inputs = model.inputs
    except (AttributeError, ValueError):
        model_inputs = None
    if model_inputs is not None and len(model_inputs) != 1:
        raise ValueError(
            "predict_with_tta takes a model with one input (the pictures); "
            f"{model.name!r} has {len(model_inputs)} inputs."
        )
    shape, source = _pictures_spec(images)
    if len(shape) != 4:
        hint = (
            " Batch the dataset first: dataset.batch(32)."
            if source == "dataset"
            else " For one picture, add a batch axis: images[None]."
        )
        raise ValueError(
            "predict_with_tta takes batches of pictures of shape (batch, height, "
            f"width, channels); received shape {shape}.{hint}"
        )
    data_format = keras.config.image_data_format()
    sizes = shape[1:3] if data_format == "channels_last" else shape[2:4]
    for pair in shift_pairs:
        for shift, size, axis in zip(pair, sizes, ("height", "width")):
            if isinstance(shift, int) and size is not None and abs(shift) >= size:
                raise ValueError(
                    f"A shift of {shift} pixels is out of range for pictures of "
                    f"{axis} {size}: a shift must be smaller than the size (a few "
                    f"pixels, or a fraction such as 0.1). "
                    f"{args.received('shifts', shifts)}"
                )

    views = [(flip, pair) for flip in flips for pair in shift_pairs]
    predict_options = {"verbose": verbose}
    if source == "array":
        predict_options["batch_size"] = batch_size
    if views == [("none", (0, 0))]:
        return model.predict(images, **predict_options)
    averaged = _AveragedViews(model, views, fill_mode, data_format)
    with _first_trace_is_not_retracing():
        return averaged.predict(images, **predict_options)
