"""Class activation maps: where in a picture the evidence for a class is.

Three methods share one call shape:

- ``"gradcam"`` (Selvaraju et al., 2017): each channel k of a conv feature
  map A is weighted by the spatial mean of d(score)/dA_k; the map is
  ReLU(sum_k weight_k A_k).
- ``"gradcam++"`` (Chattopadhyay et al., 2018): per-position weights from
  the first, second and third derivatives (computed, as in the paper, from
  the gradient of an exponential of the score), which handles several
  instances of a class better.
- ``"scorecam"`` (Wang et al., 2020): no gradients; each channel, upsampled
  and scaled to [0, 1], masks the picture and the class probability the
  model gives the masked picture is the channel's weight (softmax over
  channels). One forward pass per channel and picture: slow.

The gradient with respect to the feature map comes from one forward pass of
the whole model, on every backend: a zero "probe" is added to the feature
map as it flows through the model, and the score is differentiated with
respect to the probe (`keras_smalldata._backend.gradient_function`).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
)
from keras_smalldata._figures import new_figure
from keras_smalldata._function_cache import FunctionCache, model_signature
from keras_smalldata._models import CONVOLUTION_TYPES, check_model, resolve_layer
from keras_smalldata._types import ArrayLike
from keras_smalldata.viz._compiled import compile_for
from keras_smalldata.viz._layers import is_model
from keras_smalldata.viz._outputs import (
    ClassPredictor,
    check_class_names,
    check_class_range,
    class_name,
    class_scores,
    class_table,
    inspect_model,
    requested_classes,
)
from keras_smalldata.viz._recording import CallRecorder, as_batch, single_run
from keras_smalldata.viz.overlay import (
    colorize_heatmap,
    overlay_heatmap,
    to_display_image,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("gradcam", "gradcam++", "scorecam")

# Layers that may follow the last convolution and still belong to its block:
# the Keras example picks e.g. "block14_sepconv2_act" (Xception) or
# "conv5_block3_out" (ResNet50), the output of the last block.
_BLOCK_TAIL_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Add,
    keras.layers.Concatenate,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


def _is_conv_like(layer) -> bool:
    if isinstance(layer, CONVOLUTION_TYPES):
        return True
    # Convolutions from other packages (keras-cv, keras-hub, custom layers).
    return "conv" in type(layer).__name__.lower() and hasattr(layer, "kernel_size")


def _is_feature_map(run) -> bool:
    return run.shape is not None and len(run.shape) == 4


def _last_conv_path(runs) -> str | None:
    """The output of the last convolution's block, in the order layers ran."""
    runs = [r for r in runs if not is_model(r.layer)]
    last = None
    for index, run in enumerate(runs):
        if _is_conv_like(run.layer) and _is_feature_map(run):
            last = index
    if last is None:
        return None
    size = runs[last].shape[1:3]
    for index in range(last + 1, len(runs)):
        run = runs[index]
        if not (
            isinstance(run.layer, _BLOCK_TAIL_TYPES)
            and _is_feature_map(run)
            and run.shape[1:3] == size
        ):
            break
        last = index
    return runs[last].path


def _no_convolution(model) -> ValueError:
    return ValueError(
        f"model {model.name!r} has no convolution layer with a 4-D (batch, height, "
        "width, channels) output; pass layer= explicitly."
    )


def find_last_conv_layer(model: keras.Model, images: ArrayLike) -> str:
    """Returns the path of the layer `class_activation_maps` uses by default.

    The model runs once on ``images``; of the layers in the order they ran
    (nested models included), this is the last convolution with a 4-D output,
    extended over the normalisation, activation, addition or concatenation
    layers right after it at the same size: the output of the last block.

    Args:
        model: A Keras model.
        images: One picture or a batch, as the model expects them.

    Returns:
        A layer path usable as ``layer=`` anywhere in `keras_smalldata.viz`.

    Raises:
        ValueError: When the model has no convolution with a 4-D output.

    Example:

    ```python
    find_last_conv_layer(model, images[:1])
    # 'vgg16/block5_conv3'
    ```
    """
    check_model(model)
    batch, _ = as_batch(images)
    path = _last_conv_path(inspect_model(model, batch).runs)
    if path is None:
        raise _no_convolution(model)
    return path


@dataclasses.dataclass
class ClassActivationMaps:
    """Class activation maps for a batch, with what they explain.

    Attributes:
        heatmaps: float32 array (batch, height, width) in [0, 1].
        class_index: The class each map explains, int array (batch,).
        predicted: The predicted class of each picture, int array (batch,).
        probability: The probability of the predicted class, float array
            (batch,): the model's own output when it outputs probabilities
            (a softmax or sigmoid at its end, as a layer or as an op), the
            softmax (one unit: sigmoid) of its output when it outputs logits.
        class_probability: The same for the explained class.
        layer: Path of the layer whose feature map was used.
        method: "gradcam", "gradcam++" or "scorecam".
    """

    heatmaps: np.ndarray
    class_index: np.ndarray
    predicted: np.ndarray
    probability: np.ndarray
    class_probability: np.ndarray
    layer: str
    method: str


def _cam_pass(model, path: str, head, method: str):
    """One forward (and backward) pass giving everything a class activation map needs.

    The returned function maps ``(probe, images, requested)`` (probe: zeros of
    the feature map's shape; requested: int per picture, -1 for the predicted
    class) to a dict with the per-class probabilities, the predicted and the
    explained classes, and for Grad-CAM and Grad-CAM++ the raw maps
    (computed in the pass, so that the feature map and its gradient never
    leave the device), for Score-CAM the feature map.
    """
    model_ref = weakref.ref(model)
    recorded = (path,) + head.recorded_layers
    spied = head.recorded_layers if head.needs_pre_activation else ()

    def run(probe, images, requested):
        model = model_ref()
        layers = [resolve_layer(model, p) for p in recorded]
        transform = {path: lambda output: output + probe}
        with CallRecorder(
            layers, transform=transform, pre_activation=spied
        ) as recorder:
            outputs = recorder.run(model, images)
        target = recorder.single_call(path, model).output
        table = class_table(head.probabilities(outputs))
        predicted = keras.ops.cast(keras.ops.argmax(table, axis=1), "int32")
        chosen = keras.ops.where(requested < 0, predicted, requested)
        score = class_scores(head.scores(recorder, outputs, model), chosen)
        result = {
            "activations": target,
            "table": table,
            "predicted": predicted,
            "chosen": chosen,
        }
        return score, result

    if method == "scorecam":
        return lambda probe, images, requested: run(probe, images, requested)[1]
    gradient = _backend.gradient_function(run)

    def run_with_gradients(probe, images, requested):
        gradients, result = gradient(probe, images, requested)
        activations = result.pop("activations")
        result["maps"] = _gradcam_maps(activations, gradients, method)
        return result

    return run_with_gradients


_PASSES = FunctionCache(size=4)


def _gradcam_maps(activations, gradients, method: str):
    """Raw Grad-CAM or Grad-CAM++ maps (batch, height, width), float32, with `keras.ops`."""
    ops = keras.ops
    activations = ops.cast(activations, "float32")
    gradients = ops.cast(gradients, "float32")
    if method == "gradcam":
        weights = ops.mean(gradients, axis=(1, 2))
    else:
        # Grad-CAM++ with Y = exp(score): dY/dA = Y g, d2 = Y g^2, d3 = Y g^3; the
        # positive factor Y cancels in alpha and in the final normalisation.
        g2 = gradients * gradients
        g3 = g2 * gradients
        total = ops.sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 * g2 + total * g3
        alpha = g2 / ops.where(denominator != 0.0, denominator, 1.0)
        # As the authors' reference code: alphas of a channel sum to 1.
        alpha_sum = ops.sum(alpha, axis=(1, 2), keepdims=True)
        alpha = alpha / ops.where(alpha_sum != 0.0, alpha_sum, 1.0)
        weights = ops.sum(alpha * ops.relu(gradients), axis=(1, 2))
    return ops.relu(ops.einsum("nhwk,nk->nhw", activations, weights))


def _resize_maps(maps: np.ndarray, size) -> np.ndarray:
    resized = keras.ops.image.resize(
        keras.ops.convert_to_tensor(maps[..., None], dtype="float32"),
        size,
        interpolation="bilinear",
    )
    return np.asarray(keras.ops.convert_to_numpy(resized), dtype="float32")[..., 0]


def _rescale_resized(maps: np.ndarray) -> np.ndarray:
    """`normalize_heatmaps` for maps in [0, 1] after a bilinear resize, in float32.

    Bilinear weights are non-negative, so the resized maps stay finite and in
    [0, 1]; only their maxima can fall below 1 (a peak between two samples).
    """
    maps = np.maximum(maps, 0.0, dtype="float32")
    peak = maps.max(axis=(1, 2), keepdims=True)
    ok = peak > 1e-12
    return np.divide(maps, np.where(ok, peak, 1.0), out=np.zeros_like(maps), where=ok)


def normalize_heatmaps(maps: np.ndarray) -> np.ndarray:
    """Scales each map of a batch to [0, 1] by its maximum; all-zero maps stay zeros.

    Negative values are cut to 0 first (a ReLU). A map whose maximum is 0 (or
    not finite) becomes all zeros, never NaN.

    Args:
        maps: An array (batch, height, width) of raw class activation maps.

    Returns:
        A float32 array of the same shape with values in [0, 1].

    Example:

    ```python
    normalize_heatmaps(np.array([[[0.0, 2.0]], [[0.0, 0.0]]])).tolist()
    # [[[0.0, 1.0]], [[0.0, 0.0]]]
    ```
    """
    maps = np.nan_to_num(
        np.maximum(np.asarray(maps, dtype="float64"), 0.0), nan=0.0, posinf=0.0
    )
    axes = tuple(range(1, maps.ndim))
    peak = maps.max(axis=axes, keepdims=True)
    ok = peak > 1e-12
    return np.where(ok, maps / np.where(ok, peak, 1.0), 0.0).astype("float32")


# On a CPU, a pass holds at most this many pixels: 8 pictures of 224 x 224.
CPU_PIXELS_PER_PASS = 8 * 224 * 224


def default_batch_size(size) -> int:
    """Pictures per pass when ``batch_size=None``: 32 with an accelerator; on a CPU at most
    `CPU_PIXELS_PER_PASS` pixels per pass (8 pictures of 224 px, 32 of 112 px or less)."""
    if _backend.accelerator_available():
        return 32
    height, width = (int(d) if d is not None else 224 for d in size)
    return max(1, min(32, CPU_PIXELS_PER_PASS // max(1, height * width)))


def _score_cam(predictor, batch, activations, classes, batch_size, progbar):
    height, width = batch.shape[1:3]
    maps = []
    for i in range(activations.shape[0]):
        channels = np.transpose(activations[i], (2, 0, 1))  # (k, h, w)
        masks = _resize_maps(channels, (height, width))
        low = masks.min(axis=(1, 2), keepdims=True)
        span = masks.max(axis=(1, 2), keepdims=True) - low
        masks = np.where(span > 0, (masks - low) / np.where(span > 0, span, 1.0), 0.0)
        picture = keras.ops.convert_to_numpy(batch[i])
        probabilities = []
        for start in range(0, masks.shape[0], batch_size):
            masked = picture[None] * masks[start : start + batch_size, :, :, None]
            _, table = predictor(keras.ops.convert_to_tensor(masked, dtype=batch.dtype))
            probabilities.append(table[:, classes[i]])
            if progbar is not None:
                progbar.add(1)
        scores = np.concatenate(probabilities).astype("float64")
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        maps.append(np.tensordot(activations[i], weights, axes=([2], [0])))
    return np.maximum(np.stack(maps), 0.0)


def class_activation_maps(
    model: keras.Model,
    images: ArrayLike,
    class_index: int | Sequence[int] | None = None,
    *,
    layer: str | keras.layers.Layer | None = None,
    method: str = "gradcam",
    resize: bool = True,
    batch_size: int | None = None,
    verbose: int = 0,
    run_eagerly: bool = False,
) -> ClassActivationMaps:
    """Computes class activation maps (Grad-CAM, Grad-CAM++ or Score-CAM).

    Each picture gets its own map, for its own class. The model runs as
    ``model(images, training=False)`` and is not changed; a layer inside a
    nested model is named by its path (``"vgg16/block5_conv3"``). The score
    explained is the one before the model's final softmax or sigmoid.

    Args:
        model: A Keras classifier with one output of shape (batch, classes),
            or (batch, 1) for one sigmoid unit.
        images: Pictures as the model expects them, (batch, height, width,
            channels), or one picture (height, width, channels).
        class_index: The class to explain: None (default) for each
            picture's predicted class, an int for every picture, or one int
            per picture. One sigmoid unit has the classes 0 and 1.
        layer: The feature map to use: a path, a name or a Layer. None
            finds the last convolution block (`find_last_conv_layer`).
        method: ``"gradcam"`` (default), ``"gradcam++"`` or ``"scorecam"``.
        resize: True (default) returns the maps at the pictures'
            resolution; False at the feature map's.
        batch_size: Pictures per forward pass (for Score-CAM, also masked
            pictures per pass). None: 32 with a GPU or TPU; on a CPU, at
            most the pixels of 8 pictures of 224 x 224 per pass.
        verbose: 0 (default) is silent; 1 shows a progress bar.
        run_eagerly: False (default) runs the pass compiled, cached for the
            model as it is; True runs it eagerly, for debugging.

    Returns:
        A `ClassActivationMaps`: the heatmaps, float32 (batch, height,
        width) in [0, 1] (all zeros where there is no positive evidence),
        the explained and predicted classes, their probabilities, the layer
        and the method.

    Raises:
        ValueError: For a model without a convolution (when ``layer`` is
            None), a layer whose output is not 4-D, a model without one
            (batch, classes) output, or a class the model does not have.

    Example:

    ```python
    maps = class_activation_maps(model, images)
    maps.heatmaps.shape, maps.layer, maps.predicted
    # ((2, 180, 180), 'vgg16/block5_conv3', array([1, 0]))
    ```
    """
    check_model(model)
    method = check_choice("method", method, METHODS)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    check_bool("resize", resize)
    check_bool("run_eagerly", run_eagerly)
    check_choice("verbose", verbose, (0, 1))
    batch, _ = as_batch(images)
    if batch_size is None:
        batch_size = default_batch_size(batch.shape[1:3])
    total = int(batch.shape[0])
    requested_all = requested_classes(class_index, total)
    # The model as it is now: a compiled pass made for another state is not used.
    signature = model_signature(model)
    inspection = inspect_model(model, batch, signature=signature)
    head = inspection.require_head()
    check_class_range(requested_all, inspection.require_units())
    if layer is not None:
        path = resolve_layer(model, layer)[0]
    else:
        last_conv = _last_conv_path(inspection.runs)
        if last_conv is None:
            raise _no_convolution(model)
        path = last_conv
    target = single_run(path, inspection.runs, model)
    if not _is_feature_map(target):
        raise ValueError(
            f"layer={path!r} outputs shape {target.shape}; class activation maps "
            "need a 4-D (batch, height, width, channels) feature map, e.g. the last "
            "convolution."
        )
    if run_eagerly:
        cam_pass = _cam_pass(model, path, head, method)
    else:
        cam_pass = _PASSES.get(
            model,
            (path, head, method),
            lambda: compile_for(model, _cam_pass(model, path, head, method), True),
            signature=signature,
        )
    progbar = None
    if verbose and method != "scorecam":
        progbar = keras.utils.Progbar(-(-total // batch_size), unit_name="batch")
    predictor = ClassPredictor(model, run_eagerly=run_eagerly, signature=signature)
    parts: dict[str, list[np.ndarray]] = {
        key: []
        for key in ("maps", "classes", "predicted", "probability", "class_probability")
    }
    for start in range(0, total, batch_size):
        chunk = batch if total <= batch_size else batch[start : start + batch_size]
        requested = requested_all[start : start + batch_size]
        probe = keras.ops.zeros((int(chunk.shape[0]),) + target.shape[1:], target.dtype)
        result = cam_pass(probe, chunk, keras.ops.convert_to_tensor(requested))
        table = keras.ops.convert_to_numpy(result["table"]).astype("float64")
        predicted = keras.ops.convert_to_numpy(result["predicted"]).astype("int64")
        classes = keras.ops.convert_to_numpy(result["chosen"]).astype("int64")
        if method == "scorecam":
            activations = keras.ops.convert_to_numpy(result["activations"]).astype(
                "float64"
            )
            if progbar is None and verbose:
                steps = -(-int(activations.shape[-1]) // batch_size) * total
                progbar = keras.utils.Progbar(steps, unit_name="batch")
            maps = _score_cam(
                predictor, chunk, activations, classes, batch_size, progbar
            )
        else:
            maps = keras.ops.convert_to_numpy(result["maps"])
            if progbar is not None:
                progbar.add(1)
        parts["maps"].append(normalize_heatmaps(maps))
        parts["classes"].append(classes)
        parts["predicted"].append(predicted)
        rows = np.arange(len(predicted))
        parts["probability"].append(table[rows, predicted])
        parts["class_probability"].append(table[rows, classes])
    heatmaps = np.concatenate(parts["maps"])
    if resize:  # all chunks at once: one resize
        heatmaps = _rescale_resized(_resize_maps(heatmaps, tuple(batch.shape[1:3])))
    return ClassActivationMaps(
        heatmaps=heatmaps,
        class_index=np.concatenate(parts["classes"]),
        predicted=np.concatenate(parts["predicted"]),
        probability=np.concatenate(parts["probability"]).astype("float32"),
        class_probability=np.concatenate(parts["class_probability"]).astype("float32"),
        layer=path,
        method=method,
    )


_METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
}


def plot_class_activation_maps(
    maps: ClassActivationMaps,
    images: ArrayLike,
    *,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.4,
    cmap: str = "jet",
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draws each picture, its class activation map and their overlay.

    One row per picture: the picture titled with its predicted class and
    probability, the heatmap titled with the class it explains and the
    layer, and the heatmap blended over the picture (`overlay_heatmap`).
    Nothing is computed: the maps come from `class_activation_maps`.

    Args:
        maps: The `ClassActivationMaps` of ``images``.
        images: The pictures the maps explain, (batch, height, width,
            channels), or one picture.
        class_names: Names of the classes, e.g. ``train_ds.class_names``.
        alpha: Weight of the heatmap in the overlay, in [0, 1].
        cmap: A matplotlib colormap.
        value_range: (low, high) of the pictures for display; None guesses
            (see `overlay_heatmap`).
        figsize: Figure size; default 3 inches per panel.

    Returns:
        A `matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``maps`` is not a `ClassActivationMaps`.
        ValueError: If ``images`` and ``maps`` hold different numbers of
            pictures.

    Example:

    ```python
    maps = class_activation_maps(model, images[:2])
    fig = plot_class_activation_maps(maps, images[:2], class_names=["cat", "dog"])
    fig.savefig("class_activation_maps.png")
    ```
    """
    if not isinstance(maps, ClassActivationMaps):
        raise TypeError(
            "`maps` must be the ClassActivationMaps returned by "
            "class_activation_maps(model, images). Received: maps of type "
            f"{type(maps).__name__}."
        )
    class_names = check_class_names(class_names)
    check_number("alpha", alpha, 0.0, 1.0)
    batch, _ = as_batch(images)
    pictures = keras.ops.convert_to_numpy(batch)
    rows = pictures.shape[0]
    if rows != len(maps.heatmaps):
        raise ValueError(
            f"`images` holds {rows} pictures but `maps` has {len(maps.heatmaps)} "
            "heatmaps: pass the pictures the maps were computed for. Received: "
            f"images of shape {tuple(pictures.shape)}."
        )
    figure = new_figure(figsize=figsize or (9.0, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        shown = to_display_image(pictures[i], value_range)
        predicted = int(maps.predicted[i])
        explained = int(maps.class_index[i])
        axes[i, 0].imshow(shown)
        axes[i, 0].set_title(
            f"predicted: {class_name(predicted, class_names)} ({maps.probability[i]:.2f})"
        )
        axes[i, 1].imshow(colorize_heatmap(maps.heatmaps[i], cmap))
        title = _METHOD_TITLES.get(maps.method, maps.method)
        axes[i, 1].set_title(
            f"{title} for {class_name(explained, class_names)}\n{maps.layer}",
            fontsize=9,
        )
        axes[i, 2].imshow(
            overlay_heatmap(shown, maps.heatmaps[i], alpha=alpha, cmap=cmap)
        )
        axes[i, 2].set_title("overlay")
        for ax in axes[i]:
            ax.set_axis_off()
    return figure
