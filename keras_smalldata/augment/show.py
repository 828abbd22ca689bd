"""`show_augmentations`: a grid of augmented variants of one picture."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_smalldata._arguments import check_positive_int
from keras_smalldata._figures import new_figure
from keras_smalldata._types import ArrayLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _load_picture(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        if not os.path.exists(image):
            raise FileNotFoundError(f"image={str(image)!r} does not exist.")
        image = keras.utils.img_to_array(keras.utils.load_img(image))
    elif (
        hasattr(image, "mode")
        and hasattr(image, "size")
        and not hasattr(image, "shape")
    ):
        image = keras.utils.img_to_array(image)  # a PIL image
    array = np.asarray(keras.ops.convert_to_numpy(image))
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(
            f"image must be one picture of shape (height, width, channels) (or a file path); "
            f"got shape {array.shape}. For a batch, pass images[0]."
        )
    return array


def _to_display(picture: np.ndarray, value_range) -> np.ndarray:
    picture = picture.astype("float32")
    if value_range is None:
        low = float(picture.min())
        high = float(picture.max())
        value_range = (
            (-1.0, 1.0) if low < 0 else ((0.0, 255.0) if high > 1.0 else (0.0, 1.0))
        )
    low, high = value_range
    picture = np.clip((picture - low) / (high - low), 0.0, 1.0)
    return picture[..., 0] if picture.shape[-1] == 1 else picture


def show_augmentations(
    layer: Callable[..., Any],
    image: ArrayLike | str | os.PathLike,
    *,
    num_images: int = 9,
    images_per_row: int | None = None,
    figsize: tuple[float, float] | None = None,
    include_original: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """Draws a grid of random augmentations of one picture.

    Calls ``layer(image, training=True)`` once per panel, so even a layer
    that draws once per batch shows different variants.

    Args:
        layer: An augmentation layer, or a callable taking a batch of
            pictures and ``training=True``.
        image: One picture: an array or tensor ``(height, width, channels)``
            (or ``(1, height, width, channels)``), a PIL image or a file path.
        num_images: Number of augmented variants (>= 1).
        images_per_row: Panels per row of the grid (default: about the
            square root of the number of panels).
        figsize: Figure size in inches (default: 2 inches per panel).
        include_original: Show the input picture first.
        value_range: Pixel range used for display, e.g. ``(0, 255)``
            (default: guessed from the picture).

    Returns:
        A `matplotlib.figure.Figure`.

    Raises:
        ValueError: For a batch of several pictures or ``num_images < 1``.
        TypeError: For a ``layer`` that is not callable.
        FileNotFoundError: For a file path that does not exist.

    Example:

    ```python
    layer = augmentation_preset("image_data_generator")
    fig = show_augmentations(layer, image, num_images=6)
    fig.savefig("augmentations.png")
    ```
    """
    check_positive_int("num_images", num_images, "number of variants")
    if not callable(layer):
        raise TypeError(
            f"layer must be a Keras layer or a callable, got {type(layer).__name__}."
        )
    picture = _load_picture(image)
    if value_range is None:
        low, high = float(picture.min()), float(picture.max())
        value_range = (
            (-1.0, 1.0) if low < 0 else ((0.0, 255.0) if high > 1.0 else (0.0, 1.0))
        )
    batch = picture[None].astype("float32")
    panels = [("original", picture)] if include_original else []
    for i in range(int(num_images)):
        out = keras.ops.convert_to_numpy(layer(batch, training=True))
        panels.append((f"#{i + 1}", np.asarray(out)[0]))
    count = len(panels)
    if images_per_row is None:
        images_per_row = math.ceil(math.sqrt(count))
    else:
        check_positive_int("images_per_row", images_per_row)
    columns = min(int(images_per_row), count)
    rows = math.ceil(count / columns)
    fig = new_figure(figsize=figsize or (2.0 * columns, 2.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, panel) in zip(axes.flat, panels):
        shown = _to_display(panel, value_range)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
