"""Filter patterns: the picture each filter of a layer responds to most.

Gradient ascent in input space, as in the seeds and the Keras example
"Visualizing what convnets learn": start from a grey picture with a little
noise, repeatedly add the L2-normalised gradient of the filter's mean
activation (leaving out a 2-pixel border of the feature map), then turn the
result into a viewable picture (centre, divide by the standard deviation,
times 0.15, plus 0.5, clip, crop the borders, to uint8).

Many filters are optimised together: picture i of one batch climbs filter
``filters[i]``, so 64 filters cost one batched forward and backward pass per
step instead of 64.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import keras
import numpy as np

from keras_smalldata._arguments import check_positive_int
from keras_smalldata.viz._gradients import (
    FunctionCache,
    accelerator_available,
    compile_function,
    gradient_recorder,
)
from keras_smalldata.viz._layers import _check_model, resolve_layer
from keras_smalldata.viz._recording import CallRecorder

_DEFAULT_SIZE = 180  # the Keras example's picture size


def _model_input_shape(model) -> tuple | None:
    """(height, width, channels) of the model's input where known, else None."""
    for getter in (
        lambda: model.inputs[0].shape,
        lambda: model.input_shape,
        lambda: next(iter(model._build_shapes_dict.values())),
    ):
        try:
            shape = tuple(getter())
        except Exception:
            continue
        if len(shape) == 4:
            return shape[1:]
    return None


def deprocess_image(image, crop: int = 0) -> np.ndarray:
    """Turns an optimised input into a viewable uint8 picture (the Keras example's recipe).

    Centres the picture on 0, divides by its standard deviation (+1e-5),
    multiplies by 0.15, adds 0.5, clips to [0, 1], removes ``crop`` pixels on
    every side and scales to 0-255 uint8.

    Args:
        image: A float array (height, width, channels).
        crop: Pixels to remove on each side (the borders get little
            gradient and look noisy).

    Returns:
        A uint8 array (height - 2 crop, width - 2 crop, channels).

    Example:

    ```python
    raw = filter_patterns(model, "conv2d", [0], deprocess=False)[0]
    picture = deprocess_image(raw, crop=4)
    ```
    """
    image = np.asarray(image, dtype="float64")
    image = image - image.mean()
    image = image / (image.std() + 1e-5)
    image = image * 0.15 + 0.5
    image = np.clip(image, 0.0, 1.0)
    if crop:
        image = image[crop:-crop, crop:-crop]
    return (image * 255.0).round().astype("uint8")


def _mean_filter_activation(activation, filters, border: int):
    """Per picture, the mean of its own filter's activation without a border.

    ``activation`` is (batch, ..., channels) with any number of spatial axes
    (none for a Dense layer's units).
    """
    spatial = len(activation.shape) - 2
    slices = [slice(None)]
    for axis in range(1, 1 + spatial):
        size = activation.shape[axis]
        slices.append(
            slice(border, size - border) if size > 2 * border else slice(None)
        )
    slices.append(slice(None))
    inner = activation[tuple(slices)]
    one_hot = keras.ops.one_hot(filters, int(activation.shape[-1]), dtype=inner.dtype)
    one_hot = keras.ops.reshape(
        one_hot, (-1,) + (1,) * spatial + (int(activation.shape[-1]),)
    )
    selected = keras.ops.sum(inner * one_hot, axis=-1)
    if spatial:
        return keras.ops.mean(selected, axis=tuple(range(1, 1 + spatial)))
    return selected


_STEPS = FunctionCache(size=4)


def _forward_to_layer(model, path, images):
    """Runs ``model`` on ``images`` up to the layer at ``path``; returns its output."""
    with CallRecorder([resolve_layer(model, path)], stop_after=[path]) as recorder:
        recorder.run(model, images)
        calls = recorder.calls_of(path)
    if not calls:
        raise ValueError(
            f"Layer {path!r} did not run when model {model.name!r} was called: "
            "it is not on the path from the model's input to its output."
        )
    return calls[0].output


def _layer_output_shape(model, path, height, width, channels):
    picture = keras.ops.zeros((1, height, width, channels), dtype="float32")
    return tuple(_forward_to_layer(model, path, picture).shape)


def _ascent_step(model, path, border, jitter):
    """One gradient-ascent step for a batch; picture i climbs filter ``indices[i]``."""
    model_ref = weakref.ref(model)

    def step(pictures, indices, shifts, step_size):
        with gradient_recorder() as tape:
            tape.watch(pictures)
            moved = pictures
            if jitter:
                moved = keras.ops.roll(moved, shifts[0], axis=1)
                moved = keras.ops.roll(moved, shifts[1], axis=2)
            activation = _forward_to_layer(model_ref(), path, moved)
            loss = _mean_filter_activation(activation, indices, border)
        gradients = tape.gradient(loss, pictures)
        # L2-normalised per picture, as tf.math.l2_normalize on a batch of one
        squares = keras.ops.sum(
            keras.ops.square(gradients), axis=(1, 2, 3), keepdims=True
        )
        gradients = gradients * keras.ops.rsqrt(keras.ops.maximum(squares, 1e-12))
        return pictures + step_size * gradients

    return step


def filter_patterns(
    model: keras.Model,
    layer: str | keras.layers.Layer,
    filters: Iterable[int] = range(64),
    size: int | tuple[int, int] | None = None,
    steps: int = 30,
    step_size: float = 10.0,
    value_range: tuple[float, float] = (0.0, 255.0),
    border: int = 2,
    crop: int | None = None,
    jitter: int = 0,
    batch_size: int | None = None,
    deprocess: bool = True,
    seed: int | None = None,
    verbose: int = 1,
    run_eagerly: bool = False,
) -> np.ndarray:
    """Finds, for several filters of a layer at once, the picture each responds to most.

    Picture i of a batch is optimised for filter ``filters[i]``: starting
    from mid-grey plus uniform noise of +-1/16 of the input range, each of
    ``steps`` steps adds ``step_size * (high - low) / 2`` times the
    L2-normalised gradient (per picture) of the filter's mean activation,
    the feature map's outer ``border`` pixels left out. With
    ``value_range=(-1, 1)`` this is exactly the Keras example's algorithm;
    other ranges scale the start noise and the step with the range.

    The model runs up to ``layer`` only (the forward pass stops once the
    layer has run), inside whatever model holds it: ``"vgg16/block3_conv1"``
    works in a model that contains VGG16 as a layer.

    Args:
        model: A Keras model.
        layer: The layer (path such as ``"vgg16/block3_conv1"``, name or
            Layer). Its output's last axis holds the filters; a Dense
            layer's units work too.
        filters: Indices of the filters.
        size: Picture size, an int or (height, width). None uses the
            model's input size when it is fixed, else 180 (as the Keras
            example).
        steps: Gradient-ascent steps (the Keras example: 30).
        step_size: Step for an input range of width 2 (the Keras example:
            10); scaled by ``(high - low) / 2``.
        value_range: (low, high) of the pictures the model takes: (0, 255)
            for models that rescale or preprocess inside (this library's
            convention), (0, 1) after a `Rescaling(1/255)` outside the
            model, (-1, 1) for a bare ResNet50V2 or Xception.
        border: Feature-map pixels left out on each side of the mean.
        crop: Pixels removed on each side when deprocessing. None: 25 px for
            a 180 px picture, proportionally for other sizes.
        jitter: If > 0, the picture is shifted (circularly) by a random
            number of pixels in [-jitter, jitter] on each axis before every
            step, a transformation-robustness regulariser (as in Lucid and
            tf-keras-vis) that gives smoother, more natural patterns. Runs
            as tensor ops (`keras.ops.roll`).
        batch_size: Filters optimised together per batch. None (default):
            all of them, up to 64, when a GPU is visible; 8 on a CPU, where
            per-picture cost hardly falls with larger batches and big
            batches ran slower on a loaded machine (on a quiet one, 64 was
            5-10% faster; see the benchmark page).
        deprocess: True (default) returns viewable uint8 pictures; False
            returns the raw optimised inputs (float32, in the model's input
            space, uncropped).
        seed: Seed of the start noise and the jitter.
        verbose: 1 shows a `keras.utils.Progbar`, 0 is silent.
        run_eagerly: False (default) compiles the step into a graph (several
            times faster; traced once per model, layer and batch size and
            reused by later calls); True runs it eagerly, for debugging.

    Returns:
        An array (filters, height, width, channels): uint8 pictures, or
        float32 inputs when ``deprocess=False``.

    Example:

    ```python
    patterns = filter_patterns(model, "vgg16/block3_conv1", range(16), size=64)
    fig = plot_filter_patterns(patterns, title="block3_conv1")
    ```
    """
    _check_model(model)
    path, _ = resolve_layer(model, layer)
    filters = _check_filters(filters)
    height, width, channels = _picture_shape(model, size)
    if batch_size is None:
        batch_size = 64 if accelerator_available() else 8
    for name, value in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("border", border),
        ("jitter", jitter),
    ):
        minimum = 1 if name in ("steps", "batch_size") else 0
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < minimum
        ):
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}.")
    low, high = _check_range(value_range)
    if crop is None:
        crop = int(round(min(height, width) * 25 / 180))
    if (
        isinstance(crop, bool)
        or not isinstance(crop, (int, np.integer))
        or crop < 0
        or 2 * crop >= min(height, width)
    ):
        raise ValueError(
            f"crop={crop!r} must be an int >= 0 smaller than half the picture size "
            f"({height}x{width})."
        )

    rng = np.random.default_rng(seed)
    spread = high - low
    step = keras.ops.convert_to_tensor(float(step_size) * spread / 2.0, dtype="float32")
    if run_eagerly:
        ascent_step, info = _ascent_step(model, path, border, bool(jitter)), {}
    else:
        ascent_step, info = _STEPS.get(
            model,
            (path, border, bool(jitter)),
            lambda: (
                compile_function(_ascent_step(model, path, border, bool(jitter))),
                {},
            ),
        )
    if "channels" not in info:  # the same for every picture size: computed once
        info["channels"] = _layer_output_shape(model, path, height, width, channels)[-1]
    _check_filter_range(filters, info["channels"], path)
    progbar = (
        keras.utils.Progbar(len(filters) * steps, unit_name="step") if verbose else None
    )
    results = []
    for start in range(0, len(filters), batch_size):
        chunk = filters[start : start + batch_size]
        noise = rng.uniform(size=(len(chunk), height, width, channels))
        pictures = keras.ops.convert_to_tensor(
            (low + high) / 2.0 + (noise - 0.5) * spread / 8.0, dtype="float32"
        )
        indices = keras.ops.convert_to_tensor(np.asarray(chunk, dtype="int32"))
        for _ in range(steps):
            shifts = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
            shifts = keras.ops.convert_to_tensor(np.asarray(shifts, dtype="int32"))
            pictures = ascent_step(pictures, indices, shifts, step)
            if progbar is not None:
                progbar.add(len(chunk))
        results.append(keras.ops.convert_to_numpy(pictures))
    raw = np.concatenate(results).astype("float32")
    if not deprocess:
        return raw
    return np.stack([deprocess_image(picture, crop) for picture in raw])


def filter_pattern(
    model: keras.Model,
    layer: str | keras.layers.Layer,
    filter_index: int,
    size: int | tuple[int, int] | None = None,
    steps: int = 30,
    step_size: float = 10.0,
    **kwargs,
) -> np.ndarray:
    """Finds the picture one filter of a layer responds to most.

    The one-filter case of `filter_patterns` (see there for the algorithm
    and for the other keyword arguments: ``value_range``, ``border``,
    ``crop``, ``jitter``, ``deprocess``, ``seed``, ``verbose``,
    ``run_eagerly``). The compiled step is cached, so a loop of calls on the
    same model and layer is traced once. To see
    many filters, call `filter_patterns`: it optimises them in one batch,
    which is many times faster than a loop over this function.

    Returns:
        One picture (height, width, channels), uint8 unless
        ``deprocess=False``.

    Example:

    ```python
    picture = filter_pattern(model, "block3_conv1", 0, size=64)
    ```
    """
    if isinstance(filter_index, bool) or not isinstance(
        filter_index, (int, np.integer)
    ):
        raise TypeError(f"filter_index must be an int, got {filter_index!r}.")
    kwargs.setdefault("verbose", 0)
    return filter_patterns(
        model,
        layer,
        [int(filter_index)],
        size=size,
        steps=steps,
        step_size=step_size,
        **kwargs,
    )[0]


def _check_filters(filters) -> list[int]:
    if isinstance(filters, (int, np.integer)) and not isinstance(filters, bool):
        filters = [filters]
    try:
        values = list(filters)
    except TypeError as error:
        raise TypeError(
            f"filters must be a sequence of ints, got {filters!r}."
        ) from error
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0
        for v in values
    ):
        raise ValueError(
            f"filters must be a non-empty sequence of ints >= 0, got {filters!r}."
        )
    return [int(v) for v in values]


def _check_filter_range(filters, count, path):
    count = int(count)
    bad = [f for f in filters if f >= count]
    if bad:
        raise ValueError(
            f"filters {bad[:5]} are out of range: layer {path!r} has {count} filters "
            f"(0 to {count - 1})."
        )


def _check_range(value_range):
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"value_range must be (low, high), got {value_range!r}."
        ) from error
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"value_range must be (low, high) with low < high, got {value_range!r}."
        )
    return low, high


def _picture_shape(model, size):
    known = _model_input_shape(model)
    channels = known[2] if known and known[2] else 3
    if size is None:
        if known and known[0] and known[1]:
            return int(known[0]), int(known[1]), int(channels)
        size = _DEFAULT_SIZE
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    else:
        try:
            height, width = (int(s) for s in size)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"size must be an int or (height, width), got {size!r}."
            ) from error
    if height < 8 or width < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}.")
    if known and known[0] and known[1] and (known[0], known[1]) != (height, width):
        raise ValueError(
            f"size={size!r} does not match the model's fixed input size "
            f"{known[0]}x{known[1]}; pass size=None or a model built with a "
            "free input size, e.g. include_top=False without input_shape."
        )
    return height, width, int(channels)


def plot_filter_patterns(
    patterns: np.ndarray,
    images_per_row: int = 8,
    margin: int = 5,
    title: str | None = None,
    labels: Iterable[int] | None = None,
    ax=None,
    figsize: tuple[float, float] | None = None,
):
    """Draws filter patterns as one grid picture, like the seeds' 8x8 grids.

    Args:
        patterns: The array returned by `filter_patterns` (uint8, or float
            in [0, 1]), shape (filters, height, width, channels).
        images_per_row: Patterns per row.
        margin: Black pixels between patterns.
        title: Title of the plot, e.g. the layer name.
        labels: Optional numbers (e.g. the filter indices) written in the
            corner of each pattern.
        ax: A matplotlib Axes to draw into; None makes a new Figure.
        figsize: Figure size when ``ax`` is None.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    ```python
    fig = plot_filter_patterns(filter_patterns(model, "conv2d", range(64)),
                               title="conv2d")
    ```
    """
    from matplotlib.figure import Figure

    patterns = np.asarray(patterns)
    if patterns.ndim == 3:
        patterns = patterns[..., None]
    if patterns.ndim != 4 or patterns.shape[0] == 0:
        raise ValueError(
            "patterns must be an array (filters, height, width, channels) as returned "
            f"by filter_patterns, got shape {patterns.shape}."
        )
    check_positive_int("images_per_row", images_per_row)
    if patterns.dtype != np.uint8:
        patterns = (
            (np.clip(patterns.astype("float64"), 0, 1) * 255).round().astype("uint8")
        )
    count, height, width, channels = patterns.shape
    if channels not in (1, 3):
        patterns = (
            patterns[..., :3]
            if channels > 3
            else np.repeat(patterns[..., :1], 3, axis=-1)
        )
        channels = patterns.shape[-1]
    columns = min(images_per_row, count)
    rows = -(-count // columns)
    grid = np.zeros(
        (
            rows * height + (rows - 1) * margin,
            columns * width + (columns - 1) * margin,
            channels,
        ),
        dtype="uint8",
    )
    for i in range(count):
        r, c = divmod(i, columns)
        top, left = r * (height + margin), c * (width + margin)
        grid[top : top + height, left : left + width] = patterns[i]
    if ax is None:
        figure = Figure(
            figsize=figsize or (1.2 * columns, 1.2 * rows + (0.4 if title else 0)),
            layout="constrained",
        )
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    ax.imshow(
        grid[..., 0] if channels == 1 else grid,
        cmap="gray" if channels == 1 else None,
        interpolation="nearest",
    )
    if labels is not None:
        for i, label in enumerate(labels):
            if i >= count:
                break
            r, c = divmod(i, columns)
            ax.text(
                c * (width + margin) + 1,
                r * (height + margin) + 1,
                str(label),
                color="white",
                fontsize=7,
                va="top",
                ha="left",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
            )
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return figure
