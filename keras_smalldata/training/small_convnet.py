"""The seeds' small convnet, trained from scratch: the baseline of the recipe."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._arguments import check_positive_int


def small_convnet(
    input_shape: Sequence[int] = (150, 150, 3),
    *,
    filters: Sequence[int] = (32, 64, 128, 128),
    hidden_units: int | None = 256,
    dropout: float = 0.5,
    num_classes: int = 2,
    augmentation: keras.layers.Layer | None = None,
    seed: int | None = None,
    name: str = "small_convnet",
) -> keras.Model:
    """Builds the classic small convnet for a small image dataset.

    ``[augmentation] -> Rescaling(1/255) -> (Conv2D 3x3 relu -> MaxPooling2D 2)
    per entry of filters -> Flatten -> Dropout -> [Dense relu] -> classifier``.
    It takes pictures in [0, 255] and rescales them itself. Its layers have
    stable names (``conv1``, ``pool1``, ``conv2``..., ``dense``, ``output``).

    Args:
        input_shape: Shape of one picture, ``(height, width, channels)``;
            the sides must be at least ``2 ** len(filters)`` pixels.
        filters: Filters of each convolution block (one block per entry).
        hidden_units: Units of the hidden dense layer, or None for none.
        dropout: Dropout rate before the dense layers (0 for none).
        num_classes: 2 gives one sigmoid unit (``binary_crossentropy``),
            more gives a softmax (``sparse_categorical_crossentropy``).
        augmentation: An optional augmentation layer, placed first (it sees
            the 0-255 pictures).
        seed: Seed of the Dropout layer.
        name: The model's name.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        ValueError: For an ``input_shape`` too small for the blocks, or an
            empty ``filters``.

    Example:

    ```python
    model = small_convnet((64, 64, 3))
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    ```
    """
    if not filters:
        raise ValueError(f"filters={filters!r} must list at least one block, e.g. (32, 64).")
    for value in filters:
        check_positive_int("filters", value)
    if hidden_units is not None:
        check_positive_int("hidden_units", hidden_units)
    args.check_number("dropout", dropout, 0.0, 1.0, include_maximum=False)
    args.check_int("num_classes", num_classes, minimum=2)
    args.check_seed(seed)
    input_shape = _check_input_shape(input_shape, tuple(filters))
    inputs = keras.Input(input_shape, name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = keras.layers.Rescaling(1.0 / 255, name="rescaling")(x)
    for i, count in enumerate(filters, start=1):
        x = keras.layers.Conv2D(count, 3, activation="relu", padding="same", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    if hidden_units is not None:
        x = keras.layers.Dense(hidden_units, activation="relu", name="dense")(x)
    if num_classes == 2:
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_input_shape(input_shape, filters: tuple) -> tuple:
    """``(height, width, channels)`` of positive ints, big enough for one halving per block."""
    blocks = len(filters)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(args.is_integer(d) and d > 0 for d in shape):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive ints, e.g. "
            "(150, 150, 3): the Flatten before the dense layers needs a fixed size. "
            f"{args.received('input_shape', input_shape)}"
        )
    shape = tuple(int(d) for d in shape)
    side, smallest = min(shape[:2]), 2**blocks
    if side < smallest:
        fits = side.bit_length() - 1  # halvings that leave at least 1 pixel
        sizes = [side]
        while len(sizes) <= blocks:
            sizes.append(sizes[-1] // 2)
        plural = "block" if blocks == 1 else "blocks"
        advice = "Use larger pictures"
        if fits:
            advice += (
                f", or at most {fits} {'block' if fits == 1 else 'blocks'} at {side} px, "
                f"e.g. filters={tuple(filters[:fits])}"
            )
        raise ValueError(
            f"`input_shape` {shape} is too small for {blocks} {plural}: each block halves "
            f"the size ({' -> '.join(map(str, sizes))}), so the pictures must be at "
            f"least {smallest}x{smallest} for {blocks} {plural}. {advice}. "
            f"{args.received('input_shape', input_shape)}"
        )
    return shape
