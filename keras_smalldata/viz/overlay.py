"""Colouring a heatmap and blending it over its picture, with matplotlib only."""

from __future__ import annotations

import numpy as np

from keras_smalldata._arguments import check_number, check_value_range, did_you_mean
from keras_smalldata._types import ArrayLike


def to_display_image(
    image, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Converts a picture to an RGB uint8 array for display.

    Args:
        image: (height, width), (height, width, 1), (height, width, 3) or
            (height, width, 4) (alpha dropped); uint8, or floats.
        value_range: (low, high) of a float picture. None guesses: uint8 is
            0-255; floats with a minimum >= 0 and a maximum <= 1 are 0-1;
            floats with a negative minimum >= -1 and a maximum <= 1 are
            -1 to 1; other floats are 0-255.

    Returns:
        A uint8 array (height, width, 3).
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            "image must be (height, width), (height, width, 1), (height, width, 3) or "
            f"(height, width, 4), got shape {np.shape(image)}."
        )
    array = array[..., :3]
    if value_range is None:
        if array.dtype == np.uint8:
            return array.copy()
        low_value, high_value = float(np.nanmin(array)), float(np.nanmax(array))
        if low_value >= 0.0 and high_value <= 1.0:
            value_range = (0.0, 1.0)
        elif low_value >= -1.0 and high_value <= 1.0:
            value_range = (-1.0, 1.0)
        else:
            value_range = (0.0, 255.0)
    low, high = check_value_range("value_range", value_range)
    scaled = (np.nan_to_num(array.astype("float64")) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).round().astype("uint8")


def resize_heatmap(heatmap, size: tuple[int, int]) -> np.ndarray:
    """Resizes a 2-D heatmap to (height, width) with bilinear interpolation (Pillow)."""
    from PIL import Image

    heatmap = np.asarray(heatmap, dtype="float32")
    if heatmap.shape == tuple(size):
        return heatmap
    picture = Image.fromarray(heatmap, mode="F")
    return np.asarray(
        picture.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR), dtype="float32"
    )


def colorize_heatmap(heatmap: ArrayLike, cmap: str = "jet") -> np.ndarray:
    """Maps a heatmap with values in [0, 1] to RGB uint8 with a matplotlib colormap.

    Args:
        heatmap: An array of values in [0, 1] (clipped; NaN counts as 0).
        cmap: A matplotlib colormap name or object.

    Returns:
        A uint8 array with a trailing RGB axis.

    Example:

    ```python
    colorize_heatmap(np.array([[0.0, 1.0]]), "jet").shape
    # (1, 2, 3)
    ```
    """
    import matplotlib

    if not isinstance(cmap, str):
        colormap = cmap
    elif cmap in matplotlib.colormaps:
        colormap = matplotlib.colormaps[cmap]
    else:
        hint = did_you_mean(cmap, list(matplotlib.colormaps)) or (
            " E.g. 'jet', 'viridis', 'inferno', 'turbo'."
        )
        raise ValueError(
            f"`cmap` must be a matplotlib colormap.{hint} Received: cmap={cmap!r}."
        )
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype="float64")), 0.0, 1.0)
    return (colormap(values)[..., :3] * 255.0).round().astype("uint8")


def overlay_heatmap(
    image: ArrayLike,
    heatmap: ArrayLike,
    *,
    alpha: float = 0.4,
    cmap: str = "jet",
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Colours a heatmap and blends it over its picture (no OpenCV needed).

    The heatmap is resized to the picture (bilinear) if needed, coloured
    with a matplotlib colormap and blended: ``alpha * colour + (1 - alpha)
    * picture``, which never overflows 255.

    Args:
        image: The picture, (height, width[, channels]), uint8 0-255 or
            floats (see ``value_range``).
        heatmap: A 2-D array with values in [0, 1] (NaN counts as 0).
        alpha: Weight of the coloured heatmap, in [0, 1].
        cmap: A matplotlib colormap name.
        value_range: (low, high) of a float picture; None guesses (uint8:
            0-255; floats within [0, 1]: 0-1; within [-1, 1]: -1 to 1;
            otherwise 0-255).

    Returns:
        An RGB uint8 array (height, width, 3).

    Raises:
        ValueError: For a heatmap that is not 2-D, or a picture of another
            shape than (height, width[, 1, 3 or 4]).

    Example:

    ```python
    heatmap = class_activation_maps(model, image).heatmaps[0]
    PIL.Image.fromarray(overlay_heatmap(image, heatmap)).save("cam.png")
    ```
    """
    alpha = check_number("alpha", alpha, 0.0, 1.0)
    picture = to_display_image(image, value_range)
    heatmap = np.asarray(heatmap)
    if heatmap.ndim == 3 and heatmap.shape[-1] == 1:
        heatmap = heatmap[..., 0]
    if heatmap.ndim != 2:
        raise ValueError(
            "`heatmap` must be a 2-D array (height, width), one of the heatmaps of "
            f"class_activation_maps. Received: heatmap of shape {heatmap.shape}."
        )
    colour = colorize_heatmap(resize_heatmap(heatmap, picture.shape[:2]), cmap)
    blended = float(alpha) * colour.astype("float64") + (1.0 - float(alpha)) * picture
    return np.clip(blended.round(), 0, 255).astype("uint8")
