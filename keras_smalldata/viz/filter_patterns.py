"""Filter patterns: the picture each filter of a layer responds to most.

Gradient ascent in input space, as in the seeds and the Keras example
"Visualizing what convnets learn": start from a grey picture with a little
noise, repeatedly add the L2-normalised gradient of the filter's mean value
(leaving out a 2-pixel border of the feature map), then turn the result into a
viewable picture (centre, divide by the standard deviation, times 0.15, plus
0.5, clip, crop the borders, to uint8).

What is climbed, by default, is the filter's value *before* the layer's
activation function (as Lucid and Lucent do): the input of a ReLU layer, or
what the activation of a ``Conv2D(activation="relu")`` receives. After a
ReLU, a filter that is negative everywhere on the start picture outputs 0
there and has a zero gradient: climbing the activation itself (the Keras
example) leaves a quarter to two fifths of the filters of real pretrained
VGG-style layers exactly at the grey start noise. Before the activation the
gradient is alive, the filter's value rises until it fires, and the same
filters give patterns. Whether each filter was excited (its activation, the
layer's output, rose) is measured and reported (`FilterPatterns.excited`).

Many filters are optimised together: picture i of one batch climbs filter
``filters[i]``, so 64 filters cost one batched forward and backward pass per
step instead of 64.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_seed,
    check_value_range,
    is_integer,
    received,
)
from keras_smalldata._figures import new_figure
from keras_smalldata._function_cache import FunctionCache, model_signature
from keras_smalldata._models import check_model, resolve_layer
from keras_smalldata._types import ArrayLike
from keras_smalldata.viz._compiled import compile_for
from keras_smalldata.viz._recording import CallRecorder, single_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_DEFAULT_SIZE = 180  # the Keras example's picture size
OBJECTIVES = ("pre_activation", "activation")


@dataclasses.dataclass(frozen=True, eq=False)
class FilterPatterns:
    """The pictures `filter_patterns` found, and whether each filter was excited.

    Behaves as the array of pictures (``patterns.shape``, ``patterns[0]``,
    ``np.asarray(patterns)``, `plot_filter_patterns`).

    Attributes:
        images: uint8 pictures (filters, height, width, channels), or the
            raw float32 inputs when ``deprocess=False``.
        filters: The filter indices, int64 (filters,).
        excited: bool (filters,): True when the filter's mean activation (the
            layer's output, borders left out) is higher on its picture than on
            the start picture. False means the ascent found nothing: its
            picture is the start noise.
        start_activation: The filter's mean activation on the start picture.
        final_activation: The filter's mean activation on its picture.
        attempts: int (filters,): 1 when the first ascent excited the filter,
            k + 1 when restart k did.
        layer: The layer path.
        objective: What was climbed: "pre_activation" or "activation".
    """

    images: np.ndarray
    filters: np.ndarray
    excited: np.ndarray
    start_activation: np.ndarray
    final_activation: np.ndarray
    attempts: np.ndarray
    layer: str
    objective: str

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.images
        return self.images.astype(dtype)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]

    def __iter__(self):
        return iter(self.images)

    @property
    def shape(self) -> tuple:
        return self.images.shape

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    @property
    def ndim(self) -> int:
        return self.images.ndim

    def __repr__(self) -> str:
        return (
            f"FilterPatterns(layer={self.layer!r}, images {self.images.shape} "
            f"{self.images.dtype}, excited {int(self.excited.sum())} of "
            f"{len(self.excited)}, objective={self.objective!r})"
        )


def _model_input_shape(model) -> tuple | None:
    """(height, width, channels) of the model's input where known, else None."""
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return shape[1:] if len(shape) == 4 else None


def deprocess_image(image: ArrayLike, crop: int = 0) -> np.ndarray:
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
    image = deprocess_image(raw, crop=4)
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


def _forward_to_layer(model, path, images, pre_activation: bool = False):
    """Runs ``model`` on ``images`` up to the layer at ``path``; returns its `RecordedCall`."""
    spied = [path] if pre_activation else []
    with CallRecorder(
        [resolve_layer(model, path)], pre_activation=spied, stop_after=[path]
    ) as recorder:
        recorder.run(model, images)
    return single_run(path, recorder.calls[:1], model)


def _roll(x, shift, axis: int):
    """`numpy.roll` along one axis by a shift that may be a tensor.

    `keras.ops.roll` takes a tensor shift up to Keras 3.15 only; the compiled
    step keeps its shifts as tensors so that a new shift is no new trace.
    """
    size = keras.ops.shape(x)[axis]
    positions = keras.ops.mod(keras.ops.arange(size) - shift, size)
    return keras.ops.take(x, positions, axis=axis)


def _objective(model, path, border, jitter, objective):
    """``fn(pictures, indices, shifts) -> (per-picture objective, None)`` for `gradient_function`."""
    model_ref = weakref.ref(model)

    def objective_of(pictures, indices, shifts):
        moved = pictures
        if jitter:
            moved = _roll(moved, shifts[0], axis=1)
            moved = _roll(moved, shifts[1], axis=2)
        call = _forward_to_layer(
            model_ref(), path, moved, pre_activation=objective == "pre_activation"
        )
        value = (
            call.before_activation() if objective == "pre_activation" else call.output
        )
        return _mean_filter_activation(value, indices, border), None

    return objective_of


def _ascent_step(model, path, border, jitter, objective):
    """One gradient-ascent step for a batch; picture i climbs filter ``indices[i]``."""
    gradient = _backend.gradient_function(
        _objective(model, path, border, jitter, objective)
    )

    def step(pictures, indices, shifts, step_size):
        gradients, _ = gradient(pictures, indices, shifts)
        # L2-normalised per picture, as tf.math.l2_normalize on a batch of one
        squares = keras.ops.sum(
            keras.ops.square(gradients), axis=(1, 2, 3), keepdims=True
        )
        gradients = gradients * keras.ops.rsqrt(keras.ops.maximum(squares, 1e-12))
        return pictures + step_size * gradients

    return step


def _activation_measure(model, path, border):
    """``fn(pictures, indices)``: each picture's mean activation (layer output) of its filter."""
    model_ref = weakref.ref(model)

    def measure(pictures, indices):
        output = _forward_to_layer(model_ref(), path, pictures).output
        return _mean_filter_activation(output, indices, border)

    return measure


_STEPS = FunctionCache(size=4)


def _rose(start: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Whether each filter's activation rose (beyond float noise)."""
    return final > start + 1e-6 * np.abs(start) + 1e-12


class _Ascent:
    """Runs the compiled ascent over filters in batches, from a start picture per attempt.

    Attempt 0 starts, as the Keras example, from mid-grey plus uniform noise
    of +-1/16 of the value range. A restart (attempt k >= 1) starts from
    uniform noise over k times the value range around its middle: stronger
    inputs open ReLUs before the layer that the faint first start left shut,
    through which a filter's gradient must pass.
    """

    def __init__(
        self,
        step,
        measure,
        shape,
        value_range,
        step_size,
        steps,
        jitter,
        batch_size,
        rng,
        progbar,
    ):
        self._step, self._measure = step, measure
        self._shape, self._range = shape, value_range
        spread = value_range[1] - value_range[0]
        self._step_size = keras.ops.convert_to_tensor(
            step_size * spread / 2.0, dtype="float32"
        )
        self._steps, self._jitter, self._batch_size = steps, jitter, batch_size
        self._rng, self._progbar = rng, progbar

    def _start(self, count: int, attempt: int):
        low, high = self._range
        middle, spread = (low + high) / 2.0, high - low
        noise = self._rng.uniform(size=(count,) + self._shape) - 0.5
        scale = spread / 8.0 if attempt == 0 else spread * attempt
        return keras.ops.convert_to_tensor(middle + noise * scale, dtype="float32")

    def climb(self, filters, attempt: int):
        """Returns the raw pictures, and each filter's activation before and after."""
        if attempt and self._progbar is not None:
            self._progbar.target += len(filters) * self._steps
        pictures_out, start_out, final_out = [], [], []
        for begin in range(0, len(filters), self._batch_size):
            chunk = filters[begin : begin + self._batch_size]
            pictures = self._start(len(chunk), attempt)
            indices = keras.ops.convert_to_tensor(np.asarray(chunk, dtype="int32"))
            start_out.append(
                keras.ops.convert_to_numpy(self._measure(pictures, indices))
            )
            for _ in range(self._steps):
                jitter = self._jitter
                shifts = (
                    self._rng.integers(-jitter, jitter + 1, size=2)
                    if jitter
                    else (0, 0)
                )
                shifts = keras.ops.convert_to_tensor(np.asarray(shifts, dtype="int32"))
                pictures = self._step(pictures, indices, shifts, self._step_size)
                if self._progbar is not None:
                    self._progbar.add(len(chunk))
            final_out.append(
                keras.ops.convert_to_numpy(self._measure(pictures, indices))
            )
            pictures_out.append(keras.ops.convert_to_numpy(pictures))
        return (
            np.concatenate(pictures_out).astype("float32"),
            np.concatenate(start_out).astype("float64"),
            np.concatenate(final_out).astype("float64"),
        )

    def climb_with_restarts(self, filters, restarts: int):
        """Climbs, then climbs again from stronger starts for the filters that did not rise.

        Returns the raw pictures, the start and final activations, whether each
        filter rose and the attempt that made it rise (or the last one).
        """
        raw, start, final = self.climb(filters, attempt=0)
        excited = _rose(start, final)
        attempts = np.ones(len(filters), dtype="int64")
        for attempt in range(1, restarts + 1):
            again = np.flatnonzero(~excited)
            if not again.size:
                break
            retry = self.climb([filters[i] for i in again], attempt)
            found = _rose(retry[1], retry[2])
            chosen = again[found]
            raw[chosen], start[chosen], final[chosen] = (part[found] for part in retry)
            excited[chosen] = True
            attempts[chosen] = attempt + 1
        return raw, start, final, excited, attempts


def _step_and_measure(model, passes, run_eagerly: bool):
    """The ascent step and the activation measure for ``passes``, compiled and cached unless eager.

    The cached pair is only reused while the model is as it was when they
    were compiled (`model_signature`): a changed layer gets new ones.
    """
    path, border = passes[0], passes[1]
    if run_eagerly:
        return _ascent_step(model, *passes), _activation_measure(model, path, border)
    return _STEPS.get(
        model,
        passes,
        lambda: (
            compile_for(model, _ascent_step(model, *passes)),
            compile_for(model, _activation_measure(model, path, border)),
        ),
        signature=model_signature(model),
    )


def _warn_not_excited(path, filters, excited, restarts: int) -> None:
    """Warns, from the caller of `filter_patterns`, about the filters that stayed at their start."""
    missed = [f for f, ok in zip(filters, excited) if not ok]
    warnings.warn(
        f"{len(missed)} of {len(filters)} filters of layer {path!r} were not "
        f"excited by the ascent (filters {missed[:10]}"
        f"{'...' if len(missed) > 10 else ''}), even after {restarts} "
        "restart(s): their activation did not rise, so their pictures are the "
        "start noise, not a pattern (often a filter that no input reaches, "
        "behind channels that are zero for every picture). "
        "FilterPatterns.excited marks them and plot_filter_patterns crosses "
        "them out.",
        UserWarning,
        stacklevel=3,
    )


def filter_patterns(
    model: keras.Model,
    layer: str | keras.layers.Layer,
    filters: Iterable[int] = range(64),
    *,
    image_size: int | tuple[int, int] | None = None,
    steps: int = 30,
    step_size: float = 10.0,
    value_range: tuple[float, float] = (0.0, 255.0),
    border: int = 2,
    crop: int | None = None,
    jitter: int = 0,
    objective: str = "pre_activation",
    restarts: int = 2,
    batch_size: int | None = None,
    deprocess: bool = True,
    seed: int | None = None,
    verbose: int = 1,
    run_eagerly: bool = False,
) -> FilterPatterns:
    """Finds, for several filters of a layer at once, the picture each responds to most.

    Gradient ascent in input space, as in the Keras example "Visualizing
    what convnets learn": picture i of a batch starts from mid-grey plus a
    little noise and climbs the mean value of filter ``filters[i]`` (the
    feature map's outer ``border`` pixels left out) for ``steps`` steps of
    the L2-normalised gradient. By default the value climbed is the one
    before the layer's activation function, and a filter that was not
    excited is climbed again from stronger starts; a warning names the
    filters no attempt excited. The model runs up to ``layer`` only.

    Args:
        model: A Keras model.
        layer: The layer: a path such as ``"vgg16/block3_conv1"``, a name
            or a Layer. Its output's last axis holds the filters.
        filters: Indices of the filters.
        image_size: Picture size, an int or (height, width). None uses the
            model's input size when it is fixed, else 180.
        steps: Gradient-ascent steps.
        step_size: Step for an input range of width 2, scaled by
            ``(high - low) / 2``.
        value_range: (low, high) of the pictures the model takes: (0, 255)
            for models that rescale or preprocess inside, (0, 1) or (-1, 1)
            for models that take rescaled pictures.
        border: Feature-map pixels left out on each side of the mean.
        crop: Pixels removed on each side when deprocessing. None: 25 px for
            a 180 px picture, proportionally for other sizes.
        jitter: If > 0, a random circular shift of up to ``jitter`` pixels
            before every step (smoother patterns).
        objective: ``"pre_activation"`` (default) climbs the value before
            the layer's activation function; ``"activation"`` climbs the
            layer's output, as the Keras example does.
        restarts: How many times a filter that was not excited is climbed
            again from a stronger start (0: never).
        batch_size: Filters optimised together. None: all of them, up to 64,
            with a GPU; 8 on a CPU.
        deprocess: True (default) returns viewable uint8 pictures; False
            the raw float32 inputs, in the model's input space, uncropped.
        seed: Seed of the start noise and the jitter.
        verbose: 1 (default) shows a progress bar; 0 is silent.
        run_eagerly: False (default) compiles the step, cached for the model
            and layer; True runs it eagerly, for debugging.

    Returns:
        A `FilterPatterns`: the pictures (filters, height, width, channels),
        usable as an array, with ``excited`` and the start and final
        activations of each filter.

    Raises:
        ValueError: For an unknown layer, a filter index beyond the layer's
            filters, or an ``image_size`` that does not match the model's
            fixed input size.

    Example:

    ```python
    patterns = filter_patterns(model, "vgg16/block3_conv1", range(16), image_size=64)
    patterns.shape, patterns.excited.mean()
    fig = plot_filter_patterns(patterns, title="block3_conv1")
    ```
    """
    check_model(model)
    path, _ = resolve_layer(model, layer)
    filters = _check_filters(filters)
    height, width, channels = _picture_shape(model, image_size)
    check_positive_int("steps", steps)
    step_size = check_number("step_size", step_size, 0.0, include_minimum=False)
    low, high = check_value_range("value_range", value_range)
    check_int("border", border, minimum=0)
    check_int("jitter", jitter, minimum=0)
    objective = check_choice("objective", objective, OBJECTIVES)
    check_int("restarts", restarts, minimum=0)
    if batch_size is None:
        batch_size = 64 if _backend.accelerator_available() else 8
    check_positive_int("batch_size", batch_size)
    check_bool("deprocess", deprocess)
    seed = check_seed(seed)
    check_bool("run_eagerly", run_eagerly)
    if crop is None:
        crop = int(round(min(height, width) * 25 / 180))
    largest_crop = (min(height, width) - 1) // 2
    check_int("crop", crop, 0, largest_crop, what=f"a {height}x{width} picture")

    # The eager pass first: it builds the model (and its variables) before compiling.
    layer_channels = _layer_output_shape(model, path, height, width, channels)[-1]
    _check_filter_range(filters, layer_channels, path)
    ascent_step, measure = _step_and_measure(
        model, (path, border, bool(jitter), objective), run_eagerly
    )
    ascent = _Ascent(
        ascent_step,
        measure,
        (height, width, channels),
        (low, high),
        step_size,
        steps,
        jitter,
        batch_size,
        np.random.default_rng(seed),
        keras.utils.Progbar(len(filters) * steps, unit_name="step")
        if verbose
        else None,
    )
    raw, start, final, excited, attempts = ascent.climb_with_restarts(filters, restarts)
    if not excited.all():
        _warn_not_excited(path, filters, excited, restarts)
    images = (
        raw if not deprocess else np.stack([deprocess_image(p, crop) for p in raw])
    )
    return FilterPatterns(
        images=images,
        filters=np.asarray(filters, dtype="int64"),
        excited=excited,
        start_activation=start,
        final_activation=final,
        attempts=attempts,
        layer=path,
        objective=objective,
    )


def filter_pattern(
    model: keras.Model,
    layer: str | keras.layers.Layer,
    filter_index: int,
    *,
    image_size: int | tuple[int, int] | None = None,
    steps: int = 30,
    step_size: float = 10.0,
    **kwargs: Any,
) -> np.ndarray:
    """Finds the picture one filter of a layer responds to most.

    The one-filter case of `filter_patterns`, which documents the other
    keyword arguments (``value_range``, ``border``, ``crop``, ``jitter``,
    ``objective``, ``restarts``, ``deprocess``, ``seed``, ``verbose``,
    ``run_eagerly``). For many filters call `filter_patterns`: it climbs
    them in one batch, many times faster than a loop over this function.

    Args:
        model: A Keras model.
        layer: The layer: a path, a name or a Layer.
        filter_index: The filter, an int >= 0.
        image_size: Picture size, an int or (height, width); None as in
            `filter_patterns`.
        steps: Gradient-ascent steps.
        step_size: Step for an input range of width 2.
        **kwargs: Other keyword arguments of `filter_patterns`.

    Returns:
        One picture (height, width, channels), uint8 unless
        ``deprocess=False``.

    Example:

    ```python
    image = filter_pattern(model, "block3_conv1", 0, image_size=64)
    ```
    """
    check_int("filter_index", filter_index, minimum=0)
    kwargs.setdefault("verbose", 0)
    return filter_patterns(
        model,
        layer,
        [int(filter_index)],
        image_size=image_size,
        steps=steps,
        step_size=step_size,
        **kwargs,
    )[0]


def _check_filters(filters) -> list[int]:
    expected = "a non-empty sequence of filter indices (ints >= 0), e.g. range(16)"
    if is_integer(filters):
        filters = [filters]
    if isinstance(filters, (str, bytes)):
        raise TypeError(f"`filters` must be {expected}. {received('filters', filters)}")
    try:
        values = list(filters)
    except TypeError as error:
        raise TypeError(
            f"`filters` must be {expected}. {received('filters', filters)}"
        ) from error
    if not all(is_integer(v) for v in values):
        raise TypeError(f"`filters` must be {expected}. {received('filters', filters)}")
    if not values or any(v < 0 for v in values):
        raise ValueError(
            f"`filters` must be {expected}. {received('filters', filters)}"
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


def _layer_output_shape(model, path, height, width, channels):
    picture = keras.ops.zeros((1, height, width, channels), dtype="float32")
    return tuple(_forward_to_layer(model, path, picture).output.shape)


def _picture_shape(model, image_size):
    known = _model_input_shape(model)
    channels = known[2] if known and known[2] else 3
    if image_size is None:
        if known and known[0] and known[1]:
            return int(known[0]), int(known[1]), int(channels)
        image_size = _DEFAULT_SIZE
    expected = "an int or (height, width), at least 8 pixels"
    given = received("image_size", image_size)
    if is_integer(image_size):
        height = width = int(image_size)
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(is_integer(s) for s in image_size)
    ):
        height, width = (int(s) for s in image_size)
    else:
        raise TypeError(f"`image_size` must be {expected}. {given}")
    if height < 8 or width < 8:
        raise ValueError(f"`image_size` must be {expected}. {given}")
    if known and known[0] and known[1] and (known[0], known[1]) != (height, width):
        raise ValueError(
            f"`image_size` does not match the model's fixed input size "
            f"{known[0]}x{known[1]}; pass image_size=None or a model built with a "
            f"free input size, e.g. include_top=False without input_shape. {given}"
        )
    return height, width, int(channels)


def plot_filter_patterns(
    patterns: FilterPatterns | np.ndarray,
    *,
    images_per_row: int = 8,
    margin: int = 5,
    title: str | None = None,
    labels: Iterable[int] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draws filter patterns as one grid picture.

    Filters that `filter_patterns` reports as not excited (their picture is
    the start noise) are crossed out in red, and the title says how many.

    Args:
        patterns: What `filter_patterns` returned (a `FilterPatterns`), or an
            array of pictures (uint8, or float in [0, 1]), shape (filters,
            height, width, channels).
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
    patterns = filter_patterns(model, "conv2d", range(64))
    fig = plot_filter_patterns(patterns, title="conv2d")
    ```
    """
    excited = patterns.excited if isinstance(patterns, FilterPatterns) else None
    patterns = np.asarray(patterns)
    if patterns.ndim == 3:
        patterns = patterns[..., None]
    if patterns.ndim != 4 or patterns.shape[0] == 0:
        raise ValueError(
            "patterns must be an array (filters, height, width, channels) as returned "
            f"by filter_patterns, got shape {patterns.shape}."
        )
    check_positive_int("images_per_row", images_per_row)
    check_int("margin", margin, minimum=0)
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
        figure = new_figure(
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
    missed = [] if excited is None else np.flatnonzero(~excited).tolist()
    for i in missed:
        r, c = divmod(i, columns)
        top, left = r * (height + margin) - 0.5, c * (width + margin) - 0.5
        for ys in ((top, top + height), (top + height, top)):
            ax.plot(
                (left, left + width),
                ys,
                color="red",
                linewidth=1.5,
                scalex=False,
                scaley=False,
            )
    if missed:
        note = f"{len(missed)} of {count} filters not excited (crossed out)"
        title = f"{title}\n{note}" if title else note
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return figure
