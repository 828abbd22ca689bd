"""Intermediate activations: what each layer outputs for a picture, and their grids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_smalldata._arguments import (
    check_bool,
    check_int,
    check_number,
    check_positive_int,
)
from keras_smalldata._figures import new_figure
from keras_smalldata._models import check_model, resolve_layer
from keras_smalldata._types import ArrayLike
from keras_smalldata.viz._layers import model_layers
from keras_smalldata.viz._recording import CallRecorder, as_batch, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _resolve_many(model, layers):
    if layers is None:
        return [(path, path, layer) for path, layer in model_layers(model)]
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    resolved = []
    for requested in layers:
        path, layer = resolve_layer(model, requested)
        key = requested if isinstance(requested, str) else path
        resolved.append((key, path, layer))
    return resolved


def get_activations(
    model: keras.Model,
    images: ArrayLike,
    layers: str | keras.layers.Layer | Sequence[str | keras.layers.Layer] | None = None,
    *,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Returns what chosen layers output when the model sees some pictures.

    The model runs as ``model(images, training=False)`` while the chosen
    layers' outputs are recorded; no sub-model is built and the model is not
    changed. Layers inside a nested model are named by their path
    (``"vgg16/block3_conv1"``).

    Args:
        model: A Keras model.
        images: Pictures as the model expects them, (batch, height, width,
            channels), or one picture (height, width, channels).
        layers: A path, a bare name (when it is unique), a Layer, or a list
            of these. None (default) means every layer that runs once,
            nested models and their layers included.
        batch_size: Pictures per forward pass.

    Returns:
        A dict from layer name (as given; full paths when ``layers`` is None
        or a Layer) to a NumPy array with the batch axis first, in the order
        asked for (the order of ``layer_paths(model)`` for None).

    Raises:
        ValueError: For an unknown layer (with the closest real paths), a
            layer that does not run, or one that runs several times.

    Example:

    ```python
    activations = get_activations(model, images[:1],
                                  ["conv2d", "vgg16/block3_conv1"])
    activations["vgg16/block3_conv1"].shape
    # (1, 8, 8, 256)
    ```
    """
    check_model(model)
    check_positive_int("batch_size", batch_size)
    batch, _ = as_batch(images)
    wanted = _resolve_many(model, layers)
    chunks: dict[str, list[np.ndarray]] = {key: [] for key, _, _ in wanted}
    total = int(batch.shape[0])
    pairs = [(path, layer) for _, path, layer in wanted]
    with CallRecorder(pairs) as recorder:
        for start in range(0, total, batch_size):
            recorder.run(model, batch[start : start + batch_size])
            for key, path, _ in wanted:
                if layers is None and len(recorder.calls_of(path)) != 1:
                    continue  # unused, or shared (its activation is ambiguous)
                call = recorder.single_call(path, model)
                chunks[key].append(to_numpy(call.output))
    result = {}
    for key, parts in chunks.items():
        if not parts:
            continue
        if isinstance(parts[0], np.ndarray):
            result[key] = np.concatenate(parts, axis=0)
        else:  # a layer with several outputs: concatenate each one
            result[key] = keras.tree.map_structure(
                lambda *xs: np.concatenate(xs, axis=0), *parts
            )
    return result


def _channel_grid(feature_map: np.ndarray, images_per_row: int, gap: int) -> np.ndarray:
    """Tiles the channels of one (height, width, channels) map, each standardised."""
    height, width, channels = feature_map.shape
    columns = min(images_per_row, channels)
    rows = math.ceil(channels / columns)
    grid = np.full(
        (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap),
        np.nan,
        dtype="float32",
    )
    maps = feature_map.astype("float64")
    mean = maps.mean(axis=(0, 1), keepdims=True)
    std = maps.std(axis=(0, 1), keepdims=True)
    # The seeds' display transform; a constant channel (std 0) shows as flat grey.
    scaled = (maps - mean) / np.where(std > 0, std, 1.0) * 64.0 + 128.0
    scaled = np.clip(scaled, 0, 255)
    for c in range(channels):
        r, k = divmod(c, columns)
        top, left = r * (height + gap), k * (width + gap)
        grid[top : top + height, left : left + width] = scaled[..., c]
    return grid


def _as_feature_map(name: str, value, image_index: int) -> np.ndarray | None:
    array = np.asarray(value)
    if array.ndim < 2 or image_index >= array.shape[0]:
        return None
    array = array[image_index]
    if array.ndim == 1:  # a vector: one row of 1x1 "channels"
        return array[None, None, :]
    if array.ndim == 2:  # (steps, channels): a 1-D feature map
        return array[None, :, :]
    if array.ndim == 3:
        return array
    return None


def plot_activations(
    activations: dict[str, np.ndarray],
    *,
    image_index: int = 0,
    images_per_row: int = 16,
    one_figure: bool = False,
    cmap: str = "viridis",
    tile_inches: float = 0.8,
    figsize: tuple[float, float] | None = None,
) -> Figure | list[Figure]:
    """Draws each layer's channels as a grid of small pictures.

    Every channel is standardised on its own, so weak and strong channels
    are equally visible; a constant channel shows as one flat tile in the
    colour map's middle colour (teal with viridis). Layers whose output is not
    a feature map (more than 3 axes per picture) are skipped.

    Args:
        activations: The dict returned by `get_activations`.
        image_index: Which picture of the batch to show.
        images_per_row: Channels per row of the grid.
        one_figure: False (default) gives one Figure per layer; True puts all
            layers, one under the other, in one Figure.
        cmap: A matplotlib colormap name.
        tile_inches: Size of one channel tile in inches (sets the default
            figure size).
        figsize: Overrides the figure size (per figure).

    Returns:
        A list of `matplotlib.figure.Figure`, one per layer, or a single
        Figure when ``one_figure=True``.

    Raises:
        TypeError: If ``activations`` is not a dict.
        ValueError: If no layer has a feature map for ``image_index``.

    Example:

    ```python
    figures = plot_activations(get_activations(model, image, ["conv2d"]))
    figures[0].savefig("conv2d.png")
    ```
    """
    if not isinstance(activations, dict):
        raise TypeError(
            "`activations` must be the dict returned by get_activations(model, "
            f"images, layers). Received: activations of type {type(activations).__name__}."
        )
    check_int("image_index", image_index)
    check_positive_int("images_per_row", images_per_row)
    check_bool("one_figure", one_figure)
    check_number("tile_inches", tile_inches, 0.0, include_minimum=False)
    grids = []
    for name, value in activations.items():
        feature_map = _as_feature_map(name, value, image_index)
        if feature_map is None:
            continue
        grids.append(
            (
                name,
                feature_map.shape,
                _channel_grid(
                    feature_map, images_per_row, gap=max(1, feature_map.shape[0] // 8)
                ),
            )
        )
    if not grids:
        raise ValueError(
            f"None of the layers {list(activations)} has a feature map for image_index="
            f"{image_index}."
        )

    def size_of(shape):
        height, width, channels = shape
        columns = min(images_per_row, channels)
        rows = math.ceil(channels / columns)
        aspect = height / width
        return columns * tile_inches, rows * tile_inches * aspect + 0.5

    def draw(ax, name, shape, grid):
        masked = np.ma.masked_invalid(grid)
        ax.imshow(
            masked, cmap=cmap, vmin=0, vmax=255, interpolation="nearest", aspect="equal"
        )
        ax.set_title(f"{name}  {shape[0]}x{shape[1]}, {shape[2]} channels", fontsize=10)
        ax.set_axis_off()

    if one_figure:
        sizes = [size_of(shape) for _, shape, _ in grids]
        width = max(w for w, _ in sizes)
        height = sum(h for _, h in sizes)
        figure = new_figure(figsize=figsize or (width, height), layout="constrained")
        axes = figure.subplots(
            len(grids),
            1,
            squeeze=False,
            gridspec_kw={"height_ratios": [h for _, h in sizes]},
        )[:, 0]
        for ax, (name, shape, grid) in zip(axes, grids):
            draw(ax, name, shape, grid)
        return figure
    figures = []
    for name, shape, grid in grids:
        figure = new_figure(figsize=figsize or size_of(shape), layout="constrained")
        draw(figure.add_subplot(), name, shape, grid)
        figures.append(figure)
    return figures
